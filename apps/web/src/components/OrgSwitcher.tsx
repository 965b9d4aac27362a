// The organization switcher: the signed-in user's organizations (organization/list); choosing one
// makes it the session's active organization (organization/set-active), and every cached answer
// is dropped, since records, permissions and members all depend on it.
import { useQuery } from "@tanstack/react-query";
import { useNavigate } from "react-router";
import { orgs } from "../lib/admin";
import { useAction } from "../lib/actions";
import { useAuthActions, type Session } from "../lib/auth";
import { t } from "../lib/i18n";
import { ErrorNotice } from "./ErrorNotice";
import { Label, Select } from "./ui/input";

export function OrgSwitcher({ session }: { session: Session }) {
  const list = useQuery({ queryKey: ["organizations"], queryFn: orgs.list, staleTime: 60_000 });
  const { switchOrganization } = useAuthActions();
  const navigate = useNavigate();
  const action = useAction();
  const active = session.session?.activeOrganizationId ?? "";
  if (list.isError) return <div className="mb-3"><ErrorNotice error={list.error} /></div>;
  if (!list.data || list.data.length === 0) return null;
  return (
    <div className="mb-4 space-y-1 px-3">
      <Label htmlFor="org-switcher" className="text-xs text-muted-foreground">{t("org.active")}</Label>
      <Select
        id="org-switcher"
        value={active}
        disabled={action.busy}
        onChange={async (e) => {
          const id = e.target.value;
          if (id && id !== active && (await action.run(() => switchOrganization(id)))) navigate("/");
        }}
      >
        {!active && <option value="">{t("form.select")}</option>}
        {list.data.map((o) => (
          <option key={o.id} value={o.id}>{o.name}</option>
        ))}
      </Select>
      {action.error ? <ErrorNotice error={action.error} /> : null}
    </div>
  );
}
