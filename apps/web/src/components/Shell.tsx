// The frame around every signed-in page: the organization switcher, navigation from the server's
// metadata (apps, objects), the user's own pages (notifications with the unread count, security)
// and the administration registry (administrators see every page, others only theirs), the user
// with sign-out, the theme switch. A lost session
// sends the user to sign-in and back here afterwards.
import { useEffect, useState } from "react";
import { NavLink, Navigate, Outlet, useLocation, useNavigate } from "react-router";
import { useQueryClient } from "@tanstack/react-query";
import { setUnauthenticatedHandler } from "../lib/api";
import { isAdmin, useAuthActions, useSession, type Session } from "../lib/auth";
import { OrgSwitcher } from "./OrgSwitcher";
import { objectPlural } from "../lib/fields";
import { t } from "../lib/i18n";
import { useApps, useObjects } from "../lib/meta";
import { useAppTitle } from "../lib/settings";
import { toggleTheme } from "../lib/theme";
import { accountPages, adminPages } from "../pages/registry";
import { useUnreadCount } from "../lib/notifications";
import { ErrorNotice, Loading } from "./ErrorNotice";
import { Button } from "./ui/button";
import { cn } from "../lib/cn";

const linkClass = ({ isActive }: { isActive: boolean }) =>
  cn("block rounded-md px-3 py-1.5 text-sm hover:bg-muted", isActive && "bg-muted font-medium");

export function Shell() {
  const session = useSession();
  const location = useLocation();
  const navigate = useNavigate();
  const qc = useQueryClient();
  const [menuOpen, setMenuOpen] = useState(false);
  const title = useAppTitle();
  const here = location.pathname + location.search;

  useEffect(() => {
    setUnauthenticatedHandler(() => {
      qc.setQueryData(["session"], null);
      navigate(`/sign-in?next=${encodeURIComponent(here)}`);
    });
    return () => setUnauthenticatedHandler(null);
  }, [navigate, qc, here]);
  useEffect(() => setMenuOpen(false), [location.pathname]);

  if (session.isPending) return <Loading />;
  if (session.isError) return <div className="p-6"><ErrorNotice error={session.error} /></div>;
  if (!session.data) return <Navigate to={`/sign-in?next=${encodeURIComponent(here)}`} replace />;

  return (
    <div className="flex min-h-full flex-col md:flex-row">
      <header className="flex items-center justify-between border-b border-border px-4 py-2 md:hidden">
        <span className="font-semibold">{title}</span>
        <Button variant="outline" aria-expanded={menuOpen} aria-controls="sidebar" onClick={() => setMenuOpen((o) => !o)}>
          ☰
        </Button>
      </header>
      <aside
        id="sidebar"
        className={cn(
          "w-full shrink-0 border-b border-border p-3 md:block md:w-60 md:border-r md:border-b-0",
          menuOpen ? "block" : "hidden",
        )}
      >
        <div className="mb-4 hidden px-3 font-semibold md:block">{title}</div>
        <OrgSwitcher session={session.data} />
        <Navigation session={session.data} />
        <div className="mt-6 border-t border-border pt-3">
          <p className="truncate px-3 text-xs text-muted-foreground" title={session.data.user.email}>
            {t("auth.signedInAs", { email: session.data.user.email })}
          </p>
          <div className="mt-2 flex gap-2 px-3">
            <SignOutButton />
            <Button variant="ghost" onClick={toggleTheme} aria-label={t("theme.toggle")} title={t("theme.toggle")}>
              ◐
            </Button>
          </div>
        </div>
      </aside>
      <main className="min-w-0 flex-1 p-4 md:p-6">
        <Outlet />
      </main>
    </div>
  );
}

function Navigation({ session }: { session: Session }) {
  const objects = useObjects();
  const apps = useApps();
  const admin = isAdmin(session);
  const pages = adminPages.filter((p) => admin || !p.adminOnly);
  return (
    <nav aria-label={t("nav.objects")} className="space-y-4">
      {apps.data && apps.data.length > 0 && (
        <section>
          <h2 className="px-3 text-xs font-semibold uppercase text-muted-foreground">{t("nav.apps")}</h2>
          <ul>{apps.data.map((a) => <li key={a.name} className="px-3 py-1 text-sm">{a.label ?? a.name}</li>)}</ul>
        </section>
      )}
      <section>
        <h2 className="px-3 text-xs font-semibold uppercase text-muted-foreground">{t("nav.objects")}</h2>
        {objects.isPending && <Loading />}
        {objects.isError && <ErrorNotice error={objects.error} />}
        <ul>
          {objects.data
            ?.filter((o) => !o.isSystem)
            .map((o) => (
              <li key={o.name}>
                <NavLink to={`/o/${o.name}`} className={linkClass}>{objectPlural(o)}</NavLink>
              </li>
            ))}
        </ul>
      </section>
      <section>
        <h2 className="px-3 text-xs font-semibold uppercase text-muted-foreground">{t("nav.account")}</h2>
        <ul>
          {accountPages.map((p) => (
            <li key={p.path}>
              <NavLink to={`/account/${p.path}`} className={linkClass}>
                {t(p.label)}
                {p.path === "notifications" && <UnreadBadge />}
              </NavLink>
            </li>
          ))}
        </ul>
      </section>
      <section>
        <h2 className="px-3 text-xs font-semibold uppercase text-muted-foreground">{t("nav.admin")}</h2>
        <ul>
          {pages.map((p) => (
            <li key={p.path}>
              <NavLink to={`/admin/${p.path}`} className={linkClass}>{t(p.label)}</NavLink>
            </li>
          ))}
        </ul>
      </section>
    </nav>
  );
}

/** The unread count next to the notifications link; nothing when there is none, or no notification
 * plugin (its 404 is not an error of the navigation). */
function UnreadBadge() {
  const unread = useUnreadCount(true);
  const n = unread.data ?? 0;
  if (n <= 0) return null;
  return (
    <span
      data-testid="unread-badge"
      aria-label={t("notif.unreadBadge", { count: n })}
      className="ml-2 inline-flex min-w-5 items-center justify-center rounded-full bg-primary px-1.5 text-xs font-medium text-primary-foreground"
    >
      {n > 99 ? "99+" : n}
    </span>
  );
}

function SignOutButton() {
  const { signOut } = useAuthActions();
  const navigate = useNavigate();
  const [error, setError] = useState<unknown>(null);
  return (
    <>
      <Button
        variant="outline"
        onClick={async () => {
          try {
            await signOut();
            navigate("/sign-in");
          } catch (e) {
            setError(e);
          }
        }}
      >
        {t("auth.signOut")}
      </Button>
      {error ? <ErrorNotice error={error} /> : null}
    </>
  );
}
