// Two-factor enrolment against scripted answers of the auth plugin: the password starts it, the
// QR code and the key are shown, a wrong code is refused in words with what was typed kept, the
// right one turns it on and shows the recovery codes once; turning it off asks for the password.
import { render, screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { createMemoryRouter, RouterProvider } from "react-router";
import { afterEach, expect, it, vi } from "vitest";
import Security, { groupSecret } from "./Security";

afterEach(() => vi.unstubAllGlobals());

it("groups the key in fours", () => {
  expect(groupSecret("JBSWY3DPEHPK3PXP")).toBe("JBSW Y3DP EHPK 3PXP");
  expect(groupSecret("ABCDE")).toBe("ABCD E");
});

it("enrols with the password and a code, shows the recovery codes, then turns it off", async () => {
  const sent: { key: string; body: unknown }[] = [];
  let enabled = false;
  const codes = Array.from({ length: 10 }, (_, i) => `rc-${i}`);
  vi.stubGlobal(
    "fetch",
    vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
      const key = `${init?.method ?? "GET"} ${String(input).split("?")[0]}`;
      const body = init?.body ? JSON.parse(String(init.body)) : undefined;
      sent.push({ key, body });
      const json = (status: number, b: unknown) => new Response(JSON.stringify(b), { status, headers: { "x-request-id": "rq-5" } });
      switch (key) {
        case "GET /api/v1/auth/get-session":
          return json(200, { user: { id: "u1", email: "o@example.com", twoFactorEnabled: enabled }, session: {} });
        case "POST /api/v1/auth/two-factor/enable":
          if (body.password !== "right") return json(401, { code: "INVALID_CREDENTIALS", message: "Invalid email or password." });
          return json(200, { totpURI: "otpauth://totp/ObjectOS:o%40example.com?secret=JBSWY3DPEHPK3PXP&issuer=ObjectOS", secret: "JBSWY3DPEHPK3PXP", backupCodes: codes });
        case "POST /api/v1/auth/two-factor/verify-totp":
          if (body.code !== "123456") return json(401, { code: "INVALID_TWO_FACTOR_CODE", message: "The two-factor code is invalid or was already used." });
          enabled = true;
          return json(200, { status: true });
        case "POST /api/v1/auth/two-factor/disable":
          enabled = false;
          return json(200, { status: true });
      }
      return json(404, { code: "NOT_FOUND" });
    }),
  );
  const router = createMemoryRouter([{ path: "/account/security", element: <Security /> }], { initialEntries: ["/account/security"] });
  render(
    <QueryClientProvider client={new QueryClient({ defaultOptions: { queries: { retry: false } } })}>
      <RouterProvider router={router} />
    </QueryClientProvider>,
  );
  const user = userEvent.setup();
  expect((await screen.findByTestId("two-factor-status")).textContent).toContain("is off");

  await user.type(screen.getByLabelText("Password"), "right");
  await user.click(screen.getByRole("button", { name: "Set up two-factor authentication" }));
  const qr = await screen.findByRole("img", { name: "QR code for your authenticator app" });
  expect(qr.querySelector("path")?.getAttribute("d")?.length).toBeGreaterThan(100);
  expect(screen.getByTestId("totp-secret").textContent).toBe("JBSW Y3DP EHPK 3PXP");
  expect(screen.getByTestId("totp-uri").textContent).toContain("secret=JBSWY3DPEHPK3PXP");
  // The recovery codes wait until two-factor is on.
  expect(screen.queryByTestId("recovery-codes")).toBeNull();

  const code = screen.getByLabelText("Authentication code");
  await user.type(code, "000000");
  await user.click(screen.getByRole("button", { name: "Confirm and turn on" }));
  const alert = await screen.findByRole("alert");
  expect(alert.textContent).toContain("INVALID_TWO_FACTOR_CODE");
  expect(alert.textContent).toContain("rq-5");
  expect(code).toHaveProperty("value", "000000");

  await user.clear(code);
  await user.type(code, "123456");
  await user.click(screen.getByRole("button", { name: "Confirm and turn on" }));
  const list = await screen.findByTestId("recovery-codes");
  expect([...list.querySelectorAll("li")].map((li) => li.textContent)).toEqual(codes);
  expect(screen.getByTestId("two-factor-status").textContent).toContain("is on");
  expect(screen.queryByRole("img", { name: "QR code for your authenticator app" })).toBeNull();

  await user.type(screen.getByLabelText("Password"), "right");
  await user.click(screen.getByRole("button", { name: "Turn off two-factor authentication" }));
  await waitFor(() => expect(screen.getByTestId("two-factor-status").textContent).toContain("is off"));
  expect(screen.queryByTestId("recovery-codes")).toBeNull();
  expect(sent.filter((s) => s.key.startsWith("POST")).map((s) => s.key)).toEqual([
    "POST /api/v1/auth/two-factor/enable",
    "POST /api/v1/auth/two-factor/verify-totp",
    "POST /api/v1/auth/two-factor/verify-totp",
    "POST /api/v1/auth/two-factor/disable",
  ]);
  expect(sent.find((s) => s.key.endsWith("/disable"))?.body).toEqual({ password: "right" });
});
