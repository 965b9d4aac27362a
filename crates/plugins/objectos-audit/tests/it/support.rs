//! Test harness: metadata fixtures, a booted kernel, a test plugin (session hoop + failing hook)
//! and a tiny HTTP client.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use objectos_audit::{AuditConfig, AuditPlugin, AuditStore};
use objectos_data::store::{Sql, Store};
use objectos_data::{
    DataConfig, DataEngine, DataError, DataHandle, DataPlugin, HookContext, Interceptor,
    InterceptorContribution, OpContext, Operation, Principal, Record,
};
use objectos_http::{HoopContribution, HttpConfig, HttpPlugin, RequestContext};
use objectos_kernel::{InitContext, Kernel, Plugin, PluginError, PluginHandle, StartContext};
use objectos_spec::PluginManifest;
use objectos_testkit::TestDatabase;
use salvo::prelude::*;
use serde_json::Value;
use tempfile::TempDir;

pub(crate) const CONTACT_YML: &str = "\
name: contact
label: Contact
enable:
  trackHistory: true
fields:
  name:
    type: text
    label: Name
    required: true
  email:
    type: email
    label: Email
  pin:
    type: password
    label: PIN
  api_token:
    type: text
    label: API token
  score:
    type: number
    label: Score
";

pub(crate) const TASK_YML: &str = "\
name: task
label: Task
fields:
  title:
    type: text
    label: Title
";

/// Deleted with its task (deleteBehavior: cascade).
pub(crate) const SUBTASK_YML: &str = "\
name: subtask
label: Subtask
fields:
  title:
    type: text
    label: Title
  task:
    type: master_detail
    reference: task
    deleteBehavior: cascade
";

fn write_metadata(dir: &Path) -> PathBuf {
    let meta = dir.join("metadata");
    std::fs::create_dir_all(&meta).unwrap();
    std::fs::write(meta.join("contact.object.yml"), CONTACT_YML).unwrap();
    std::fs::write(meta.join("task.object.yml"), TASK_YML).unwrap();
    std::fs::write(meta.join("subtask.object.yml"), SUBTASK_YML).unwrap();
    meta
}

/// Reads `x-test-user`, `x-test-admin` and `x-test-tenant` into the request's principal.
#[handler]
async fn test_session(req: &mut Request, depot: &mut Depot) {
    let user = req.header::<String>("x-test-user");
    let admin = req.header::<String>("x-test-admin").is_some();
    let tenant = req.header::<String>("x-test-tenant");
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
        cx.tenant = tenant;
        depot.insert_typed(cx);
    }
}

/// Fails the after-hook of creating a record named `FAIL`, after the audit hook ran.
struct FailAfterAudit;

#[async_trait]
impl Interceptor for FailAfterAudit {
    fn name(&self) -> &str {
        "fail-after-audit"
    }
    fn order(&self) -> i32 {
        objectos_audit::recorder::INTERCEPTOR_ORDER + 1
    }
    async fn after(&self, hook: &mut HookContext<'_>) -> objectos_data::Result<()> {
        let bad = hook.operation == Operation::Create
            && hook
                .result
                .as_deref()
                .and_then(|r| r.get("name"))
                .and_then(Value::as_str)
                == Some("FAIL");
        if bad {
            return Err(DataError::Forbidden {
                object: hook.object.name.clone(),
                message: "refused after audit".into(),
            });
        }
        Ok(())
    }
}

pub(crate) const TEST_MANIFEST: PluginManifest = PluginManifest {
    permissions: &["routes.mount", "events.publish"],
    emits: &["auth.**", "authz.**", "security.**"],
    ..PluginManifest::new("com.example.audittest", "Audit test", "0.1.0")
};

struct TestPlugin(Arc<OnceLock<PluginHandle>>);

#[async_trait]
impl Plugin for TestPlugin {
    fn manifest(&self) -> &PluginManifest {
        &TEST_MANIFEST
    }
    fn init(&self, cx: &mut InitContext<'_>) -> Result<(), PluginError> {
        cx.contribute(HoopContribution::new(0, test_session))?;
        cx.contribute(InterceptorContribution(Arc::new(FailAfterAudit)))?;
        Ok(())
    }
    async fn start(&self, cx: &StartContext) -> Result<(), PluginError> {
        let _ = self.0.set(cx.handle());
        Ok(())
    }
}

pub(crate) struct Harness {
    pub(crate) kernel: Arc<Kernel>,
    pub(crate) engine: DataEngine,
    pub(crate) store: AuditStore,
    pub(crate) addr: SocketAddr,
    /// The test plugin's handle, to publish fake auth events.
    pub(crate) publisher: PluginHandle,
    /// The database the kernel runs on, dropped by [`Harness::stop`].
    db: TestDatabase,
    /// The metadata folder.
    _dir: TempDir,
}

impl Harness {
    pub(crate) async fn sqlite() -> Harness {
        Self::boot(TestDatabase::sqlite_file()).await
    }

    /// A fresh schema on the test PostgreSQL server, or `None` (with a note) when unset.
    pub(crate) async fn postgres() -> Option<Harness> {
        Some(Self::boot(TestDatabase::postgres("audit").await?).await)
    }

    async fn boot(db: TestDatabase) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let meta = write_metadata(dir.path());
        let data = DataPlugin::new(DataConfig {
            database_url: db.url.clone(),
            metadata_dirs: vec![meta],
            include_base: false,
            max_connections: 4,
            auto_migrate: true,
            owned: Vec::new(),
        });
        let handle: Arc<DataHandle> = data.handle();
        let http = HttpPlugin::new(HttpConfig {
            listen: "127.0.0.1:0".into(),
            ..HttpConfig::default()
        });
        let control = http.control();
        let publisher = Arc::new(OnceLock::new());
        let kernel = Arc::new(
            Kernel::builder()
                .config(
                    objectos_audit::PLUGIN_ID,
                    serde_json::to_value(AuditConfig {
                        // The periodic task stays out of the way; tests prune explicitly.
                        prune_interval_secs: 86_400,
                        ..AuditConfig::default()
                    })
                    .unwrap(),
                )
                .plugin(data)
                .plugin(AuditPlugin::default())
                .plugin(TestPlugin(publisher.clone()))
                .plugin(http)
                .build()
                .unwrap(),
        );
        control.attach(&kernel);
        let report = kernel.boot().await.unwrap();
        assert!(report.all_started(), "{report:?}");
        let engine = handle.engine().unwrap().clone();
        let store = AuditStore::from_engine(&engine);
        let addr = control.local_addr().unwrap();
        Harness {
            kernel,
            engine,
            store,
            addr,
            publisher: publisher.get().unwrap().clone(),
            db,
            _dir: dir,
        }
    }

    /// Shuts the kernel down, closes the database and drops its PostgreSQL schema.
    pub(crate) async fn stop(self) {
        let Harness {
            kernel,
            engine,
            store,
            publisher,
            db,
            ..
        } = self;
        kernel.shutdown().await;
        drop((kernel, engine, store, publisher));
        db.cleanup().await;
    }

    /// Runs raw SQL against the database (tampering).
    pub(crate) async fn raw(&self, sql: &str) -> u64 {
        let w = self.engine.writer();
        w.execute(Sql::with(w.dialect(), sql, Vec::new()).unwrap())
            .await
            .unwrap()
    }

    pub(crate) async fn http(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> (u16, String) {
        let addr = self.addr;
        let method = method.to_owned();
        let path = path.to_owned();
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        tokio::task::spawn_blocking(move || http(addr, &method, &path, &headers, body))
            .await
            .unwrap()
    }

    pub(crate) async fn get_json(&self, path: &str, headers: &[(&str, &str)]) -> Value {
        let (s, body) = self.http("GET", path, headers, None).await;
        assert_eq!(s, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }
}

pub(crate) const ADMIN: &[(&str, &str)] = &[("x-test-user", "root"), ("x-test-admin", "1")];

pub(crate) fn user_cx(id: &str) -> OpContext {
    OpContext {
        principal: Principal::User {
            id: id.into(),
            roles: vec![],
            permission_sets: vec![],
            is_admin: false,
        },
        tenant: None,
        locale: None,
        request_id: Some(format!("req-{id}")),
        cascade_of: None,
        correlation_id: None,
        causation_id: None,
    }
}

pub(crate) fn rec(v: Value) -> Record {
    v.as_object().unwrap().clone()
}

fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: Option<Value>,
) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nUser-Agent: audit-test/1.0\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(&body);
    stream.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8_lossy(&raw).to_string();
    let status = raw.split(' ').nth(1).unwrap().parse().unwrap();
    let (head, rest) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    (status, body)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Every event of the store, oldest first.
pub(crate) async fn all_events(h: &Harness) -> Vec<objectos_audit::AuditEvent> {
    let mut v = h
        .store
        .export(&objectos_audit::EventFilter::default())
        .await
        .unwrap();
    v.reverse();
    v
}
