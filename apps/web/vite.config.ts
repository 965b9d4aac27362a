// Build of the admin console. The output goes straight into the web-shell crate, which embeds
// it; `cargo xtask web --check` rebuilds into a temporary folder and compares byte for byte, so
// the output must depend on the sources only (no timestamps, stable names).
import { defineConfig } from "vitest/config";
import react from "@vitejs/plugin-react";
import tailwindcss from "@tailwindcss/vite";
import { fileURLToPath } from "node:url";

export default defineConfig({
  // Served by the binary at /console (crates/objectos-web-shell, MOUNT).
  base: "/console/",
  plugins: [react(), tailwindcss()],
  build: {
    outDir: fileURLToPath(new URL("../../crates/objectos-web-shell/assets", import.meta.url)),
    emptyOutDir: true,
    // Source maps would double the embedded size; the sources are in the repository.
    sourcemap: false,
    target: "es2022",
    // No inline <script> or data: modules: the console's CSP allows only 'self'.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
  },
  server: {
    // `npm run dev` against a local `objectos serve` (same origin through the proxy).
    proxy: {
      "/api": "http://127.0.0.1:3000",
      "/health": "http://127.0.0.1:3000",
    },
  },
  test: {
    environment: "jsdom",
    globals: true,
    include: ["src/**/*.test.{ts,tsx}"],
  },
});
