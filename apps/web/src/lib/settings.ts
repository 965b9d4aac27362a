// The console's own settings, from the server's `console:` section (GET /console/settings.json):
// today the title shown in the header and the browser tab. Without the file (the Vite dev server)
// the defaults apply.
import { useEffect } from "react";
import { useQuery } from "@tanstack/react-query";
import { t } from "./i18n";

export interface ConsoleSettings {
  title: string;
}

export async function loadSettings(): Promise<ConsoleSettings> {
  const fallback = { title: t("app.title") };
  try {
    const res = await fetch(`${import.meta.env.BASE_URL}settings.json`, { credentials: "same-origin" });
    if (!res.ok) return fallback;
    const body = (await res.json()) as Partial<ConsoleSettings>;
    return { title: typeof body.title === "string" && body.title.trim() ? body.title : fallback.title };
  } catch {
    return fallback;
  }
}

/** The configured title; also sets the browser tab's. */
export function useAppTitle(): string {
  const q = useQuery({ queryKey: ["console-settings"], queryFn: loadSettings, staleTime: Infinity, retry: false });
  const title = q.data?.title ?? t("app.title");
  useEffect(() => {
    document.title = title;
  }, [title]);
  return title;
}
