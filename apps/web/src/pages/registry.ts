// The administration pages: one entry each. A later page (jobs, flows, approvals, notifications,
// files) is a new file under pages/ and one line here; navigation and routes follow from this list.
import type { ComponentType } from "react";
import type { MessageKey } from "../lib/i18n";

export interface AdminPage {
  /** Path under /console/admin/. */
  path: string;
  label: MessageKey;
  /** Loaded on first visit (a separate chunk, outside the initial bundle). */
  load: () => Promise<{ default: ComponentType }>;
}

export const adminPages: AdminPage[] = [
  { path: "system", label: "nav.system", load: () => import("./System") },
];
