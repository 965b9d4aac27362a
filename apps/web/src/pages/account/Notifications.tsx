// The signed-in user's notifications: the in-app inbox (newest first, unread only or all, mark one
// or all read; the shell's badge counts the unread) and the user's preferences per topic and
// channel in the active organization. Essential messages (password reset, email verification,
// invitations) ignore preferences on the server, so their row is shown always on.
import { useState, type FormEvent } from "react";
import { Link } from "react-router";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useAction, useRowActions } from "../../lib/actions";
import { t, type MessageKey } from "../../lib/i18n";
import {
  ANY_TOPIC,
  CHANNELS,
  INBOX_KEY,
  MAX_LIMIT,
  isEnabled,
  isInherited,
  notifications,
  safeActionUrl,
  topicsOf,
  type Channel,
  type InboxItem,
  type Preference,
} from "../../lib/notifications";
import { ErrorNotice, Loading } from "../../components/ErrorNotice";
import { Button } from "../../components/ui/button";
import { Card } from "../../components/ui/card";
import { Input, Label } from "../../components/ui/input";

const PAGE = 50;

const channelLabel: Record<Channel, MessageKey> = {
  email: "notif.channel.email",
  sms: "notif.channel.sms",
  push: "notif.channel.push",
};

/** The server's topic rule (letters, digits, `_`, `-`, `.`; at most 100 characters). */
const TOPIC = /^[A-Za-z0-9_.-]{1,100}$/;

const when = (v?: string | null) => (v ? new Date(v).toLocaleString() : "");

export default function Notifications() {
  return (
    <div className="max-w-4xl space-y-6">
      <h1 className="text-2xl font-semibold">{t("nav.notifications")}</h1>
      <InboxSection />
      <PreferencesSection />
    </div>
  );
}

function InboxSection() {
  const qc = useQueryClient();
  const [unreadOnly, setUnreadOnly] = useState(false);
  const [limit, setLimit] = useState(PAGE);
  const inbox = useQuery({
    queryKey: [INBOX_KEY, "list", unreadOnly, limit],
    queryFn: () => notifications.list({ read: unreadOnly ? false : undefined, limit }),
  });
  const rows = useRowActions();
  const all = useAction();
  const refresh = () => qc.invalidateQueries({ queryKey: [INBOX_KEY] });
  const items = inbox.data?.notifications ?? [];
  const unread = inbox.data?.unreadCount ?? 0;

  return (
    <section aria-labelledby="inbox-title" className="space-y-3">
      <div className="flex flex-wrap items-center justify-between gap-2">
        <h2 id="inbox-title" className="text-lg font-medium">{t("notif.inbox")}</h2>
        <div className="flex flex-wrap items-center gap-3">
          <span className="text-sm text-muted-foreground" aria-live="polite" data-testid="unread-count">
            {inbox.data ? t("notif.unread", { count: unread }) : ""}
          </span>
          <label className="flex items-center gap-2 text-sm">
            <input type="checkbox" checked={unreadOnly} onChange={(e) => setUnreadOnly(e.target.checked)} />
            {t("notif.unreadOnly")}
          </label>
          <Button
            variant="outline"
            disabled={all.busy || unread === 0}
            onClick={async () => {
              if (await all.run(() => notifications.markAllRead())) await refresh();
            }}
          >
            {t("notif.markAllRead")}
          </Button>
        </div>
      </div>
      <ErrorNotice error={all.error} />
      {inbox.isPending && <Loading />}
      {inbox.isError && <ErrorNotice error={inbox.error} />}
      {inbox.data && items.length === 0 && (
        <p className="rounded-lg border border-border p-4 text-sm text-muted-foreground">
          {unreadOnly ? t("notif.noneUnread") : t("notif.none")}
        </p>
      )}
      {items.length > 0 && (
        <ul aria-label={t("notif.inbox")} className="divide-y divide-border rounded-lg border border-border">
          {items.map((n) => (
            <InboxRow
              key={n.id}
              item={n}
              busy={rows.busy === n.id}
              error={rows.errorOf(n.id)}
              onRead={async () => {
                if (await rows.run(n.id, () => notifications.markRead([n.id]))) await refresh();
              }}
            />
          ))}
        </ul>
      )}
      {items.length === limit && limit < MAX_LIMIT && (
        <Button variant="outline" onClick={() => setLimit(Math.min(MAX_LIMIT, limit + PAGE))}>
          {t("notif.more")}
        </Button>
      )}
    </section>
  );
}

function InboxRow({ item, busy, error, onRead }: { item: InboxItem; busy: boolean; error: unknown; onRead: () => void }) {
  const href = safeActionUrl(item.actionUrl);
  // Paths of the console itself stay in the app; anything else is a plain link.
  const inApp = href?.startsWith("/console/") ? href.slice("/console".length) : null;
  return (
    <li aria-label={item.title} data-read={item.read} className="space-y-1 p-3">
      <div className="flex flex-wrap items-start justify-between gap-2">
        <div className="min-w-0">
          <p className={item.read ? "text-sm" : "text-sm font-semibold"}>
            {!item.read && <span className="mr-2 inline-block h-2 w-2 rounded-full bg-primary" aria-hidden="true" />}
            {item.title}
            {!item.read && <span className="sr-only"> ({t("notif.unreadMark")})</span>}
          </p>
          {item.body && <p className="text-sm text-muted-foreground">{item.body}</p>}
          <p className="text-xs text-muted-foreground">
            {item.type} · {when(item.createdAt)}
          </p>
        </div>
        <div className="flex shrink-0 gap-2">
          {href &&
            (inApp ? (
              <Link to={inApp} className="inline-flex h-9 items-center rounded-md border border-border px-3 text-sm hover:bg-muted">
                {t("notif.open")}
              </Link>
            ) : (
              <a href={href} rel="noopener noreferrer" className="inline-flex h-9 items-center rounded-md border border-border px-3 text-sm hover:bg-muted">
                {t("notif.open")}
              </a>
            ))}
          {!item.read && (
            <Button variant="outline" disabled={busy} onClick={onRead} aria-label={t("notif.markReadOf", { title: item.title })}>
              {t("notif.markRead")}
            </Button>
          )}
        </div>
      </div>
      <ErrorNotice error={error} />
    </li>
  );
}

function PreferencesSection() {
  const qc = useQueryClient();
  const prefs = useQuery({ queryKey: ["notification-preferences"], queryFn: notifications.preferences });
  const save = useAction();
  const [added, setAdded] = useState<string[]>([]);
  const [topic, setTopic] = useState("");
  const [topicError, setTopicError] = useState<string | null>(null);
  const list = prefs.data ?? [];
  const set = async (p: Preference) => {
    let answer: Preference[] = [];
    if (await save.run(async () => void (answer = await notifications.setPreferences([p])))) {
      qc.setQueryData(["notification-preferences"], answer);
    }
  };
  const addTopic = (e: FormEvent) => {
    e.preventDefault();
    const name = topic.trim();
    if (!TOPIC.test(name)) {
      setTopicError(t("notif.badTopic"));
      return;
    }
    setTopicError(null);
    setAdded((a) => (a.includes(name) ? a : [...a, name]));
    setTopic("");
  };

  return (
    <section aria-labelledby="prefs-title" className="space-y-3">
      <h2 id="prefs-title" className="text-lg font-medium">{t("notif.preferences")}</h2>
      <p className="text-sm text-muted-foreground">{t("notif.preferencesHelp")}</p>
      {prefs.isPending && <Loading />}
      {prefs.isError && <ErrorNotice error={prefs.error} />}
      {prefs.data && (
        <div className="overflow-x-auto rounded-lg border border-border">
          <table className="w-full text-left text-sm">
            <caption className="sr-only">{t("notif.preferences")}</caption>
            <thead className="bg-muted">
              <tr>
                <th scope="col" className="px-3 py-2 font-medium">{t("notif.topic")}</th>
                {CHANNELS.map((c) => (
                  <th key={c} scope="col" className="px-3 py-2 font-medium">{t(channelLabel[c])}</th>
                ))}
              </tr>
            </thead>
            <tbody>
              <tr aria-label={t("notif.essential")} className="border-t border-border">
                <th scope="row" className="px-3 py-2 font-normal">
                  <span className="font-medium">{t("notif.essential")}</span>
                  <span className="block text-xs text-muted-foreground">{t("notif.essentialHelp")}</span>
                </th>
                {CHANNELS.map((c) => (
                  <td key={c} className="px-3 py-2">
                    <label className="flex items-center gap-2">
                      <input type="checkbox" checked disabled aria-label={t("notif.toggle", { channel: t(channelLabel[c]), topic: t("notif.essential") })} />
                      <span className="text-xs text-muted-foreground">{t("notif.alwaysOn")}</span>
                    </label>
                  </td>
                ))}
              </tr>
              {topicsOf(list, added).map((topicName) => {
                const shown = topicName === ANY_TOPIC ? t("notif.allTopics") : topicName;
                return (
                  <tr key={topicName} aria-label={shown} className="border-t border-border">
                    <th scope="row" className="px-3 py-2 font-medium">
                      {topicName === ANY_TOPIC ? shown : <code>{shown}</code>}
                    </th>
                    {CHANNELS.map((c) => {
                      const on = isEnabled(list, c, topicName);
                      const inherited = isInherited(list, c, topicName);
                      return (
                        <td key={c} className="px-3 py-2">
                          <label className="flex items-center gap-2">
                            <input
                              type="checkbox"
                              checked={on}
                              disabled={save.busy}
                              aria-label={t("notif.toggle", { channel: t(channelLabel[c]), topic: shown })}
                              onChange={() => set({ channel: c, topic: topicName, enabled: !on })}
                            />
                            {inherited && <span className="text-xs text-muted-foreground">{t("notif.inherited")}</span>}
                          </label>
                        </td>
                      );
                    })}
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
      <ErrorNotice error={save.error} />
      <Card>
        <form onSubmit={addTopic} aria-label={t("notif.addTopic")} className="flex flex-wrap items-end gap-3">
          <div className="space-y-1">
            <Label htmlFor="notif-topic">{t("notif.topic")}</Label>
            <Input
              id="notif-topic"
              value={topic}
              placeholder="deal.updates"
              aria-invalid={topicError ? true : undefined}
              aria-describedby={topicError ? "notif-topic-error" : undefined}
              onChange={(e) => setTopic(e.target.value)}
            />
          </div>
          <Button type="submit" variant="outline">{t("notif.addTopic")}</Button>
        </form>
        {topicError && (
          <p id="notif-topic-error" className="mt-2 text-sm text-destructive">{topicError}</p>
        )}
      </Card>
    </section>
  );
}
