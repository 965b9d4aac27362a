// The audit log: filters (event type, actor, object, record, time span) kept in the address so a
// record's trail is a link (/admin/audit?object=account&recordId=…), paging, export as CSV or
// JSON with the same filters, and the hash chain's verification result.
import { useState, type FormEvent } from "react";
import { keepPreviousData, useQuery } from "@tanstack/react-query";
import { Link, useSearchParams } from "react-router";
import { audit, describeChange, type AuditEvent, type AuditFilter, type VerifyReport } from "../../lib/admin";
import { useAction } from "../../lib/actions";
import { t } from "../../lib/i18n";
import { DataTable, Pager } from "../../components/DataTable";
import { ErrorNotice, Loading } from "../../components/ErrorNotice";
import { Button } from "../../components/ui/button";
import { Card } from "../../components/ui/card";
import { Input, Label } from "../../components/ui/input";

const PAGE = 50;
const KEYS: (keyof AuditFilter)[] = ["eventType", "actor", "object", "recordId", "from", "to"];
const LABELS: Record<keyof AuditFilter, Parameters<typeof t>[0]> = {
  eventType: "audit.eventType",
  actor: "audit.actor",
  object: "audit.object",
  recordId: "audit.recordId",
  from: "audit.from",
  to: "audit.to",
};

export function filterFrom(params: URLSearchParams): AuditFilter {
  const f: AuditFilter = {};
  for (const k of KEYS) {
    const v = params.get(k)?.trim();
    if (v) f[k] = v;
  }
  return f;
}

export default function Audit() {
  const [params, setParams] = useSearchParams();
  const filter = filterFrom(params);
  const offset = Number(params.get("offset") ?? 0) || 0;
  const [draft, setDraft] = useState<AuditFilter>(filter);
  const events = useQuery({
    queryKey: ["audit", filter, offset],
    queryFn: () => audit.events({ ...filter, limit: PAGE, offset }),
    placeholderData: keepPreviousData,
  });
  const apply = (e: FormEvent) => {
    e.preventDefault();
    const next = new URLSearchParams();
    for (const k of KEYS) if (draft[k]) next.set(k, String(draft[k]));
    setParams(next);
  };
  const trail = filter.object && filter.recordId;
  const rows = events.data?.events ?? [];

  return (
    <div className="max-w-6xl space-y-4">
      <h1 className="text-2xl font-semibold">{trail ? t("audit.trailOf", { object: filter.object ?? "", id: filter.recordId ?? "" }) : t("nav.audit")}</h1>
      <Verify />
      <Card>
        <form onSubmit={apply} aria-label={t("audit.filters")} className="grid gap-3 sm:grid-cols-3">
          {KEYS.map((k) => (
            <div key={k} className="space-y-1">
              <Label htmlFor={`audit-${k}`}>{t(LABELS[k])}</Label>
              <Input
                id={`audit-${k}`}
                type={k === "from" || k === "to" ? "date" : "text"}
                value={draft[k] ?? ""}
                onChange={(e) => setDraft((d) => ({ ...d, [k]: e.target.value }))}
              />
            </div>
          ))}
          <div className="flex flex-wrap items-end gap-2 sm:col-span-3">
            <Button type="submit">{t("audit.apply")}</Button>
            <Button
              variant="outline"
              onClick={() => {
                setDraft({});
                setParams(new URLSearchParams());
              }}
            >
              {t("audit.clear")}
            </Button>
            <a className="inline-flex h-9 items-center rounded-md border border-border px-4 text-sm hover:bg-muted" href={audit.exportUrl(filter, "csv")} download>
              {t("audit.exportCsv")}
            </a>
            <a className="inline-flex h-9 items-center rounded-md border border-border px-4 text-sm hover:bg-muted" href={audit.exportUrl(filter, "json")} download>
              {t("audit.exportJson")}
            </a>
          </div>
        </form>
      </Card>
      {events.isPending && <Loading />}
      {events.isError && <ErrorNotice error={events.error} />}
      {events.data && (
        <>
          <DataTable<AuditEvent>
            caption={t("nav.audit")}
            rows={rows}
            rowKey={(e) => e.id}
            rowLabel={(e) => `${e.eventType} ${e.object ?? ""} ${e.recordId ?? ""}`.trim()}
            columns={[
              { key: "time", label: t("audit.time"), render: (e) => (e.timestamp ? new Date(e.timestamp).toLocaleString() : "") },
              { key: "type", label: t("audit.eventType"), render: (e) => <code className="text-xs">{e.eventType}</code> },
              { key: "actor", label: t("audit.actor"), render: (e) => <span className="break-all text-xs">{e.actor?.id ?? e.actor?.type ?? ""}</span> },
              {
                key: "record",
                label: t("audit.record"),
                render: (e) =>
                  e.object && e.recordId ? (
                    <Link className="text-primary hover:underline" to={`/admin/audit?object=${encodeURIComponent(e.object)}&recordId=${encodeURIComponent(e.recordId)}`}>
                      {e.object}/{e.recordId}
                    </Link>
                  ) : (
                    e.object ?? ""
                  ),
              },
              {
                key: "changes",
                label: t("audit.changes"),
                render: (e) => (
                  <ul className="text-xs">
                    {(e.changes ?? []).map((c) => (
                      <li key={c.field} className="break-all">{describeChange(c)}</li>
                    ))}
                    {e.description && <li className="text-muted-foreground">{e.description}</li>}
                  </ul>
                ),
              },
              { key: "result", label: t("audit.result"), render: (e) => e.result ?? "" },
            ]}
          />
          <Pager
            offset={offset}
            limit={PAGE}
            count={rows.length}
            total={events.data.total}
            onChange={(o) => {
              const next = new URLSearchParams(params);
              if (o) next.set("offset", String(o));
              else next.delete("offset");
              setParams(next);
            }}
          />
        </>
      )}
    </div>
  );
}

function Verify() {
  const action = useAction();
  const [report, setReport] = useState<VerifyReport | null>(null);
  return (
    <Card>
      <div className="flex flex-wrap items-center gap-3">
        <h2 className="font-medium">{t("audit.chain")}</h2>
        <Button
          variant="outline"
          disabled={action.busy}
          onClick={async () => {
            setReport(null);
            await action.run(async () => setReport(await audit.verify()));
          }}
        >
          {t("audit.verify")}
        </Button>
      </div>
      {action.error ? <div className="mt-3"><ErrorNotice error={action.error} /></div> : null}
      {report && (
        <div role="status" className="mt-3 text-sm">
          {report.ok ? (
            <p className="text-green-700 dark:text-green-400">{t("audit.chainOk", { events: report.events, chains: report.tenants })}</p>
          ) : (
            <>
              <p className="text-destructive">{t("audit.chainBroken", { count: report.broken.length })}</p>
              <ul className="mt-1 list-disc pl-5 text-xs">
                {report.broken.map((b) => (
                  <li key={`${b.tenant}-${b.seq}`}>{t("audit.brokenLink", { tenant: b.tenant || "—", seq: b.seq, reason: b.reason })}</li>
                ))}
              </ul>
            </>
          )}
        </div>
      )}
    </Card>
  );
}
