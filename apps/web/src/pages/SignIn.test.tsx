// Sign-in against scripted server answers: the TOTP challenge keeps what was typed and sends the
// code; single sign-on buttons come from the providers list; `next` stays inside the console.
import { render, screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { createMemoryRouter, RouterProvider } from "react-router";
import { afterEach, describe, expect, it, vi } from "vitest";
import { SignIn, safeNext } from "./SignIn";

type Answer = { status: number; body: unknown };

/** A fetch that answers by "METHOD path" and records the bodies sent. */
function serve(routes: Record<string, Answer | Answer[]>) {
  const sent: { key: string; body: unknown }[] = [];
  const fetchMock = vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
    const path = String(input).split("?")[0];
    const key = `${init?.method ?? "GET"} ${path}`;
    sent.push({ key, body: init?.body ? JSON.parse(String(init.body)) : undefined });
    const r = routes[key];
    const answer = Array.isArray(r) ? (r.length > 1 ? r.shift() : r[0]) : r;
    if (!answer) return new Response(JSON.stringify({ code: "ROUTE_NOT_FOUND", error: "no" }), { status: 404 });
    return new Response(JSON.stringify(answer.body), { status: answer.status, headers: { "x-request-id": "req-7" } });
  });
  vi.stubGlobal("fetch", fetchMock);
  return sent;
}

function renderAt(url: string) {
  const router = createMemoryRouter(
    [
      { path: "/sign-in", element: <SignIn /> },
      { path: "/o/:object", element: <p>object page</p> },
      { path: "/", element: <p>home</p> },
    ],
    { initialEntries: [url] },
  );
  const qc = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  render(
    <QueryClientProvider client={qc}>
      <RouterProvider router={router} />
    </QueryClientProvider>,
  );
  return router;
}

afterEach(() => vi.unstubAllGlobals());

describe("sign-in", () => {
  it("asks for the TOTP code when the server requires it, then signs in", async () => {
    const sent = serve({
      "GET /api/v1/auth/bootstrap-status": { status: 200, body: { hasOwner: true } },
      "GET /api/v1/auth/get-session": [
        { status: 200, body: null },
        { status: 200, body: { user: { id: "u1", email: "a@example.com" } } },
      ],
      "GET /api/v1/auth/providers": { status: 200, body: [] },
      "POST /api/v1/auth/sign-in/email": [
        { status: 401, body: { code: "TWO_FACTOR_REQUIRED", error: "Two-factor code required" } },
        { status: 200, body: { token: "t", user: { id: "u1" } } },
      ],
    });
    const router = renderAt("/sign-in?next=%2Fo%2Faccount");
    const user = userEvent.setup();
    await user.type(await screen.findByLabelText("Email"), "a@example.com");
    await user.type(screen.getByLabelText("Password"), "pw-1234567");
    await user.click(screen.getByRole("button", { name: "Sign in" }));
    const code = await screen.findByLabelText("Authentication code");
    expect(screen.queryByRole("alert")).toBeNull();
    expect((screen.getByLabelText("Email") as HTMLInputElement).value).toBe("a@example.com");
    await user.type(code, "123456");
    await user.click(screen.getByRole("button", { name: "Verify and sign in" }));
    await waitFor(() => expect(router.state.location.pathname).toBe("/o/account"));
    const signIns = sent.filter((s) => s.key === "POST /api/v1/auth/sign-in/email").map((s) => s.body);
    expect(signIns).toEqual([
      { email: "a@example.com", password: "pw-1234567" },
      { email: "a@example.com", password: "pw-1234567", code: "123456" },
    ]);
  });

  it("shows a wrong code in words with the request id, and offers the providers", async () => {
    serve({
      "GET /api/v1/auth/bootstrap-status": { status: 200, body: { hasOwner: true } },
      "GET /api/v1/auth/get-session": { status: 200, body: null },
      "GET /api/v1/auth/providers": { status: 200, body: [{ id: "okta", name: "Okta", type: "oidc" }] },
      "POST /api/v1/auth/sign-in/email": [
        { status: 401, body: { code: "TWO_FACTOR_REQUIRED", error: "Two-factor code required" } },
        { status: 401, body: { code: "INVALID_TWO_FACTOR_CODE", error: "The code is wrong" } },
      ],
    });
    renderAt("/sign-in");
    const user = userEvent.setup();
    expect(await screen.findByRole("button", { name: "Continue with Okta" })).toBeTruthy();
    await user.type(screen.getByLabelText("Email"), "a@example.com");
    await user.type(screen.getByLabelText("Password"), "pw");
    await user.click(screen.getByRole("button", { name: "Sign in" }));
    await user.type(await screen.findByLabelText("Authentication code"), "000000");
    await user.click(screen.getByRole("button", { name: "Verify and sign in" }));
    const alert = await screen.findByRole("alert");
    expect(alert.textContent).toContain("The code is wrong");
    expect(alert.textContent).toContain("INVALID_TWO_FACTOR_CODE");
    expect(alert.textContent).toContain("req-7");
  });

  it("keeps `next` inside the console", () => {
    expect(safeNext("/o/account?skip=25")).toBe("/o/account?skip=25");
    expect(safeNext("//evil.example")).toBe("/");
    expect(safeNext("https://evil.example")).toBe("/");
    expect(safeNext("/\\evil.example")).toBe("/");
    expect(safeNext(null)).toBe("/");
  });
});
