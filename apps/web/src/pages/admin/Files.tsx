// Stored files (the storage plugin's sys_file records, which administrators may list): name,
// size, type, status; download through /api/v1/storage (a signed, expiring link); upload with
// the presigned flow.
import { useRef, useState } from "react";
import { keepPreviousData, useQuery, useQueryClient } from "@tanstack/react-query";
import { useSearchParams } from "react-router";
import { files, formatBytes, type StoredFile } from "../../lib/admin";
import { useAction } from "../../lib/actions";
import { t } from "../../lib/i18n";
import { DataTable, Pager } from "../../components/DataTable";
import { ErrorNotice, Loading } from "../../components/ErrorNotice";
import { Button } from "../../components/ui/button";
import { Card } from "../../components/ui/card";
import { Label } from "../../components/ui/input";

const PAGE = 25;

export default function Files() {
  const [params, setParams] = useSearchParams();
  const offset = Number(params.get("offset") ?? 0) || 0;
  const qc = useQueryClient();
  const list = useQuery({
    queryKey: ["files", offset],
    queryFn: () => files.list({ top: PAGE, skip: offset }),
    placeholderData: keepPreviousData,
  });
  const upload = useAction();
  const input = useRef<HTMLInputElement>(null);
  const [done, setDone] = useState<string | null>(null);
  const send = async () => {
    const file = input.current?.files?.[0];
    if (!file) return;
    setDone(null);
    if (await upload.run(() => files.upload(file))) {
      setDone(file.name);
      if (input.current) input.current.value = "";
      await qc.invalidateQueries({ queryKey: ["files"] });
    }
  };
  const rows = list.data?.records ?? [];
  return (
    <div className="max-w-5xl space-y-4">
      <h1 className="text-2xl font-semibold">{t("nav.files")}</h1>
      <Card>
        <div className="flex flex-wrap items-end gap-3">
          <div className="space-y-1">
            <Label htmlFor="file-upload">{t("files.choose")}</Label>
            <input id="file-upload" ref={input} type="file" className="block text-sm" />
          </div>
          <Button onClick={send} disabled={upload.busy}>{t("files.upload")}</Button>
        </div>
        {upload.error ? <div className="mt-3"><ErrorNotice error={upload.error} /></div> : null}
        {done && <p role="status" className="mt-3 text-sm">{t("files.uploaded", { name: done })}</p>}
      </Card>
      {list.isPending && <Loading />}
      {list.isError && <ErrorNotice error={list.error} />}
      {list.data && (
        <>
          <DataTable<StoredFile>
            caption={t("nav.files")}
            rows={rows}
            rowKey={(f) => f.id}
            rowLabel={(f) => f.name ?? f.id}
            columns={[
              {
                key: "name",
                label: t("auth.name"),
                render: (f) =>
                  f.status === "ready" ? (
                    <a className="break-all text-primary hover:underline" href={files.downloadUrl(f.id)}>{f.name ?? f.id}</a>
                  ) : (
                    <span className="break-all">{f.name ?? f.id}</span>
                  ),
              },
              { key: "size", label: t("files.size"), render: (f) => formatBytes(f.size) },
              { key: "type", label: t("files.type"), render: (f) => f.mime_type ?? "" },
              { key: "status", label: t("jobs.status"), render: (f) => f.status ?? "" },
              { key: "created", label: t("jobs.created"), render: (f) => (f.created_at ? new Date(f.created_at).toLocaleString() : "") },
            ]}
          />
          <Pager
            offset={offset}
            limit={PAGE}
            count={rows.length}
            total={list.data.total}
            onChange={(o) => setParams(o ? { offset: String(o) } : {})}
          />
        </>
      )}
    </div>
  );
}
