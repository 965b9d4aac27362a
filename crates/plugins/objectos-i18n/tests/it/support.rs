//! The i18n plugin on the shared test kernel (`objectos-testkit`: data and HTTP on a SQLite
//! file or a PostgreSQL schema) with a small metadata folder of objects, bundles and Fluent
//! files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use objectos_data::MetadataHandle;
use objectos_i18n::{I18nPlugin, I18nService, I18nSettings};
use objectos_testkit::{Request, Response, TestDatabase, TestKernel};

pub(crate) const ACCOUNT: &str = r#"
name: account
label: Account
pluralLabel: Accounts
fields:
  name:
    type: text
    label: Account Name
    required: true
    inlineHelpText: The registered name.
  type:
    type: select
    label: Type
    options:
      - { label: Prospect, value: prospect, default: true }
      - { label: Customer, value: customer }
  ticker:
    type: text
    label: Ticker
validations:
  - name: ticker_format
    type: format
    field: ticker
    regex: "^[A-Z]{1,5}$"
    message: Ticker must be upper-case letters
"#;

pub(crate) const BUNDLE_DE: &str = r#"
de:
  objects:
    account:
      label: Firma
      pluralLabel: Firmen
      fields:
        name: { label: Firmenname, help: Der eingetragene Name. }
        type:
          label: Typ
          options: { prospect: Interessent, customer: Kunde }
      _validations:
        ticker_format: { message: Das Kürzel besteht aus Großbuchstaben }
  messages:
    welcome: Willkommen
"#;

pub(crate) const BUNDLE_FR: &str = r#"
fr:
  objects:
    account:
      label: Compte
"#;

pub(crate) const FLUENT_DE: &str = "open-items =\n    { $count ->\n        [one] Ein offener Eintrag\n       *[other] { $count } offene Einträge\n    }\ngreeting = Hallo { $name }!\n";

/// The metadata folder's files, relative to it.
const FILES: &[(&str, &str)] = &[
    ("account.object.yml", ACCOUNT),
    ("translations/app.de.translation.yml", BUNDLE_DE),
    ("translations/app.fr.translation.yml", BUNDLE_FR),
    ("translations/app.de.ftl", FLUENT_DE),
];

/// Writes the test metadata folder (for the tests of the extract tools, which need no kernel).
pub(crate) fn write_metadata(dir: &Path) -> PathBuf {
    let meta = dir.join("meta");
    for (name, text) in FILES {
        let file = meta.join(name);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
    }
    meta
}

/// A booted kernel and what the tests reach into.
pub(crate) struct Server {
    pub(crate) service: Arc<I18nService>,
    pub(crate) metadata: Arc<MetadataHandle>,
    pub(crate) meta_dir: PathBuf,
    tk: TestKernel,
}

impl Server {
    pub(crate) async fn start(db: TestDatabase, settings: I18nSettings) -> Self {
        let plugin = I18nPlugin::new(settings).unwrap();
        let service = plugin.service();
        let tk = TestKernel::builder()
            .database(db)
            .files(FILES)
            .max_connections(2)
            .plugin(plugin)
            .boot()
            .await;
        Self {
            service,
            metadata: tk.metadata.clone(),
            meta_dir: tk.meta_dir.clone(),
            tk,
        }
    }

    /// `GET path` with extra headers.
    pub(crate) async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        self.tk.send(Request::get(path).headers(headers)).await
    }

    /// `POST path` with a JSON body.
    pub(crate) async fn post(&self, path: &str, headers: &[(&str, &str)], body: &str) -> Response {
        let req = Request::new("POST", path)
            .headers(headers)
            .bytes(body.as_bytes().to_vec(), "application/json");
        self.tk.send(req).await
    }

    pub(crate) async fn stop(self) {
        let Self {
            service,
            metadata,
            tk,
            ..
        } = self;
        drop((service, metadata));
        tk.stop().await;
    }
}
