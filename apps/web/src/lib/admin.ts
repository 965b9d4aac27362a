// The administration calls, on the server's own routes: the auth plugin's users, organizations,
// invitations and API keys (/api/v1/auth), the permissions plugin's sets and assignments
// (/api/v1/permissions), the audit log (/api/v1/audit), jobs (/api/v1/jobs) and files
// (/api/v1/storage and the sys_file object). Shapes are the server's; nothing is reshaped here
// beyond picking the list out of its envelope.
import { API, ApiError, api, errorFromBody } from "./api";

const AUTH = `${API}/auth`;

export interface User {
  id: string;
  name?: string | null;
  email: string;
  role?: string;
  organizationRole?: string | null;
  status?: string;
  banned?: boolean;
  twoFactorEnabled?: boolean;
  isPlatformAdmin?: boolean;
  createdAt?: string | null;
}

export interface UserPage {
  users: User[];
  total: number;
  limit: number;
  offset: number;
}

export const users = {
  list: (q: { limit: number; offset: number; searchValue?: string }) => api.get<UserPage>(`${AUTH}/admin/list-users`, q),
  create: (body: { email: string; password: string; name?: string; role?: string }) =>
    api.post<{ user: User }>(`${AUTH}/admin/create-user`, body),
  ban: (userId: string, banReason?: string) => api.post<{ user: User }>(`${AUTH}/admin/ban-user`, { userId, banReason }),
  unban: (userId: string) => api.post<{ user: User }>(`${AUTH}/admin/unban-user`, { userId }),
  /** Sends the user the password reset mail (the same route as "forgot password"). */
  sendReset: (email: string) => api.post(`${AUTH}/forget-password`, { email }),
};

export interface Organization {
  id: string;
  name: string;
  slug?: string;
  createdAt?: string;
}

export interface Member {
  id: string;
  userId: string;
  role: string;
  organizationId?: string;
  createdAt?: string;
  user?: { id?: string; name?: string | null; email?: string };
}

export interface Invitation {
  id: string;
  email: string;
  role?: string;
  status?: string;
  expiresAt?: string;
  organizationId?: string;
}

/** A list route may answer an array or `{<key>: [...]}`; accept both. */
export function listOf<T>(body: unknown, key: string): T[] {
  if (Array.isArray(body)) return body as T[];
  const b = body as Record<string, unknown> | null;
  const v = b?.[key] ?? b?.items ?? b?.data;
  return Array.isArray(v) ? (v as T[]) : [];
}

export const orgs = {
  list: async () => listOf<Organization>(await api.get(`${AUTH}/organization/list`), "organizations"),
  create: (name: string, slug?: string) =>
    api.post<Organization>(`${AUTH}/organization/create`, { name, slug: slug || undefined, keepCurrentActiveOrganization: true }),
  setActive: (organizationId: string) => api.post(`${AUTH}/organization/set-active`, { organizationId }),
  members: async (organizationId: string) =>
    listOf<Member>(await api.get(`${AUTH}/organization/list-members`, { organizationId, limit: 200 }), "members"),
  addMember: (organizationId: string, email: string, role: string) =>
    api.post(`${AUTH}/organization/add-member`, { organizationId, email, role }),
  removeMember: (organizationId: string, memberIdOrEmail: string) =>
    api.post(`${AUTH}/organization/remove-member`, { organizationId, memberIdOrEmail }),
  setRole: (organizationId: string, memberId: string, role: string) =>
    api.post(`${AUTH}/organization/update-member-role`, { organizationId, memberId, role }),
  invite: (organizationId: string, email: string, role: string) =>
    api.post<Invitation>(`${AUTH}/organization/invite-member`, { organizationId, email, role }),
  invitations: async (organizationId: string) =>
    listOf<Invitation>(await api.get(`${AUTH}/organization/list-invitations`, { organizationId }), "invitations"),
  cancelInvitation: (invitationId: string) => api.post(`${AUTH}/organization/cancel-invitation`, { invitationId }),
};

export interface ApiKey {
  id: string;
  name?: string;
  start?: string;
  prefix?: string;
  scopes?: string[];
  createdAt?: string;
  expiresAt?: string | null;
  lastUsedAt?: string | null;
  revoked?: boolean;
}

export const apiKeys = {
  list: async () => listOf<ApiKey>(await api.get(`${AUTH}/api-key/list`), "apiKeys"),
  create: (name: string, expiresInDays?: number) =>
    api.post<ApiKey & { key: string }>(`${AUTH}/api-key/create`, { name, expiresInDays }),
  revoke: (keyId: string) => api.post(`${AUTH}/api-key/delete`, { keyId }),
};

export interface PermissionSet {
  name: string;
  label?: string;
  description?: string;
  objects?: Record<string, Record<string, boolean | string | undefined>>;
  fields?: Record<string, { readable?: boolean; editable?: boolean }>;
}

export interface Assignment {
  userId: string;
  permissionSets: string[];
  roles: string[];
}

export interface ObjectPermissions {
  object?: string;
  permissions?: Record<string, boolean | string | undefined>;
  fieldPermissions?: Record<string, { readable?: boolean; editable?: boolean }>;
}

/** `GET /permissions/effective?userId=&object=`: another user's permissions (administrators). */
export interface UserObjectPermissions extends ObjectPermissions {
  userId?: string | null;
  organizationId?: string | null;
  /** The user administers the organization: every check is bypassed there. */
  admin?: boolean;
  /** Read and edit row filters in object form: `{}` every record, `null` not granted. */
  rowFilter?: unknown;
  editFilter?: unknown;
  permissionSets?: string[];
  roles?: string[];
}

export const permissions = {
  sets: async () => listOf<PermissionSet>(await api.get(`${API}/permissions/sets`), "sets"),
  assignments: async () => listOf<Assignment>(await api.get(`${API}/permissions/assignments`), "assignments"),
  assign: (userId: string, permissionSet: string) => api.post<Assignment>(`${API}/permissions/assignments`, { userId, permissionSet }),
  unassign: (userId: string, permissionSet: string) =>
    api.send<Assignment>("DELETE", `${API}/permissions/assignments`, { userId, permissionSet }),
  /** The signed-in user's own permissions on an object (the server answers for the caller only). */
  object: (object: string) => api.get<ObjectPermissions>(`${API}/permissions/object/${encodeURIComponent(object)}`),
  /** Another user's permissions on an object, as that user's session would have them. */
  ofUser: (userId: string, object: string) =>
    api.get<UserObjectPermissions>(
      `${API}/permissions/effective?userId=${encodeURIComponent(userId)}&object=${encodeURIComponent(object)}`,
    ),
};

/** A row filter in words: every record, none, or the filter's JSON. */
export function describeRowFilter(filter: unknown): string {
  if (filter === null || filter === undefined) return "none";
  const json = JSON.stringify(filter);
  if (json === "{}") return "all";
  // The permissions plugin's "match nothing" (`{"$not": {}}`).
  if (json === '{"$not":{}}') return "none";
  return json;
}

export interface AuditEvent {
  id: string;
  seq?: number;
  eventType: string;
  severity?: string;
  timestamp?: string;
  actor?: { type?: string; id?: string | null; reason?: string | null; ipAddress?: string | null } | null;
  object?: string | null;
  recordId?: string | null;
  operation?: string | null;
  changes?: { field: string; oldValue?: unknown; newValue?: unknown }[] | null;
  result?: string;
  requestId?: string | null;
  description?: string | null;
}

/** One change in words: `name: "a1" → "a2"`. */
export function describeChange(c: { field: string; oldValue?: unknown; newValue?: unknown }): string {
  const show = (v: unknown) => (v === undefined || v === null ? "∅" : typeof v === "string" ? JSON.stringify(v) : JSON.stringify(v));
  return `${c.field}: ${show(c.oldValue)} → ${show(c.newValue)}`;
}

export interface AuditFilter {
  eventType?: string;
  actor?: string;
  object?: string;
  recordId?: string;
  from?: string;
  to?: string;
}

export interface AuditPage {
  events: AuditEvent[];
  total?: number;
  hasMore?: boolean;
  nextCursor?: string;
}

export interface VerifyReport {
  ok: boolean;
  tenants: number;
  events: number;
  broken: { tenant: string; seq: number; eventId?: string | null; reason: string }[];
}

export const audit = {
  events: (f: AuditFilter & { limit: number; offset: number }) => api.get<AuditPage>(`${API}/audit/events`, { ...f }),
  verify: () => api.get<VerifyReport>(`${API}/audit/verify`),
  /** The export is a download: a link the browser follows with the session cookie. */
  exportUrl: (f: AuditFilter, format: "csv" | "json") => {
    const q = new URLSearchParams({ format });
    for (const [k, v] of Object.entries(f)) if (v) q.set(k, v);
    return `${API}/audit/export?${q.toString()}`;
  },
};

export const JOB_STATUSES = ["scheduled", "pending", "running", "completed", "failed", "cancelled", "dead"] as const;

export interface Job {
  id: string;
  handler: string;
  queue: string;
  status: string;
  priority?: number;
  attempts: number;
  maxAttempts: number;
  error?: string | null;
  createdAt?: string;
  runAt?: string;
  finishedAt?: string | null;
  cancelRequested?: boolean;
}

export interface JobPage {
  items: Job[];
  total: number;
}

export const jobs = {
  list: (q: { status?: string; queue?: string; handler?: string; limit: number; offset: number }) => api.get<JobPage>(`${API}/jobs`, q),
  deadLetters: (q: { limit: number; offset: number }) => api.get<JobPage>(`${API}/jobs/dead-letters`, q),
  retry: (id: string) => api.post<Job>(`${API}/jobs/${encodeURIComponent(id)}/retry`),
  cancel: (id: string) => api.post<Job>(`${API}/jobs/${encodeURIComponent(id)}/cancel`),
  replay: (id: string) => api.post<Job>(`${API}/jobs/dead-letters/${encodeURIComponent(id)}/replay`),
  /** Which actions the server accepts for a job in this state (it answers 409 to the others). */
  actionsFor: (job: Pick<Job, "status">): ("retry" | "cancel" | "replay")[] => {
    switch (job.status) {
      case "scheduled":
      case "pending":
      case "running":
        return ["cancel"];
      case "dead":
        return ["replay"];
      case "failed":
      case "cancelled":
        return ["retry"];
      default:
        return [];
    }
  },
};

export interface StoredFile {
  id: string;
  name?: string;
  size?: number;
  mime_type?: string;
  status?: string;
  created_at?: string;
}

export const files = {
  list: (q: { top: number; skip: number; search?: string }) =>
    api.get<{ records: StoredFile[]; total?: number }>(`${API}/data/sys_file`, { ...q, sort: "-created_at" }),
  downloadUrl: (id: string) => `${API}/storage/files/${encodeURIComponent(id)}`,
  /** The presigned flow: a pending file and a URL, the contents PUT there, then complete. The
   * console's CSP allows only its own origin, so this works with the local backend (whose URL
   * is on this server); an S3 URL elsewhere would be refused by the browser. */
  upload: async (file: File) => {
    const started = await api.post<{ data?: { uploadUrl: string; headers?: Record<string, string>; fileId: string } }>(
      `${API}/storage/upload/presigned`,
      { filename: file.name, mimeType: file.type || undefined, size: file.size },
    );
    const d = started.data;
    if (!d) throw new Error("The server answered no upload URL");
    await putBytes(d.uploadUrl, file, d.headers ?? {});
    return api.post(`${API}/storage/upload/complete`, { fileId: d.fileId });
  },
};

async function putBytes(url: string, body: Blob, headers: Record<string, string>) {
  let res: Response;
  try {
    // The signed URL is its own credential; sending the session cookie with a non-JSON body
    // would be refused by the server's CSRF check (415).
    res = await fetch(url, { method: "PUT", body, headers, credentials: "omit" });
  } catch (e) {
    throw new ApiError(0, "NETWORK", e instanceof Error ? e.message : String(e), null);
  }
  if (!res.ok) {
    const text = await res.text();
    let parsed: unknown = null;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = { message: text.slice(0, 300) };
    }
    throw errorFromBody(res.status, parsed, res.headers.get("x-request-id"));
  }
}

/** Bytes in words: 1.5 KB, 12 MB. */
export function formatBytes(n: number | undefined): string {
  if (n === undefined || n === null || Number.isNaN(n)) return "";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}
