//! A real kernel (data, HTTP, i18n) on SQLite in a temporary folder with a small metadata
//! folder, and a blocking HTTP client on loopback.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use objectos_data::{DataConfig, DataPlugin, MetadataHandle};
use objectos_http::{HttpConfig, HttpPlugin};
use objectos_i18n::{I18nPlugin, I18nService, I18nSettings};
use objectos_kernel::Kernel;

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

/// Writes the test metadata folder.
pub(crate) fn write_metadata(dir: &Path) -> PathBuf {
    let meta = dir.join("meta");
    std::fs::create_dir_all(meta.join("translations")).unwrap();
    std::fs::write(meta.join("account.object.yml"), ACCOUNT).unwrap();
    std::fs::write(meta.join("translations/app.de.translation.yml"), BUNDLE_DE).unwrap();
    std::fs::write(meta.join("translations/app.fr.translation.yml"), BUNDLE_FR).unwrap();
    std::fs::write(meta.join("translations/app.de.ftl"), FLUENT_DE).unwrap();
    meta
}

/// A booted kernel and what the tests reach into.
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    pub(crate) service: Arc<I18nService>,
    pub(crate) metadata: Arc<MetadataHandle>,
    pub(crate) meta_dir: PathBuf,
    kernel: Arc<Kernel>,
    _dir: tempfile::TempDir,
}

impl Server {
    pub(crate) async fn start(settings: I18nSettings) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let meta = write_metadata(dir.path());
        Self::start_in(dir, meta, settings).await
    }

    pub(crate) async fn start_in(
        dir: tempfile::TempDir,
        meta: PathBuf,
        settings: I18nSettings,
    ) -> Self {
        let data = DataPlugin::new(DataConfig {
            database_url: format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display()),
            metadata_dirs: vec![meta.clone()],
            include_base: false,
            max_connections: 2,
            auto_migrate: true,
            owned: Vec::new(),
        });
        let metadata = data.metadata();
        let http = HttpPlugin::new(HttpConfig {
            listen: "127.0.0.1:0".into(),
            ..HttpConfig::default()
        });
        let control = http.control();
        let plugin = I18nPlugin::new(settings).unwrap();
        let service = plugin.service();
        let kernel = Arc::new(
            Kernel::builder()
                .plugin(data)
                .plugin(http)
                .plugin(plugin)
                .build()
                .unwrap(),
        );
        control.attach(&kernel);
        let report = kernel.boot().await.unwrap();
        assert!(report.all_started(), "{report:?}");
        Self {
            addr: control.local_addr().unwrap(),
            service,
            metadata,
            meta_dir: meta,
            kernel,
            _dir: dir,
        }
    }

    /// `GET path` with extra headers: status, headers (lowercase names) and body.
    pub(crate) async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        let addr = self.addr;
        let path = path.to_owned();
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        tokio::task::spawn_blocking(move || send(addr, "GET", &path, &headers, None))
            .await
            .unwrap()
    }

    /// `POST path` with a JSON body.
    pub(crate) async fn post(&self, path: &str, headers: &[(&str, &str)], body: &str) -> Response {
        let addr = self.addr;
        let path = path.to_owned();
        let body = body.to_owned();
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        tokio::task::spawn_blocking(move || send(addr, "POST", &path, &headers, Some(&body)))
            .await
            .unwrap()
    }

    pub(crate) async fn stop(self) {
        self.kernel.shutdown().await;
    }
}

#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: String,
}

impl Response {
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    /// Every value of a header, joined with `, `.
    pub(crate) fn header(&self, name: &str) -> String {
        self.headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: Option<&str>,
) -> Response {
    let mut s = TcpStream::connect(addr).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body.unwrap_or_default());
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let body = raw.get(split + 4..).unwrap_or_default();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_vec()
    };
    Response {
        status,
        headers,
        body: String::from_utf8(body).unwrap(),
    }
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = body.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&body[..end]).to_string();
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        let rest = &body[end + 2..];
        if n == 0 || rest.len() < n {
            break;
        }
        out.extend_from_slice(&rest[..n]);
        body = rest[n..].strip_prefix(b"\r\n").unwrap_or(&rest[n..]);
    }
    out
}
