//! Test harness: a booted kernel (data, http, storage, and a test plugin that sets the
//! principal and organization from headers and registers a test `Authorizer` under
//! `permissions`), and a small HTTP/1.1 client that can send binary bodies and drop a
//! connection half-way.

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use objectos_data::{DataConfig, DataEngine, DataPlugin, OpContext, Principal};
use objectos_http::{HoopContribution, HttpConfig, HttpPlugin, RequestContext};
use objectos_kernel::contracts::{Access, Authorizer, Caller, FieldAccess};
use objectos_kernel::{InitContext, Kernel, Plugin, PluginError};
use objectos_spec::PluginManifest;
use objectos_spec::manifest::services;
use objectos_spec::query::{Filter, FilterValue, Operator};
use objectos_storage::{StoragePlugin, StorageService, StorageSettings};
use objectos_testkit::TestDatabase;
use salvo::prelude::*;
use serde_json::{Value, json};
use tempfile::TempDir;

pub(crate) const ACCOUNT_YML: &str = "\
name: account
label: Account
fields:
  name:
    type: text
    label: Name
  contract:
    type: file
    label: Contract
    fileAttachmentConfig:
      allowedMimeTypes: [application/pdf]
  logo:
    type: image
    label: Logo
  attachments:
    type: file
    label: Attachments
    multiple: true
";

pub(crate) const PDF: &[u8] = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer\n%%EOF\n";
pub(crate) const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0";

/// Reads `x-test-user`, `x-test-admin` and `x-test-org` into the request context.
#[handler]
async fn test_session(req: &mut Request, depot: &mut Depot) {
    let user = req.header::<String>("x-test-user");
    let admin = req.header::<String>("x-test-admin").is_some();
    let org = req.header::<String>("x-test-org");
    if let Ok(cx) = depot.get_typed::<RequestContext>() {
        let mut cx = cx.clone();
        if let Some(id) = user {
            cx.principal = Principal::User {
                id,
                roles: vec![],
                permission_sets: vec![],
                is_admin: admin,
            };
        }
        cx.tenant = org;
        depot.insert_typed(cx);
    }
}

/// An authorizer whose refusals the test sets: records nobody may read, and fields hidden
/// from one user.
#[derive(Debug, Default)]
pub(crate) struct TestAuthz {
    pub(crate) hidden_records: Mutex<HashSet<String>>,
    /// `(user, object, field)`.
    pub(crate) hidden_fields: Mutex<HashSet<(String, String, String)>>,
    pub(crate) engine: Mutex<Option<DataEngine>>,
}

#[async_trait]
impl Authorizer for TestAuthz {
    async fn allowed(
        &self,
        _caller: &Caller,
        _access: Access,
        _object: &str,
        record: Option<&str>,
    ) -> Result<bool, PluginError> {
        Ok(!record.is_some_and(|r| self.hidden_records.lock().unwrap().contains(r)))
    }

    /// The hidden records, as `allowed` answers for each: the contract says both agree.
    fn row_filter(
        &self,
        _caller: &Caller,
        _access: Access,
        _object: &str,
    ) -> Result<Option<Filter>, PluginError> {
        let hidden: Vec<Value> = self
            .hidden_records
            .lock()
            .unwrap()
            .iter()
            .cloned()
            .map(Value::String)
            .collect();
        Ok(Some(if hidden.is_empty() {
            Filter::True
        } else {
            Filter::condition(
                "id",
                Operator::Nin,
                FilterValue::Value(Value::Array(hidden)),
            )
        }))
    }

    fn field_access(&self, caller: &Caller, object: &str) -> Result<FieldAccess, PluginError> {
        let user = caller.principal.user_id().unwrap_or_default().to_owned();
        let hidden = self.hidden_fields.lock().unwrap();
        let fields: Vec<String> = ["id", "name", "contract", "logo", "attachments"]
            .into_iter()
            .filter(|f| !hidden.contains(&(user.clone(), object.to_owned(), (*f).to_owned())))
            .map(str::to_owned)
            .collect();
        Ok(FieldAccess {
            readable: fields.clone(),
            editable: fields,
        })
    }
}

const TEST_MANIFEST: PluginManifest = PluginManifest {
    permissions: &["routes.mount"],
    provides: &[services::PERMISSIONS],
    ..PluginManifest::new("com.example.storagetest", "Storage test", "0.1.0")
};

struct TestPlugin(Arc<TestAuthz>);

#[async_trait]
impl Plugin for TestPlugin {
    fn manifest(&self) -> &PluginManifest {
        &TEST_MANIFEST
    }
    fn init(&self, cx: &mut InitContext<'_>) -> Result<(), PluginError> {
        cx.contribute(HoopContribution::new(0, test_session))?;
        cx.register::<dyn Authorizer>(services::PERMISSIONS, self.0.clone())?;
        Ok(())
    }
}

pub(crate) struct Harness {
    pub(crate) kernel: Arc<Kernel>,
    pub(crate) engine: DataEngine,
    pub(crate) service: Arc<StorageService>,
    pub(crate) authz: Arc<TestAuthz>,
    pub(crate) addr: SocketAddr,
    pub(crate) files: TempDir,
    db: Option<TestDatabase>,
}

/// Settings for tests: a short URL lifetime only where a test asks for it.
pub(crate) fn settings(files: &TempDir) -> StorageSettings {
    let mut s = StorageSettings::default();
    s.local.root = files.path().to_path_buf();
    s.signing_key = Some(objectos_spec::settings::Secret::new(
        "test-signing-key-0123456789abcdef0123456789",
    ));
    s
}

impl Harness {
    pub(crate) async fn boot(db: TestDatabase, tweak: impl FnOnce(&mut StorageSettings)) -> Self {
        let files = tempfile::tempdir().unwrap();
        let meta = files.path().join("metadata");
        std::fs::create_dir_all(&meta).unwrap();
        std::fs::write(meta.join("account.object.yml"), ACCOUNT_YML).unwrap();
        let mut storage_settings = settings(&files);
        storage_settings.local.root = files.path().join("blobs");
        tweak(&mut storage_settings);
        let data = DataPlugin::new(DataConfig {
            database_url: db.url.clone(),
            metadata_dirs: vec![meta],
            include_base: false,
            max_connections: 4,
            auto_migrate: true,
            owned: Vec::new(),
        });
        let handle = data.handle();
        let http = HttpPlugin::new(HttpConfig {
            listen: "127.0.0.1:0".into(),
            ..HttpConfig::default()
        });
        let control = http.control();
        let storage = StoragePlugin::new(storage_settings);
        let cell = storage.service_cell();
        let authz = Arc::new(TestAuthz::default());
        let kernel = Arc::new(
            Kernel::builder()
                .plugin(data)
                .plugin(http)
                .plugin(TestPlugin(authz.clone()))
                .plugin(storage)
                .build()
                .unwrap(),
        );
        control.attach(&kernel);
        let report = kernel.boot().await.unwrap();
        assert!(report.all_started(), "{report:?}");
        let engine = handle.engine().unwrap().clone();
        *authz.engine.lock().unwrap() = Some(engine.clone());
        Self {
            kernel,
            engine,
            service: cell.get().unwrap().clone(),
            authz,
            addr: control.local_addr().unwrap(),
            files,
            db: Some(db),
        }
    }

    pub(crate) async fn finish(mut self) {
        self.kernel.shutdown().await;
        *self.authz.engine.lock().unwrap() = None;
        drop(self.engine);
        if let Some(db) = self.db.take() {
            db.cleanup().await;
        }
    }

    /// Creates an `account` in `org` as the system, with `data`.
    pub(crate) async fn account(&self, org: &str, data: Value) -> String {
        let rec = self
            .engine
            .create(
                &OpContext::system("test").with_tenant(org),
                "account",
                data.as_object().unwrap().clone(),
            )
            .await
            .unwrap();
        rec["id"].as_str().unwrap().to_owned()
    }

    pub(crate) async fn call(&self, req: Req) -> Resp {
        let addr = self.addr;
        tokio::task::spawn_blocking(move || send(addr, &req))
            .await
            .unwrap()
            .unwrap()
    }

    /// Uploads `content` as `user` in `org` and answers the new file's id.
    pub(crate) async fn upload_id(
        &self,
        user: &str,
        org: &str,
        name: &str,
        content: &[u8],
    ) -> String {
        let done = self.upload(user, org, name, content).await;
        assert_eq!(done.status, 200, "{}", done.text());
        done.json()["data"]["fileId"].as_str().unwrap().to_owned()
    }

    /// The three steps of the client's `storage.upload`, as `user` in `org`; the `complete`
    /// answer.
    pub(crate) async fn upload(&self, user: &str, org: &str, name: &str, content: &[u8]) -> Resp {
        let presigned = self
            .call(
                Req::post(
                    "/api/v1/storage/upload/presigned",
                    json!({
                    "filename": name, "mimeType": "application/octet-stream",
                    "size": content.len(), "scope": "user" }),
                )
                .user(user, org),
            )
            .await;
        assert_eq!(presigned.status, 200, "{}", presigned.text());
        let data = &presigned.json()["data"];
        let put = self
            .call(Req::put(
                data["uploadUrl"].as_str().unwrap(),
                content.to_vec(),
            ))
            .await;
        assert_eq!(put.status, 200, "{}", put.text());
        self.call(
            Req::post(
                "/api/v1/storage/upload/complete",
                json!({ "fileId": data["fileId"] }),
            )
            .user(user, org),
        )
        .await
    }
}

/// A request for [`send`].
#[derive(Debug, Clone)]
pub(crate) struct Req {
    pub(crate) method: &'static str,
    pub(crate) path: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
    /// Send the headers announcing the full body, then only this many bytes, then close.
    pub(crate) cut_after: Option<usize>,
}

impl Req {
    pub(crate) fn get(path: &str) -> Self {
        Self {
            method: "GET",
            path: path.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
            cut_after: None,
        }
    }
    pub(crate) fn post(path: &str, body: Value) -> Self {
        Self {
            method: "POST",
            body: body.to_string().into_bytes(),
            ..Self::get(path)
        }
        .header("content-type", "application/json")
    }
    pub(crate) fn put(path: &str, body: Vec<u8>) -> Self {
        Self {
            method: "PUT",
            body,
            ..Self::get(path)
        }
        .header("content-type", "application/octet-stream")
    }
    pub(crate) fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.to_owned(), v.to_owned()));
        self
    }
    pub(crate) fn user(self, user: &str, org: &str) -> Self {
        self.header("x-test-user", user).header("x-test-org", org)
    }
}

#[derive(Debug)]
pub(crate) struct Resp {
    pub(crate) status: u16,
    pub(crate) headers: BTreeMap<String, String>,
    pub(crate) body: Vec<u8>,
}

impl Resp {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub(crate) fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(nl) = raw.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size =
            usize::from_str_radix(std::str::from_utf8(&raw[..nl]).unwrap().trim(), 16).unwrap_or(0);
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[nl + 2..nl + 2 + size]);
        raw = &raw[nl + 2 + size + 2..];
    }
}

/// One request over a fresh connection.
pub(crate) fn send(addr: SocketAddr, req: &Req) -> std::io::Result<Resp> {
    let mut stream = TcpStream::connect(addr)?;
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        req.method,
        req.path,
        req.body.len()
    );
    for (k, v) in &req.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    match req.cut_after {
        Some(n) => {
            stream.write_all(&req.body[..n])?;
            stream.flush()?;
            // Dropped mid-body: the server sees the connection end early.
            stream.shutdown(std::net::Shutdown::Both)?;
            return Ok(Resp {
                status: 0,
                headers: BTreeMap::new(),
                body: Vec::new(),
            });
        }
        // A server refusing early (403, 413) answers and closes before the body is sent: the
        // write then fails, and the answer is still there to read.
        None => {
            let _ = stream.write_all(&req.body);
        }
    }
    let mut raw = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    }
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let body = raw.get(split + 4..).unwrap_or_default().to_vec();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let body = if headers
        .get("transfer-encoding")
        .is_some_and(|v| v.contains("chunked"))
    {
        dechunk(&body)
    } else {
        body
    };
    Ok(Resp {
        status,
        headers,
        body,
    })
}
