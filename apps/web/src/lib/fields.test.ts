// List and form logic: columns, inputs, values to and from the server, search and sort.
import { describe, expect, it } from "vitest";
import {
  expandFor,
  formatValue,
  fromFormValue,
  fullAccess,
  inputKind,
  listColumns,
  nextSort,
  recordBody,
  toFormValue,
  toObjectMeta,
  viewColumns,
  type ObjectAccess,
} from "./fields";

const contact = toObjectMeta({
  name: "contact",
  label: "Contact",
  fields: {
    created_at: { type: "datetime", label: "Created At", readonly: true, system: true },
    organization_id: { type: "lookup", reference: "sys_organization", hidden: true, system: true },
    name: { type: "text", label: "Name", required: true, searchable: true },
    email: { type: "email", label: "Email" },
    amount: { type: "currency", label: "Amount", scale: 2 },
    status: { type: "select", label: "Status", options: [{ label: "New", value: "new" }, { label: "Active", value: "active" }] },
    account: { type: "lookup", label: "Account", reference: "account" },
    notes: { type: "textarea", label: "Notes" },
    vip: { type: "boolean", label: "VIP" },
  },
});

describe("list columns", () => {
  it("shows visible business fields in metadata order, without system, hidden or long-text fields", () => {
    expect(listColumns(contact, fullAccess(contact)).map((f) => f.name)).toEqual(["name", "email", "amount", "status", "account", "vip"]);
  });

  it("leaves out the fields the server says the user may not read", () => {
    const access: ObjectAccess = fullAccess(contact);
    access.fields.amount = { readable: false, editable: false };
    expect(listColumns(contact, access).map((f) => f.name)).not.toContain("amount");
  });

  it("treats the spec's system fields as system even when the metadata does not mark them", () => {
    const m = toObjectMeta({ name: "x", fields: { owner_id: { type: "lookup", reference: "user" }, title: { type: "text" } } });
    expect(listColumns(m, fullAccess(m)).map((f) => f.name)).toEqual(["title"]);
  });

  it("expands only lookups to objects the server lists", () => {
    const cols = listColumns(contact, fullAccess(contact));
    expect(expandFor(cols, new Set(["account"]))).toBe("account");
    expect(expandFor(cols, new Set())).toBeUndefined();
  });
});

describe("sort", () => {
  it("toggles ascending and descending", () => {
    expect(nextSort(undefined, "name")).toBe("name");
    expect(nextSort("name", "name")).toBe("-name");
    expect(nextSort("-name", "name")).toBe("name");
    expect(nextSort("-amount", "name")).toBe("name");
  });
});

describe("field types and values", () => {
  const f = (name: string) => contact.fields.find((x) => x.name === name)!;

  it("maps types to inputs", () => {
    expect(["name", "email", "amount", "status", "account", "notes", "vip", "created_at"].map((n) => inputKind(f(n)))).toEqual([
      "text", "email", "number", "select", "lookup", "textarea", "checkbox", "datetime-local",
    ]);
  });

  it("shows an autonumber (\"ACC-00001\") as text", () => {
    expect(inputKind({ name: "n", type: "autonumber" })).toBe("text");
  });

  it("turns typed text into JSON: numbers, null for empty, text kept when not a number", () => {
    expect(fromFormValue(f("amount"), "12.5")).toBe(12.5);
    expect(fromFormValue(f("amount"), "")).toBeNull();
    expect(fromFormValue(f("amount"), "abc")).toBe("abc");
    expect(fromFormValue(f("vip"), true)).toBe(true);
  });

  it("shows an expanded lookup as its id in the input and its name in lists", () => {
    expect(toFormValue(f("account"), { id: "a1", name: "Acme" })).toBe("a1");
    expect(formatValue(f("account"), { id: "a1", name: "Acme" })).toBe("Acme");
    expect(formatValue(f("status"), "active")).toBe("Active");
  });

  it("creates with the filled fields and edits with the changed ones only", () => {
    const fields = [f("name"), f("email"), f("amount")];
    expect(recordBody(fields, { name: "Ann", email: "", amount: "3" })).toEqual({ name: "Ann", amount: 3 });
    expect(recordBody(fields, { name: "Ann", email: "", amount: "4" }, { id: "1", name: "Ann", email: null, amount: 3 })).toEqual({ amount: 4 });
    expect(recordBody(fields, { name: "Ann", email: "", amount: "" }, { id: "1", name: "Ann", email: "a@x", amount: 3 })).toEqual({ email: null, amount: null });
  });
});

describe("viewColumns", () => {
  const meta = toObjectMeta({
    name: "deal",
    fields: {
      created_at: { type: "datetime", system: true },
      name: { type: "text", label: "Name" },
      amount: { type: "currency" },
      notes: { type: "textarea" },
      secret: { type: "text" },
      stage: { type: "select", options: [] },
    },
  });
  const access = fullAccess(meta);
  access.fields.secret = { readable: false, editable: false };
  it("follows the view's order, without unreadable or long-text fields", () => {
    const view = { list: { columns: [{ field: "created_at" }, { field: "stage" }, { field: "secret" }, { field: "notes" }, { field: "name" }, { field: "gone" }] } };
    expect(viewColumns(meta, access, view).map((f) => f.name)).toEqual(["stage", "name"]);
  });
  it("falls back on the fields without a usable view", () => {
    expect(viewColumns(meta, access, null).map((f) => f.name)).toEqual(["name", "amount", "stage"]);
    expect(viewColumns(meta, access, { list: { columns: [{ field: "secret" }] } }).map((f) => f.name)).toEqual(["name", "amount", "stage"]);
  });
});
