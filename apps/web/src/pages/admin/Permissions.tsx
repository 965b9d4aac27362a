// Permission sets (from metadata: what each grants on objects and fields), who has which
// (GET /permissions/assignments), assigning and removing them, and the signed-in user's effective
// permissions on an object as the server computes them, the signed-in user's or, for
// administrators, another user's (GET /permissions/effective?userId=&object=) with row filters.
import { useState, type FormEvent } from "react";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { describeRowFilter, permissions, users, type Assignment, type PermissionSet, type UserObjectPermissions } from "../../lib/admin";
import { useAction, useRowActions } from "../../lib/actions";
import { t } from "../../lib/i18n";
import { useObjects } from "../../lib/meta";
import { DataTable } from "../../components/DataTable";
import { ErrorNotice, Loading } from "../../components/ErrorNotice";
import { Button } from "../../components/ui/button";
import { Card } from "../../components/ui/card";
import { Label, Select } from "../../components/ui/input";

const ACTIONS = ["allowRead", "allowCreate", "allowEdit", "allowDelete"] as const;

/** "account: read, create, edit" from a set's object grants. */
export function describeGrants(objects: PermissionSet["objects"]): string[] {
  return Object.entries(objects ?? {}).map(([object, p]) => {
    const granted = ACTIONS.filter((a) => p?.[a] === true).map((a) => a.slice(5).toLowerCase());
    const all = p?.viewAllRecords === true ? ["view all"] : [];
    return `${object}: ${[...granted, ...all].join(", ") || "—"}`;
  });
}

/** The fields a set hides or makes read-only: "account.annual_revenue: read-only". */
export function describeFields(fields: PermissionSet["fields"]): string[] {
  return Object.entries(fields ?? {}).map(([field, f]) =>
    `${field}: ${f?.readable === false ? "hidden" : f?.editable === false ? "read-only" : "editable"}`,
  );
}

export default function Permissions() {
  const sets = useQuery({ queryKey: ["permission-sets"], queryFn: permissions.sets });
  return (
    <div className="max-w-6xl space-y-6">
      <h1 className="text-2xl font-semibold">{t("nav.permissions")}</h1>
      <section className="space-y-2">
        <h2 className="text-lg font-medium">{t("perm.sets")}</h2>
        {sets.isPending && <Loading />}
        {sets.isError && <ErrorNotice error={sets.error} />}
        {sets.data && (
          <DataTable<PermissionSet>
            caption={t("perm.sets")}
            rows={sets.data}
            rowKey={(s) => s.name}
            rowLabel={(s) => s.name}
            columns={[
              { key: "name", label: t("auth.name"), render: (s) => <><code className="text-xs">{s.name}</code><div>{s.label ?? ""}</div></> },
              { key: "objects", label: t("perm.objects"), render: (s) => <ul className="text-xs">{describeGrants(s.objects).map((l) => <li key={l}>{l}</li>)}</ul> },
              { key: "fields", label: t("perm.fields"), render: (s) => <ul className="text-xs">{describeFields(s.fields).map((l) => <li key={l}>{l}</li>)}</ul> },
            ]}
          />
        )}
      </section>
      <Assignments sets={sets.data ?? []} />
      <Effective />
    </div>
  );
}

function Assignments({ sets }: { sets: PermissionSet[] }) {
  const qc = useQueryClient();
  const list = useQuery({ queryKey: ["permission-assignments"], queryFn: permissions.assignments });
  const people = useQuery({ queryKey: ["admin", "users", "all"], queryFn: () => users.list({ limit: 200, offset: 0 }) });
  const rows = useRowActions();
  const assign = useAction();
  const [user, setUser] = useState("");
  const [set, setSet] = useState("");
  const emailOf = (id: string) => people.data?.users.find((u) => u.id === id)?.email ?? id;
  const refresh = () => qc.invalidateQueries({ queryKey: ["permission-assignments"] });
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (await assign.run(() => permissions.assign(user, set))) await refresh();
  };
  return (
    <section className="space-y-2">
      <h2 className="text-lg font-medium">{t("perm.assignments")}</h2>
      <Card>
        <form onSubmit={submit} className="flex flex-wrap items-end gap-3" aria-label={t("perm.assign")}>
          <div className="space-y-1">
            <Label htmlFor="assign-user">{t("perm.user")}</Label>
            <Select id="assign-user" required value={user} onChange={(e) => setUser(e.target.value)} className="w-64">
              <option value="">{t("form.select")}</option>
              {people.data?.users.map((u) => (
                <option key={u.id} value={u.id}>{u.email}</option>
              ))}
            </Select>
          </div>
          <div className="space-y-1">
            <Label htmlFor="assign-set">{t("perm.set")}</Label>
            <Select id="assign-set" required value={set} onChange={(e) => setSet(e.target.value)} className="w-64">
              <option value="">{t("form.select")}</option>
              {sets.map((s) => (
                <option key={s.name} value={s.name}>{s.label ? `${s.label} (${s.name})` : s.name}</option>
              ))}
            </Select>
          </div>
          <Button type="submit" disabled={assign.busy}>{t("perm.assign")}</Button>
        </form>
        {people.isError ? <div className="mt-3"><ErrorNotice error={people.error} /></div> : null}
        {assign.error ? <div className="mt-3"><ErrorNotice error={assign.error} /></div> : null}
      </Card>
      {list.isPending && <Loading />}
      {list.isError && <ErrorNotice error={list.error} />}
      {list.data && (
        <DataTable<Assignment>
          caption={t("perm.assignments")}
          rows={list.data}
          rowKey={(a) => a.userId}
          rowLabel={(a) => emailOf(a.userId)}
          columns={[
            { key: "user", label: t("perm.user"), render: (a) => <span className="break-all">{emailOf(a.userId)}</span> },
            {
              key: "sets",
              label: t("perm.sets"),
              render: (a) => (
                <div className="space-y-2">
                  <ul className="flex flex-wrap gap-2">
                    {a.permissionSets.map((s) => (
                      <li key={s} className="inline-flex items-center gap-1 rounded-md border border-border px-2 py-0.5 text-xs">
                        {s}
                        <button
                          type="button"
                          className="rounded px-1 hover:bg-muted"
                          aria-label={t("perm.unassign", { set: s, user: emailOf(a.userId) })}
                          disabled={rows.busy === a.userId}
                          onClick={async () => {
                            if (await rows.run(a.userId, () => permissions.unassign(a.userId, s))) await refresh();
                          }}
                        >
                          ×
                        </button>
                      </li>
                    ))}
                  </ul>
                  <ErrorNotice error={rows.errorOf(a.userId)} />
                </div>
              ),
            },
            { key: "roles", label: t("perm.roles"), render: (a) => a.roles.join(", ") },
          ]}
        />
      )}
    </section>
  );
}

function Effective() {
  const objects = useObjects();
  const people = useQuery({ queryKey: ["admin", "users", "all"], queryFn: () => users.list({ limit: 200, offset: 0 }) });
  const [object, setObject] = useState("");
  // Empty: the signed-in user; otherwise another user of the organization (administrators).
  const [user, setUser] = useState("");
  const answer = useQuery<UserObjectPermissions>({
    queryKey: ["permissions-object", object, user],
    enabled: !!object,
    queryFn: () => (user ? permissions.ofUser(user, object) : permissions.object(object)),
    retry: false,
  });
  const data = answer.data;
  return (
    <section className="space-y-2" aria-labelledby="effective-title">
      <h2 id="effective-title" className="text-lg font-medium">{t("perm.effective")}</h2>
      <p className="text-sm text-muted-foreground">{t("perm.effectiveHelp")}</p>
      <div className="flex flex-wrap items-end gap-3">
        <div className="space-y-1">
          <Label htmlFor="effective-user">{t("perm.of")}</Label>
          <Select id="effective-user" value={user} onChange={(e) => setUser(e.target.value)} className="w-64">
            <option value="">{t("perm.me")}</option>
            {people.data?.users.map((u) => (
              <option key={u.id} value={u.id}>{u.email}</option>
            ))}
          </Select>
        </div>
        <div className="space-y-1">
          <Label htmlFor="effective-object">{t("perm.object")}</Label>
          <Select id="effective-object" value={object} onChange={(e) => setObject(e.target.value)} className="w-64">
            <option value="">{t("form.select")}</option>
            {objects.data?.map((o) => (
              <option key={o.name} value={o.name}>{o.name}</option>
            ))}
          </Select>
        </div>
      </div>
      {answer.isError && <ErrorNotice error={answer.error} />}
      {data && (
        <Card aria-label={t("perm.effective")}>
          {data.admin ? <p className="mb-2 text-sm font-medium">{t("perm.bypass")}</p> : null}
          {data.permissionSets ? (
            <p className="mb-2 text-sm">{t("perm.sets")}: {data.permissionSets.join(", ") || "—"}</p>
          ) : null}
          <ul className="grid gap-1 text-sm sm:grid-cols-2" aria-label={t("perm.crud")}>
            {Object.entries(data.permissions ?? {}).map(([k, v]) => (
              <li key={k}><code className="text-xs">{k}</code>: {String(v)}</li>
            ))}
          </ul>
          {"rowFilter" in data ? (
            <dl className="mt-3 grid gap-1 text-sm">
              <div><dt className="inline font-medium">{t("perm.rowFilter")}: </dt><dd className="inline"><code className="break-all text-xs" data-testid="row-filter">{describeRowFilter(data.rowFilter)}</code></dd></div>
              <div><dt className="inline font-medium">{t("perm.editFilter")}: </dt><dd className="inline"><code className="break-all text-xs">{describeRowFilter(data.editFilter)}</code></dd></div>
            </dl>
          ) : null}
          {Object.keys(data.fieldPermissions ?? {}).length > 0 && (
            <ul className="mt-3 grid gap-1 text-xs sm:grid-cols-2" aria-label={t("perm.fields")}>
              {Object.entries(data.fieldPermissions ?? {}).map(([f, p]) => (
                <li key={f}>{f}: {p.readable === false ? "hidden" : p.editable === false ? "read-only" : "editable"}</li>
              ))}
            </ul>
          )}
        </Card>
      )}
    </section>
  );
}
