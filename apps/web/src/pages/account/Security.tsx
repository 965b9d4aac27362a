// The signed-in user's two-factor authentication (the auth plugin's `two-factor/*` routes):
// enrolment starts with the password (`enable` answers the secret, its otpauth URI and ten
// recovery codes, the only time the server shows them), the authenticator app scans the QR code,
// a first code confirms it (`verify-totp` turns two-factor on), and the recovery codes are shown
// once, then. Turning it off asks for the password again (`disable`).
import { useState, type FormEvent } from "react";
import { useQueryClient } from "@tanstack/react-query";
import { useAction } from "../../lib/actions";
import { API, api } from "../../lib/api";
import { useSession } from "../../lib/auth";
import { t } from "../../lib/i18n";
import { ErrorNotice, Loading } from "../../components/ErrorNotice";
import { QrCode } from "../../components/QrCode";
import { Button } from "../../components/ui/button";
import { Card } from "../../components/ui/card";
import { Input, Label } from "../../components/ui/input";

const AUTH = `${API}/auth/two-factor`;

interface Enrolment {
  totpURI: string;
  secret: string;
  backupCodes: string[];
}

/** The secret in groups of four, easier to type into an app by hand. */
export function groupSecret(secret: string): string {
  return secret.replace(/\s+/g, "").replace(/(.{4})(?=.)/g, "$1 ");
}

export default function Security() {
  const session = useSession();
  const qc = useQueryClient();
  // The session answer may be cached by the server for a few seconds: what this page just did
  // wins over it.
  const [override, setOverride] = useState<boolean | null>(null);
  const [enrolment, setEnrolment] = useState<Enrolment | null>(null);
  const [codes, setCodes] = useState<string[] | null>(null);
  const [password, setPassword] = useState("");
  const [code, setCode] = useState("");
  const start = useAction();
  const confirm = useAction();
  const disable = useAction();

  if (session.isPending) return <Loading />;
  if (session.isError) return <ErrorNotice error={session.error} />;
  const enabled = override ?? session.data?.user.twoFactorEnabled === true;
  const refreshSession = () => qc.invalidateQueries({ queryKey: ["session"] });

  const onStart = async (e: FormEvent) => {
    e.preventDefault();
    setCodes(null);
    let answer: Enrolment | null = null;
    const ok = await start.run(async () => {
      answer = await api.post<Enrolment>(`${AUTH}/enable`, { password });
    });
    if (ok && answer) {
      setEnrolment(answer);
      setPassword("");
      setCode("");
    }
  };
  const onConfirm = async (e: FormEvent) => {
    e.preventDefault();
    if (!enrolment) return;
    const ok = await confirm.run(() => api.post(`${AUTH}/verify-totp`, { code: code.trim() }));
    if (ok) {
      setCodes(enrolment.backupCodes);
      setEnrolment(null);
      setCode("");
      setOverride(true);
      await refreshSession();
    }
  };
  const onDisable = async (e: FormEvent) => {
    e.preventDefault();
    const ok = await disable.run(() => api.post(`${AUTH}/disable`, { password }));
    if (ok) {
      setPassword("");
      setCodes(null);
      setOverride(false);
      await refreshSession();
    }
  };

  return (
    <div className="max-w-3xl space-y-4">
      <h1 className="text-2xl font-semibold">{t("nav.security")}</h1>
      <Card className="space-y-3">
        <h2 className="font-medium">{t("security.twoFactor")}</h2>
        <p role="status" data-testid="two-factor-status" className="text-sm">
          {enabled ? t("security.on") : t("security.off")}
        </p>

        {codes && (
          <div className="space-y-2 rounded-md border border-border bg-muted p-3 text-sm">
            <p className="font-medium">{t("security.codesOnce")}</p>
            <ul data-testid="recovery-codes" aria-label={t("security.recoveryCodes")} className="grid grid-cols-2 gap-1 font-mono sm:grid-cols-5">
              {codes.map((c) => <li key={c}>{c}</li>)}
            </ul>
          </div>
        )}

        {!enabled && !enrolment && (
          <form onSubmit={onStart} aria-label={t("security.start")} className="space-y-3">
            <p className="text-sm text-muted-foreground">{t("security.startHelp")}</p>
            <div className="max-w-sm space-y-1">
              <Label htmlFor="tf-password">{t("auth.password")}</Label>
              <Input id="tf-password" type="password" autoComplete="current-password" required value={password} onChange={(e) => setPassword(e.target.value)} />
            </div>
            <Button type="submit" disabled={start.busy}>{t("security.start")}</Button>
            <ErrorNotice error={start.error} />
          </form>
        )}

        {!enabled && enrolment && (
          <form onSubmit={onConfirm} aria-label={t("security.confirm")} className="space-y-3">
            <p className="text-sm">{t("security.scan")}</p>
            <QrCode text={enrolment.totpURI} label={t("security.qr")} />
            <div className="space-y-1 text-sm">
              <p>{t("security.secret")}</p>
              <code data-testid="totp-secret" className="block break-all rounded-md bg-muted p-2 font-mono">{groupSecret(enrolment.secret)}</code>
              <details>
                <summary className="cursor-pointer text-muted-foreground">{t("security.uri")}</summary>
                <code data-testid="totp-uri" className="block break-all text-xs">{enrolment.totpURI}</code>
              </details>
            </div>
            <div className="max-w-xs space-y-1">
              <Label htmlFor="tf-code">{t("auth.totpCode")}</Label>
              <Input
                id="tf-code"
                inputMode="numeric"
                autoComplete="one-time-code"
                required
                value={code}
                aria-invalid={confirm.error ? true : undefined}
                onChange={(e) => setCode(e.target.value)}
              />
            </div>
            <div className="flex gap-2">
              <Button type="submit" disabled={confirm.busy}>{t("security.confirm")}</Button>
              <Button variant="outline" onClick={() => setEnrolment(null)}>{t("record.cancel")}</Button>
            </div>
            <ErrorNotice error={confirm.error} />
          </form>
        )}

        {enabled && (
          <form onSubmit={onDisable} aria-label={t("security.disable")} className="space-y-3">
            <p className="text-sm text-muted-foreground">{t("security.disableHelp")}</p>
            <div className="max-w-sm space-y-1">
              <Label htmlFor="tf-off-password">{t("auth.password")}</Label>
              <Input id="tf-off-password" type="password" autoComplete="current-password" required value={password} onChange={(e) => setPassword(e.target.value)} />
            </div>
            <Button type="submit" variant="destructive" disabled={disable.busy}>{t("security.disable")}</Button>
            <ErrorNotice error={disable.error} />
          </form>
        )}
      </Card>
    </div>
  );
}
