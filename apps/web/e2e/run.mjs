// End-to-end test of the admin console in a real browser: starts `objectos serve presets/crm` on a
// fresh SQLite database (and PostgreSQL when OBJECTOS_TEST_POSTGRES_URL is set and psql can make a
// scratch database), drives Debian's chromium headless with playwright-core, and walks a new
// user's first session: owner sign-up, create, edit, a validation error at its field, delete, the
// system page, sign-out. Every step saves a screenshot under e2e/output/<backend>/; a failing
// step also keeps a Playwright trace there, next to the server's log (open with `npx playwright show-trace`).
//
// Usage: node e2e/run.mjs [path/to/objectos]   (default $CARGO_TARGET_DIR/debug/objectos)
// Env:   CHROMIUM (default: chromium on PATH), E2E_METADATA (default presets/crm, relative to the repository), OBJECTOS_TEST_POSTGRES_URL, READY_TIMEOUT (s, default 60)
// Prints one line per step and `N passed, M failed`; exits non-zero on any failure.
import { spawn, execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, createWriteStream } from "node:fs";
import { createServer } from "node:net";
import { tmpdir, homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../../..");
const targetDir = process.env.CARGO_TARGET_DIR ?? join(homedir(), ".cache/objectos-target");
const bin = process.argv[2] ?? process.env.OBJECTOS_BIN ?? join(targetDir, "debug/objectos");
const readyTimeout = Number(process.env.READY_TIMEOUT ?? 60) * 1000;
const outRoot = join(here, "output");
const preset = process.env.E2E_METADATA ?? "presets/crm";

function findChromium() {
  if (process.env.CHROMIUM) return process.env.CHROMIUM;
  for (const name of ["chromium", "chromium-browser", "google-chrome"]) {
    try {
      return execFileSync("sh", ["-c", `command -v ${name}`], { encoding: "utf8" }).trim();
    } catch {
      // next
    }
  }
  return null;
}

const freePort = () =>
  new Promise((ok, fail) => {
    const s = createServer();
    s.on("error", fail);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });

async function startServer(databaseUrl, dir) {
  const port = await freePort();
  const log = join(dir, "server.log");
  const out = createWriteStream(log);
  const child = spawn(bin, ["serve", preset, "--listen", `127.0.0.1:${port}`, "--database-url", databaseUrl], {
    cwd: root,
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout.pipe(out);
  child.stderr.pipe(out);
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + readyTimeout;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) break;
    try {
      if ((await fetch(`${base}/ready`)).status === 200) return { base, child, log };
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill("SIGKILL");
  const why = child.exitCode !== null ? `server exited with code ${child.exitCode}` : `server did not answer 200 on /ready within ${readyTimeout / 1000}s`;
  throw new Error(`${why}; log: ${log}`);
}

async function stopServer(child) {
  if (child.exitCode !== null) return;
  child.kill("SIGTERM");
  for (let i = 0; i < 50 && child.exitCode === null; i++) await new Promise((r) => setTimeout(r, 100));
  if (child.exitCode === null) child.kill("SIGKILL");
}

/** The user's first session, as a list of named steps sharing one page. */
function steps(base) {
  const owner = { name: "Olivia Owner", email: "owner@example.com", password: "Console-Passw0rd!" };
  const field = (page, name) => page.locator(`[data-field="${name}"]`);
  return [
    ["/ redirects to the console, which asks for the first owner", async (page) => {
      await page.goto(`${base}/`);
      await page.getByRole("heading", { name: "Create the owner account", exact: true }).waitFor();
      if (!page.url().startsWith(`${base}/console/sign-in`)) throw new Error(`landed on ${page.url()}`);
    }],
    ["first-run sign-up signs the owner in and shows the objects", async (page) => {
      await page.getByLabel("Name").fill(owner.name);
      await page.getByLabel("Email").fill(owner.email);
      await page.getByLabel("Password").fill(owner.password);
      await page.getByRole("button", { name: "Create the owner account" }).click();
      await page.getByRole("link", { name: "Accounts" }).waitFor();
      await page.getByText(`Signed in as ${owner.email}`).waitFor();
    }],
    ["create an account", async (page) => {
      await page.getByRole("link", { name: "Accounts" }).click();
      await page.getByRole("heading", { name: "Accounts", exact: true }).waitFor();
      await page.getByRole("link", { name: "New Account" }).click();
      await page.getByLabel(/^Account Name/).fill("Acme Corp");
      await page.getByLabel("Website").fill("https://acme.example");
      await page.getByRole("button", { name: "Create" }).click();
      await page.getByRole("heading", { name: "Acme Corp", exact: true }).waitFor();
      await field(page, "website").getByText("https://acme.example").waitFor();
    }],
    ["the list shows it, and search finds it", async (page) => {
      await page.getByRole("link", { name: "Accounts", exact: true }).first().click();
      await page.getByRole("link", { name: "Acme Corp" }).waitFor();
      await page.getByRole("searchbox", { name: "Search Accounts" }).fill("nothing-like-this");
      await page.keyboard.press("Enter");
      await page.getByText("No records.").waitFor();
      await page.getByRole("searchbox", { name: "Search Accounts" }).fill("acme");
      await page.keyboard.press("Enter");
      await page.getByRole("link", { name: "Acme Corp" }).click();
      await page.getByRole("heading", { name: "Acme Corp", exact: true }).waitFor();
    }],
    ["edit it", async (page) => {
      await page.getByRole("link", { name: "Edit" }).click();
      await page.getByLabel("Industry").selectOption("technology");
      await page.getByLabel("Phone").fill("+1 555 0100");
      await page.getByRole("button", { name: "Save" }).click();
      await page.getByRole("heading", { name: "Acme Corp", exact: true }).waitFor();
      await field(page, "industry").getByText("Technology").waitFor();
      await field(page, "phone").getByText("+1 555 0100").waitFor();
    }],
    ["a contact linked to it through the lookup shows it by name, and the account lists the contact", async (page) => {
      await page.getByRole("link", { name: "Contacts" }).click();
      await page.getByRole("heading", { name: "Contacts", exact: true }).waitFor();
      await page.getByRole("link", { name: "New Contact" }).click();
      await page.getByLabel(/^Name/).fill("Ann Buyer");
      await page.getByLabel("Search account").fill("acme");
      // selectOption waits for the option the server's search returns.
      await page.getByLabel("Account", { exact: true }).selectOption({ label: "Acme Corp" });
      await page.getByRole("button", { name: "Create" }).click();
      await page.getByRole("heading", { name: "Ann Buyer", exact: true }).waitFor();
      await field(page, "account").getByRole("link", { name: "Acme Corp" }).click();
      await page.getByRole("heading", { name: "Acme Corp", exact: true }).waitFor();
      await page.getByText("Contacts by Account (1)").waitFor();
      await page.getByRole("link", { name: "Ann Buyer" }).waitFor();
    }],
    ["the contact list shows the lookup by name", async (page) => {
      await page.getByRole("link", { name: "Contacts" }).click();
      const row = page.getByRole("row", { name: /Ann Buyer/ });
      await row.getByRole("cell", { name: "Acme Corp" }).waitFor();
      await page.getByRole("link", { name: "Accounts" }).click();
      await page.getByRole("link", { name: "Acme Corp" }).click();
      await page.getByRole("heading", { name: "Acme Corp", exact: true }).waitFor();
    }],
    ["a validation error is shown at its field, and the typed value is kept", async (page) => {
      await page.getByRole("link", { name: "Edit" }).click();
      const ticker = page.getByLabel("Ticker Symbol");
      await ticker.fill("TOOLONG");
      await page.getByRole("button", { name: "Save" }).click();
      const message = field(page, "ticker").locator("p.text-destructive");
      await message.waitFor();
      const text = await message.textContent();
      if (!/ticker/i.test(text ?? "")) throw new Error(`unexpected field message: ${text}`);
      if ((await ticker.getAttribute("aria-invalid")) !== "true") throw new Error("the ticker input is not marked invalid");
      if ((await ticker.inputValue()) !== "TOOLONG") throw new Error("the typed value was lost");
      if ((await page.getByLabel("Phone").inputValue()) !== "+1 555 0100") throw new Error("the other fields were reset");
    }],
    ["delete it after confirming", async (page) => {
      await page.getByRole("button", { name: "Cancel" }).click();
      await page.getByRole("heading", { name: "Acme Corp", exact: true }).waitFor();
      await page.getByRole("button", { name: "Delete" }).click();
      const dialog = page.getByRole("dialog");
      await dialog.getByText("Delete this Account?").waitFor();
      await dialog.getByRole("button", { name: "Delete" }).click();
      await page.getByRole("heading", { name: "Accounts", exact: true }).waitFor();
      await page.getByText("No records.").waitFor();
    }],
    ["the system page lists the plugins and their health", async (page) => {
      await page.getByRole("link", { name: "System" }).click();
      await page.getByRole("cell", { name: "com.objectos.webshell" }).waitFor();
      await page.getByRole("cell", { name: "com.objectos.auth" }).waitFor();
    }],
    ["sign out returns to sign-in", async (page) => {
      await page.getByRole("button", { name: "Sign out" }).click();
      await page.getByRole("heading", { name: "Sign in", exact: true }).waitFor();
      await page.goto(`${base}/console/o/account`);
      await page.getByRole("heading", { name: "Sign in", exact: true }).waitFor();
      if (!page.url().includes("next=%2Fo%2Faccount")) throw new Error(`no way back to the page: ${page.url()}`);
    }],
  ];
}

async function runBackend(browser, label, databaseUrl) {
  const out = join(outRoot, label);
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  let passed = 0;
  let failed = 0;
  let server;
  try {
    server = await startServer(databaseUrl, out);
  } catch (e) {
    console.log(`FAIL ${label}: ${e.message}`);
    return { passed, failed: 1 };
  }
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await context.tracing.start({ screenshots: true, snapshots: true });
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  // A blocked script or style (the console's CSP) or an uncaught error fails the run.
  const problems = [];
  page.on("console", (m) => {
    if (m.type() === "error" && /Content Security Policy|Refused to/i.test(m.text())) problems.push(m.text());
  });
  page.on("pageerror", (e) => problems.push(`uncaught: ${e.message}`));
  let n = 0;
  let traced = false;
  for (const [name, run] of steps(server.base)) {
    n += 1;
    const shot = join(out, `${String(n).padStart(2, "0")}-${name.replace(/[^a-z0-9]+/gi, "-").replace(/-$/, "").toLowerCase()}.png`);
    const started = Date.now();
    try {
      await run(page);
      if (problems.length) throw new Error(problems.join("; "));
      await page.screenshot({ path: shot, fullPage: true });
      passed += 1;
      console.log(`ok   ${label}: ${name} (${Date.now() - started} ms)`);
    } catch (e) {
      failed += 1;
      await page.screenshot({ path: shot, fullPage: true }).catch(() => {});
      if (!traced) {
        await context.tracing.stop({ path: join(out, "trace.zip") }).catch(() => {});
        traced = true;
      }
      console.log(`FAIL ${label}: ${name}: ${e.message.split("\n")[0]}`);
      console.log(`     screenshot ${shot}; page ${page.url()}`);
      break;
    }
  }
  if (!traced) await context.tracing.stop();
  await context.close();
  await stopServer(server.child);
  if (failed) {
    console.log(`     server log: ${server.log}`);
  }
  return { passed, failed };
}

async function main() {
  if (!existsSync(bin)) {
    console.error(`e2e: objectos binary not found at '${bin}'; build it with 'cargo build -p objectos-server'.`);
    process.exit(2);
  }
  const executablePath = findChromium();
  if (!executablePath) {
    console.error("e2e: chromium not found; install it (apt-get install -y chromium) or set CHROMIUM.");
    process.exit(2);
  }
  const tmp = mkdtempSync(join(tmpdir(), "objectos-e2e-"));
  // --no-sandbox: CI runs as root, where Chromium's sandbox cannot start.
  const browser = await chromium.launch({ executablePath, headless: true, args: ["--no-sandbox"] });
  let total = { passed: 0, failed: 0 };
  const add = (r) => (total = { passed: total.passed + r.passed, failed: total.failed + r.failed });
  let pgDb = null;
  const pgUrl = process.env.OBJECTOS_TEST_POSTGRES_URL;
  try {
    add(await runBackend(browser, "sqlite", `sqlite://${tmp}/console.db?mode=rwc`));
    if (pgUrl) {
      pgDb = `objectos_e2e_${process.pid}_${Math.floor(Math.random() * 1e6)}`;
      try {
        execFileSync("psql", [pgUrl, "-qc", `CREATE DATABASE "${pgDb}"`], { stdio: "ignore" });
        const u = new URL(pgUrl);
        u.pathname = `/${pgDb}`;
        add(await runBackend(browser, "postgres", u.toString()));
      } catch (e) {
        pgDb = null;
        console.log(`NOTE postgres: skipped, no scratch database (${e.message.split("\n")[0]})`);
      }
    } else {
      console.log("== postgres: skipped (set OBJECTOS_TEST_POSTGRES_URL to run it)");
    }
  } finally {
    await browser.close();
    if (pgDb) {
      try {
        execFileSync("psql", [pgUrl, "-qc", `DROP DATABASE IF EXISTS "${pgDb}"`], { stdio: "ignore" });
      } catch {
        // left for the next run's cleanup
      }
    }
    rmSync(tmp, { recursive: true, force: true });
  }
  console.log(`${total.passed} passed, ${total.failed} failed`);
  process.exit(total.failed === 0 ? 0 : 1);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
