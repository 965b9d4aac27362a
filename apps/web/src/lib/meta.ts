// Metadata and permission queries, cached by TanStack Query: the object list for navigation, one
// object's fields, and what the signed-in user may do with it (from the permissions service).
import { useQuery } from "@tanstack/react-query";
import { API, ApiError, api } from "./api";
import { fullAccess, toObjectMeta, type ListView, type ObjectAccess, type ObjectMeta } from "./fields";

interface ItemsResponse {
  items: Record<string, unknown>[];
}

export function useObjects() {
  return useQuery({
    queryKey: ["meta", "object"],
    queryFn: async () => (await api.get<ItemsResponse>(`${API}/meta/object`)).items.map(toObjectMeta),
    staleTime: 60_000,
  });
}

export interface AppMeta {
  name: string;
  label?: string;
}

export function useApps() {
  return useQuery({
    queryKey: ["meta", "app"],
    queryFn: async () =>
      (await api.get<ItemsResponse>(`${API}/meta/app`)).items.map((a) => ({
        name: String(a.name),
        label: typeof a.label === "string" ? a.label : undefined,
      })) as AppMeta[],
    staleTime: 60_000,
  });
}

export function useObjectMeta(name: string) {
  return useQuery({
    queryKey: ["meta", "object", name],
    queryFn: async () => toObjectMeta((await api.get<{ item: Record<string, unknown> }>(`${API}/meta/object/${encodeURIComponent(name)}`)).item),
    staleTime: 60_000,
  });
}

interface PermissionAnswer {
  permissions?: { allowCreate?: boolean; allowEdit?: boolean; allowDelete?: boolean };
  fieldPermissions?: Record<string, { readable?: boolean; editable?: boolean }>;
}

/** What the user may do with `meta`, as the server's permissions service answers; everything
 * when the server runs without one (404), never guessed on the client. */
export function useObjectAccess(meta: ObjectMeta | undefined) {
  return useQuery({
    queryKey: ["access", meta?.name],
    enabled: !!meta,
    staleTime: 30_000,
    queryFn: async (): Promise<ObjectAccess> => {
      const m = meta as ObjectMeta;
      try {
        const a = await api.get<PermissionAnswer>(`${API}/permissions/object/${encodeURIComponent(m.name)}`);
        const full = fullAccess(m);
        return {
          allowCreate: a.permissions?.allowCreate ?? false,
          allowEdit: a.permissions?.allowEdit ?? false,
          allowDelete: a.permissions?.allowDelete ?? false,
          fields: Object.fromEntries(
            Object.entries(full.fields).map(([name]) => {
              const f = a.fieldPermissions?.[name];
              return [name, { readable: f?.readable ?? true, editable: f?.editable ?? true }];
            }),
          ),
        };
      } catch (e) {
        if (e instanceof ApiError && e.status === 404 && e.code === "ROUTE_NOT_FOUND") return fullAccess(m);
        throw e;
      }
    },
  });
}

/** The server's list view for `name` (`/api/v1/ui/view/:object/list`); null when the server has
 * no view service, so the list falls back on the object's fields. */
export function useListView(name: string) {
  return useQuery({
    queryKey: ["ui-view", name, "list"],
    staleTime: 60_000,
    queryFn: async (): Promise<ListView | null> => {
      try {
        return await api.get<ListView>(`${API}/ui/view/${encodeURIComponent(name)}/list`);
      } catch (e) {
        if (e instanceof ApiError && e.status === 404) return null;
        throw e;
      }
    },
  });
}
