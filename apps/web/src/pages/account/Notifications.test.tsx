// The notifications page against scripted answers of the notification plugin: the inbox with its
// unread count, mark one and all read, the essential row always on, a preference toggled through
// PUT /preferences, a refusal shown in words, and a bad topic refused at its input.
import { render, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { createMemoryRouter, RouterProvider } from "react-router";
import { afterEach, expect, it, vi } from "vitest";
import Notifications from "./Notifications";

afterEach(() => vi.unstubAllGlobals());

const env = (data: unknown) => ({ success: true, data });

function serve() {
  const sent: { key: string; body: unknown }[] = [];
  let inbox = [
    { id: "n2", type: "approval", title: "Approve deal 42", body: "Acme asks for a discount", read: false, actionUrl: "/console/o/opportunity/42", createdAt: "2026-12-06T10:00:00Z" },
    { id: "n1", type: "notify", title: "Welcome", body: "", read: true, actionUrl: "javascript:alert(1)", createdAt: "2026-12-05T10:00:00Z" },
  ];
  let prefs = [{ channel: "email", topic: "digest", enabled: false }];
  vi.stubGlobal(
    "fetch",
    vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
      const [path, qs] = String(input).split("?");
      const key = `${init?.method ?? "GET"} ${path}`;
      const body = init?.body ? JSON.parse(String(init.body)) : undefined;
      sent.push({ key: qs ? `${key}?${qs}` : key, body });
      const ok = (data: unknown) => new Response(JSON.stringify(env(data)), { status: 200 });
      const unread = () => inbox.filter((n) => !n.read).length;
      switch (key) {
        case "GET /api/v1/notifications": {
          const q = new URLSearchParams(qs);
          const list = q.get("read") === "false" ? inbox.filter((n) => !n.read) : inbox;
          return ok({ notifications: list, unreadCount: unread() });
        }
        case "POST /api/v1/notifications/read":
          inbox = inbox.map((n) => (body.ids.includes(n.id) ? { ...n, read: true } : n));
          return ok({ success: true, readCount: body.ids.length });
        case "POST /api/v1/notifications/read/all": {
          const n = unread();
          inbox = inbox.map((i) => ({ ...i, read: true }));
          return ok({ success: true, readCount: n });
        }
        case "GET /api/v1/notifications/preferences":
          return ok({ preferences: prefs });
        case "PUT /api/v1/notifications/preferences": {
          if (body.preferences.some((p: { channel: string }) => p.channel === "push")) {
            return new Response(JSON.stringify({ success: false, error: { code: "VALIDATION_FAILED", message: "push is not configured", httpStatus: 400 } }), {
              status: 400,
              headers: { "x-request-id": "rq-3" },
            });
          }
          for (const p of body.preferences) prefs = [...prefs.filter((x) => !(x.channel === p.channel && x.topic === p.topic)), p];
          return ok({ preferences: prefs });
        }
      }
      return new Response("{}", { status: 404 });
    }),
  );
  return sent;
}

function renderPage() {
  const router = createMemoryRouter(
    [
      { path: "/account/notifications", element: <Notifications /> },
      { path: "/o/:object/:id", element: <p>record page</p> },
    ],
    { initialEntries: ["/account/notifications"] },
  );
  render(
    <QueryClientProvider client={new QueryClient({ defaultOptions: { queries: { retry: false } } })}>
      <RouterProvider router={router} />
    </QueryClientProvider>,
  );
  return router;
}

it("lists the inbox, marks one and then all read, and links only safe action URLs", async () => {
  const sent = serve();
  const user = userEvent.setup();
  renderPage();
  const deal = await screen.findByRole("listitem", { name: "Approve deal 42" });
  expect(screen.getByTestId("unread-count").textContent).toBe("1 unread");
  expect(within(deal).getByRole("link", { name: "Open" }).getAttribute("href")).toBe("/o/opportunity/42");
  const welcome = screen.getByRole("listitem", { name: "Welcome" });
  expect(within(welcome).queryByRole("link")).toBeNull();
  expect(within(welcome).queryByRole("button")).toBeNull();

  await user.click(within(deal).getByRole("button", { name: "Mark read: Approve deal 42" }));
  await waitFor(() => expect(screen.getByTestId("unread-count").textContent).toBe("0 unread"));
  expect(sent.find((s) => s.key === "POST /api/v1/notifications/read")?.body).toEqual({ ids: ["n2"] });
  expect(screen.getByRole("button", { name: "Mark all read" })).toHaveProperty("disabled", true);

  await user.click(screen.getByRole("checkbox", { name: "Unread only" }));
  await screen.findByText("No unread notifications.");
  expect(sent.some((s) => s.key.startsWith("GET /api/v1/notifications?") && s.key.includes("read=false"))).toBe(true);
});

it("shows the essential row always on, and sets a topic's channel through the server", async () => {
  const sent = serve();
  const user = userEvent.setup();
  renderPage();
  const essential = await screen.findByRole("row", { name: "Account and security" });
  for (const box of within(essential).getAllByRole("checkbox")) {
    expect(box).toHaveProperty("checked", true);
    expect(box).toHaveProperty("disabled", true);
  }
  const digest = screen.getByRole("checkbox", { name: "Email for digest" });
  expect(digest).toHaveProperty("checked", false);
  const all = screen.getByRole("checkbox", { name: "SMS for All topics" });
  expect(all).toHaveProperty("checked", true);
  await user.click(all);
  await waitFor(() => expect(screen.getByRole("checkbox", { name: "SMS for All topics" })).toHaveProperty("checked", false));
  expect(sent.find((s) => s.key === "PUT /api/v1/notifications/preferences")?.body).toEqual({
    preferences: [{ channel: "sms", topic: "*", enabled: false }],
  });
  // The digest row follows every topic for SMS now.
  expect(screen.getByRole("checkbox", { name: "SMS for digest" })).toHaveProperty("checked", false);

  await user.click(screen.getByRole("checkbox", { name: "Push for digest" }));
  const alert = await screen.findByRole("alert");
  expect(alert.textContent).toContain("push is not configured");
  expect(alert.textContent).toContain("VALIDATION_FAILED");
  expect(alert.textContent).toContain("rq-3");
});

it("adds a topic row, and refuses a topic the server would refuse, keeping what was typed", async () => {
  serve();
  const user = userEvent.setup();
  renderPage();
  const input = await screen.findByLabelText("Topic");
  await user.type(input, "bad topic!");
  await user.click(screen.getByRole("button", { name: "Add a topic" }));
  expect(screen.getByText(/A topic is letters/)).toBeTruthy();
  expect(input).toHaveProperty("value", "bad topic!");
  expect(input.getAttribute("aria-invalid")).toBe("true");
  await user.clear(input);
  await user.type(input, "deal.updates");
  await user.click(screen.getByRole("button", { name: "Add a topic" }));
  await screen.findByRole("row", { name: "deal.updates" });
  expect(screen.getByRole("checkbox", { name: "Email for deal.updates" })).toHaveProperty("checked", true);
});
