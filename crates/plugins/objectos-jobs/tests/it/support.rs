//! Test harness on the shared testkit: a booted [`TestKernel`] (data, http, the testkit's
//! session hoop reading `x-test-*` headers, its directory in which `root` is the platform
//! administrator, jobs) plus what is jobs' own: a plugin that registers the test's handlers
//! when the queue starts, an interceptor that enqueues inside record writes, and waits on a
//! job's status.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use objectos_data::{
    DataEngine, DataError, HookContext, Interceptor, Operation, TransactionalJobQueue,
};
use objectos_jobs::{JobsPlugin, JobsService, JobsSettings};
use objectos_kernel::contracts::{EnqueueRequest, JobHandler, JobInfo, JobStatus};
use objectos_kernel::{ClusterSettings, InitContext, Kernel, Plugin, PluginError, StartContext};
use objectos_spec::PluginManifest;
use objectos_spec::manifest::services;
use objectos_testkit::{Client, TestDirectory, TestKernel, Who};
use serde_json::{Value, json};

pub(crate) const ORDER_YML: &str = "\
name: order
label: Order
fields:
  name:
    type: text
    label: Name
";

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

const HANDLERS_MANIFEST: PluginManifest = PluginManifest {
    requires: &[services::QUEUE],
    ..PluginManifest::new("com.example.jobstest", "Jobs test handlers", "0.1.0")
};

pub(crate) type Handlers = Vec<(String, Arc<dyn JobHandler>)>;

/// Registers the test's handlers as a plugin owning the work would, when the queue has
/// started (before any job can be claimed for them), and hands the queue to
/// [`EnqueueOnOrder`].
struct HandlersPlugin {
    queue: QueueSlot,
    handlers: std::sync::Mutex<Handlers>,
}

#[async_trait]
impl Plugin for HandlersPlugin {
    fn manifest(&self) -> &PluginManifest {
        &HANDLERS_MANIFEST
    }
    fn init(&self, _cx: &mut InitContext<'_>) -> Result<(), PluginError> {
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
    pub(crate) cluster: ClusterSettings,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            settings: fast_settings(),
            handlers: Vec::new(),
            files: Vec::new(),
            cluster: ClusterSettings::single_node(),
        }
    }
}

impl Options {
    /// The default options with `handlers`.
    pub(crate) fn handlers(handlers: Handlers) -> Self {
        Self {
            handlers,
            ..Self::default()
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
    tk: TestKernel,
}

impl Harness {
    /// Boots a node on `db_url`; several nodes may share one database (its owner cleans it up).
    pub(crate) async fn boot(db_url: &str, options: Options) -> Harness {
        Self::try_boot(db_url, options).await.unwrap()
    }

    /// Boots a node; the startup report's text when a plugin did not start.
    pub(crate) async fn try_boot(db_url: &str, options: Options) -> Result<Harness, String> {
        let queue: QueueSlot = Arc::new(OnceLock::new());
        let jobs = JobsPlugin::new(options.settings);
        let cell = jobs.service_cell();
        let mut builder = TestKernel::builder()
            .database_url(db_url)
            .file("order.object.yml", ORDER_YML)
            .plugin(jobs)
            .plugin(HandlersPlugin {
                queue: queue.clone(),
                handlers: std::sync::Mutex::new(options.handlers),
            })
            .directory(Arc::new(TestDirectory::default()))
            .interceptor(Arc::new(EnqueueOnOrder(queue.clone())))
            .cluster(options.cluster);
        for (name, text) in &options.files {
            builder = builder.file(name, text);
        }
        let tk = builder.try_boot().await?;
        Ok(Harness {
            kernel: tk.kernel.clone(),
            engine: tk.engine.clone(),
            queue: queue.get().unwrap().clone(),
            service: cell.get().unwrap().clone(),
            tk,
        })
    }

    pub(crate) async fn stop(self) {
        let Harness {
            kernel,
            engine,
            queue,
            service,
            tk,
        } = self;
        // Every handle on the kernel and the pool goes before it stops.
        drop((kernel, engine, queue, service));
        tk.stop().await;
    }

    /// Enqueues `request`, which must be accepted; the job's id.
    pub(crate) async fn enqueue(&self, request: EnqueueRequest) -> String {
        self.queue.enqueue(request).await.unwrap().id
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

    /// An HTTP client signed in as `who`.
    pub(crate) fn client(&self, who: Who) -> Client {
        self.tk.client(who)
    }
}

/// The platform administrator (`root` in the testkit's directory).
pub(crate) fn admin() -> Who {
    Who::admin()
}

/// The administrator of organization `org-a` (not a platform administrator).
pub(crate) fn org_a_admin() -> Who {
    Who::org_admin("alice", "org-a")
}

/// The administrator of organization `org-b`.
pub(crate) fn org_b_admin() -> Who {
    Who::org_admin("bert", "org-b")
}

/// A user who is no administrator.
pub(crate) fn user() -> Who {
    Who::user("bob")
}
