// The landing page inside the shell.
import { t } from "../lib/i18n";

export default function Home() {
  return <p className="text-muted-foreground">{t("notFound")}</p>;
}
