// Forgotten password: ask for the reset mail (the server answers the same whether or not the
// address has an account), then set a new password with the mail's token (/reset-password?token=).
import { useState, type FormEvent } from "react";
import { Link, useSearchParams } from "react-router";
import { useAuthActions } from "../lib/auth";
import { useAction } from "../lib/actions";
import { t } from "../lib/i18n";
import { Button } from "../components/ui/button";
import { Card } from "../components/ui/card";
import { Input, Label } from "../components/ui/input";
import { ErrorNotice } from "../components/ErrorNotice";

function Frame({ title, children }: { title: string; children: React.ReactNode }) {
  return (
    <div className="flex min-h-full items-center justify-center p-4">
      <Card className="w-full max-w-sm">
        <h1 className="mb-3 text-xl font-semibold">{title}</h1>
        {children}
        <p className="mt-4 text-sm">
          <Link to="/sign-in" className="text-primary hover:underline">{t("auth.backToSignIn")}</Link>
        </p>
      </Card>
    </div>
  );
}

export function ForgotPassword() {
  const { forgotPassword } = useAuthActions();
  const [email, setEmail] = useState("");
  const [sent, setSent] = useState(false);
  const action = useAction();
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (await action.run(() => forgotPassword(email))) setSent(true);
  };
  return (
    <Frame title={t("auth.forgotTitle")}>
      {sent ? (
        <p role="status" className="text-sm">{t("auth.resetSent", { email })}</p>
      ) : (
        <form onSubmit={submit} className="space-y-3">
          <p className="text-sm text-muted-foreground">{t("auth.forgotHelp")}</p>
          <div className="space-y-1">
            <Label htmlFor="email">{t("auth.email")}</Label>
            <Input id="email" type="email" autoComplete="email" required value={email} onChange={(e) => setEmail(e.target.value)} />
          </div>
          {action.error ? <ErrorNotice error={action.error} /> : null}
          <Button type="submit" className="w-full" disabled={action.busy}>{t("auth.sendReset")}</Button>
        </form>
      )}
    </Frame>
  );
}

export function ResetPassword() {
  const { resetPassword } = useAuthActions();
  const [params] = useSearchParams();
  const token = params.get("token") ?? "";
  const [password, setPassword] = useState("");
  const [again, setAgain] = useState("");
  const [mismatch, setMismatch] = useState(false);
  const [done, setDone] = useState(false);
  const action = useAction();
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setMismatch(password !== again);
    if (password !== again) return;
    if (await action.run(() => resetPassword(token, password))) setDone(true);
  };
  return (
    <Frame title={t("auth.resetTitle")}>
      {!token ? (
        <p role="alert" className="text-sm">{t("auth.resetNoToken")}</p>
      ) : done ? (
        <p role="status" className="text-sm">{t("auth.resetDone")}</p>
      ) : (
        <form onSubmit={submit} className="space-y-3">
          <div className="space-y-1">
            <Label htmlFor="new-password">{t("auth.newPassword")}</Label>
            <Input id="new-password" type="password" autoComplete="new-password" required value={password} onChange={(e) => setPassword(e.target.value)} />
          </div>
          <div className="space-y-1">
            <Label htmlFor="again">{t("auth.repeatPassword")}</Label>
            <Input
              id="again"
              type="password"
              autoComplete="new-password"
              required
              aria-invalid={mismatch}
              aria-describedby={mismatch ? "again-error" : undefined}
              value={again}
              onChange={(e) => setAgain(e.target.value)}
            />
            {mismatch && <p id="again-error" className="text-sm text-destructive">{t("auth.passwordsDiffer")}</p>}
          </div>
          {action.error ? <ErrorNotice error={action.error} /> : null}
          <Button type="submit" className="w-full" disabled={action.busy}>{t("auth.setPassword")}</Button>
        </form>
      )}
    </Frame>
  );
}
