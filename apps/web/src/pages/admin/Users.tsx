// Users of the active organization (admin/list-users): search and paging, create a user with a
// password, invite someone by email, ban and unban, send a password reset mail. Every refusal is
// shown next to the form or row it came from.
import { useState, type FormEvent } from "react";
import { keepPreviousData, useQuery, useQueryClient } from "@tanstack/react-query";
import { useSearchParams } from "react-router";
import { orgs, users, type User } from "../../lib/admin";
import { useAction, useRowActions } from "../../lib/actions";
import { useSession } from "../../lib/auth";
import { t } from "../../lib/i18n";
import { DataTable, Pager } from "../../components/DataTable";
import { ErrorNotice, Loading } from "../../components/ErrorNotice";
import { Button } from "../../components/ui/button";
import { Card } from "../../components/ui/card";
import { Input, Label, Select } from "../../components/ui/input";

const PAGE = 25;

export default function Users() {
  const [params, setParams] = useSearchParams();
  const offset = Number(params.get("offset") ?? 0) || 0;
  const q = params.get("q") ?? "";
  const [search, setSearch] = useState(q);
  const qc = useQueryClient();
  const list = useQuery({
    queryKey: ["admin", "users", offset, q],
    queryFn: () => users.list({ limit: PAGE, offset, searchValue: q || undefined }),
    placeholderData: keepPreviousData,
  });
  const rows = useRowActions();
  const [notice, setNotice] = useState<Record<string, string>>({});
  const refresh = () => qc.invalidateQueries({ queryKey: ["admin", "users"] });
  const go = (changes: Record<string, string | undefined>) => {
    const next = new URLSearchParams(params);
    for (const [k, v] of Object.entries(changes)) {
      if (v) next.set(k, v);
      else next.delete(k);
    }
    setParams(next);
  };

  const act = async (u: User, what: "ban" | "unban" | "reset") => {
    const ok = await rows.run(u.id, () =>
      what === "ban" ? users.ban(u.id) : what === "unban" ? users.unban(u.id) : users.sendReset(u.email),
    );
    if (ok && what === "reset") setNotice((n) => ({ ...n, [u.id]: t("users.resetSent") }));
    if (ok && what !== "reset") await refresh();
  };

  return (
    <div className="max-w-6xl space-y-4">
      <h1 className="text-2xl font-semibold">{t("nav.users")}</h1>
      <div className="grid gap-4 lg:grid-cols-2">
        <CreateUser onDone={refresh} />
        <InviteUser />
      </div>
      <form
        role="search"
        onSubmit={(e) => {
          e.preventDefault();
          go({ q: search, offset: undefined });
        }}
      >
        <Input type="search" aria-label={t("users.search")} placeholder={t("users.search")} value={search} onChange={(e) => setSearch(e.target.value)} className="max-w-sm" />
      </form>
      {list.isPending && <Loading />}
      {list.isError && <ErrorNotice error={list.error} />}
      {list.data && (
        <>
          <DataTable<User>
            caption={t("nav.users")}
            rows={list.data.users}
            rowKey={(u) => u.id}
            rowLabel={(u) => u.email}
            columns={[
              { key: "email", label: t("auth.email"), render: (u) => <span className="whitespace-nowrap">{u.email}</span> },
              { key: "name", label: t("auth.name"), render: (u) => u.name ?? "" },
              { key: "role", label: t("users.role"), render: (u) => u.organizationRole ?? u.role ?? "" },
              {
                key: "status",
                label: t("users.status"),
                render: (u) => (
                  <span className={u.banned ? "text-destructive" : ""}>
                    {u.banned ? t("users.banned") : t("users.active")}
                    {u.twoFactorEnabled ? ` · ${t("users.twoFactor")}` : ""}
                  </span>
                ),
              },
              { key: "id", label: t("users.id"), render: (u) => <code className="text-xs">{u.id}</code> },
              {
                key: "actions",
                label: t("admin.actions"),
                render: (u) => (
                  <div className="space-y-2">
                    <div className="flex flex-wrap gap-2">
                      {u.banned ? (
                        <Button variant="outline" disabled={rows.busy === u.id} onClick={() => act(u, "unban")}>{t("users.unban")}</Button>
                      ) : (
                        <Button variant="outline" disabled={rows.busy === u.id} onClick={() => act(u, "ban")}>{t("users.ban")}</Button>
                      )}
                      <Button variant="ghost" disabled={rows.busy === u.id} onClick={() => act(u, "reset")}>{t("users.reset")}</Button>
                    </div>
                    {notice[u.id] && <p role="status" className="text-xs text-muted-foreground">{notice[u.id]}</p>}
                    <ErrorNotice error={rows.errorOf(u.id)} />
                  </div>
                ),
              },
            ]}
          />
          <Pager offset={offset} limit={PAGE} count={list.data.users.length} total={list.data.total} onChange={(o) => go({ offset: o ? String(o) : undefined })} />
        </>
      )}
    </div>
  );
}

function CreateUser({ onDone }: { onDone: () => void }) {
  const [email, setEmail] = useState("");
  const [name, setName] = useState("");
  const [password, setPassword] = useState("");
  const [role, setRole] = useState("user");
  const [created, setCreated] = useState<string | null>(null);
  const action = useAction();
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setCreated(null);
    if (await action.run(() => users.create({ email, password, name: name || undefined, role }))) {
      setCreated(email);
      setEmail("");
      setName("");
      setPassword("");
      onDone();
    }
  };
  return (
    <Card>
      <h2 className="mb-3 font-medium">{t("users.create")}</h2>
      <form onSubmit={submit} className="grid gap-3 sm:grid-cols-2" aria-label={t("users.create")}>
        <div className="space-y-1">
          <Label htmlFor="new-email">{t("auth.email")}</Label>
          <Input id="new-email" type="email" required value={email} onChange={(e) => setEmail(e.target.value)} />
        </div>
        <div className="space-y-1">
          <Label htmlFor="new-name">{t("auth.name")}</Label>
          <Input id="new-name" value={name} onChange={(e) => setName(e.target.value)} />
        </div>
        <div className="space-y-1">
          <Label htmlFor="new-password">{t("users.initialPassword")}</Label>
          <Input id="new-password" type="password" autoComplete="new-password" required value={password} onChange={(e) => setPassword(e.target.value)} />
        </div>
        <div className="space-y-1">
          <Label htmlFor="new-role">{t("users.role")}</Label>
          <Select id="new-role" value={role} onChange={(e) => setRole(e.target.value)}>
            <option value="user">user</option>
            <option value="admin">admin</option>
          </Select>
        </div>
        <div className="space-y-2 sm:col-span-2">
          {action.error ? <ErrorNotice error={action.error} /> : null}
          {created && <p role="status" className="text-sm">{t("users.created", { email: created })}</p>}
          <Button type="submit" disabled={action.busy}>{t("users.createButton")}</Button>
        </div>
      </form>
    </Card>
  );
}

function InviteUser() {
  const session = useSession();
  const active = session.data?.session?.activeOrganizationId ?? "";
  const list = useQuery({ queryKey: ["organizations"], queryFn: orgs.list, staleTime: 60_000 });
  const orgId = active || list.data?.[0]?.id || "";
  const [email, setEmail] = useState("");
  const [role, setRole] = useState("member");
  const [sent, setSent] = useState<string | null>(null);
  const action = useAction();
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setSent(null);
    if (await action.run(() => orgs.invite(orgId, email, role))) {
      setSent(email);
      setEmail("");
    }
  };
  return (
    <Card>
      <h2 className="mb-3 font-medium">{t("users.invite")}</h2>
      <p className="mb-3 text-sm text-muted-foreground">{t("users.inviteHelp")}</p>
      <form onSubmit={submit} className="grid gap-3 sm:grid-cols-2" aria-label={t("users.invite")}>
        <div className="space-y-1">
          <Label htmlFor="invite-email">{t("auth.email")}</Label>
          <Input id="invite-email" type="email" required value={email} onChange={(e) => setEmail(e.target.value)} />
        </div>
        <div className="space-y-1">
          <Label htmlFor="invite-role">{t("users.role")}</Label>
          <Select id="invite-role" value={role} onChange={(e) => setRole(e.target.value)}>
            <option value="member">member</option>
            <option value="admin">admin</option>
          </Select>
        </div>
        <div className="space-y-2 sm:col-span-2">
          {list.isError ? <ErrorNotice error={list.error} /> : null}
          {action.error ? <ErrorNotice error={action.error} /> : null}
          {sent && <p role="status" className="text-sm">{t("users.invited", { email: sent })}</p>}
          <Button type="submit" disabled={action.busy || !orgId}>{t("users.inviteButton")}</Button>
        </div>
      </form>
    </Card>
  );
}
