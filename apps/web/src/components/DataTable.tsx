// A plain, accessible table for the administration pages: a caption for screen readers, one
// column per entry, an empty message, horizontal scrolling on narrow screens.
import type { ReactNode } from "react";
import { t } from "../lib/i18n";

export interface Column<R> {
  key: string;
  label: string;
  render: (row: R) => ReactNode;
  className?: string;
}

export function DataTable<R>({
  caption,
  columns,
  rows,
  rowKey,
  rowLabel,
}: {
  caption: string;
  columns: Column<R>[];
  rows: R[];
  rowKey: (row: R) => string;
  /** Names the row for assistive technology (and for tests: getByRole("row", {name})). */
  rowLabel?: (row: R) => string;
}) {
  return (
    <div className="overflow-x-auto rounded-lg border border-border">
      <table className="w-full text-left text-sm">
        <caption className="sr-only">{caption}</caption>
        <thead className="bg-muted">
          <tr>
            {columns.map((c) => (
              <th key={c.key} scope="col" className="px-3 py-2 font-medium">{c.label}</th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <tr key={rowKey(r)} aria-label={rowLabel?.(r)} className="border-t border-border align-top">
              {columns.map((c) => (
                <td key={c.key} className={c.className ?? "px-3 py-2"}>{c.render(r)}</td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
      {rows.length === 0 && <p className="p-4 text-sm text-muted-foreground">{t("list.empty")}</p>}
    </div>
  );
}

/** Previous / next over an offset-paged list. */
export function Pager({
  offset,
  limit,
  count,
  total,
  onChange,
}: {
  offset: number;
  limit: number;
  count: number;
  total?: number;
  onChange: (offset: number) => void;
}) {
  const more = total !== undefined ? offset + count < total : count === limit;
  return (
    <div className="flex items-center justify-between text-sm">
      <span aria-live="polite">
        {count > 0 && total !== undefined ? t("list.page", { from: offset + 1, to: offset + count, total }) : ""}
      </span>
      <div className="flex gap-2">
        <button type="button" className="h-9 rounded-md border border-border px-4 hover:bg-muted disabled:opacity-50" disabled={offset === 0} onClick={() => onChange(Math.max(0, offset - limit))}>
          {t("list.previous")}
        </button>
        <button type="button" className="h-9 rounded-md border border-border px-4 hover:bg-muted disabled:opacity-50" disabled={!more} onClick={() => onChange(offset + limit)}>
          {t("list.next")}
        </button>
      </div>
    </div>
  );
}
