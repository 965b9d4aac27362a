// The form against a server answer: field errors shown at their fields, typed values kept,
// read-only fields not editable and not sent.
import { render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { describe, expect, it, vi } from "vitest";
import { ApiError, errorFromBody } from "../lib/api";
import { fullAccess, toObjectMeta } from "../lib/fields";
import { RecordForm, splitErrors } from "./RecordForm";

const account = toObjectMeta({
  name: "account",
  fields: {
    name: { type: "text", label: "Name", required: true },
    website: { type: "url", label: "Website" },
    tier: { type: "select", label: "Tier", options: [{ label: "Gold", value: "gold" }] },
  },
});

// The refusal of transcript exchange 25, for this object.
const refusal = errorFromBody(
  400,
  {
    error: "Website must be a valid URL",
    code: "VALIDATION_FAILED",
    fields: [{ field: "website", code: "invalid_url", message: "Website must be a valid URL", label: "Website" }],
    object: "account",
  },
  "req-123",
);

function renderForm(onSubmit: (body: Record<string, unknown>) => Promise<void>, access = fullAccess(account)) {
  const qc = new QueryClient();
  return render(
    <QueryClientProvider client={qc}>
      <RecordForm fields={account.fields} access={access} submitLabel="Create" onSubmit={onSubmit} onCancel={() => {}} />
    </QueryClientProvider>,
  );
}

describe("RecordForm", () => {
  it("shows the server's field error at its field and keeps what was typed", async () => {
    const user = userEvent.setup();
    const onSubmit = vi.fn().mockRejectedValueOnce(refusal);
    renderForm(onSubmit);
    await user.type(screen.getByLabelText(/Name/), "Acme");
    await user.type(screen.getByLabelText("Website"), "not a url");
    await user.click(screen.getByRole("button", { name: "Create" }));

    expect(onSubmit).toHaveBeenCalledWith({ name: "Acme", website: "not a url" });
    const website = screen.getByLabelText("Website");
    expect(website.getAttribute("aria-invalid")).toBe("true");
    const described = document.getElementById(website.getAttribute("aria-describedby") ?? "");
    expect(described?.textContent).toBe("Website must be a valid URL");
    expect((screen.getByLabelText(/Name/) as HTMLInputElement).value).toBe("Acme");
    expect((website as HTMLInputElement).value).toBe("not a url");
  });

  it("shows an error that names no field above the buttons, with its request id", async () => {
    const user = userEvent.setup();
    renderForm(vi.fn().mockRejectedValueOnce(new ApiError(403, "PERMISSION_DENIED", "You may not create account records", "req-9")));
    await user.type(screen.getByLabelText(/Name/), "X");
    await user.click(screen.getByRole("button", { name: "Create" }));
    const alert = await screen.findByRole("alert");
    expect(alert.textContent).toContain("You may not create account records");
    expect(alert.textContent).toContain("req-9");
  });

  it("makes fields the server marks not editable read-only and leaves them out of the body", async () => {
    const user = userEvent.setup();
    const access = fullAccess(account);
    access.fields.tier = { readable: true, editable: false };
    const onSubmit = vi.fn().mockResolvedValue(undefined);
    renderForm(onSubmit, access);
    expect((screen.getByLabelText(/Tier/) as HTMLSelectElement).disabled).toBe(true);
    await user.type(screen.getByLabelText(/Name/), "Y");
    await user.click(screen.getByRole("button", { name: "Create" }));
    expect(onSubmit).toHaveBeenCalledWith({ name: "Y" });
  });

  it("splits errors between fields shown and the rest", () => {
    const { byField, rest } = splitErrors(refusal, account.fields);
    expect(byField).toEqual({ website: "Website must be a valid URL" });
    expect(rest).toBeNull();
    expect(splitErrors(refusal, []).rest).toBe(refusal);
  });
});
