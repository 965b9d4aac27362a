// The signed-in user's API keys: list, create (the secret is shown once, right here), revoke.
import { useState, type FormEvent } from "react";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { apiKeys, type ApiKey } from "../../lib/admin";
import { useAction, useRowActions } from "../../lib/actions";
import { t } from "../../lib/i18n";
import { DataTable } from "../../components/DataTable";
import { ErrorNotice, Loading } from "../../components/ErrorNotice";
import { Button } from "../../components/ui/button";
import { Card } from "../../components/ui/card";
import { Input, Label } from "../../components/ui/input";

const when = (v?: string | null) => (v ? new Date(v).toLocaleString() : "");

export default function ApiKeys() {
  const qc = useQueryClient();
  const list = useQuery({ queryKey: ["api-keys"], queryFn: apiKeys.list });
  const rows = useRowActions();
  const create = useAction();
  const [name, setName] = useState("");
  const [days, setDays] = useState("");
  const [secret, setSecret] = useState<string | null>(null);
  const refresh = () => qc.invalidateQueries({ queryKey: ["api-keys"] });
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setSecret(null);
    let key = "";
    const ok = await create.run(async () => {
      key = (await apiKeys.create(name, days ? Number(days) : undefined)).key;
    });
    if (ok) {
      setSecret(key);
      setName("");
      setDays("");
      await refresh();
    }
  };
  return (
    <div className="max-w-5xl space-y-4">
      <h1 className="text-2xl font-semibold">{t("nav.apiKeys")}</h1>
      <Card>
        <h2 className="mb-3 font-medium">{t("keys.create")}</h2>
        <form onSubmit={submit} className="flex flex-wrap items-end gap-3" aria-label={t("keys.create")}>
          <div className="space-y-1">
            <Label htmlFor="key-name">{t("auth.name")}</Label>
            <Input id="key-name" required value={name} onChange={(e) => setName(e.target.value)} />
          </div>
          <div className="space-y-1">
            <Label htmlFor="key-days">{t("keys.expiresInDays")}</Label>
            <Input id="key-days" type="number" min={1} value={days} onChange={(e) => setDays(e.target.value)} className="w-32" />
          </div>
          <Button type="submit" disabled={create.busy}>{t("keys.createButton")}</Button>
        </form>
        {create.error ? <div className="mt-3"><ErrorNotice error={create.error} /></div> : null}
        {secret && (
          <div role="status" className="mt-3 space-y-1 rounded-md border border-border bg-muted p-3 text-sm">
            <p className="font-medium">{t("keys.secretOnce")}</p>
            <code data-testid="api-key-secret" className="block break-all">{secret}</code>
          </div>
        )}
      </Card>
      {list.isPending && <Loading />}
      {list.isError && <ErrorNotice error={list.error} />}
      {list.data && (
        <DataTable<ApiKey>
          caption={t("nav.apiKeys")}
          rows={list.data}
          rowKey={(k) => k.id}
          rowLabel={(k) => k.name ?? k.id}
          columns={[
            { key: "name", label: t("auth.name"), render: (k) => k.name ?? "" },
            { key: "start", label: t("keys.start"), render: (k) => <code className="text-xs">{k.start ?? k.prefix ?? ""}…</code> },
            { key: "created", label: t("keys.created"), render: (k) => when(k.createdAt) },
            { key: "expires", label: t("keys.expires"), render: (k) => when(k.expiresAt) || t("keys.never") },
            {
              key: "actions",
              label: t("admin.actions"),
              render: (k) =>
                k.revoked ? (
                  <span className="text-muted-foreground">{t("keys.revoked")}</span>
                ) : (
                <div className="space-y-2">
                  <Button
                    variant="outline"
                    disabled={rows.busy === k.id}
                    onClick={async () => {
                      if (await rows.run(k.id, () => apiKeys.revoke(k.id))) await refresh();
                    }}
                  >
                    {t("keys.revoke")}
                  </Button>
                  <ErrorNotice error={rows.errorOf(k.id)} />
                </div>
                ),
            },
          ]}
        />
      )}
    </div>
  );
}
