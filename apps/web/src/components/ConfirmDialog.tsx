// Confirmation in a native <dialog> (focus trapped and Escape handled by the browser).
import { useEffect, useRef } from "react";
import { Button } from "./ui/button";
import { t } from "../lib/i18n";

export function ConfirmDialog({
  open,
  message,
  confirmLabel,
  onConfirm,
  onCancel,
}: {
  open: boolean;
  message: string;
  confirmLabel: string;
  onConfirm: () => void;
  onCancel: () => void;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (open && !d.open) d.showModal?.();
    if (!open && d.open) d.close?.();
  }, [open]);
  return (
    <dialog
      ref={ref}
      onCancel={onCancel}
      aria-label={message}
      className="m-auto max-w-sm rounded-lg border border-border bg-card p-6 text-foreground backdrop:bg-black/40"
    >
      <p className="mb-4 text-sm">{message}</p>
      <div className="flex justify-end gap-2">
        <Button variant="outline" onClick={onCancel}>{t("record.cancel")}</Button>
        <Button variant="destructive" onClick={onConfirm}>{confirmLabel}</Button>
      </div>
    </dialog>
  );
}
