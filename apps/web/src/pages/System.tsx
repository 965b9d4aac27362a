// The system page: version, mode and uptime, every plugin with its health (from /health), and the
// services the server advertises (from discovery).
import { useQuery } from "@tanstack/react-query";
import { API, api } from "../lib/api";
import { t } from "../lib/i18n";
import { ErrorNotice, Loading } from "../components/ErrorNotice";
import { Card } from "../components/ui/card";
import { cn } from "../lib/cn";

interface PluginHealth {
  id: string;
  version: string;
  status: string;
  message?: string;
}

interface Health {
  status: string;
  version?: string;
  instanceId?: string;
  uptimeMs?: number;
  plugins: PluginHealth[];
}

interface ServiceInfo {
  enabled?: boolean;
  status?: string;
  route?: string;
  provider?: string;
  message?: string;
}

interface Discovery {
  version?: string;
  environment?: string;
  services?: Record<string, ServiceInfo>;
}

const tone = (status: string | undefined) =>
  status === "healthy" || status === "available"
    ? "text-green-700 dark:text-green-400"
    : status === "degraded" || status === "recovering"
      ? "text-amber-700 dark:text-amber-400"
      : "text-destructive";

export default function System() {
  const health = useQuery({
    queryKey: ["health"],
    queryFn: () => api.get<Health>("/health"),
    refetchInterval: 15_000,
  });
  const discovery = useQuery({ queryKey: ["discovery"], queryFn: () => api.get<Discovery>(`${API}/discovery`) });

  return (
    <div className="max-w-5xl space-y-4">
      <h1 className="text-2xl font-semibold">{t("system.title")}</h1>
      {(health.isPending || discovery.isPending) && <Loading />}
      {health.isError && <ErrorNotice error={health.error} />}
      {discovery.isError && <ErrorNotice error={discovery.error} />}
      <Card>
        <dl className="grid gap-3 sm:grid-cols-3">
          <div>
            <dt className="text-xs text-muted-foreground">{t("system.version")}</dt>
            <dd data-testid="version">{health.data?.version ?? discovery.data?.version ?? ""}</dd>
          </div>
          <div>
            <dt className="text-xs text-muted-foreground">{t("system.mode")}</dt>
            <dd>{discovery.data?.environment ?? ""}</dd>
          </div>
          <div>
            <dt className="text-xs text-muted-foreground">{t("system.status")}</dt>
            <dd className={tone(health.data?.status)}>{health.data?.status ?? ""}</dd>
          </div>
        </dl>
      </Card>
      {health.data && (
        <Card>
          <h2 className="mb-2 font-medium">{t("system.plugins")}</h2>
          <div className="overflow-x-auto">
            <table className="w-full text-left text-sm">
              <thead>
                <tr className="text-muted-foreground">
                  <th scope="col" className="py-1 pr-3 font-normal">{t("system.plugin")}</th>
                  <th scope="col" className="py-1 pr-3 font-normal">{t("system.version")}</th>
                  <th scope="col" className="py-1 pr-3 font-normal">{t("system.health")}</th>
                  <th scope="col" className="py-1 font-normal">{t("system.message")}</th>
                </tr>
              </thead>
              <tbody>
                {health.data.plugins.map((p) => (
                  <tr key={p.id} className="border-t border-border">
                    <td className="py-1 pr-3 font-mono text-xs">{p.id}</td>
                    <td className="py-1 pr-3">{p.version}</td>
                    <td className={cn("py-1 pr-3", tone(p.status))}>{p.status}</td>
                    <td className="py-1 text-muted-foreground">{p.message ?? ""}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </Card>
      )}
      {discovery.data?.services && (
        <Card>
          <h2 className="mb-2 font-medium">{t("system.services")}</h2>
          <ul className="grid gap-1 text-sm sm:grid-cols-2">
            {Object.entries(discovery.data.services).map(([name, s]) => (
              <li key={name} className="flex flex-wrap gap-x-2">
                <span className="font-mono text-xs">{name}</span>
                <span className={tone(s.status)}>{s.status ?? (s.enabled ? "available" : "unavailable")}</span>
                {s.route && <span className="text-muted-foreground">{s.route}</span>}
              </li>
            ))}
          </ul>
        </Card>
      )}
    </div>
  );
}
