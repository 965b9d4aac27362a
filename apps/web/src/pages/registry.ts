// The administration pages: one entry each. A later page (flows, approvals, notifications) is a
// new file under pages/admin/ and one line here; navigation and routes follow from this list.
import type { ComponentType } from "react";
import type { MessageKey } from "../lib/i18n";

export interface AdminPage {
  /** Path under /console/admin/. */
  path: string;
  label: MessageKey;
  /** Shown to administrators only (the server refuses everyone else on these routes anyway). */
  adminOnly: boolean;
  /** Loaded on first visit (a separate chunk, outside the initial bundle). */
  load: () => Promise<{ default: ComponentType }>;
}

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
