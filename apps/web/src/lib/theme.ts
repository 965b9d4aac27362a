// Light and dark themes: the stored choice, else the system's.
const KEY = "objectos.theme";

export function applyStoredTheme(): void {
  const stored = localStorage.getItem(KEY);
  const dark = stored ? stored === "dark" : window.matchMedia?.("(prefers-color-scheme: dark)").matches === true;
  document.documentElement.classList.toggle("dark", dark);
}

export function toggleTheme(): void {
  const dark = !document.documentElement.classList.contains("dark");
  document.documentElement.classList.toggle("dark", dark);
  localStorage.setItem(KEY, dark ? "dark" : "light");
}
