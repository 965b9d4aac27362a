// /o/:object/new and /o/:object/:id/edit: the record form, then the record page.
import { useQueryClient } from "@tanstack/react-query";
import { useNavigate, useParams } from "react-router";
import { API, api } from "../lib/api";
import { formFields, objectLabel, type FieldMeta, type RecordData } from "../lib/fields";
import { t } from "../lib/i18n";
import { useObjectAccess, useObjectMeta } from "../lib/meta";
import { dataPath, unwrapRecord, useRecord } from "../lib/records";
import { RecordForm } from "../components/RecordForm";
import { ErrorNotice, Loading } from "../components/ErrorNotice";
import { Card } from "../components/ui/card";

export const lookupNames = (fields: FieldMeta[]) =>
  fields.filter((f) => f.type === "lookup" || f.type === "master_detail").map((f) => f.name).join(",") || undefined;

export default function RecordEdit() {
  const { object = "", id } = useParams();
  const meta = useObjectMeta(object);
  const access = useObjectAccess(meta.data);
  const fields = meta.data && access.data ? formFields(meta.data, access.data) : [];
  const record = useRecord(object, id, lookupNames(fields.filter((f) => !f.system)), !!access.data);
  const navigate = useNavigate();
  const qc = useQueryClient();

  if (meta.isPending || access.isPending || (id && record.isPending)) return <Loading />;
  const failure = meta.error ?? access.error ?? record.error;
  if (failure) return <ErrorNotice error={failure} />;
  const m = meta.data;
  if (!m || !access.data) return <Loading />;
  const existing = id ? unwrapRecord(record.data) : undefined;

  const onSubmit = async (body: Record<string, unknown>) => {
    let savedId = id;
    if (id) {
      await api.patch(dataPath(object, id), body);
    } else {
      const created = unwrapRecord(await api.post<RecordData>(`${API}/data/${encodeURIComponent(object)}`, body));
      savedId = String(created.id);
    }
    await qc.invalidateQueries({ queryKey: ["records", object] });
    await qc.invalidateQueries({ queryKey: ["record", object] });
    navigate(`/o/${object}/${encodeURIComponent(String(savedId))}`);
  };

  return (
    <div className="max-w-3xl space-y-4">
      <h1 className="text-2xl font-semibold">
        {id ? `${t("record.edit")} ${objectLabel(m)}` : t("list.new", { object: objectLabel(m) })}
      </h1>
      <Card>
        <RecordForm
          fields={fields}
          access={access.data}
          record={existing}
          submitLabel={id ? t("record.save") : t("record.create")}
          onSubmit={onSubmit}
          onCancel={() => navigate(id ? `/o/${object}/${encodeURIComponent(id)}` : `/o/${object}`)}
        />
      </Card>
    </div>
  );
}
