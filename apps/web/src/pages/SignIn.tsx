// Sign-in, or the owner's sign-up when the server has no user yet (bootstrap-status); afterwards
// back to the page the user came from.
import { useState, type FormEvent } from "react";
import { Navigate, useNavigate, useSearchParams } from "react-router";
import { useAuthActions, useBootstrapStatus, useSession } from "../lib/auth";
import { t } from "../lib/i18n";
import { Button } from "../components/ui/button";
import { Card } from "../components/ui/card";
import { Input, Label } from "../components/ui/input";
import { ErrorNotice, Loading } from "../components/ErrorNotice";

export function SignIn() {
  const status = useBootstrapStatus();
  const session = useSession();
  const { signIn, signUp } = useAuthActions();
  const navigate = useNavigate();
  const [params] = useSearchParams();
  const [name, setName] = useState("");
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  const next = params.get("next");
  // Only a path inside the console: `next` comes from the address bar.
  const target = next && next.startsWith("/") && !next.startsWith("//") ? next : "/";
  if (status.isPending || session.isPending) return <Loading />;
  if (session.data) return <Navigate to={target} replace />;
  const firstRun = status.data?.hasOwner === false;

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      if (firstRun) await signUp(name, email, password);
      else await signIn(email, password);
      navigate(target, { replace: true });
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <div className="flex min-h-full items-center justify-center p-4">
      <Card className="w-full max-w-sm">
        <h1 className="mb-1 text-xl font-semibold">{firstRun ? t("auth.signUpOwner") : t("auth.signIn")}</h1>
        {firstRun && <p className="mb-4 text-sm text-muted-foreground">{t("auth.firstRun")}</p>}
        {status.isError && <ErrorNotice error={status.error} />}
        <form onSubmit={submit} className="mt-4 space-y-3">
          {firstRun && (
            <div className="space-y-1">
              <Label htmlFor="name">{t("auth.name")}</Label>
              <Input id="name" autoComplete="name" required value={name} onChange={(e) => setName(e.target.value)} />
            </div>
          )}
          <div className="space-y-1">
            <Label htmlFor="email">{t("auth.email")}</Label>
            <Input id="email" type="email" autoComplete="email" required value={email} onChange={(e) => setEmail(e.target.value)} />
          </div>
          <div className="space-y-1">
            <Label htmlFor="password">{t("auth.password")}</Label>
            <Input
              id="password"
              type="password"
              autoComplete={firstRun ? "new-password" : "current-password"}
              required
              value={password}
              onChange={(e) => setPassword(e.target.value)}
            />
          </div>
          {error ? <ErrorNotice error={error} /> : null}
          <Button type="submit" className="w-full" disabled={busy}>
            {firstRun ? t("auth.signUpOwner") : t("auth.signIn")}
          </Button>
        </form>
      </Card>
    </div>
  );
}
