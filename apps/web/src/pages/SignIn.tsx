// Sign-in, or the owner's sign-up when the server has no user yet (bootstrap-status); afterwards
// back to the page the user came from. When the account has two-factor authentication the
// server answers TWO_FACTOR_REQUIRED and the form asks for the code, keeping what was typed.
// Single sign-on buttons come from /api/v1/auth/providers.
import { useState, type FormEvent } from "react";
import { Link, Navigate, useNavigate, useSearchParams } from "react-router";
import { ApiError } from "../lib/api";
import { useAuthActions, useBootstrapStatus, useProviders, useSession } from "../lib/auth";
import { t } from "../lib/i18n";
import { useAppTitle } from "../lib/settings";
import { Button } from "../components/ui/button";
import { Card } from "../components/ui/card";
import { Input, Label } from "../components/ui/input";
import { ErrorNotice, Loading } from "../components/ErrorNotice";

/** Only a path inside the console: `next` comes from the address bar. */
export function safeNext(next: string | null): string {
  return next && next.startsWith("/") && !next.startsWith("//") && !next.includes("\\") ? next : "/";
}

export function SignIn() {
  const status = useBootstrapStatus();
  const session = useSession();
  const providers = useProviders();
  const title = useAppTitle();
  const { signIn, signUp, signInWith } = useAuthActions();
  const navigate = useNavigate();
  const [params] = useSearchParams();
  const [name, setName] = useState("");
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [code, setCode] = useState("");
  const [needCode, setNeedCode] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [ssoError, setSsoError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  const target = safeNext(params.get("next"));
  if (status.isPending || session.isPending) return <Loading />;
  if (session.data) return <Navigate to={target} replace />;
  const firstRun = status.data?.hasOwner === false;
  // A single sign-on callback that failed comes back with ?error=CODE.
  const returnedError = params.get("error");

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      if (firstRun) await signUp(name, email, password);
      else await signIn(email, password, needCode ? code : undefined);
      navigate(target, { replace: true });
    } catch (err) {
      if (err instanceof ApiError && err.code === "TWO_FACTOR_REQUIRED" && !needCode) {
        setNeedCode(true);
      } else {
        setError(err);
      }
    } finally {
      setBusy(false);
    }
  };

  const sso = async (provider: string) => {
    setSsoError(null);
    try {
      const back = `/console${target === "/" ? "/" : target}`;
      await signInWith(provider, back, `/console/sign-in?next=${encodeURIComponent(target)}`);
    } catch (err) {
      setSsoError(err);
    }
  };

  return (
    <div className="flex min-h-full items-center justify-center p-4">
      <Card className="w-full max-w-sm">
        <p className="mb-2 text-sm font-medium text-muted-foreground">{title}</p>
        <h1 className="mb-1 text-xl font-semibold">{firstRun ? t("auth.signUpOwner") : t("auth.signIn")}</h1>
        {firstRun && <p className="mb-4 text-sm text-muted-foreground">{t("auth.firstRun")}</p>}
        {status.isError && <ErrorNotice error={status.error} />}
        {returnedError && <ErrorNotice error={new ApiError(401, returnedError, t("auth.ssoFailed", { code: returnedError }), null)} />}
        <form onSubmit={submit} className="mt-4 space-y-3">
          {firstRun && (
            <div className="space-y-1">
              <Label htmlFor="name">{t("auth.name")}</Label>
              <Input id="name" autoComplete="name" required value={name} onChange={(e) => setName(e.target.value)} />
            </div>
          )}
          <div className="space-y-1">
            <Label htmlFor="email">{t("auth.email")}</Label>
            <Input id="email" type="email" autoComplete="email" required value={email} readOnly={needCode} onChange={(e) => setEmail(e.target.value)} />
          </div>
          <div className="space-y-1">
            <Label htmlFor="password">{t("auth.password")}</Label>
            <Input
              id="password"
              type="password"
              autoComplete={firstRun ? "new-password" : "current-password"}
              required
              readOnly={needCode}
              value={password}
              onChange={(e) => setPassword(e.target.value)}
            />
          </div>
          {needCode && (
            <div className="space-y-1">
              <Label htmlFor="totp">{t("auth.totpCode")}</Label>
              <p id="totp-help" className="text-xs text-muted-foreground">{t("auth.totpHelp")}</p>
              <Input
                id="totp"
                inputMode="numeric"
                autoComplete="one-time-code"
                aria-describedby="totp-help"
                required
                autoFocus
                value={code}
                onChange={(e) => setCode(e.target.value.trim())}
              />
            </div>
          )}
          {error ? <ErrorNotice error={error} /> : null}
          <Button type="submit" className="w-full" disabled={busy}>
            {firstRun ? t("auth.signUpOwner") : needCode ? t("auth.verify") : t("auth.signIn")}
          </Button>
        </form>
        {!firstRun && (
          <p className="mt-3 text-sm">
            <Link to="/forgot-password" className="text-primary hover:underline">{t("auth.forgot")}</Link>
          </p>
        )}
        {!firstRun && providers.data && providers.data.length > 0 && (
          <section aria-label={t("auth.sso")} className="mt-4 space-y-2 border-t border-border pt-4">
            {providers.data.map((p) => (
              <Button key={p.id} variant="outline" className="w-full" onClick={() => sso(p.id)}>
                {t("auth.continueWith", { provider: p.name })}
              </Button>
            ))}
            {ssoError ? <ErrorNotice error={ssoError} /> : null}
          </section>
        )}
      </Card>
    </div>
  );
}
