// The one way the console talks to the server: same-origin fetch with the session cookie, JSON
// in and out, and every failure turned into an ApiError that carries the server's code, message,
// field errors and the request id (X-Request-Id), so the UI can show all of it in words.

export interface FieldError {
  field: string;
  code?: string;
  message: string;
  label?: string;
}

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly requestId: string | null;
  readonly fields: FieldError[];

  constructor(status: number, code: string, message: string, requestId: string | null, fields: FieldError[] = []) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.requestId = requestId;
    this.fields = fields;
  }
}

/** 401 answers that refuse a secret typed on a page (a wrong password or two-factor code while
 * signed in), not a lost session: they are shown at their form, never a return to sign-in. */
export const WRONG_SECRET_CODES = new Set(["INVALID_CREDENTIALS", "INVALID_TWO_FACTOR_CODE", "TWO_FACTOR_REQUIRED"]);

/** Called on every 401 from a route that needs a session (the app returns to sign-in). */
let onUnauthenticated: (() => void) | null = null;
export function setUnauthenticatedHandler(handler: (() => void) | null): void {
  onUnauthenticated = handler;
}

export const API = "/api/v1";

type Query = Record<string, string | number | undefined>;

function url(path: string, query?: Query): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query ?? {})) {
    if (v !== undefined && v !== "") params.set(k, String(v));
  }
  const qs = params.toString();
  return qs ? `${path}?${qs}` : path;
}

/** Reads the error body shapes the server sends: `{error, code, message?, fields?}`, or the
 * storage envelope `{success: false, error: {code, message}}`. */
export function errorFromBody(status: number, body: unknown, requestId: string | null): ApiError {
  let b = (body && typeof body === "object" ? body : {}) as Record<string, unknown>;
  // The storage routes' envelope: {success: false, error: {code, message}}.
  if (b.error && typeof b.error === "object") b = b.error as Record<string, unknown>;
  const code = typeof b.code === "string" ? b.code : `HTTP_${status}`;
  const message =
    (typeof b.message === "string" && b.message) ||
    (typeof b.error === "string" && b.error) ||
    `Request failed with status ${status}`;
  const fields = Array.isArray(b.fields)
    ? b.fields
        .filter((f): f is Record<string, unknown> => !!f && typeof f === "object")
        .map((f) => ({
          field: String(f.field ?? ""),
          code: typeof f.code === "string" ? f.code : undefined,
          message: String(f.message ?? ""),
          label: typeof f.label === "string" ? f.label : undefined,
        }))
    : [];
  return new ApiError(status, code, message, requestId, fields);
}

export async function request<T>(
  method: string,
  path: string,
  options: { query?: Query; body?: unknown; quiet401?: boolean } = {},
): Promise<T> {
  let res: Response;
  try {
    res = await fetch(url(path, options.query), {
      method,
      credentials: "same-origin",
      headers: options.body === undefined ? { accept: "application/json" } : { accept: "application/json", "content-type": "application/json" },
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
    });
  } catch (e) {
    throw new ApiError(0, "NETWORK", e instanceof Error ? e.message : String(e), null);
  }
  const requestId = res.headers.get("x-request-id");
  const text = await res.text();
  let body: unknown = null;
  if (text) {
    try {
      body = JSON.parse(text);
    } catch {
      body = { message: text.slice(0, 300) };
    }
  }
  if (!res.ok) {
    const error = errorFromBody(res.status, body, requestId);
    if (res.status === 401 && !options.quiet401 && !WRONG_SECRET_CODES.has(error.code)) onUnauthenticated?.();
    throw error;
  }
  return body as T;
}

export const api = {
  get: <T>(path: string, query?: Query, quiet401 = false) => request<T>("GET", path, { query, quiet401 }),
  post: <T>(path: string, body: unknown = {}) => request<T>("POST", path, { body }),
  patch: <T>(path: string, body: unknown) => request<T>("PATCH", path, { body }),
  del: <T>(path: string) => request<T>("DELETE", path),
  /** Any method with a JSON body (DELETE /permissions/assignments takes one). */
  send: <T>(method: string, path: string, body: unknown) => request<T>(method, path, { body }),
};
