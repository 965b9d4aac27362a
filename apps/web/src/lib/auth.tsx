// The session: who is signed in (get-session), and the sign-in, first-run sign-up and sign-out
// calls of the auth plugin. The session lives in the server's HttpOnly cookie; the console keeps
// no token of its own.
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { API, api } from "./api";

export interface SessionUser {
  id: string;
  name?: string;
  email: string;
  isPlatformAdmin?: boolean;
}

export interface Session {
  user: SessionUser;
}

export function useSession() {
  return useQuery({
    queryKey: ["session"],
    queryFn: async () => {
      try {
        const s = await api.get<Session | null>(`${API}/auth/get-session`, undefined, true);
        return s && s.user ? s : null;
      } catch (e) {
        if (e && typeof e === "object" && "status" in e && (e as { status: number }).status === 401) return null;
        throw e;
      }
    },
    staleTime: 60_000,
    retry: false,
  });
}

export function useBootstrapStatus() {
  return useQuery({
    queryKey: ["bootstrap-status"],
    queryFn: () => api.get<{ hasOwner: boolean }>(`${API}/auth/bootstrap-status`, undefined, true),
    retry: false,
  });
}

export function useAuthActions() {
  const qc = useQueryClient();
  const refresh = async () => {
    qc.clear();
    await qc.invalidateQueries({ queryKey: ["session"] });
  };
  return {
    signIn: async (email: string, password: string) => {
      await api.post(`${API}/auth/sign-in/email`, { email, password });
      await refresh();
    },
    signUp: async (name: string, email: string, password: string) => {
      await api.post(`${API}/auth/sign-up/email`, { name, email, password });
      await refresh();
    },
    signOut: async () => {
      await api.post(`${API}/auth/sign-out`, {});
      await refresh();
    },
  };
}
