// The preference rules the page shows (a topic's own choice, else every topic's, else on), the
// topic rows, which action links are followed, and the QR code's structure.
import { describe, expect, it } from "vitest";
import { qrPath } from "../components/QrCode";
import { encode } from "uqr";
import { isEnabled, isInherited, safeActionUrl, topicsOf, type Preference } from "./notifications";

describe("preferences", () => {
  const prefs: Preference[] = [
    { channel: "email", topic: "*", enabled: false },
    { channel: "email", topic: "deal.updates", enabled: true },
    { channel: "sms", topic: "digest", enabled: false },
  ];

  it("a topic's own preference wins over every topic's, and no preference is on", () => {
    expect(isEnabled(prefs, "email", "deal.updates")).toBe(true);
    expect(isEnabled(prefs, "email", "digest")).toBe(false);
    expect(isEnabled(prefs, "sms", "digest")).toBe(false);
    expect(isEnabled(prefs, "sms", "deal.updates")).toBe(true);
    expect(isEnabled(prefs, "push", "*")).toBe(true);
  });

  it("marks values that follow every topic's row", () => {
    expect(isInherited(prefs, "email", "digest")).toBe(true);
    expect(isInherited(prefs, "email", "deal.updates")).toBe(false);
    expect(isInherited(prefs, "email", "*")).toBe(false);
  });

  it("lists every topic first, then the named ones sorted, with the ones being added", () => {
    expect(topicsOf(prefs, ["alerts", "digest", ""])).toEqual(["*", "alerts", "deal.updates", "digest"]);
    expect(topicsOf([])).toEqual(["*"]);
  });
});

describe("action links", () => {
  it("follows paths of this server and http(s) addresses only", () => {
    expect(safeActionUrl("/console/o/account/1")).toBe("/console/o/account/1");
    expect(safeActionUrl("https://example.com/x")).toBe("https://example.com/x");
    expect(safeActionUrl("//evil.example/x")).toBeNull();
    expect(safeActionUrl("javascript:alert(1)")).toBeNull();
    expect(safeActionUrl("data:text/html,hi")).toBeNull();
    expect(safeActionUrl("")).toBeNull();
    expect(safeActionUrl(null)).toBeNull();
  });
});

describe("QR code", () => {
  it("draws exactly the dark modules of the encoding, inside its quiet zone", () => {
    const uri = "otpauth://totp/ObjectOS:owner%40example.com?secret=JBSWY3DPEHPK3PXP&issuer=ObjectOS";
    const { size, d } = qrPath(uri);
    const { data } = encode(uri, { ecc: "M", border: 4 });
    const dark = data.flat().filter(Boolean).length;
    expect(size).toBe(data.length);
    expect(d.match(/M/g)?.length).toBe(dark);
    // The quiet zone (four modules) is light, and the top-left finder pattern's corner is dark.
    expect(d).not.toMatch(/M[0-3] /);
    expect(d).toContain("M4 4h1v1h-1z");
    // A different text gives a different picture.
    expect(qrPath(uri.replace("JBSW", "KBSW")).d).not.toBe(d);
  });
});
