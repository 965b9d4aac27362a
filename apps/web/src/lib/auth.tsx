// The session: who is signed in (get-session), and the sign-in, first-run sign-up and sign-out
// calls of the auth plugin. The session lives in the server's HttpOnly cookie; the console keeps
// no token of its own.
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { API, api } from "./api";

export interface SessionUser {
  id: string;
  name?: string;
  email: string;
  /** `admin` when the user manages the active organization (or is the platform administrator). */
  role?: string;
  isPlatformAdmin?: boolean;
  /** Whether two-factor authentication is on for the account. */
  twoFactorEnabled?: boolean;
}

export interface Session {
  user: SessionUser;
  session?: { activeOrganizationId?: string | null; activeOrganizationRole?: string | null };
}

/** Whether to show the administration pages. Only a hint for the navigation: the server
 * refuses non-administrators on those routes anyway. */
export function isAdmin(s: Session | null | undefined): boolean {
  return !!s && (s.user.role === "admin" || s.user.isPlatformAdmin === true);
}

export interface SsoProvider {
  id: string;
  name: string;
  type?: string;
}

/** The single sign-on providers the server offers (public; none when the list fails). */
export function useProviders() {
  return useQuery({
    queryKey: ["sso-providers"],
    queryFn: async () => {
      const body = await api.get<unknown>(`${API}/auth/providers`, undefined, true);
      return (Array.isArray(body) ? body : []) as SsoProvider[];
    },
    retry: false,
    staleTime: 300_000,
  });
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
    /** `code`: the TOTP code, when the server answered TWO_FACTOR_REQUIRED. */
    signIn: async (email: string, password: string, code?: string) => {
      await api.post(`${API}/auth/sign-in/email`, code ? { email, password, code } : { email, password });
      await refresh();
    },
    /** Starts single sign-on: the server answers the provider's URL, the browser goes there and
     * comes back to `callbackURL` signed in. */
    signInWith: async (provider: string, callbackURL: string, errorCallbackURL: string) => {
      const out = await api.post<{ url?: string }>(`${API}/auth/sign-in/social`, { provider, callbackURL, errorCallbackURL });
      if (out?.url) window.location.assign(out.url);
    },
    /** The server mails a link to its `auth.resetUrl` (by default /reset-password, which the
     * console's server sends on to /console/reset-password). */
    forgotPassword: (email: string) => api.post(`${API}/auth/forget-password`, { email }),
    resetPassword: (token: string, newPassword: string) => api.post(`${API}/auth/reset-password`, { token, newPassword }),
    switchOrganization: async (organizationId: string) => {
      await api.post(`${API}/auth/organization/set-active`, { organizationId });
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
