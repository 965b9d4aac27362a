// Create and edit form: one input per field the user may read, chosen by field type; fields the
// user may not edit are read-only. The server validates: its field errors are shown at their
// fields, the rest above the buttons, and nothing the user typed is lost.
import { useId, useMemo, useState, type FormEvent } from "react";
import { ApiError } from "../lib/api";
import {
  fieldLabel,
  inputKind,
  isEditable,
  recordBody,
  toFormValue,
  type FieldMeta,
  type FormValue,
  type FormValues,
  type ObjectAccess,
  type RecordData,
} from "../lib/fields";
import { t } from "../lib/i18n";
import { ErrorNotice } from "./ErrorNotice";
import { LookupInput } from "./LookupInput";
import { Button } from "./ui/button";
import { Input, Label, Select, Textarea } from "./ui/input";

export interface RecordFormProps {
  fields: FieldMeta[];
  access: ObjectAccess;
  /** The record being edited; absent for a create. */
  record?: RecordData;
  submitLabel: string;
  /** Sends the body; throws an ApiError on refusal. */
  onSubmit: (body: Record<string, unknown>) => Promise<void>;
  onCancel: () => void;
}

/** Field errors of a refusal, by field name; the message of those that name no shown field. */
export function splitErrors(error: unknown, shown: FieldMeta[]): { byField: Record<string, string>; rest: ApiError | null } {
  if (!(error instanceof ApiError)) return { byField: {}, rest: null };
  const names = new Set(shown.map((f) => f.name));
  const byField: Record<string, string> = {};
  for (const f of error.fields) {
    if (names.has(f.field)) byField[f.field] = byField[f.field] ? `${byField[f.field]}; ${f.message}` : f.message;
  }
  const unplaced = error.fields.length === 0 || error.fields.some((f) => !names.has(f.field));
  return { byField, rest: unplaced ? error : null };
}

export function RecordForm({ fields, access, record, submitLabel, onSubmit, onCancel }: RecordFormProps) {
  const formId = useId();
  const shown = useMemo(() => fields.filter((f) => !f.system), [fields]);
  const [values, setValues] = useState<FormValues>(() =>
    Object.fromEntries(shown.map((f) => [f.name, toFormValue(f, record ? record[f.name] : defaultOf(f))])),
  );
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const editable = shown.filter((f) => isEditable(access, f));
  const { byField, rest } = splitErrors(error, shown);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await onSubmit(recordBody(editable, values, record));
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  const set = (name: string, v: FormValue) => setValues((old) => ({ ...old, [name]: v }));

  return (
    <form onSubmit={submit} noValidate className="space-y-4">
      {Object.keys(byField).length > 0 && (
        <p role="alert" className="text-sm text-destructive">{t("form.fixErrors")}</p>
      )}
      <div className="grid gap-4 sm:grid-cols-2">
        {shown.map((f) => {
          const id = `${formId}-${f.name}`;
          const errId = `${id}-error`;
          const readOnly = !isEditable(access, f);
          const message = byField[f.name];
          return (
            <div key={f.name} className="space-y-1" data-field={f.name}>
              <Label htmlFor={id}>
                {fieldLabel(f)}
                {f.required && !readOnly ? <span aria-hidden="true" className="text-destructive"> *</span> : null}
                {readOnly ? <span className="ml-1 text-xs font-normal text-muted-foreground">({t("record.readOnly")})</span> : null}
              </Label>
              <FieldInput
                id={id}
                field={f}
                value={values[f.name] ?? ""}
                readOnly={readOnly}
                invalid={!!message}
                describedBy={message ? errId : undefined}
                onChange={(v) => set(f.name, v)}
                record={record}
              />
              {message && (
                <p id={errId} className="text-sm text-destructive">{message}</p>
              )}
            </div>
          );
        })}
      </div>
      {rest && <ErrorNotice error={rest} />}
      {error && !(error instanceof ApiError) ? <ErrorNotice error={error} /> : null}
      <div className="flex gap-2">
        <Button type="submit" disabled={busy}>{submitLabel}</Button>
        <Button variant="outline" onClick={onCancel}>{t("record.cancel")}</Button>
      </div>
    </form>
  );
}

function defaultOf(f: FieldMeta): unknown {
  const d = f.options?.find((o) => o.default);
  return d ? d.value : undefined;
}

function FieldInput({
  id,
  field: f,
  value,
  readOnly,
  invalid,
  describedBy,
  onChange,
  record,
}: {
  id: string;
  field: FieldMeta;
  value: FormValue;
  readOnly: boolean;
  invalid: boolean;
  describedBy?: string;
  onChange: (v: FormValue) => void;
  record?: RecordData;
}) {
  const common = {
    id,
    name: f.name,
    "aria-invalid": invalid,
    "aria-describedby": describedBy,
    "aria-required": f.required && !readOnly ? true : undefined,
  };
  const kind = inputKind(f);
  switch (kind) {
    case "checkbox":
      return (
        <input
          {...common}
          type="checkbox"
          className="h-4 w-4"
          checked={value === true}
          disabled={readOnly}
          onChange={(e) => onChange(e.target.checked)}
        />
      );
    case "select":
      return (
        <Select {...common} value={String(value)} disabled={readOnly} onChange={(e) => onChange(e.target.value)}>
          <option value="">{t("form.select")}</option>
          {f.options?.map((o) => <option key={o.value} value={o.value}>{o.label}</option>)}
        </Select>
      );
    case "multiselect":
      return (
        <Select
          {...common}
          multiple
          value={Array.isArray(value) ? value : []}
          disabled={readOnly}
          onChange={(e) => onChange(Array.from(e.target.selectedOptions, (o) => o.value))}
        >
          {f.options?.map((o) => <option key={o.value} value={o.value}>{o.label}</option>)}
        </Select>
      );
    case "textarea":
      return <Textarea {...common} value={String(value)} readOnly={readOnly} onChange={(e) => onChange(e.target.value)} />;
    case "lookup":
      return (
        <LookupInput
          {...common}
          reference={f.reference ?? ""}
          value={String(value)}
          initial={record ? record[f.name] : undefined}
          disabled={readOnly}
          onChange={onChange}
        />
      );
    default:
      return (
        <Input
          {...common}
          type={kind}
          step={kind === "number" ? "any" : undefined}
          value={String(value)}
          readOnly={readOnly}
          onChange={(e) => onChange(e.target.value)}
        />
      );
  }
}
