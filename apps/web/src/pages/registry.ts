// The signed-in user's own pages and the administration pages: one entry each. A later page
// (flows, approvals) is a new file under pages/admin/ (or pages/account/) and one line here;
// navigation and routes follow from these lists.
import type { ComponentType } from "react";
import type { MessageKey } from "../lib/i18n";

export interface AdminPage {
  /** Path under /console/admin/ (or /console/account/ for the user's own pages). */
  path: string;
  label: MessageKey;
  /** Shown to administrators only (the server refuses everyone else on these routes anyway). */
  adminOnly: boolean;
  /** Loaded on first visit (a separate chunk, outside the initial bundle). */
  load: () => Promise<{ default: ComponentType }>;
}

/** The user's own pages, under /console/account/, shown to everyone signed in. */
export const accountPages: AdminPage[] = [
  { path: "notifications", label: "nav.notifications", adminOnly: false, load: () => import("./account/Notifications") },
  { path: "security", label: "nav.security", adminOnly: false, load: () => import("./account/Security") },
];

export const adminPages: AdminPage[] = [
  { path: "users", label: "nav.users", adminOnly: true, load: () => import("./admin/Users") },
  { path: "organizations", label: "nav.organizations", adminOnly: true, load: () => import("./admin/Organizations") },
  { path: "permissions", label: "nav.permissions", adminOnly: true, load: () => import("./admin/Permissions") },
  { path: "api-keys", label: "nav.apiKeys", adminOnly: false, load: () => import("./admin/ApiKeys") },
  { path: "audit", label: "nav.audit", adminOnly: true, load: () => import("./admin/Audit") },
  { path: "jobs", label: "nav.jobs", adminOnly: true, load: () => import("./admin/Jobs") },
  { path: "files", label: "nav.files", adminOnly: true, load: () => import("./admin/Files") },
  { path: "system", label: "nav.system", adminOnly: true, load: () => import("./System") },
];
