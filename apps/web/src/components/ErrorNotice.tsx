// A server error in words, with its code and request id, where it happened.
import { ApiError } from "../lib/api";
import { t } from "../lib/i18n";

export function ErrorNotice({ error }: { error: unknown }) {
  if (!error) return null;
  const e = error instanceof ApiError ? error : null;
  const message = e ? (e.code === "NETWORK" ? t("error.network", { message: e.message }) : e.message) : error instanceof Error ? error.message : String(error);
  return (
    <div role="alert" className="rounded-md border border-destructive/50 bg-destructive/10 p-3 text-sm">
      <p className="font-medium">{message}</p>
      {e && (
        <p className="mt-1 text-xs text-muted-foreground">
          {e.code}
          {e.status ? ` · HTTP ${e.status}` : ""}
          {e.requestId ? ` · ${t("error.requestId", { id: e.requestId })}` : ""}
        </p>
      )}
    </div>
  );
}

export function Loading() {
  return <p className="p-4 text-sm text-muted-foreground" role="status">{t("loading")}</p>;
}
