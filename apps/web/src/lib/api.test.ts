// A lost session returns to sign-in; a wrong password or code typed while signed in does not.
import { afterEach, expect, it, vi } from "vitest";
import { ApiError, api, setUnauthenticatedHandler } from "./api";

afterEach(() => {
  vi.unstubAllGlobals();
  setUnauthenticatedHandler(null);
});

it("calls the sign-in handler for a lost session only", async () => {
  const answers = [
    { code: "UNAUTHENTICATED", message: "Authentication required" },
    { code: "INVALID_CREDENTIALS", message: "Invalid email or password." },
    { code: "INVALID_TWO_FACTOR_CODE", message: "The two-factor code is invalid or was already used." },
    { success: false, error: { code: "UNAUTHENTICATED", message: "no session", httpStatus: 401 } },
  ];
  vi.stubGlobal("fetch", vi.fn(async () => new Response(JSON.stringify(answers.shift()), { status: 401 })));
  const lost = vi.fn();
  setUnauthenticatedHandler(lost);
  const codes: string[] = [];
  for (let i = 0; i < 4; i++) {
    await api.post("/api/v1/x", {}).catch((e: ApiError) => codes.push(e.code));
  }
  expect(codes).toEqual(["UNAUTHENTICATED", "INVALID_CREDENTIALS", "INVALID_TWO_FACTOR_CODE", "UNAUTHENTICATED"]);
  expect(lost).toHaveBeenCalledTimes(2);
});
