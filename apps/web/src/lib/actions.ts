// Running a server call from a button or form and keeping its error where it happened: one
// error for a form, or one per row for row buttons (ban, retry, revoke), so each is shown next
// to the control that caused it.
import { useCallback, useState } from "react";

export function useAction() {
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const run = useCallback(async (fn: () => Promise<unknown>): Promise<boolean> => {
    setBusy(true);
    setError(null);
    try {
      await fn();
      return true;
    } catch (e) {
      setError(e);
      return false;
    } finally {
      setBusy(false);
    }
  }, []);
  return { run, busy, error, clear: () => setError(null) };
}

export function useRowActions() {
  const [errors, setErrors] = useState<Record<string, unknown>>({});
  const [busy, setBusy] = useState<string | null>(null);
  const run = useCallback(async (row: string, fn: () => Promise<unknown>): Promise<boolean> => {
    setBusy(row);
    setErrors((e) => ({ ...e, [row]: null }));
    try {
      await fn();
      return true;
    } catch (e) {
      setErrors((all) => ({ ...all, [row]: e }));
      return false;
    } finally {
      setBusy(null);
    }
  }, []);
  return { run, busy, errorOf: (row: string) => errors[row] ?? null };
}
