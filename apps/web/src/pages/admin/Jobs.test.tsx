// The jobs page: actions by state, and a refusal shown in words at the row it came from.
import { render, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { createMemoryRouter, RouterProvider } from "react-router";
import { afterEach, expect, it, vi } from "vitest";
import Jobs from "./Jobs";

afterEach(() => vi.unstubAllGlobals());

it("shows a 409 next to the job it refused, with the request id", async () => {
  const list = {
    items: [
      { id: "j1", handler: "mail.send", queue: "default", status: "failed", attempts: 3, maxAttempts: 3, error: "smtp down" },
      { id: "j2", handler: "report.build", queue: "default", status: "completed", attempts: 1, maxAttempts: 3 },
    ],
    total: 2,
  };
  vi.stubGlobal(
    "fetch",
    vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
      const path = String(input).split("?")[0];
      if (init?.method === "POST" && path === "/api/v1/jobs/j1/retry") {
        return new Response(JSON.stringify({ code: "INVALID_STATE", error: "job j1 is running" }), { status: 409, headers: { "x-request-id": "rq-9" } });
      }
      return new Response(JSON.stringify(list), { status: 200 });
    }),
  );
  const router = createMemoryRouter([{ path: "/admin/jobs", element: <Jobs /> }], { initialEntries: ["/admin/jobs"] });
  render(
    <QueryClientProvider client={new QueryClient({ defaultOptions: { queries: { retry: false } } })}>
      <RouterProvider router={router} />
    </QueryClientProvider>,
  );
  const failed = await screen.findByRole("row", { name: "mail.send j1" });
  const done = screen.getByRole("row", { name: "report.build j2" });
  expect(within(done).queryByRole("button")).toBeNull();
  await userEvent.setup().click(within(failed).getByRole("button", { name: "Retry" }));
  const alert = await within(failed).findByRole("alert");
  expect(alert.textContent).toContain("job j1 is running");
  expect(alert.textContent).toContain("INVALID_STATE");
  expect(alert.textContent).toContain("rq-9");
  expect(within(done).queryByRole("alert")).toBeNull();
});
