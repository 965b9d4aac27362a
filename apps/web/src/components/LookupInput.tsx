// A lookup: a search box that asks the server for matching records of the referenced object,
// and a select of the results (plus the current value, shown by name).
import { useState } from "react";
import { useQuery } from "@tanstack/react-query";
import { api } from "../lib/api";
import { recordName, type RecordData } from "../lib/fields";
import { t } from "../lib/i18n";
import { dataPath, type Page } from "../lib/records";
import { Input, Select } from "./ui/input";

export function LookupInput({
  id,
  name,
  reference,
  value,
  initial,
  disabled,
  onChange,
  ...aria
}: {
  id: string;
  name: string;
  reference: string;
  value: string;
  initial?: unknown;
  disabled: boolean;
  onChange: (v: string) => void;
  "aria-invalid"?: boolean;
  "aria-describedby"?: string;
  "aria-required"?: boolean;
}) {
  const [search, setSearch] = useState("");
  const options = useQuery({
    queryKey: ["lookup", reference, search],
    enabled: !disabled && !!reference,
    queryFn: () =>
      api.get<Page>(dataPath(reference), {
        top: 20,
        search: search.trim() || undefined,
      }),
  });
  const rows: RecordData[] = options.data?.records ?? [];
  const current = initial && typeof initial === "object" ? (initial as RecordData) : undefined;
  const hasCurrent = value && !rows.some((r) => String(r.id) === value);
  return (
    <div className="flex gap-2">
      {!disabled && (
        <Input
          type="search"
          aria-label={t("form.lookupSearch", { object: reference })}
          placeholder={t("form.lookupSearch", { object: reference })}
          value={search}
          onChange={(e) => setSearch(e.target.value)}
          className="w-1/2"
        />
      )}
      <Select id={id} name={name} value={value} disabled={disabled} onChange={(e) => onChange(e.target.value)} {...aria}>
        <option value="">{t("form.select")}</option>
        {hasCurrent && <option value={value}>{current ? recordName(current) : value}</option>}
        {rows.map((r) => (
          <option key={String(r.id)} value={String(r.id)}>{recordName(r)}</option>
        ))}
      </Select>
    </div>
  );
}
