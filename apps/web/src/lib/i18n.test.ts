// The UI strings against their translations: every key the code uses has an English entry, the
// shipped German and French have no stray keys and the same placeholders (their missing keys are
// listed, English shows there), and the i18n plugin's `console.*` messages override them.
import { readFileSync, readdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { bundled, en, fromServer, loadLocale, setMessages, t, type MessageKey } from "./i18n";

// jsdom gives `import.meta.url` an http scheme; the test file's folder is `src/lib`.
const src = dirname(__dirname);

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sources(path);
    return /\.(ts|tsx)$/.test(name) && !/\.test\.tsx?$/.test(name) ? [path] : [];
  });
}

/** Every key named in the code: `t("key"` and the registry's `label: "key"`. */
function usedKeys(): Set<string> {
  const keys = new Set<string>();
  for (const file of sources(src)) {
    const text = readFileSync(file, "utf8");
    for (const m of text.matchAll(/\bt\(\s*"([^"]+)"/g)) keys.add(m[1]!);
    for (const m of text.matchAll(/\blabel:\s*"((?:nav|admin)\.[^"]+)"/g)) keys.add(m[1]!);
  }
  return keys;
}

const placeholders = (text: string) => [...text.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();

afterEach(() => setMessages({}));

describe("UI strings", () => {
  it("every key the code uses has an English entry", () => {
    const used = usedKeys();
    expect(used.size).toBeGreaterThan(100);
    const missing = [...used].filter((k) => !(k in en));
    expect(missing).toEqual([]);
  });

  for (const lang of Object.keys(bundled)) {
    it(`${lang}: no stray keys, the same placeholders, missing keys reported`, async () => {
      const messages = await bundled[lang]!();
      const stray = Object.keys(messages).filter((k) => !(k in en));
      expect(stray).toEqual([]);
      for (const [k, v] of Object.entries(messages)) {
        expect(placeholders(v ?? ""), `${lang} ${k}`).toEqual(placeholders(en[k as MessageKey]));
      }
      const missing = Object.keys(en).filter((k) => !(k in messages));
      if (missing.length) console.warn(`${lang}: ${missing.length} UI string(s) not translated (English shows): ${missing.join(", ")}`);
      // Shipped complete; a key added later shows in English until translated.
      expect(missing.length).toBeLessThan(Object.keys(en).length / 2);
    });
  }
});

describe("loadLocale", () => {
  const body = (messages: Record<string, unknown>) =>
    new Response(JSON.stringify({ success: true, data: { locale: "de", translations: { messages } } }), { status: 200 });
  const answer = (messages: Record<string, unknown>) => (async () => body(messages)) as unknown as typeof fetch;

  it("reads only the console's keys of the server's messages", () => {
    expect(fromServer({ data: { translations: { messages: { "console.nav.users": "Leute", welcome: "Hallo", "console.nope": "x", "console.bool.yes": 1 } } } })).toEqual({ "nav.users": "Leute" });
    expect(fromServer(null)).toEqual({});
  });

  it("uses the shipped language, with the i18n plugin's strings over it", async () => {
    const asked: string[] = [];
    const fetcher = (async (url: string) => {
      asked.push(url);
      return body({ "console.nav.users": "Leute" });
    }) as unknown as typeof fetch;
    expect(await loadLocale("de-CH", fetcher)).toBe("de");
    expect(asked).toEqual(["/api/v1/i18n/translations/de-CH"]);
    expect(t("nav.users")).toBe("Leute");
    expect(t("auth.signedInAs", { email: "a@b.c" })).toBe("Angemeldet als a@b.c");
  });

  it("keeps the shipped strings when the server has no i18n plugin, and asks nothing for English", async () => {
    const failing = (async () => new Response("{}", { status: 404 })) as unknown as typeof fetch;
    expect(await loadLocale("fr", failing)).toBe("fr");
    expect(t("auth.signIn")).toBe("Se connecter");
    const never = (async () => {
      throw new Error("no request expected");
    }) as unknown as typeof fetch;
    expect(await loadLocale("en-GB", never)).toBe("en");
    expect(t("auth.signIn")).toBe("Sign in");
  });

  it("a language neither shipped nor on the server is English", async () => {
    expect(await loadLocale("ja", answer({}))).toBe("en");
    expect(t("nav.users")).toBe("Users");
  });
});
