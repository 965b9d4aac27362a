// Organizations the signed-in user belongs to, a new one, and for the chosen one its members
// (add by email, change role, remove) and pending invitations (cancel).
import { useState, type FormEvent } from "react";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { orgs, type Invitation, type Member, type Organization } from "../../lib/admin";
import { useAction, useRowActions } from "../../lib/actions";
import { useSession } from "../../lib/auth";
import { t } from "../../lib/i18n";
import { DataTable } from "../../components/DataTable";
import { ErrorNotice, Loading } from "../../components/ErrorNotice";
import { Button } from "../../components/ui/button";
import { Card } from "../../components/ui/card";
import { Input, Label, Select } from "../../components/ui/input";

const ROLES = ["owner", "admin", "member"];

export default function Organizations() {
  const session = useSession();
  const list = useQuery({ queryKey: ["organizations"], queryFn: orgs.list });
  const [chosen, setChosen] = useState<string | null>(null);
  const selected = chosen ?? session.data?.session?.activeOrganizationId ?? list.data?.[0]?.id ?? null;
  const org = list.data?.find((o) => o.id === selected);

  return (
    <div className="max-w-6xl space-y-4">
      <h1 className="text-2xl font-semibold">{t("nav.organizations")}</h1>
      {list.isPending && <Loading />}
      {list.isError && <ErrorNotice error={list.error} />}
      {list.data && (
        <DataTable<Organization>
          caption={t("nav.organizations")}
          rows={list.data}
          rowKey={(o) => o.id}
          rowLabel={(o) => o.name}
          columns={[
            { key: "name", label: t("auth.name"), render: (o) => o.name },
            { key: "slug", label: t("org.slug"), render: (o) => <code className="text-xs">{o.slug ?? ""}</code> },
            {
              key: "open",
              label: t("admin.actions"),
              render: (o) => (
                <Button variant={o.id === selected ? "default" : "outline"} aria-pressed={o.id === selected} onClick={() => setChosen(o.id)}>
                  {t("org.showMembers")}
                </Button>
              ),
            },
          ]}
        />
      )}
      <CreateOrganization />
      {org && <Members org={org} />}
    </div>
  );
}

function CreateOrganization() {
  const qc = useQueryClient();
  const [name, setName] = useState("");
  const [slug, setSlug] = useState("");
  const action = useAction();
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (await action.run(() => orgs.create(name, slug))) {
      setName("");
      setSlug("");
      await qc.invalidateQueries({ queryKey: ["organizations"] });
    }
  };
  return (
    <Card>
      <h2 className="mb-3 font-medium">{t("org.create")}</h2>
      <form onSubmit={submit} className="flex flex-wrap items-end gap-3" aria-label={t("org.create")}>
        <div className="space-y-1">
          <Label htmlFor="org-name">{t("auth.name")}</Label>
          <Input id="org-name" required value={name} onChange={(e) => setName(e.target.value)} />
        </div>
        <div className="space-y-1">
          <Label htmlFor="org-slug">{t("org.slug")}</Label>
          <Input id="org-slug" value={slug} onChange={(e) => setSlug(e.target.value)} />
        </div>
        <Button type="submit" disabled={action.busy}>{t("org.createButton")}</Button>
      </form>
      {action.error ? <div className="mt-3"><ErrorNotice error={action.error} /></div> : null}
    </Card>
  );
}

function Members({ org }: { org: Organization }) {
  const qc = useQueryClient();
  const members = useQuery({ queryKey: ["org-members", org.id], queryFn: () => orgs.members(org.id) });
  const invitations = useQuery({ queryKey: ["org-invitations", org.id], queryFn: () => orgs.invitations(org.id) });
  const rows = useRowActions();
  const add = useAction();
  const [email, setEmail] = useState("");
  const [role, setRole] = useState("member");
  const refresh = async () => {
    await qc.invalidateQueries({ queryKey: ["org-members", org.id] });
    await qc.invalidateQueries({ queryKey: ["org-invitations", org.id] });
  };
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (await add.run(() => orgs.addMember(org.id, email, role))) {
      setEmail("");
      await refresh();
    }
  };
  const label = (m: Member) => m.user?.email ?? m.userId;

  return (
    <section aria-label={t("org.membersOf", { name: org.name })} className="space-y-3">
      <h2 className="text-lg font-medium">{t("org.membersOf", { name: org.name })}</h2>
      {members.isPending && <Loading />}
      {members.isError && <ErrorNotice error={members.error} />}
      {members.data && (
        <DataTable<Member>
          caption={t("org.membersOf", { name: org.name })}
          rows={members.data}
          rowKey={(m) => m.id}
          rowLabel={label}
          columns={[
            { key: "email", label: t("auth.email"), render: (m) => <span className="break-all">{m.user?.email ?? ""}</span> },
            { key: "name", label: t("auth.name"), render: (m) => m.user?.name ?? "" },
            {
              key: "role",
              label: t("users.role"),
              render: (m) => (
                <Select
                  aria-label={t("org.roleOf", { who: label(m) })}
                  value={m.role}
                  disabled={rows.busy === m.id}
                  onChange={async (e) => {
                    const next = e.target.value;
                    if (await rows.run(m.id, () => orgs.setRole(org.id, m.id, next))) await refresh();
                  }}
                  className="w-32"
                >
                  {[...new Set([...ROLES, m.role])].map((r) => (
                    <option key={r} value={r}>{r}</option>
                  ))}
                </Select>
              ),
            },
            {
              key: "actions",
              label: t("admin.actions"),
              render: (m) => (
                <div className="space-y-2">
                  <Button
                    variant="outline"
                    disabled={rows.busy === m.id}
                    onClick={async () => {
                      if (await rows.run(m.id, () => orgs.removeMember(org.id, m.id))) await refresh();
                    }}
                  >
                    {t("org.remove")}
                  </Button>
                  <ErrorNotice error={rows.errorOf(m.id)} />
                </div>
              ),
            },
          ]}
        />
      )}
      <Card>
        <h3 className="mb-3 font-medium">{t("org.addMember")}</h3>
        <p className="mb-3 text-sm text-muted-foreground">{t("org.addMemberHelp")}</p>
        <form onSubmit={submit} className="flex flex-wrap items-end gap-3" aria-label={t("org.addMember")}>
          <div className="space-y-1">
            <Label htmlFor="member-email">{t("auth.email")}</Label>
            <Input id="member-email" type="email" required value={email} onChange={(e) => setEmail(e.target.value)} />
          </div>
          <div className="space-y-1">
            <Label htmlFor="member-role">{t("users.role")}</Label>
            <Select id="member-role" value={role} onChange={(e) => setRole(e.target.value)}>
              {ROLES.map((r) => (
                <option key={r} value={r}>{r}</option>
              ))}
            </Select>
          </div>
          <Button type="submit" disabled={add.busy}>{t("org.addButton")}</Button>
        </form>
        {add.error ? <div className="mt-3"><ErrorNotice error={add.error} /></div> : null}
      </Card>
      <h3 className="font-medium">{t("org.invitations")}</h3>
      {invitations.isError && <ErrorNotice error={invitations.error} />}
      {invitations.data && (
        <DataTable<Invitation>
          caption={t("org.invitations")}
          rows={invitations.data.filter((i) => !i.status || i.status === "pending")}
          rowKey={(i) => i.id}
          rowLabel={(i) => i.email}
          columns={[
            { key: "email", label: t("auth.email"), render: (i) => i.email },
            { key: "role", label: t("users.role"), render: (i) => i.role ?? "" },
            { key: "expires", label: t("org.expires"), render: (i) => (i.expiresAt ? new Date(i.expiresAt).toLocaleString() : "") },
            {
              key: "actions",
              label: t("admin.actions"),
              render: (i) => (
                <div className="space-y-2">
                  <Button
                    variant="outline"
                    disabled={rows.busy === i.id}
                    onClick={async () => {
                      if (await rows.run(i.id, () => orgs.cancelInvitation(i.id))) await refresh();
                    }}
                  >
                    {t("org.cancelInvitation")}
                  </Button>
                  <ErrorNotice error={rows.errorOf(i.id)} />
                </div>
              ),
            },
          ]}
        />
      )}
    </section>
  );
}
