// Background jobs (/api/v1/jobs): the queue filtered by status, queue and handler, and the dead
// letters; retry, cancel and replay where the job's state allows it (the server answers 409
// INVALID_STATE otherwise, shown at the row).
import { useState } from "react";
import { keepPreviousData, useQuery, useQueryClient } from "@tanstack/react-query";
import { useSearchParams } from "react-router";
import { JOB_STATUSES, jobs, type Job } from "../../lib/admin";
import { useRowActions } from "../../lib/actions";
import { t } from "../../lib/i18n";
import { DataTable, Pager } from "../../components/DataTable";
import { ErrorNotice, Loading } from "../../components/ErrorNotice";
import { Button } from "../../components/ui/button";
import { Input, Label, Select } from "../../components/ui/input";
import { cn } from "../../lib/cn";

const PAGE = 50;
const when = (v?: string | null) => (v ? new Date(v).toLocaleString() : "");

export default function Jobs() {
  const [params, setParams] = useSearchParams();
  const dead = params.get("view") === "dead";
  const status = params.get("status") ?? "";
  const queue = params.get("queue") ?? "";
  const handler = params.get("handler") ?? "";
  const offset = Number(params.get("offset") ?? 0) || 0;
  const [draft, setDraft] = useState({ queue, handler });
  const qc = useQueryClient();
  const list = useQuery({
    queryKey: ["jobs", dead, status, queue, handler, offset],
    queryFn: () =>
      dead
        ? jobs.deadLetters({ limit: PAGE, offset })
        : jobs.list({ status: status || undefined, queue: queue || undefined, handler: handler || undefined, limit: PAGE, offset }),
    placeholderData: keepPreviousData,
    refetchInterval: 10_000,
  });
  const rows = useRowActions();
  const set = (changes: Record<string, string | undefined>) => {
    const next = new URLSearchParams(params);
    for (const [k, v] of Object.entries(changes)) {
      if (v) next.set(k, v);
      else next.delete(k);
    }
    next.delete("offset");
    setParams(next);
  };
  const act = async (job: Job, what: "retry" | "cancel" | "replay") => {
    const ok = await rows.run(job.id, () => (what === "retry" ? jobs.retry(job.id) : what === "cancel" ? jobs.cancel(job.id) : jobs.replay(job.id)));
    if (ok) await qc.invalidateQueries({ queryKey: ["jobs"] });
  };
  const label = { retry: t("jobs.retry"), cancel: t("jobs.cancel"), replay: t("jobs.replay") };

  return (
    <div className="max-w-6xl space-y-4">
      <h1 className="text-2xl font-semibold">{t("nav.jobs")}</h1>
      <div role="tablist" aria-label={t("nav.jobs")} className="flex gap-2">
        <Button role="tab" aria-selected={!dead} variant={dead ? "outline" : "default"} onClick={() => set({ view: undefined })}>{t("jobs.all")}</Button>
        <Button role="tab" aria-selected={dead} variant={dead ? "default" : "outline"} onClick={() => set({ view: "dead", status: undefined })}>{t("jobs.deadLetters")}</Button>
      </div>
      {!dead && (
        <form
          aria-label={t("audit.filters")}
          className="flex flex-wrap items-end gap-3"
          onSubmit={(e) => {
            e.preventDefault();
            set({ queue: draft.queue, handler: draft.handler });
          }}
        >
          <div className="space-y-1">
            <Label htmlFor="job-status">{t("jobs.status")}</Label>
            <Select id="job-status" value={status} onChange={(e) => set({ status: e.target.value })} className="w-40">
              <option value="">{t("jobs.anyStatus")}</option>
              {JOB_STATUSES.map((s) => (
                <option key={s} value={s}>{s}</option>
              ))}
            </Select>
          </div>
          <div className="space-y-1">
            <Label htmlFor="job-queue">{t("jobs.queue")}</Label>
            <Input id="job-queue" value={draft.queue} onChange={(e) => setDraft((d) => ({ ...d, queue: e.target.value }))} className="w-40" />
          </div>
          <div className="space-y-1">
            <Label htmlFor="job-handler">{t("jobs.handler")}</Label>
            <Input id="job-handler" value={draft.handler} onChange={(e) => setDraft((d) => ({ ...d, handler: e.target.value }))} className="w-48" />
          </div>
          <Button type="submit">{t("audit.apply")}</Button>
        </form>
      )}
      {list.isPending && <Loading />}
      {list.isError && <ErrorNotice error={list.error} />}
      {list.data && (
        <>
          <DataTable<Job>
            caption={dead ? t("jobs.deadLetters") : t("nav.jobs")}
            rows={list.data.items}
            rowKey={(j) => j.id}
            rowLabel={(j) => `${j.handler} ${j.id}`}
            columns={[
              { key: "handler", label: t("jobs.handler"), render: (j) => <><code className="text-xs">{j.handler}</code><div className="text-xs text-muted-foreground">{j.queue}</div></> },
              {
                key: "status",
                label: t("jobs.status"),
                render: (j) => (
                  <span className={cn(j.status === "dead" || j.status === "failed" ? "text-destructive" : j.status === "completed" ? "text-green-700 dark:text-green-400" : "")}>
                    {j.status}
                    {j.cancelRequested ? ` (${t("jobs.cancelRequested")})` : ""}
                  </span>
                ),
              },
              { key: "attempts", label: t("jobs.attempts"), render: (j) => `${j.attempts}/${j.maxAttempts}` },
              { key: "created", label: t("jobs.created"), render: (j) => when(j.createdAt) },
              { key: "error", label: t("jobs.error"), render: (j) => <span className="break-all text-xs">{j.error ?? ""}</span> },
              {
                key: "actions",
                label: t("admin.actions"),
                render: (j) => (
                  <div className="space-y-2">
                    <div className="flex flex-wrap gap-2">
                      {jobs.actionsFor(j).map((a) => (
                        <Button key={a} variant="outline" disabled={rows.busy === j.id} onClick={() => act(j, a)}>{label[a]}</Button>
                      ))}
                    </div>
                    <ErrorNotice error={rows.errorOf(j.id)} />
                  </div>
                ),
              },
            ]}
          />
          <Pager
            offset={offset}
            limit={PAGE}
            count={list.data.items.length}
            total={list.data.total}
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
