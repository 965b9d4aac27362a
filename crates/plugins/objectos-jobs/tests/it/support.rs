//! Test harness: a booted kernel (data + http + jobs + a test plugin that registers handlers at
//! start, sets the principal from headers and enqueues inside record writes), and a tiny HTTP
//! client.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use objectos_data::{
    DataConfig, DataEngine, DataError, DataHandle, DataPlugin, HookContext, Interceptor,
    InterceptorContribution, Operation, Principal, TransactionalJobQueue,
};
use objectos_http::{HoopContribution, HttpConfig, HttpPlugin, RequestContext};
use objectos_jobs::{JobsPlugin, JobsService, JobsSettings};
use objectos_kernel::contracts::{
    Caller, Directory, DirectoryUser, EnqueueRequest, JobHandler, JobInfo, JobStatus, Membership,
    Organization,
};
use objectos_kernel::{InitContext, Kernel, Plugin, PluginError, StartContext};
use objectos_spec::PluginManifest;
use objectos_spec::manifest::services;
use salvo::prelude::*;
use serde_json::{Value, json};
use tempfile::TempDir;

pub(crate) const ORDER_YML: &str = "\
name: order
label: Order
fields:
  name:
    type: text
    label: Name
";

/// Reads `x-test-user` and `x-test-admin` into the request's principal, `x-test-org` into its
/// tenant (the organization it acts in).
#[handler]
async fn test_session(req: &mut Request, depot: &mut Depot) {
    let user = req.header::<String>("x-test-user");
    let admin = req.header::<String>("x-test-admin").is_some();
    let org = req.header::<String>("x-test-org");
    if let Ok(cx) = depot.get_typed::<RequestContext>() {
        let mut cx = cx.clone();
        if org.is_some() {
            cx.tenant = org;
        }
        if let Some(id) = user {
            cx.principal = Principal::User {
                id,
                roles: vec![],
                permission_sets: vec![],
                is_admin: admin,
            };
        }
        depot.insert_typed(cx);
    }
}

type QueueSlot = Arc<OnceLock<Arc<dyn TransactionalJobQueue>>>;

/// Enqueues a `test.order` job in the write transaction of every created `order`, then fails
/// the write when the order is named `FAIL` (so the job must vanish with it).
struct EnqueueOnOrder(QueueSlot);

#[async_trait]
impl Interceptor for EnqueueOnOrder {
    fn name(&self) -> &str {
        "enqueue-on-order"
    }
    fn order(&self) -> i32 {
        100
    }
    async fn after(&self, hook: &mut HookContext<'_>) -> objectos_data::Result<()> {
        if hook.operation != Operation::Create || hook.object.name != "order" {
            return Ok(());
        }
        let Some(queue) = self.0.get() else {
            return Ok(());
        };
        let record = hook.result.as_deref().cloned().unwrap_or_default();
        let name = record
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let tx = hook.write_tx()?;
        queue
            .enqueue_in(
                &tx,
                EnqueueRequest::new("test.order", json!({ "name": name })),
            )
            .await
            .map_err(|e| DataError::Internal(e.to_string()))?;
        if name == "FAIL" {
            return Err(DataError::Forbidden {
                object: "order".into(),
                message: "refused after enqueue".into(),
            });
        }
        Ok(())
    }
}

/// The platform administrator of [`TestDirectory`].
pub(crate) const PLATFORM_ADMIN: &str = "root";

/// The `auth` directory as the jobs routes see it: every user exists, [`PLATFORM_ADMIN`] is
/// the one platform administrator (what the auth plugin answers for its first account).
#[derive(Debug)]
struct TestDirectory;

#[async_trait]
impl Directory for TestDirectory {
    async fn user(&self, id: &str) -> Result<Option<DirectoryUser>, PluginError> {
        Ok(Some(DirectoryUser {
            id: id.to_owned(),
            email: format!("{id}@example.com"),
            name: None,
            active: true,
            platform_admin: id == PLATFORM_ADMIN,
        }))
    }
    async fn organization(&self, _id: &str) -> Result<Option<Organization>, PluginError> {
        Ok(None)
    }
    async fn memberships(&self, _user_id: &str) -> Result<Vec<Membership>, PluginError> {
        Ok(Vec::new())
    }
    async fn membership(
        &self,
        _org: &str,
        _user_id: &str,
    ) -> Result<Option<Membership>, PluginError> {
        Ok(None)
    }
    async fn principal_for(
        &self,
        _user_id: &str,
        _org: Option<&str>,
    ) -> Result<Option<Caller>, PluginError> {
        Ok(None)
    }
}

const TEST_MANIFEST: PluginManifest = PluginManifest {
    permissions: &["routes.mount"],
    provides: &[services::AUTH],
    requires: &[services::QUEUE],
    ..PluginManifest::new("com.example.jobstest", "Jobs test", "0.1.0")
};

pub(crate) type Handlers = Vec<(String, Arc<dyn JobHandler>)>;

struct TestPlugin {
    queue: QueueSlot,
    handlers: std::sync::Mutex<Handlers>,
}

#[async_trait]
impl Plugin for TestPlugin {
    fn manifest(&self) -> &PluginManifest {
        &TEST_MANIFEST
    }
    fn init(&self, cx: &mut InitContext<'_>) -> Result<(), PluginError> {
        cx.register::<dyn Directory>(services::AUTH, Arc::new(TestDirectory))?;
        cx.contribute(HoopContribution::new(0, test_session))?;
        cx.contribute(InterceptorContribution(Arc::new(EnqueueOnOrder(
            self.queue.clone(),
        ))))?;
        Ok(())
    }
    async fn start(&self, cx: &StartContext) -> Result<(), PluginError> {
        let queue = cx.get_named::<dyn TransactionalJobQueue>(services::QUEUE)?;
        for (name, h) in self.handlers.lock().unwrap().drain(..) {
            queue
                .register_handler(&name, h)
                .map_err(|e| PluginError::msg(e.to_string()))?;
        }
        let _ = self.queue.set(queue);
        Ok(())
    }
}

pub(crate) struct Options {
    pub(crate) settings: JobsSettings,
    pub(crate) handlers: Handlers,
    /// Extra metadata files, as `(file name, text)`.
    pub(crate) files: Vec<(String, String)>,
    /// The node's cluster settings (the RabbitMQ tests set `amqp_url`).
    pub(crate) cluster: objectos_kernel::ClusterSettings,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            settings: fast_settings(),
            handlers: Vec::new(),
            files: Vec::new(),
            cluster: objectos_kernel::ClusterSettings::single_node(),
        }
    }
}

/// Settings that make tests quick: short polls and leases.
pub(crate) fn fast_settings() -> JobsSettings {
    JobsSettings {
        poll_interval_ms: 50,
        lease_ms: 1_000,
        ..JobsSettings::default()
    }
}

pub(crate) struct Harness {
    pub(crate) kernel: Arc<Kernel>,
    pub(crate) engine: DataEngine,
    pub(crate) queue: Arc<dyn TransactionalJobQueue>,
    pub(crate) service: Arc<JobsService>,
    pub(crate) addr: SocketAddr,
    _dir: TempDir,
}

impl Harness {
    /// Boots a kernel on `db_url`.
    pub(crate) async fn boot(db_url: &str, options: Options) -> Harness {
        Self::try_boot(db_url, options).await.unwrap()
    }

    pub(crate) async fn try_boot(db_url: &str, options: Options) -> Result<Harness, String> {
        let dir = tempfile::tempdir().unwrap();
        let meta = dir.path().join("metadata");
        std::fs::create_dir_all(&meta).unwrap();
        std::fs::write(meta.join("order.object.yml"), ORDER_YML).unwrap();
        for (name, text) in &options.files {
            std::fs::write(meta.join(name), text).unwrap();
        }
        let data = DataPlugin::new(DataConfig {
            database_url: db_url.to_owned(),
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
        let queue: QueueSlot = Arc::new(OnceLock::new());
        let jobs = JobsPlugin::new(options.settings);
        let slot = jobs.service_cell();
        let kernel = Arc::new(
            Kernel::builder()
                .plugin(data)
                .plugin(jobs)
                .plugin(TestPlugin {
                    queue: queue.clone(),
                    handlers: std::sync::Mutex::new(options.handlers),
                })
                .plugin(http)
                .cluster(options.cluster.clone())
                .build()
                .map_err(|e| e.to_string())?,
        );
        control.attach(&kernel);
        let report = kernel.boot().await.map_err(|e| e.to_string())?;
        if !report.all_started() {
            let text = format!("{report:?}");
            kernel.shutdown().await;
            return Err(text);
        }
        let engine = handle.engine().unwrap().clone();
        let queue = queue.get().unwrap().clone();
        let service = slot.get().unwrap().clone();
        Ok(Harness {
            service,
            kernel,
            engine,
            queue,
            addr: control.local_addr().unwrap(),
            _dir: dir,
        })
    }

    pub(crate) async fn stop(self) {
        let Harness {
            kernel,
            engine,
            queue,
            service,
            ..
        } = self;
        kernel.shutdown().await;
        drop((kernel, engine, queue, service));
    }

    /// Waits (bounded) until job `id` has `status`; returns it.
    pub(crate) async fn wait_status(&self, id: &str, status: JobStatus) -> JobInfo {
        let mut last = None;
        for _ in 0..300 {
            let info = self.queue.get(id).await.unwrap().unwrap();
            if info.status == status {
                return info;
            }
            last = Some(info);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("job {id} never became {status}; last: {last:?}");
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
}

/// A platform administrator.
pub(crate) const ADMIN: &[(&str, &str)] = &[("x-test-user", "root"), ("x-test-admin", "1")];
/// The administrator of organization `org-a` (not a platform administrator).
pub(crate) const ORG_A_ADMIN: &[(&str, &str)] = &[
    ("x-test-user", "alice"),
    ("x-test-admin", "1"),
    ("x-test-org", "org-a"),
];
/// The administrator of organization `org-b`.
pub(crate) const ORG_B_ADMIN: &[(&str, &str)] = &[
    ("x-test-user", "bert"),
    ("x-test-admin", "1"),
    ("x-test-org", "org-b"),
];
pub(crate) const USER: &[(&str, &str)] = &[("x-test-user", "bob")];

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
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
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
