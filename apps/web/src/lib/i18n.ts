// One layer for every UI string. Keys are stable identifiers; `{name}` placeholders are filled from
// `vars`. English is built in; German and French are lazy chunks (`locales/`), and the i18n plugin's
// bundles override any of them: `loadLocale` reads the `console.<key>` entries of the `messages`
// group of `GET /api/v1/i18n/translations/:locale` (the official client's i18n namespace).
export const en = {
  "app.title": "ObjectOS",
  "nav.objects": "Objects",
  "nav.admin": "Administration",
  "nav.system": "System",
  "nav.apps": "Apps",
  "nav.users": "Users",
  "nav.organizations": "Organizations",
  "nav.permissions": "Permissions",
  "nav.apiKeys": "API keys",
  "nav.audit": "Audit log",
  "nav.jobs": "Jobs",
  "nav.files": "Files",
  "nav.account": "Account",
  "nav.notifications": "Notifications",
  "nav.security": "Security",
  "notif.inbox": "Inbox",
  "notif.unread": "{count} unread",
  "notif.unreadBadge": "{count} unread",
  "notif.unreadMark": "unread",
  "notif.unreadOnly": "Unread only",
  "notif.markAllRead": "Mark all read",
  "notif.markRead": "Mark read",
  "notif.markReadOf": "Mark read: {title}",
  "notif.none": "No notifications.",
  "notif.noneUnread": "No unread notifications.",
  "notif.more": "Show more",
  "notif.open": "Open",
  "notif.preferences": "Preferences",
  "notif.preferencesHelp": "Which messages reach you on each channel in this organization. A topic without a choice of its own follows \"All topics\".",
  "notif.topic": "Topic",
  "notif.allTopics": "All topics",
  "notif.essential": "Account and security",
  "notif.essentialHelp": "Password resets, email verification, invitations: always sent.",
  "notif.alwaysOn": "always on",
  "notif.inherited": "as all topics",
  "notif.toggle": "{channel} for {topic}",
  "notif.addTopic": "Add a topic",
  "notif.badTopic": "A topic is letters, digits, _, - and . (at most 100 characters).",
  "notif.channel.email": "Email",
  "notif.channel.sms": "SMS",
  "notif.channel.push": "Push",
  "security.twoFactor": "Two-factor authentication",
  "security.on": "Two-factor authentication is on: signing in asks for a code from your authenticator app.",
  "security.off": "Two-factor authentication is off.",
  "security.start": "Set up two-factor authentication",
  "security.startHelp": "Confirm your password to start; then scan the QR code with an authenticator app.",
  "security.scan": "Scan this QR code with your authenticator app, or type the key below, then enter the 6-digit code it shows.",
  "security.qr": "QR code for your authenticator app",
  "security.secret": "Key for typing by hand:",
  "security.uri": "Setup address (otpauth URI)",
  "security.confirm": "Confirm and turn on",
  "security.recoveryCodes": "Recovery codes",
  "security.codesOnce": "Two-factor authentication is on. Save these recovery codes now: each signs you in once without the app, and they are shown only this time.",
  "security.disable": "Turn off two-factor authentication",
  "security.disableHelp": "Confirm your password to turn it off.",
  "admin.actions": "Actions",
  "auth.forgot": "Forgot your password?",
  "auth.forgotTitle": "Reset your password",
  "auth.forgotHelp": "Enter your email; if it has an account, the server mails a link to choose a new password.",
  "auth.sendReset": "Send the reset link",
  "auth.resetSent": "If {email} has an account, a reset link is on its way. It expires after a while; ask again if it did.",
  "auth.resetTitle": "Choose a new password",
  "auth.resetNoToken": "This page needs the link from the reset mail (it carries a token).",
  "auth.resetDone": "Your password is changed. Sign in with it.",
  "auth.newPassword": "New password",
  "auth.repeatPassword": "Repeat the new password",
  "auth.passwordsDiffer": "The two passwords differ.",
  "auth.setPassword": "Set the password",
  "auth.backToSignIn": "Back to sign-in",
  "auth.totpCode": "Authentication code",
  "auth.totpHelp": "This account has two-factor authentication: enter the 6-digit code from your app, or a recovery code.",
  "auth.verify": "Verify and sign in",
  "auth.sso": "Single sign-on",
  "auth.continueWith": "Continue with {provider}",
  "auth.ssoFailed": "Single sign-on did not complete ({code}).",
  "org.active": "Organization",
  "org.slug": "Slug",
  "org.showMembers": "Members",
  "org.create": "New organization",
  "org.createButton": "Create organization",
  "org.membersOf": "Members of {name}",
  "org.roleOf": "Role of {who}",
  "org.remove": "Remove",
  "org.addMember": "Add a member",
  "org.addMemberHelp": "Adds an existing user by email; invite people who have no account yet from the Users page.",
  "org.addButton": "Add",
  "org.invitations": "Pending invitations",
  "org.expires": "Expires",
  "org.cancelInvitation": "Cancel invitation",
  "users.search": "Search users by email",
  "users.role": "Role",
  "users.status": "Status",
  "users.active": "active",
  "users.banned": "banned",
  "users.twoFactor": "2FA",
  "users.id": "Id",
  "users.ban": "Ban",
  "users.unban": "Unban",
  "users.reset": "Send password reset",
  "users.resetSent": "Reset mail sent.",
  "users.create": "Create a user",
  "users.createButton": "Create user",
  "users.created": "{email} was created.",
  "users.initialPassword": "Initial password",
  "users.invite": "Invite by email",
  "users.inviteHelp": "Sends an invitation to join the active organization; the person signs up or in to accept it.",
  "users.inviteButton": "Send invitation",
  "users.invited": "Invitation sent to {email}.",
  "perm.sets": "Permission sets",
  "perm.objects": "Objects",
  "perm.fields": "Fields",
  "perm.assignments": "Who has what",
  "perm.assign": "Assign",
  "perm.unassign": "Remove {set} from {user}",
  "perm.user": "User",
  "perm.set": "Permission set",
  "perm.roles": "Roles",
  "perm.object": "Object",
  "perm.effective": "Effective permissions",
  "perm.effectiveHelp": "What a user may do with an object, as the server computes it for that user's session.",
  "perm.of": "Permissions of",
  "perm.me": "— me —",
  "perm.bypass": "Administrator of this organization: every check is bypassed.",
  "perm.crud": "Object permissions",
  "perm.rowFilter": "Records readable",
  "perm.editFilter": "Records editable",
  "keys.create": "New API key",
  "keys.createButton": "Create key",
  "keys.expiresInDays": "Expires in (days)",
  "keys.secretOnce": "Copy the key now: the server shows it only once.",
  "keys.start": "Starts with",
  "keys.created": "Created",
  "keys.expires": "Expires",
  "keys.never": "never",
  "keys.revoke": "Revoke",
  "keys.revoked": "revoked",
  "audit.filters": "Filters",
  "audit.eventType": "Event type",
  "audit.actor": "Actor",
  "audit.object": "Object",
  "audit.recordId": "Record id",
  "audit.from": "From",
  "audit.to": "To",
  "audit.apply": "Apply",
  "audit.clear": "Clear",
  "audit.exportCsv": "Export CSV",
  "audit.exportJson": "Export JSON",
  "audit.time": "Time",
  "audit.record": "Record",
  "audit.changes": "Changes",
  "audit.result": "Result",
  "audit.trailOf": "Audit trail of {object} {id}",
  "audit.trail": "Audit trail",
  "audit.chain": "Hash chain",
  "audit.verify": "Verify the chain",
  "audit.chainOk": "Intact: {events} events in {chains} chain(s) verified.",
  "audit.chainBroken": "Broken: {count} chain(s) have a bad link.",
  "audit.brokenLink": "Organization {tenant}, position {seq}: {reason}",
  "jobs.all": "Jobs",
  "jobs.deadLetters": "Dead letters",
  "jobs.status": "Status",
  "jobs.anyStatus": "any",
  "jobs.queue": "Queue",
  "jobs.handler": "Handler",
  "jobs.attempts": "Attempts",
  "jobs.created": "Created",
  "jobs.error": "Error",
  "jobs.retry": "Retry",
  "jobs.cancel": "Cancel",
  "jobs.replay": "Replay",
  "jobs.cancelRequested": "cancel requested",
  "files.choose": "File",
  "files.upload": "Upload",
  "files.uploaded": "{name} was uploaded.",
  "files.size": "Size",
  "files.type": "Type",
  "auth.signIn": "Sign in",
  "auth.signOut": "Sign out",
  "auth.signUpOwner": "Create the owner account",
  "auth.firstRun": "This server has no user yet. The first account becomes its owner and administrator.",
  "auth.email": "Email",
  "auth.password": "Password",
  "auth.name": "Name",
  "auth.signedInAs": "Signed in as {email}",
  "theme.toggle": "Switch theme",
  "list.new": "New {object}",
  "list.search": "Search {objects}",
  "list.empty": "No records.",
  "list.page": "{from}–{to} of {total}",
  "list.previous": "Previous",
  "list.next": "Next",
  "list.pageSize": "Rows per page",
  "list.sortBy": "Sort by {field}",
  "record.edit": "Edit",
  "record.delete": "Delete",
  "record.deleteConfirm": "Delete this {object}? This cannot be undone.",
  "record.cancel": "Cancel",
  "record.save": "Save",
  "record.create": "Create",
  "record.related": "{objects} by {field}",
  "record.details": "Details",
  "record.readOnly": "read-only",
  "form.fixErrors": "The server refused the record; see the fields marked below.",
  "form.select": "— none —",
  "form.lookupSearch": "Search {object}",
  "error.requestId": "Request id: {id}",
  "error.network": "The server could not be reached: {message}",
  "error.title": "Something went wrong",
  "loading": "Loading…",
  "system.title": "System",
  "system.version": "Version",
  "system.mode": "Mode",
  "system.status": "Status",
  "system.plugins": "Plugins",
  "system.services": "Services",
  "system.plugin": "Plugin",
  "system.health": "Health",
  "system.message": "Message",
  "notFound": "Nothing here. Pick an object on the left.",
  "bool.yes": "Yes",
  "bool.no": "No",
} as const;

export type MessageKey = keyof typeof en;
/** A translation: any subset of the keys (a missing key falls back to English). */
export type Messages = Partial<Record<MessageKey, string>>;
let messages: Record<string, string> = { ...en };

/** The translations shipped with the console, by language; English is `en` itself. */
export const bundled: Record<string, () => Promise<Messages>> = {
  de: async () => (await import("./locales/de")).default,
  fr: async () => (await import("./locales/fr")).default,
};

/** The prefix of the console's keys in an i18n bundle's `messages` (`console.nav.users`). */
export const SERVER_PREFIX = "console.";

/** The console's strings among a translations answer's `messages`; unknown keys are ignored. */
export function fromServer(body: unknown): Messages {
  const data = (body as { data?: { translations?: { messages?: unknown } } } | null)?.data;
  const found = data?.translations?.messages;
  const out: Record<string, string> = {};
  if (!found || typeof found !== "object") return out;
  for (const [k, v] of Object.entries(found as Record<string, unknown>)) {
    const key = k.startsWith(SERVER_PREFIX) ? k.slice(SERVER_PREFIX.length) : null;
    if (key && key in en && typeof v === "string") out[key] = v;
  }
  return out;
}

/**
 * Switches to `locale` (a BCP 47 tag such as `de-CH`): the shipped strings of its language, then
 * the server's (`/api/v1/i18n/translations/:locale`, when the i18n plugin runs). Any failure keeps
 * what is there: a missing translation is English, never an error. Answers the language used.
 */
export async function loadLocale(locale: string, fetcher: typeof fetch = fetch): Promise<string> {
  const lang = locale.toLowerCase().split("-")[0] ?? "en";
  const shipped = bundled[lang] ? await bundled[lang]().catch(() => ({})) : {};
  let server: Messages = {};
  if (lang !== "en") {
    try {
      const res = await fetcher(`/api/v1/i18n/translations/${encodeURIComponent(locale)}`, {
        headers: { accept: "application/json" },
        credentials: "same-origin",
      });
      if (res.ok) server = fromServer(await res.json());
    } catch {
      // No i18n plugin or no network: the shipped strings stay.
    }
  }
  setMessages({ ...shipped, ...server });
  return Object.keys(shipped).length || Object.keys(server).length ? lang : "en";
}

/** Replaces (part of) the bundle, e.g. with strings from the i18n plugin. */
export function setMessages(bundle: Messages): void {
  messages = { ...en, ...bundle };
}

export function t(key: MessageKey, vars: Record<string, string | number> = {}): string {
  const text = messages[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (whole, name: string) =>
    name in vars ? String(vars[name]) : whole,
  );
}
