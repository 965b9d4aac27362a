// The administration helpers: list envelopes, which job actions the server accepts, the audit
// export link, changes and sizes in words, and the storage error envelope.
import { describe, expect, it } from "vitest";
import { audit, describeChange, describeRowFilter, formatBytes, jobs, listOf } from "./admin";
import { errorFromBody } from "./api";
import { describeFields, describeGrants } from "../pages/admin/Permissions";
import { filterFrom } from "../pages/admin/Audit";

describe("listOf", () => {
  it("accepts an array or the list under its key", () => {
    expect(listOf([{ id: 1 }], "members")).toEqual([{ id: 1 }]);
    expect(listOf({ members: [{ id: 2 }], total: 1 }, "members")).toEqual([{ id: 2 }]);
    expect(listOf({ items: [{ id: 3 }] }, "members")).toEqual([{ id: 3 }]);
    expect(listOf(null, "members")).toEqual([]);
    expect(listOf({ members: "nope" }, "members")).toEqual([]);
  });
});

describe("job actions", () => {
  it("offers only what the server accepts for the state", () => {
    expect(jobs.actionsFor({ status: "pending" })).toEqual(["cancel"]);
    expect(jobs.actionsFor({ status: "running" })).toEqual(["cancel"]);
    expect(jobs.actionsFor({ status: "failed" })).toEqual(["retry"]);
    expect(jobs.actionsFor({ status: "cancelled" })).toEqual(["retry"]);
    expect(jobs.actionsFor({ status: "dead" })).toEqual(["replay"]);
    expect(jobs.actionsFor({ status: "completed" })).toEqual([]);
  });
});

describe("audit", () => {
  it("exports with the same filters, empty ones left out", () => {
    expect(audit.exportUrl({ object: "account", recordId: "a 1", actor: "" }, "csv")).toBe(
      "/api/v1/audit/export?format=csv&object=account&recordId=a+1",
    );
  });
  it("reads the filters from the address", () => {
    expect(filterFrom(new URLSearchParams("object=account&recordId=r1&offset=50&eventType=%20"))).toEqual({ object: "account", recordId: "r1" });
  });
  it("puts a change in words", () => {
    expect(describeChange({ field: "name", oldValue: "a1", newValue: "a2" })).toBe('name: "a1" → "a2"');
    expect(describeChange({ field: "amount", oldValue: null, newValue: 5 })).toBe("amount: ∅ → 5");
  });
});

describe("permission sets in words", () => {
  it("lists the granted actions and the restricted fields", () => {
    expect(describeGrants({ account: { allowRead: true, allowEdit: true }, contact: {} })).toEqual(["account: read, edit", "contact: —"]);
    expect(describeFields({ "account.annual_revenue": { readable: false }, "account.ticker": { readable: true, editable: false } })).toEqual([
      "account.annual_revenue: hidden",
      "account.ticker: read-only",
    ]);
  });
});

describe("formatBytes", () => {
  it("scales", () => {
    expect(formatBytes(512)).toBe("512 B");
    expect(formatBytes(1536)).toBe("1.5 KB");
    expect(formatBytes(20 * 1024 * 1024)).toBe("20 MB");
    expect(formatBytes(undefined)).toBe("");
  });
});

describe("errorFromBody", () => {
  it("reads the storage envelope", () => {
    const e = errorFromBody(413, { success: false, error: { code: "FILE_TOO_LARGE", message: "Too large" } }, "r-1");
    expect([e.code, e.message, e.requestId]).toEqual(["FILE_TOO_LARGE", "Too large", "r-1"]);
  });
  it("still reads the usual shape", () => {
    const e = errorFromBody(403, { error: "No", code: "PERMISSION_DENIED", message: "Not allowed" }, null);
    expect([e.code, e.message]).toEqual(["PERMISSION_DENIED", "Not allowed"]);
  });
});

describe("row filters", () => {
  it("puts the server's filter in words", () => {
    expect(describeRowFilter({})).toBe("all");
    expect(describeRowFilter(null)).toBe("none");
    expect(describeRowFilter(undefined)).toBe("none");
    expect(describeRowFilter({ $not: {} })).toBe("none");
    expect(describeRowFilter({ is_active: true })).toBe('{"is_active":true}');
  });
});
