// The notification plugin's routes for the signed-in user (docs/notifications.md): the in-app
// inbox (`/api/v1/notifications`, the official client's `notifications` namespace) and the
// channel and topic preferences. Both answer the dispatcher envelope `{success, data}`; errors
// `{success: false, error: {code, message, httpStatus}}` are read by `errorFromBody`.
import { useQuery } from "@tanstack/react-query";
import { API, api } from "./api";

const BASE = `${API}/notifications`;

export interface InboxItem {
  id: string;
  type: string;
  title: string;
  body: string;
  read: boolean;
  actionUrl?: string | null;
  data?: unknown;
  createdAt?: string | null;
}

export interface Inbox {
  notifications: InboxItem[];
  unreadCount: number;
}

export interface Preference {
  channel: Channel;
  topic: string;
  enabled: boolean;
}

/** The channels a preference may name (the plugin's `prefs::CHANNELS`). */
export const CHANNELS = ["email", "sms", "push"] as const;
export type Channel = (typeof CHANNELS)[number];

/** The topic matching every topic; a preference for a topic itself wins over it. */
export const ANY_TOPIC = "*";

/** The server's inbox limit: at most 200 a request. */
export const MAX_LIMIT = 200;

interface Envelope<T> {
  success?: boolean;
  data: T;
}

export const notifications = {
  list: async (q: { read?: boolean; type?: string; limit?: number } = {}) =>
    (
      await api.get<Envelope<Inbox>>(BASE, {
        read: q.read === undefined ? undefined : String(q.read),
        type: q.type,
        limit: q.limit,
      })
    ).data,
  markRead: async (ids: string[]) => (await api.post<Envelope<{ readCount: number }>>(`${BASE}/read`, { ids })).data,
  markAllRead: async () => (await api.post<Envelope<{ readCount: number }>>(`${BASE}/read/all`, {})).data,
  preferences: async () => (await api.get<Envelope<{ preferences: Preference[] }>>(`${BASE}/preferences`)).data.preferences,
  /** Sets these preferences (the others stay); answers them all. */
  setPreferences: async (preferences: Preference[]) =>
    (await api.send<Envelope<{ preferences: Preference[] }>>("PUT", `${BASE}/preferences`, { preferences })).data.preferences,
};

/** Every inbox query starts with this key, so one invalidation refreshes the page and the badge. */
export const INBOX_KEY = "notifications";

/**
 * The unread count for the shell's badge, refreshed every 30 s. A server without the notification
 * plugin answers 404: no badge, and no error shown in the navigation for it.
 */
export function useUnreadCount(enabled: boolean) {
  return useQuery({
    queryKey: [INBOX_KEY, "unread"],
    enabled,
    queryFn: async () => (await notifications.list({ read: false, limit: 1 })).unreadCount,
    refetchInterval: 30_000,
    retry: false,
  });
}

/**
 * Whether a channel is on for a topic, as the server decides it: the topic's own preference, else
 * the one for every topic, else on.
 */
export function isEnabled(prefs: Preference[], channel: Channel, topic: string): boolean {
  const own = prefs.find((p) => p.channel === channel && p.topic === topic);
  if (own) return own.enabled;
  const any = prefs.find((p) => p.channel === channel && p.topic === ANY_TOPIC);
  return any ? any.enabled : true;
}

/** Whether the value shown for a topic comes from the every-topic row (no preference of its own). */
export function isInherited(prefs: Preference[], channel: Channel, topic: string): boolean {
  return topic !== ANY_TOPIC && !prefs.some((p) => p.channel === channel && p.topic === topic);
}

/** The topic rows of the preferences table: every topic first, then the named ones, sorted, plus
 * the ones the user is adding but has not set yet. */
export function topicsOf(prefs: Preference[], extra: string[] = []): string[] {
  const named = new Set([...prefs.map((p) => p.topic), ...extra].filter((t) => t !== ANY_TOPIC && t !== ""));
  return [ANY_TOPIC, ...[...named].sort()];
}

/** An action link the console may follow: a path on this server or an http(s) address. Anything
 * else (`javascript:`, `data:`) is shown as text, never as a link. */
export function safeActionUrl(url: string | null | undefined): string | null {
  if (!url) return null;
  if (url.startsWith("/") && !url.startsWith("//")) return url;
  try {
    const u = new URL(url);
    return u.protocol === "https:" || u.protocol === "http:" ? u.toString() : null;
  } catch {
    return null;
  }
}
