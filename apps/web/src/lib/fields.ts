// Pure logic between the server's metadata and the screens: which columns a list shows, which
// input a field gets, how form text becomes the JSON the server expects, how values are shown.
// No React here, so Vitest covers it directly.

export interface SelectOption {
  label: string;
  value: string;
  /** Preselected in a create form. */
  default?: boolean;
}

export interface FieldMeta {
  name: string;
  type: string;
  label?: string;
  required?: boolean;
  hidden?: boolean;
  readonly?: boolean;
  system?: boolean;
  searchable?: boolean;
  reference?: string;
  options?: SelectOption[];
  multiple?: boolean;
  scale?: number;
  maxLength?: number;
}

export interface ObjectMeta {
  name: string;
  label?: string;
  pluralLabel?: string;
  isSystem?: boolean;
  fields: FieldMeta[];
}

export interface FieldAccess {
  readable: boolean;
  editable: boolean;
}

export interface ObjectAccess {
  allowCreate: boolean;
  allowEdit: boolean;
  allowDelete: boolean;
  fields: Record<string, FieldAccess>;
}

export type RecordData = Record<string, unknown> & { id?: string };

/** Fields every object has without declaring them (`objectos_spec::object::SYSTEM_FIELDS`): the
 * server fills them and clients cannot set them, whether or not the metadata marks them `system`. */
export const SYSTEM_FIELDS = ["id", "created_at", "updated_at", "created_by", "updated_by", "owner_id", "organization_id"];

/** The server's object item (`fields` as a map keyed by name) in the console's form. */
export function toObjectMeta(item: Record<string, unknown>): ObjectMeta {
  const raw = (item.fields ?? {}) as Record<string, Record<string, unknown>>;
  const fields: FieldMeta[] = Object.entries(raw).map(([name, f]) => ({
    ...(f as Omit<FieldMeta, "name">),
    name,
    type: typeof f.type === "string" ? f.type : "text",
    system: f.system === true || SYSTEM_FIELDS.includes(name),
    options: Array.isArray(f.options)
      ? (f.options as unknown[]).map((o) =>
          o && typeof o === "object"
            ? {
                label: String((o as SelectOption).label ?? (o as SelectOption).value),
                value: String((o as SelectOption).value),
                ...((o as SelectOption).default ? { default: true } : {}),
              }
            : { label: String(o), value: String(o) },
        )
      : undefined,
  }));
  return {
    name: String(item.name),
    label: typeof item.label === "string" ? item.label : undefined,
    pluralLabel: typeof item.pluralLabel === "string" ? item.pluralLabel : undefined,
    isSystem: item.isSystem === true,
    fields,
  };
}

export const fieldLabel = (f: FieldMeta) => f.label ?? f.name;
export const objectLabel = (o: ObjectMeta) => o.label ?? o.name;
export const objectPlural = (o: ObjectMeta) => o.pluralLabel ?? objectLabel(o);

/** Everything allowed: what the console assumes when the server has no permissions service. */
export function fullAccess(meta: ObjectMeta): ObjectAccess {
  return {
    allowCreate: true,
    allowEdit: true,
    allowDelete: true,
    fields: Object.fromEntries(meta.fields.map((f) => [f.name, { readable: true, editable: true }])),
  };
}

const readable = (access: ObjectAccess, f: FieldMeta) => access.fields[f.name]?.readable ?? true;

/** Whether a user may type into `f`: the server says it is editable and it is not a system or read-only field. */
export function isEditable(access: ObjectAccess, f: FieldMeta): boolean {
  return !f.readonly && !f.system && (access.fields[f.name]?.editable ?? true);
}

/** List columns: the object's visible business fields the user may read, at most `max`. */
export function listColumns(meta: ObjectMeta, access: ObjectAccess, max = 6): FieldMeta[] {
  return meta.fields
    .filter((f) => !f.hidden && !f.system && f.name !== "id" && readable(access, f))
    .filter((f) => !["textarea", "markdown", "html", "json"].includes(f.type))
    .slice(0, max);
}

/** The server's list view (`GET /api/v1/ui/view/:object/list`): `{list: {columns: [{field}]}}`. */
export interface ListView {
  list?: { columns?: { field?: string }[] };
}

/** The list's columns in the order the server's list view gives, keeping only fields the user
 * may read and the list can show; the field-based default when there is no usable view. */
export function viewColumns(meta: ObjectMeta, access: ObjectAccess, view: ListView | null | undefined, max = 6): FieldMeta[] {
  const fallback = listColumns(meta, access, max);
  const names = view?.list?.columns?.map((c) => c.field).filter((n): n is string => typeof n === "string") ?? [];
  if (names.length === 0) return fallback;
  const byName = new Map(meta.fields.map((f) => [f.name, f]));
  const shown = names
    .map((n) => byName.get(n))
    // System fields (ids, timestamps, owner) stay out, as in the default: the server's generated
    // view lists the timestamps first, which would make a date the record's link.
    .filter((f): f is FieldMeta => !!f && !f.hidden && !f.system && f.name !== "id" && readable(access, f))
    .filter((f) => !["textarea", "markdown", "html", "json"].includes(f.type))
    .slice(0, max);
  return shown.length > 0 ? shown : fallback;
}

/** Fields on the record page and in forms: the visible business fields the user may read, then
 * the record's creation and modification times. */
export function formFields(meta: ObjectMeta, access: ObjectAccess): FieldMeta[] {
  const shown = meta.fields.filter((f) => !f.hidden && readable(access, f));
  const stamps = shown.filter((f) => f.name === "created_at" || f.name === "updated_at");
  return [...shown.filter((f) => !f.system), ...stamps];
}

/** Lookups to expand in a list so they show by name. */
export function expandFor(columns: FieldMeta[], known: Set<string>): string | undefined {
  const names = columns.filter((f) => (f.type === "lookup" || f.type === "master_detail") && f.reference && known.has(f.reference)).map((f) => f.name);
  return names.length ? names.join(",") : undefined;
}

/** The sort parameter after a click on `field`'s header: ascending, then descending, then ascending. */
export function nextSort(current: string | undefined, field: string): string {
  return current === field ? `-${field}` : field;
}

/** The HTML input a field type maps to. */
export type InputKind =
  | "text" | "number" | "date" | "datetime-local" | "checkbox" | "select" | "multiselect"
  | "lookup" | "email" | "url" | "tel" | "textarea";

export function inputKind(f: FieldMeta): InputKind {
  switch (f.type) {
    case "number": case "currency": case "percent": case "integer":
      return "number";
    case "date": return "date";
    case "datetime": return "datetime-local";
    case "boolean": case "toggle": return "checkbox";
    case "select": case "radio": return f.multiple ? "multiselect" : "select";
    case "multiselect": case "checkboxes": case "tags": return "multiselect";
    case "lookup": case "master_detail": return "lookup";
    case "email": return "email";
    case "url": return "url";
    case "phone": return "tel";
    case "textarea": case "markdown": case "html": case "richtext": return "textarea";
    default: return "text";
  }
}

/** Form state: strings for text-like inputs, booleans for checkboxes, string arrays for multi-selects. */
export type FormValue = string | boolean | string[];
export type FormValues = Record<string, FormValue>;

/** A record's value as the input shows it. */
export function toFormValue(f: FieldMeta, value: unknown): FormValue {
  const kind = inputKind(f);
  if (kind === "checkbox") return value === true;
  if (kind === "multiselect") return Array.isArray(value) ? value.map(String) : [];
  if (value === null || value === undefined) return "";
  if (kind === "lookup" && typeof value === "object") return String((value as RecordData).id ?? "");
  if (kind === "datetime-local" && typeof value === "string") {
    const d = new Date(value);
    if (Number.isNaN(d.getTime())) return value;
    const pad = (n: number) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
  }
  if (kind === "date" && typeof value === "string") return value.slice(0, 10);
  return String(value);
}

/** The JSON value the server expects for what the user typed (empty means null). */
export function fromFormValue(f: FieldMeta, value: FormValue): unknown {
  const kind = inputKind(f);
  if (kind === "checkbox") return value === true;
  if (kind === "multiselect") return Array.isArray(value) ? value : [];
  const text = typeof value === "string" ? value.trim() : "";
  if (text === "") return null;
  if (kind === "number") {
    const n = Number(text);
    // Not a number: sent as typed, so the server's validation names the field.
    return Number.isFinite(n) ? n : text;
  }
  if (kind === "datetime-local") {
    const d = new Date(text);
    return Number.isNaN(d.getTime()) ? text : d.toISOString();
  }
  return text;
}

/** The body of a create (every editable field with a value) or an edit (only the changed ones). */
export function recordBody(fields: FieldMeta[], values: FormValues, original?: RecordData): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  for (const f of fields) {
    if (!(f.name in values)) continue;
    const v = fromFormValue(f, values[f.name] as FormValue);
    if (original) {
      const before = fromFormValue(f, toFormValue(f, original[f.name]));
      if (JSON.stringify(before) === JSON.stringify(v)) continue;
    } else if (v === null || (Array.isArray(v) && v.length === 0)) {
      continue;
    }
    body[f.name] = v;
  }
  return body;
}

/** The display name of a record (a lookup's target, a page title). */
export function recordName(record: unknown): string {
  if (!record || typeof record !== "object") return record == null ? "" : String(record);
  const r = record as RecordData;
  for (const key of ["name", "title", "label", "subject", "email"]) {
    if (typeof r[key] === "string" && r[key]) return r[key] as string;
  }
  return String(r.id ?? "");
}

/** A value as text for lists and the record page. */
export function formatValue(f: FieldMeta, value: unknown, locale?: string): string {
  if (value === null || value === undefined || value === "") return "";
  switch (f.type) {
    case "boolean": case "toggle":
      return value === true ? "✓" : "";
    case "currency":
      return typeof value === "number"
        ? new Intl.NumberFormat(locale, { minimumFractionDigits: f.scale ?? 2, maximumFractionDigits: f.scale ?? 2 }).format(value)
        : String(value);
    case "percent":
      return typeof value === "number" ? `${new Intl.NumberFormat(locale, { maximumFractionDigits: 2 }).format(value)} %` : String(value);
    case "number": case "integer":
      return typeof value === "number" ? new Intl.NumberFormat(locale).format(value) : String(value);
    case "date": {
      const d = new Date(String(value));
      return Number.isNaN(d.getTime()) ? String(value) : new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeZone: "UTC" }).format(d);
    }
    case "datetime": {
      const d = new Date(String(value));
      return Number.isNaN(d.getTime()) ? String(value) : new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeStyle: "short" }).format(d);
    }
    case "select": case "radio": case "multiselect": case "checkboxes": {
      const label = (v: unknown) => f.options?.find((o) => o.value === String(v))?.label ?? String(v);
      return Array.isArray(value) ? value.map(label).join(", ") : label(value);
    }
    case "lookup": case "master_detail":
      return recordName(value);
    default:
      return Array.isArray(value) ? value.join(", ") : typeof value === "object" ? JSON.stringify(value) : String(value);
  }
}
