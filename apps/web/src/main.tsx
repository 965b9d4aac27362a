// Entry: the query client, the router (base /console, where the binary serves the app) and the
// theme chosen before the first paint.
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { RouterProvider } from "react-router";
import { ApiError } from "./lib/api";
import { makeRouter } from "./router";
import { applyStoredTheme } from "./lib/theme";
import { loadLocale } from "./lib/i18n";
import "./index.css";

applyStoredTheme();

const queryClient = new QueryClient({
  defaultOptions: {
    queries: {
      // A 4xx will not change on retry; a dropped connection might.
      retry: (count, error) => count < 2 && !(error instanceof ApiError && error.status >= 400 && error.status < 500),
      refetchOnWindowFocus: false,
    },
  },
});

// The browser's language, when the console or the i18n plugin has it; English otherwise. Waited for
// briefly so the first paint is in that language, never long enough to delay it much.
const language = navigator.language || "en";
const localized = language.toLowerCase().startsWith("en")
  ? Promise.resolve("en")
  : Promise.race([loadLocale(language), new Promise<string>((ok) => setTimeout(() => ok("en"), 400))]);

const root = document.getElementById("root");
// Not a top-level await: that would make the bundler split the entry into several files.
void localized.then((lang) => {
  if (!root) return;
  document.documentElement.lang = lang;
  createRoot(root).render(
    <StrictMode>
      <QueryClientProvider client={queryClient}>
        <RouterProvider router={makeRouter()} />
      </QueryClientProvider>
    </StrictMode>,
  );
});
