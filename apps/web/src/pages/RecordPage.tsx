// One record: its fields (those the user may read), lists of the records whose lookups point at
// it, edit and delete (with confirmation), and for administrators a link to its audit trail.
import { useState } from "react";
import { Link, useNavigate, useParams } from "react-router";
import { useQueryClient } from "@tanstack/react-query";
import { api } from "../lib/api";
import { fieldLabel, formatValue, formFields, listColumns, objectLabel, objectPlural, recordName, type FieldMeta, type ObjectMeta } from "../lib/fields";
import { isAdmin, useSession } from "../lib/auth";
import { t } from "../lib/i18n";
import { useObjectAccess, useObjectMeta, useObjects } from "../lib/meta";
import { dataPath, unwrapRecord, useRecord, useRecords } from "../lib/records";
import { lookupNames } from "./RecordEdit";
import { ConfirmDialog } from "../components/ConfirmDialog";
import { ErrorNotice, Loading } from "../components/ErrorNotice";
import { Button } from "../components/ui/button";
import { Card } from "../components/ui/card";

export default function RecordPage() {
  const { object = "", id = "" } = useParams();
  const meta = useObjectMeta(object);
  const access = useObjectAccess(meta.data);
  const objects = useObjects();
  const fields = meta.data && access.data ? formFields(meta.data, access.data) : [];
  const record = useRecord(object, id, lookupNames(fields.filter((f) => !f.system)), !!access.data);
  const navigate = useNavigate();
  const qc = useQueryClient();
  const [confirming, setConfirming] = useState(false);
  // The audit log is for administrators (the server refuses others).
  const admin = isAdmin(useSession().data);
  const [deleteError, setDeleteError] = useState<unknown>(null);

  if (meta.isPending || access.isPending || record.isPending) return <Loading />;
  const failure = meta.error ?? access.error ?? record.error;
  if (failure) return <ErrorNotice error={failure} />;
  const m = meta.data;
  if (!m || !access.data) return <Loading />;
  const r = unwrapRecord(record.data);

  const remove = async () => {
    setConfirming(false);
    setDeleteError(null);
    try {
      await api.del(dataPath(object, id));
      await qc.invalidateQueries({ queryKey: ["records", object] });
      navigate(`/o/${object}`);
    } catch (e) {
      setDeleteError(e);
    }
  };

  const related = (objects.data ?? []).flatMap((o) =>
    o.isSystem ? [] : o.fields.filter((f) => (f.type === "lookup" || f.type === "master_detail") && f.reference === object && !f.system).map((f) => ({ object: o, field: f })),
  );

  return (
    <div className="max-w-4xl space-y-4">
      <nav aria-label="breadcrumb" className="text-sm text-muted-foreground">
        <Link to={`/o/${object}`} className="hover:underline">{objectPlural(m)}</Link>
      </nav>
      <div className="flex flex-wrap items-center justify-between gap-2">
        <h1 className="text-2xl font-semibold">{recordName(r) || objectLabel(m)}</h1>
        <div className="flex gap-2">
          {admin && (
            <Link
              to={`/admin/audit?object=${encodeURIComponent(object)}&recordId=${encodeURIComponent(id)}`}
              className="inline-flex h-9 items-center rounded-md px-4 text-sm font-medium hover:bg-muted"
            >
              {t("audit.trail")}
            </Link>
          )}
          {access.data.allowEdit && (
            <Link to={`/o/${object}/${encodeURIComponent(id)}/edit`} className="inline-flex h-9 items-center rounded-md border border-border px-4 text-sm font-medium hover:bg-muted">
              {t("record.edit")}
            </Link>
          )}
          {access.data.allowDelete && (
            <Button variant="destructive" onClick={() => setConfirming(true)}>{t("record.delete")}</Button>
          )}
        </div>
      </div>
      {deleteError ? <ErrorNotice error={deleteError} /> : null}
      <Card>
        <h2 className="sr-only">{t("record.details")}</h2>
        <dl className="grid gap-x-6 gap-y-3 sm:grid-cols-2">
          {fields.map((f) => (
            <div key={f.name} data-field={f.name}>
              <dt className="text-xs text-muted-foreground">{fieldLabel(f)}</dt>
              <dd className="min-h-5 text-sm">
                {(f.type === "lookup" || f.type === "master_detail") && r[f.name] && typeof r[f.name] === "object" && f.reference ? (
                  <Link className="text-primary hover:underline" to={`/o/${f.reference}/${encodeURIComponent(String((r[f.name] as { id?: unknown }).id))}`}>
                    {formatValue(f, r[f.name])}
                  </Link>
                ) : (
                  formatValue(f, r[f.name])
                )}
              </dd>
            </div>
          ))}
        </dl>
      </Card>
      {related.map((rel) => (
        <RelatedList key={`${rel.object.name}.${rel.field.name}`} meta={rel.object} field={rel.field} id={id} />
      ))}
      <ConfirmDialog
        open={confirming}
        message={t("record.deleteConfirm", { object: objectLabel(m) })}
        confirmLabel={t("record.delete")}
        onConfirm={remove}
        onCancel={() => setConfirming(false)}
      />
    </div>
  );
}

function RelatedList({ meta, field, id }: { meta: ObjectMeta; field: FieldMeta; id: string }) {
  const access = useObjectAccess(meta);
  const columns = access.data ? listColumns(meta, access.data, 4).filter((c) => c.name !== field.name) : [];
  const rows = useRecords(meta.name, { top: 10, skip: 0, filter: JSON.stringify({ [field.name]: id }) }, !!access.data);
  if (rows.isError) {
    return <Card><ErrorNotice error={rows.error} /></Card>;
  }
  const records = rows.data?.records ?? [];
  return (
    <Card>
      <h2 className="mb-2 font-medium">
        {t("record.related", { objects: objectPlural(meta), field: fieldLabel(field) })} {rows.data?.total !== undefined ? `(${rows.data.total})` : ""}
      </h2>
      {records.length === 0 ? (
        <p className="text-sm text-muted-foreground">{t("list.empty")}</p>
      ) : (
        <ul className="divide-y divide-border text-sm">
          {records.map((r) => (
            <li key={String(r.id)} className="flex flex-wrap gap-x-4 py-1.5">
              <Link className="text-primary hover:underline" to={`/o/${meta.name}/${encodeURIComponent(String(r.id))}`}>
                {recordName(r)}
              </Link>
              {columns.slice(1).map((c) => <span key={c.name} className="text-muted-foreground">{formatValue(c, r[c.name])}</span>)}
            </li>
          ))}
        </ul>
      )}
    </Card>
  );
}
