//! The kernel plugin `com.objectos.jobs`: registers [`JobsService`] as `job` (`dyn JobQueue`)
//! and `queue` (`dyn TransactionalJobQueue`) with the built-in `http.request` handler,
//! contributes its schema and routes at init, and at
//! start opens the table, starts the delivery (embedded workers, or the RabbitMQ transport),
//! the completion writer, the maintenance loop and the scheduler.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use objectos_data::{DataHandle, TransactionalJobQueue};
use objectos_http::RouteContribution;
use objectos_kernel::contracts::{DEFAULT_QUEUE, JobQueue};
use objectos_kernel::{InitContext, Plugin, PluginError, StartContext, StopContext};
use objectos_spec::manifest::{ConfigProperty, PluginDependency, services};
use objectos_spec::{Event, HealthReport, HealthStatus, PluginManifest};
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{Backend, JobsSettings};
use crate::core::Core;
use crate::delivery::{Delivery, Embedded};
use crate::schedule;
use crate::service::{JobsService, Running};
use crate::table::{JobTable, now_ms};

/// The plugin id.
pub const PLUGIN_ID: &str = "com.objectos.jobs";

/// The static manifest.
pub const MANIFEST: PluginManifest = PluginManifest {
    description: "Background jobs: leases, retries with backoff, timeouts, cancellation, priorities, idempotency keys, dead letters, transactional enqueue, cron schedules",
    dependencies: &[PluginDependency {
        id: objectos_data::PLUGIN_ID,
        version: ">=0.1",
        optional: false,
    }],
    provides: &[services::JOB, services::QUEUE],
    requires: &[services::DATA],
    // The directory tells platform administrators apart in `/api/v1/jobs`, looked up per
    // request: auth starts after notification, which starts after jobs, so a `requires` or
    // `optional_requires` entry would be a cycle.
    lazy_requires: &[services::AUTH],
    permissions: &[
        "data.read",
        "data.write",
        "events.subscribe",
        "routes.mount",
        "metadata.read",
    ],
    subscribes: &[objectos_spec::event::names::KERNEL_READY],
    objects: &["sys_job_run"],
    configuration: &[
        ConfigProperty {
            key: "backend",
            kind: "string",
            description: "embedded (workers claim from the database) or rabbitmq (cluster.amqpUrl)",
            required: false,
            secret: false,
            default: Some("\"embedded\""),
        },
        ConfigProperty {
            key: "workers",
            kind: "integer",
            description: "Jobs of one queue running at once on a node (queues.<name>.workers overrides)",
            required: false,
            secret: false,
            default: Some("16"),
        },
        ConfigProperty {
            key: "leaseMs",
            kind: "integer",
            description: "A crashed worker's jobs come back after this many milliseconds",
            required: false,
            secret: false,
            default: Some("30000"),
        },
        ConfigProperty {
            key: "pollIntervalMs",
            kind: "integer",
            description: "How often workers look for jobs enqueued on other nodes",
            required: false,
            secret: false,
            default: Some("500"),
        },
        ConfigProperty {
            key: "http",
            kind: "object",
            description: "The built-in http.request handler: allowHosts (hosts it may call; none by default), timeoutMs, maxTimeoutMs",
            required: false,
            secret: false,
            default: Some("{\"allowHosts\":[],\"timeoutMs\":10000,\"maxTimeoutMs\":300000}"),
        },
    ],
    ..PluginManifest::new(PLUGIN_ID, "Jobs", env!("CARGO_PKG_VERSION"))
};

/// The jobs plugin; `settings` is overridden by the kernel configuration of
/// `com.objectos.jobs` when one is given.
#[derive(Debug, Default)]
pub struct JobsPlugin {
    pub settings: JobsSettings,
    service: Arc<OnceLock<Arc<JobsService>>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    stop: Mutex<Option<watch::Sender<bool>>>,
}

impl JobsPlugin {
    pub fn new(settings: JobsSettings) -> Self {
        Self {
            settings,
            ..Self::default()
        }
    }

    /// The service, once `init` has run (tests, the CLI).
    pub fn service(&self) -> Option<Arc<JobsService>> {
        self.service.get().cloned()
    }

    /// Where the service appears at `init`: kept by a host that hands the plugin to a kernel
    /// and still wants the concrete service (the CLI, tests, the benchmark).
    pub fn service_cell(&self) -> Arc<OnceLock<Arc<JobsService>>> {
        self.service.clone()
    }
}

fn delivery_for(
    settings: &JobsSettings,
    cluster: &objectos_kernel::ClusterSettings,
) -> Result<Arc<dyn Delivery>, PluginError> {
    match settings.backend {
        Backend::Embedded => Ok(Arc::new(Embedded::new())),
        Backend::Rabbitmq => crate::amqp::RabbitmqDelivery::new(cluster, &settings.rabbitmq)
            .map(|d| Arc::new(d) as Arc<dyn Delivery>)
            .map_err(|e| PluginError::msg(e.to_string())),
    }
}

/// Renews this node's leases, re-delivers jobs whose worker's lease expired, promotes due
/// scheduled jobs, forwards cancel requests from other nodes, prunes old runs.
async fn maintain(service: Arc<JobsService>, core: Arc<Core>, mut stop: watch::Receiver<bool>) {
    let poll = core.settings.poll_interval();
    let heartbeat_every = Duration::from_millis((core.settings.lease_ms / 3).max(100));
    let mut last_heartbeat = tokio::time::Instant::now();
    let mut last_prune = tokio::time::Instant::now();
    let depth = crate::metrics::Depth::default();
    loop {
        tokio::select! {
            () = tokio::time::sleep(poll) => {},
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }
        if last_heartbeat.elapsed() >= heartbeat_every {
            last_heartbeat = tokio::time::Instant::now();
            match core.table.heartbeat(&core.worker, core.lease_until()).await {
                Ok(cancel) => {
                    for id in cancel {
                        core.cancel_local(&id);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "Renewing job leases failed."),
            }
            match core.table.reclaim_expired().await {
                Ok(queues) => {
                    if !queues.is_empty() {
                        tracing::info!(queues = ?queues, "Jobs of a stopped worker are delivered again.");
                    }
                    for q in queues {
                        service.wake_queue(&q);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "Reclaiming expired job leases failed."),
            }
            match core.table.pending_by_queue().await {
                Ok(pending) => depth.set(&pending),
                Err(e) => tracing::debug!(error = %e, "Counting pending jobs failed."),
            }
        }
        match core.table.promote_due().await {
            Ok(queues) => {
                for q in queues {
                    service.wake_queue(&q);
                }
            }
            Err(e) => tracing::warn!(error = %e, "Promoting due jobs failed."),
        }
        if last_prune.elapsed() >= Duration::from_secs(3600) {
            last_prune = tokio::time::Instant::now();
            let days = i64::from(core.settings.keep_finished_days);
            if days > 0 {
                let before = now_ms() - days * 86_400_000;
                if let Err(e) = core.table.prune_finished(before).await {
                    tracing::warn!(error = %e, "Pruning finished jobs failed.");
                }
                if let Err(e) = core.table.prune_ticks(before).await {
                    tracing::warn!(error = %e, "Pruning schedule ticks failed.");
                }
            }
        }
    }
}

#[async_trait]
impl Plugin for JobsPlugin {
    fn manifest(&self) -> &PluginManifest {
        &MANIFEST
    }

    fn init(&self, cx: &mut InitContext<'_>) -> Result<(), PluginError> {
        let settings = cx.settings_or(&crate::CONFIG_SECTION, self.settings.clone())?;
        // The built-in handler; it refuses every host until `jobs.http.allowHosts` lists some.
        let http = crate::http::HttpHandler::new(&settings.http)
            .map_err(|e| PluginError::msg(e.to_string()))?;
        let service = Arc::new(JobsService::new(settings));
        service
            .register_handler(crate::http::HANDLER, Arc::new(http))
            .map_err(|e| PluginError::msg(e.to_string()))?;
        cx.register::<dyn JobQueue>(services::JOB, service.clone())?;
        cx.register::<dyn TransactionalJobQueue>(services::QUEUE, service.clone())?;
        cx.contribute(crate::schema::schema())?;
        let routes = service.clone();
        let access = crate::routes::JobsAccess::new(cx.handle());
        cx.contribute(
            RouteContribution::new("jobs", move || {
                crate::routes::router(routes.clone(), access.clone())
            })
            .service(services::JOB)
            .operations(crate::routes::operations()),
        )?;
        // Every plugin has started (and registered its handlers) when kernel.ready arrives:
        // the first moment a schedule's unknown handler can be told from a late registration.
        let ready = service.clone();
        cx.subscribe(
            objectos_spec::event::names::KERNEL_READY,
            move |_event: Arc<Event>| {
                let s = ready.clone();
                async move {
                    s.check_schedules();
                    Ok(())
                }
            },
        )?;
        let _ = self.service.set(service);
        Ok(())
    }

    async fn start(&self, cx: &StartContext) -> Result<(), PluginError> {
        let service = self
            .service
            .get()
            .ok_or_else(|| PluginError::msg("start called before init"))?
            .clone();
        let engine = DataHandle::require_engine(cx)?;
        let settings = service.settings().clone();
        let delivery = delivery_for(&settings, cx.cluster())?;
        let table = JobTable::new(engine);
        let (core, completions) = Core::new(
            settings.clone(),
            table,
            &cx.cluster().node_id,
            service.handlers.clone(),
        );
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = vec![
            tokio::spawn(core.clone().complete_loop(completions)),
            tokio::spawn(maintain(service.clone(), core.clone(), stop_rx.clone())),
        ];
        if settings.scheduler {
            tasks.push(tokio::spawn(schedule::run(
                service.clone(),
                core.clone(),
                stop_rx,
            )));
        }
        let mut queues: Vec<String> = settings.queues.keys().cloned().collect();
        if !queues.iter().any(|q| q == DEFAULT_QUEUE) {
            queues.push(DEFAULT_QUEUE.to_owned());
        }
        delivery
            .start(core.clone(), queues)
            .await
            .map_err(|e| PluginError::msg(e.to_string()))?;
        if service
            .running
            .set(Running {
                core: core.clone(),
                delivery,
            })
            .is_err()
        {
            return Err(PluginError::msg("com.objectos.jobs started twice"));
        }
        *self.tasks.lock() = tasks;
        *self.stop.lock() = Some(stop_tx);
        tracing::info!(
            plugin = PLUGIN_ID,
            worker = %core.worker(),
            backend = ?settings.backend,
            "Job queue started."
        );
        Ok(())
    }

    async fn health(&self) -> HealthReport {
        let Some(service) = self.service.get() else {
            return HealthReport::with_status(HealthStatus::Unhealthy, "not initialised");
        };
        let Some(running) = service.running.get() else {
            return HealthReport::with_status(HealthStatus::Unhealthy, "not started");
        };
        let backend = running.delivery.name();
        let problems = service.problems.lock().clone();
        let mut report = match running.delivery.problem() {
            Some(p) => {
                HealthReport::with_status(HealthStatus::Degraded, p).backend(backend, "degraded")
            }
            None if !problems.is_empty() => {
                HealthReport::with_status(HealthStatus::Degraded, problems.join("; "))
                    .backend(backend, "running")
            }
            None => HealthReport::healthy().backend(backend, "running"),
        };
        report = report.detail("running", running.core.running());
        if let Some(transport) = running.delivery.details() {
            report = report.detail("transport", transport);
        }
        report
    }

    async fn destroy(&self, _cx: &StopContext) -> Result<(), PluginError> {
        if let Some(stop) = self.stop.lock().take() {
            let _ = stop.send(true);
        }
        if let Some(running) = self.service.get().and_then(|s| s.running.get()) {
            running.delivery.stop().await;
        }
        let mut tasks = std::mem::take(&mut *self.tasks.lock());
        // The first task is the completion writer: it runs while the core lives, so it gets a
        // moment to write what finished and is then stopped (anything unwritten runs again
        // after its lease: delivery is at least once). The others saw `stop`.
        let writer = if tasks.is_empty() {
            None
        } else {
            Some(tasks.remove(0))
        };
        for mut t in tasks {
            if tokio::time::timeout(Duration::from_secs(2), &mut t)
                .await
                .is_err()
            {
                t.abort();
            }
        }
        if let Some(w) = writer {
            tokio::time::sleep(Duration::from_millis(50)).await;
            w.abort();
        }
        Ok(())
    }
}
