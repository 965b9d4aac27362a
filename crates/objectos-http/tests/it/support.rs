//! Test harness: metadata fixtures, an engine on a temp SQLite file, and a JSON-aware client.

use std::path::Path;

use objectos_data::{DataConfig, DataEngine};
use objectos_http::{ApiState, HttpConfig, RouteContribution, ServiceEntry, build_service};
use objectos_spec::RuntimeMode;
use salvo::http::StatusCode;
use salvo::http::header::HeaderMap;
use salvo::prelude::Service;
use salvo::test::{RequestBuilder, ResponseExt, TestClient};
use serde_json::{Value, json};
use tempfile::TempDir;

pub(crate) const ACCOUNT_YML: &str = "\
name: account
label: Account
fields:
  name:
    type: text
    label: Name
    required: true
";

pub(crate) const CONTACT_YML: &str = "\
name: contact
label: Contact
pluralLabel: Contacts
fields:
  name:
    type: text
    label: Name
    required: true
    maxLength: 200
  email:
    type: email
    label: Email
  amount:
    type: currency
    label: Amount
    precision: 12
    scale: 2
  status:
    type: select
    label: Status
    options:
      - { label: New, value: new, default: true }
      - { label: Active, value: active }
      - { label: Closed, value: closed }
  account:
    type: lookup
    label: Account
    reference: account
";

/// An object whose API exposes only reads, updates and single creates (`enable.apiMethods`).
const LEDGER_YML: &str = "name: ledger\nlabel: Ledger\nenable:\n  apiMethods: [get, list, create, update]\nfields:\n  name: { type: text, label: Name }\n";

/// Writes the fixtures into `dir/metadata` and returns that folder.
pub(crate) fn write_metadata(dir: &Path) -> std::path::PathBuf {
    let meta = dir.join("metadata");
    std::fs::create_dir_all(&meta).unwrap();
    std::fs::write(meta.join("account.object.yml"), ACCOUNT_YML).unwrap();
    std::fs::write(meta.join("contact.object.yml"), CONTACT_YML).unwrap();
    std::fs::write(meta.join("ledger.object.yml"), LEDGER_YML).unwrap();
    meta
}

pub(crate) async fn open_engine(dir: &Path) -> DataEngine {
    let meta = write_metadata(dir);
    let url = format!("sqlite://{}?mode=rwc", dir.join("test.db").display());
    DataEngine::open(DataConfig {
        database_url: url,
        metadata_dirs: vec![meta],
        include_base: false,
        max_connections: 2,
        auto_migrate: true,
        owned: Vec::new(),
    })
    .await
    .unwrap()
}

/// A JSON response.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Value,
    pub(crate) text: String,
}

impl Reply {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the status and the error shape, returns the body.
    #[track_caller]
    pub(crate) fn error(&self, status: u16, code: &str) -> &Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.text
        );
        assert_eq!(
            self.body["code"], code,
            "unexpected code; body: {}",
            self.text
        );
        assert!(
            self.body["error"].is_string(),
            "error text missing: {}",
            self.text
        );
        assert_eq!(
            self.body["error"], self.body["message"],
            "error and message differ: {}",
            self.text
        );
        assert_eq!(
            self.header("content-type")
                .map(|c| c.starts_with("application/json")),
            Some(true)
        );
        &self.body
    }
}

pub(crate) struct Harness {
    pub(crate) service: Service,
    _dir: TempDir,
}

pub(crate) const BASE: &str = "http://127.0.0.1:5800";

impl Harness {
    pub(crate) async fn new() -> Self {
        Self::build(HttpConfig::default(), Vec::new(), true).await
    }

    pub(crate) async fn build(
        config: HttpConfig,
        routes: Vec<RouteContribution>,
        ready: bool,
    ) -> Self {
        Self::build_in_mode(config, routes, ready, RuntimeMode::Development).await
    }

    pub(crate) async fn build_in_mode(
        config: HttpConfig,
        routes: Vec<RouteContribution>,
        ready: bool,
        mode: RuntimeMode,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let engine = open_engine(dir.path()).await;
        let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(ready));
        let state = ApiState::builder(engine.clone())
            .config(config)
            .version("9.9.9")
            .mode(mode)
            .service(ServiceEntry {
                name: "data".into(),
                provider: "com.objectos.data".into(),
                route: None,
            })
            .service(ServiceEntry {
                name: "metadata".into(),
                provider: "com.objectos.data".into(),
                route: None,
            })
            .packages(vec![objectos_http::MANIFEST.to_spec()])
            .ready_flag(flag)
            .build();
        let service = build_service(state, &routes, &[]);
        Self { service, _dir: dir }
    }

    pub(crate) async fn send(&self, req: RequestBuilder) -> Reply {
        let mut res = req.send(&self.service).await;
        let status = res.status_code.unwrap_or(StatusCode::OK);
        let headers = res.headers().clone();
        let text = res.take_string().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
            text,
        }
    }

    pub(crate) async fn get(&self, path: &str) -> Reply {
        self.send(TestClient::get(format!("{BASE}{path}"))).await
    }

    pub(crate) async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send(TestClient::post(format!("{BASE}{path}")).json(body))
            .await
    }

    pub(crate) async fn patch(&self, path: &str, body: &Value) -> Reply {
        self.send(TestClient::patch(format!("{BASE}{path}")).json(body))
            .await
    }

    pub(crate) async fn delete(&self, path: &str) -> Reply {
        self.send(TestClient::delete(format!("{BASE}{path}"))).await
    }

    /// Creates the transcript's account and three contacts; returns (account id, contact ids).
    pub(crate) async fn seed(&self) -> (String, Vec<String>) {
        let acct = self
            .post("/api/v1/data/account", &json!({ "name": "Acme Corp" }))
            .await;
        assert_eq!(acct.status, StatusCode::CREATED, "{}", acct.text);
        let account = acct.body["id"].as_str().unwrap().to_owned();
        let mut ids = Vec::new();
        for body in [
            json!({ "name": "Alice Anchor", "email": "alice@example.com", "amount": 1200.5, "status": "active", "account": account }),
            json!({ "name": "Bob Baseline", "email": "bob@example.com", "amount": 80, "status": "new" }),
            json!({ "name": "Carol Compare", "email": "carol@example.com", "amount": 455.25, "status": "active" }),
        ] {
            let r = self.post("/api/v1/data/contact", &body).await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
            ids.push(r.body["id"].as_str().unwrap().to_owned());
        }
        (account, ids)
    }
}
