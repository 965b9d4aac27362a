// One layer for every UI string, so the i18n plugin's bundles can replace the English one later
// (`setMessages`). Keys are stable identifiers; `{name}` placeholders are filled from `vars`.
const en = {
  "app.title": "ObjectOS",
  "nav.objects": "Objects",
  "nav.admin": "Administration",
  "nav.system": "System",
  "nav.apps": "Apps",
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
let messages: Record<string, string> = { ...en };

/** Replaces (part of) the bundle, e.g. with strings from the i18n plugin. */
export function setMessages(bundle: Partial<Record<MessageKey, string>>): void {
  messages = { ...en, ...bundle };
}

export function t(key: MessageKey, vars: Record<string, string | number> = {}): string {
  const text = messages[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (whole, name: string) =>
    name in vars ? String(vars[name]) : whole,
  );
}
