// Record queries and mutations over /api/v1/data.
import { keepPreviousData, useQuery } from "@tanstack/react-query";
import { API, api } from "./api";
import type { RecordData } from "./fields";

export interface Page {
  records: RecordData[];
  total?: number;
  hasMore?: boolean;
}

export interface ListParams {
  top: number;
  skip: number;
  sort?: string;
  filter?: string;
  /** The data API's `search`: the text looked for in the object's searchable fields, chosen by the server. */
  search?: string;
  expand?: string;
}

export const dataPath = (object: string, id?: string) =>
  `${API}/data/${encodeURIComponent(object)}${id ? `/${encodeURIComponent(id)}` : ""}`;

export function useRecords(object: string, params: ListParams, enabled = true) {
  return useQuery({
    queryKey: ["records", object, params],
    enabled,
    placeholderData: keepPreviousData,
    queryFn: () => api.get<Page>(dataPath(object), { ...params }),
  });
}

export function useRecord(object: string, id: string | undefined, expand?: string, enabled = true) {
  return useQuery({
    queryKey: ["record", object, id, expand],
    enabled: !!id && enabled,
    queryFn: () => api.get<RecordData>(dataPath(object, id), { expand }),
  });
}

/** GET one record answers the record itself or `{record}` depending on the route; accept both. */
export function unwrapRecord(body: unknown): RecordData {
  const b = body as Record<string, unknown>;
  return (b && typeof b.record === "object" && b.record ? b.record : b) as RecordData;
}
