// One object's records: columns from the server's list view (/ui/view) or else its fields (those
// the user may read), server-side sort, paging (25, 50 or 100 rows, `?top=` in the address) and
// search, lookups shown by name.
import { useState } from "react";
import { Link, useParams, useSearchParams } from "react-router";
import { expandFor, fieldLabel, formatValue, nextSort, objectLabel, objectPlural, viewColumns } from "../lib/fields";
import { t } from "../lib/i18n";
import { useListView, useObjectAccess, useObjectMeta, useObjects } from "../lib/meta";
import { useRecords } from "../lib/records";
import { ErrorNotice, Loading } from "../components/ErrorNotice";
import { Button } from "../components/ui/button";
import { Input, Select } from "../components/ui/input";

/** The page sizes offered; the first is the default. */
export const PAGE_SIZES = [25, 50, 100] as const;

/** The page size of the address's `top`, when it is one of those offered. */
export function pageSize(top: string | null): number {
  const n = Number(top);
  return (PAGE_SIZES as readonly number[]).includes(n) ? n : PAGE_SIZES[0];
}

export default function ObjectList() {
  const { object = "" } = useParams();
  const [params, setParams] = useSearchParams();
  const meta = useObjectMeta(object);
  const access = useObjectAccess(meta.data);
  const objects = useObjects();
  const [search, setSearch] = useState(params.get("q") ?? "");

  const skip = Number(params.get("skip") ?? 0) || 0;
  const size = pageSize(params.get("top"));
  const sort = params.get("sort") ?? undefined;
  const q = params.get("q") ?? "";
  const view = useListView(object);
  // The view only orders the columns: a failed view request falls back on the fields.
  const viewDone = view.isSuccess || view.isError;
  const columns = meta.data && access.data && viewDone ? viewColumns(meta.data, access.data, view.data) : [];
  const known = new Set(objects.data?.map((o) => o.name) ?? []);
  const records = useRecords(
    object,
    {
      top: size,
      skip,
      sort,
      search: q || undefined,
      expand: expandFor(columns, known),
    },
    !!meta.data && !!access.data && !!objects.data && viewDone,
  );

  const update = (changes: Record<string, string | undefined>) => {
    const next = new URLSearchParams(params);
    for (const [k, v] of Object.entries(changes)) {
      if (v) next.set(k, v);
      else next.delete(k);
    }
    setParams(next);
  };

  if (meta.isPending) return <Loading />;
  if (meta.isError) return <ErrorNotice error={meta.error} />;
  const m = meta.data;
  const total = records.data?.total;
  const rows = records.data?.records ?? [];

  return (
    <div className="space-y-4">
      <div className="flex flex-wrap items-center justify-between gap-2">
        <h1 className="text-2xl font-semibold">{objectPlural(m)}</h1>
        {access.data?.allowCreate && (
          <Link to={`/o/${object}/new`} className="inline-flex h-9 items-center rounded-md bg-primary px-4 text-sm font-medium text-primary-foreground">
            {t("list.new", { object: objectLabel(m) })}
          </Link>
        )}
      </div>
      <form
        role="search"
        onSubmit={(e) => {
          e.preventDefault();
          update({ q: search, skip: undefined });
        }}
      >
        <Input
          type="search"
          aria-label={t("list.search", { objects: objectPlural(m) })}
          placeholder={t("list.search", { objects: objectPlural(m) })}
          value={search}
          onChange={(e) => setSearch(e.target.value)}
          className="max-w-sm"
        />
      </form>
      {access.isError && <ErrorNotice error={access.error} />}
      {records.isError && <ErrorNotice error={records.error} />}
      <div className="overflow-x-auto rounded-lg border border-border">
        <table className="w-full text-left text-sm">
          <thead className="bg-muted">
            <tr>
              {columns.map((c) => {
                const dir = sort === c.name ? "ascending" : sort === `-${c.name}` ? "descending" : "none";
                return (
                  <th key={c.name} scope="col" aria-sort={dir} className="px-3 py-2 font-medium">
                    <button
                      type="button"
                      className="hover:underline"
                      aria-label={t("list.sortBy", { field: fieldLabel(c) })}
                      onClick={() => update({ sort: nextSort(sort, c.name), skip: undefined })}
                    >
                      {fieldLabel(c)} {dir === "ascending" ? "▲" : dir === "descending" ? "▼" : ""}
                    </button>
                  </th>
                );
              })}
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => (
              <tr key={String(r.id)} className="border-t border-border hover:bg-muted/50">
                {columns.map((c, i) => (
                  <td key={c.name} className="px-3 py-2">
                    {i === 0 ? (
                      <Link className="text-primary hover:underline" to={`/o/${object}/${encodeURIComponent(String(r.id))}`}>
                        {formatValue(c, r[c.name]) || String(r.id)}
                      </Link>
                    ) : (
                      formatValue(c, r[c.name])
                    )}
                  </td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
        {records.isPending && <Loading />}
        {records.isSuccess && rows.length === 0 && <p className="p-4 text-sm text-muted-foreground">{t("list.empty")}</p>}
      </div>
      <div className="flex items-center justify-between text-sm">
        <span aria-live="polite">
          {total !== undefined && rows.length > 0 ? t("list.page", { from: skip + 1, to: skip + rows.length, total }) : ""}
        </span>
        <div className="flex flex-wrap items-center gap-2">
          <label className="flex items-center gap-2">
            {t("list.pageSize")}
            <Select
              className="w-20"
              value={String(size)}
              onChange={(e) => update({ top: e.target.value === String(PAGE_SIZES[0]) ? undefined : e.target.value, skip: undefined })}
            >
              {PAGE_SIZES.map((n) => (
                <option key={n} value={n}>{n}</option>
              ))}
            </Select>
          </label>
          <Button variant="outline" disabled={skip === 0} onClick={() => update({ skip: String(Math.max(0, skip - size)) })}>
            {t("list.previous")}
          </Button>
          <Button
            variant="outline"
            disabled={!(records.data?.hasMore ?? (total !== undefined && skip + rows.length < total))}
            onClick={() => update({ skip: String(skip + size) })}
          >
            {t("list.next")}
          </Button>
        </div>
      </div>
    </div>
  );
}
