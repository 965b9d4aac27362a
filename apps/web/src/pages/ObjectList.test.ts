// The list's page size from the address: one of the sizes offered, else the default.
import { expect, it } from "vitest";
import { PAGE_SIZES, pageSize } from "./ObjectList";

it("takes an offered page size from ?top= and falls back on the default otherwise", () => {
  expect(PAGE_SIZES[0]).toBe(25);
  expect(pageSize("50")).toBe(50);
  expect(pageSize("100")).toBe(100);
  expect(pageSize(null)).toBe(25);
  expect(pageSize("37")).toBe(25);
  expect(pageSize("5000")).toBe(25);
  expect(pageSize("abc")).toBe(25);
});
