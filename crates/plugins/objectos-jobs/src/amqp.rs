//! RabbitMQ delivery for the jobs plugin (`jobs.backend: rabbitmq`), through `lapin`.
//!
//! The job table stays the record of truth and doubles as the outbox; RabbitMQ only carries job
//! ids from the node that enqueued a job to the node that runs it:
//!
//! - a **relay** reads committed rows the broker has not confirmed yet ([`JobRows::unpublished`]),
//!   publishes them with publisher confirms and marks them published; a crash between the commit
//!   and the confirm only means the relay (of any node) publishes the row again later;
//! - **consumers** (manual acks, a prefetch per queue) hand the ids delivered together to
//!   [`JobRows::take`], which claims their rows in one statement (the lease is the
//!   de-duplication); each claimed job then runs as its own task and records its outcome; the
//!   message is acknowledged only after that, so a worker that dies mid-job leaves it
//!   unacknowledged and RabbitMQ delivers it again (at least once);
//! - a retry goes through a delay tier (a queue whose messages expire back into the work exchange)
//!   before the message is acknowledged; a job out of attempts is rejected into the dead-letter
//!   exchange;
//! - a **supervisor** owns the one connection (a channel per consumer plus one for publishing),
//!   declares the topology idempotently on every connect, and reconnects with exponential backoff
//!   and jitter; [`AmqpBackend::status`] reports its state for `/health` and discovery, with the
//!   URL's password masked.

mod acks;
mod consumer;
mod relay;
mod topology;
mod wiring;

#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use lapin::options::ConfirmSelectOptions;
use lapin::{Channel, Connection, ConnectionProperties};
use objectos_kernel::cluster::redact_url;
use objectos_spec::settings::Secret;
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use crate::error::JobsError;

pub use topology::{DELAY_TIERS_MS, Topology, TopologyCleanup, delete_topology};
pub use wiring::{RabbitmqDelivery, RabbitmqSettings};

/// The prefix of every exchange and queue name unless configured otherwise.
pub const DEFAULT_PREFIX: &str = "objectos";
/// Unacknowledged deliveries a node holds per queue unless configured otherwise.
pub const DEFAULT_PREFETCH: u16 = 64;
/// The highest message priority unless configured otherwise (RabbitMQ advises at most 10 levels).
pub const DEFAULT_MAX_PRIORITY: u8 = 9;

/// A job the relay should hand to the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The job row's id; the message carries nothing else of the job.
    pub id: String,
    /// The job queue, which is also the routing key and the RabbitMQ queue's suffix.
    pub queue: String,
    /// The job's priority: higher runs first; clamped to the queues' 0..=`max_priority`.
    pub priority: i32,
}

/// A job id the broker delivered to this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The job row's id.
    pub id: String,
    /// The job queue it was delivered from.
    pub queue: String,
    /// RabbitMQ delivered it before without an acknowledgement (a worker died or its connection
    /// dropped); the row decides whether it still has to run.
    pub redelivered: bool,
}

/// What became of a delivered job, as recorded in the job table by a [`JobRun`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The row needs nothing more from this message: the job ran and completed, or it was already
    /// finished, cancelled or deleted (a duplicate delivery). The message is acknowledged.
    Done,
    /// The row wants another delivery after this delay: a failed attempt with attempts left (the
    /// row records the backoff), a job not due yet, or a row another worker still leases. The
    /// message goes through a delay tier, then is acknowledged.
    RetryAfter(Duration),
    /// The job is out of attempts and the row is in the dead-letter store (replay goes through the
    /// table). The message is rejected into the dead-letter exchange.
    DeadLetter,
}

/// What finishes one delivered job (see [`JobRows::take`]): run it as its own task, then
/// acknowledge, delay or reject the message by the outcome.
pub type JobRun = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Outcome, JobsError>> + Send + 'static>,
>;

/// What the RabbitMQ backend needs from the job table, implemented by the jobs plugin's store.
///
/// Every method may be called from several nodes at once for the same rows: the relay of every
/// node may publish a row, and a row may be delivered twice. [`JobRows::take`]'s claim is what
/// makes a job run once in the normal case.
#[async_trait]
pub trait JobRows: Send + Sync + 'static {
    /// Up to `limit` committed, due jobs that no relay has had confirmed yet, oldest first,
    /// held for this relay (other nodes' relays skip them) until [`JobRows::mark_published`],
    /// [`JobRows::release_unpublished`] or the hold's expiry.
    async fn unpublished(&self, limit: usize) -> Result<Vec<Outgoing>, JobsError>;

    /// Records that the broker confirmed these jobs, so no relay publishes them again.
    async fn mark_published(&self, ids: &[String]) -> Result<(), JobsError>;

    /// Hands back jobs taken by [`JobRows::unpublished`] that the broker did not confirm, so
    /// the next round publishes them.
    async fn release_unpublished(&self, ids: &[String]) -> Result<(), JobsError>;

    /// Claims the rows of a batch of delivered jobs (one statement where the table allows)
    /// and returns, in the same order, what finishes each delivery: the handler's run and its
    /// recorded outcome for a claimed row, the duplicate or not-yet-due check for the others.
    /// An error (here or from a run) means the table could not be reached: the delivery is
    /// retried after a short delay.
    async fn take(&self, jobs: Vec<Delivered>) -> Result<Vec<JobRun>, JobsError>;
}

/// Settings of the RabbitMQ backend (`jobs.rabbitmq` in `objectos.yml`; the URL comes from the
/// cluster settings).
#[derive(Debug, Clone)]
pub struct AmqpSettings {
    /// `amqp://user:password@host:port/vhost` (or `amqps://`).
    pub url: Secret,
    /// Prefix of every exchange and queue name (`[a-z0-9._-]`, at most 64 characters).
    pub prefix: String,
    /// The job queues this node consumes from the start, each declared as a durable RabbitMQ
    /// queue; [`AmqpBackend::consume`] adds more while running.
    pub queues: Vec<AmqpQueue>,
    /// The highest message priority (declared as the queues' `x-max-priority`, 1 to 255).
    pub max_priority: u8,
    /// How many rows the relay publishes per round.
    pub relay_batch: usize,
    /// At most how many deliveries a consumer claims in one statement.
    pub claim_batch: usize,
    /// How often the relay looks for rows nobody told it about (enqueued by other nodes, or left
    /// unpublished by a crash); enqueues on this node wake it at once ([`AmqpBackend::wake`]).
    pub relay_interval: Duration,
    /// The node's name, shown in the broker's connection list.
    pub connection_name: String,
}

/// One job queue this node consumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmqpQueue {
    /// The job queue's name (`[a-z0-9._-]`).
    pub name: String,
    /// Unacknowledged deliveries this node holds for the queue: the jobs running here, being
    /// claimed, or waiting for their outcome's write (how many run at once is the table side's
    /// business: the plugin's `workers`).
    pub prefetch: u16,
}

impl AmqpSettings {
    /// Settings with the defaults for `url`, consuming `queues` with the default prefetch.
    pub fn new(url: Secret, queues: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            url,
            prefix: DEFAULT_PREFIX.to_owned(),
            queues: queues
                .into_iter()
                .map(|name| AmqpQueue {
                    name: name.into(),
                    prefetch: DEFAULT_PREFETCH,
                })
                .collect(),
            max_priority: DEFAULT_MAX_PRIORITY,
            relay_batch: 500,
            claim_batch: 256,
            relay_interval: Duration::from_millis(250),
            connection_name: "objectos".to_owned(),
        }
    }
}

/// Where the connection to the broker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum AmqpState {
    /// The first connection attempt has not finished.
    Connecting,
    /// Connected, topology declared, consumers running.
    Connected,
    /// The connection failed or dropped; the backend retries with backoff (see `lastError`).
    Reconnecting,
    /// Stopped by [`AmqpBackend::stop`].
    Stopped,
}

/// A snapshot of the backend for `/health` and discovery; it never contains the URL's password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AmqpStatus {
    /// `rabbitmq`.
    pub backend: &'static str,
    /// The connection's state.
    pub state: AmqpState,
    /// The broker URL with its password replaced by `***`.
    pub url: String,
    /// When the state last changed.
    pub since: DateTime<Utc>,
    /// Failed connection attempts since the last successful one.
    pub attempts: u32,
    /// Why the last connection attempt or connection failed (password masked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Jobs the broker confirmed since start.
    pub published: u64,
    /// Deliveries acknowledged since start.
    pub acknowledged: u64,
    /// Deliveries sent through a delay tier since start.
    pub delayed: u64,
    /// Deliveries rejected into the dead-letter exchange since start.
    pub dead_lettered: u64,
}

/// Counters shown in [`AmqpStatus`].
#[derive(Debug, Default)]
struct Counters {
    published: AtomicU64,
    acknowledged: AtomicU64,
    delayed: AtomicU64,
    dead_lettered: AtomicU64,
}

#[derive(Debug, Clone)]
struct Link {
    state: AmqpState,
    since: DateTime<Utc>,
    attempts: u32,
    last_error: Option<String>,
}

/// State shared by the supervisor, the relay and the consumers.
struct Shared {
    settings: AmqpSettings,
    topology: Topology,
    table: Arc<dyn JobRows>,
    link: Mutex<Link>,
    counters: Counters,
    /// The queues consumed: the configured ones, then those added while running.
    queues: Mutex<Vec<AmqpQueue>>,
    /// Woken when a queue is added, so the running session consumes it too.
    queues_changed: Notify,
    /// Woken by enqueues on this node so the relay publishes at once.
    wake: Notify,
    /// Flips to `true` on stop.
    stop: watch::Sender<bool>,
    /// Flips to `true` once stop has waited for the running jobs, so the connection they
    /// acknowledge on stays open until then.
    drained: watch::Sender<bool>,
    /// Jobs running for deliveries; aborted when the node is killed, drained on stop.
    jobs: Mutex<JoinSet<()>>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("topology", &self.topology)
            .field("link", &*self.link.lock())
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn set_link(&self, state: AmqpState, error: Option<String>) {
        let mut link = self.link.lock();
        if link.state != state {
            link.since = Utc::now();
        }
        link.state = state;
        match state {
            AmqpState::Connected => {
                link.attempts = 0;
                link.last_error = None;
            }
            AmqpState::Reconnecting => {
                link.attempts = link.attempts.saturating_add(1);
                link.last_error = error;
            }
            AmqpState::Connecting | AmqpState::Stopped => {}
        }
    }

    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// An error text with the URL's password masked, whatever the library put into it.
    fn redact(&self, error: impl fmt::Display) -> String {
        redact_text(&error.to_string(), self.settings.url.expose())
    }

    /// Runs a job's future next to the others so that stop can wait for it and a kill abort it.
    fn spawn_job(&self, job: impl Future<Output = ()> + Send + 'static) {
        let mut jobs = self.jobs.lock();
        while jobs.try_join_next().is_some() {}
        jobs.spawn(job);
    }
}

/// The RabbitMQ backend of one node: a supervised connection, the outbox relay and the consumers.
#[derive(Debug, Clone)]
pub struct AmqpBackend {
    shared: Arc<Shared>,
    supervisor: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl AmqpBackend {
    /// Checks the settings; nothing connects before [`AmqpBackend::start`].
    pub fn new(settings: AmqpSettings, table: Arc<dyn JobRows>) -> Result<Self, JobsError> {
        let topology = Topology::new(&settings.prefix, settings.max_priority)?;
        for queue in &settings.queues {
            topology.work_queue(&queue.name)?;
            if queue.prefetch == 0 {
                return Err(JobsError::Config(format!(
                    "jobs.rabbitmq: queue `{}` has prefetch 0; it must be at least 1",
                    queue.name
                )));
            }
        }
        if settings.relay_batch == 0 {
            return Err(JobsError::Config(
                "jobs.rabbitmq.relayBatch must be at least 1".to_owned(),
            ));
        }
        let (stop, _) = watch::channel(false);
        let (drained, _) = watch::channel(false);
        Ok(Self {
            shared: Arc::new(Shared {
                queues: Mutex::new(settings.queues.clone()),
                queues_changed: Notify::new(),
                settings,
                topology,
                table,
                link: Mutex::new(Link {
                    state: AmqpState::Connecting,
                    since: Utc::now(),
                    attempts: 0,
                    last_error: None,
                }),
                counters: Counters::default(),
                wake: Notify::new(),
                stop,
                drained,
                jobs: Mutex::new(JoinSet::new()),
            }),
            supervisor: Arc::new(Mutex::new(None)),
        })
    }

    /// Spawns the supervisor, which connects in the background: start never waits for the broker
    /// (enqueues keep landing in the table while it is unreachable). Calling it twice does nothing.
    pub fn start(&self) {
        let mut supervisor = self.supervisor.lock();
        if supervisor.is_none() {
            *supervisor = Some(tokio::spawn(supervise(Arc::clone(&self.shared))));
        }
    }

    /// Tells the relay that rows were committed, so it publishes now instead of at its next poll.
    pub fn wake(&self) {
        self.shared.wake.notify_one();
    }

    /// Consumes job queue `queue` too (from the running session on, and after every
    /// reconnect); nothing happens when it is consumed already or its name is not usable.
    pub fn consume(&self, queue: AmqpQueue) -> Result<(), JobsError> {
        self.shared.topology.work_queue(&queue.name)?;
        let mut queues = self.shared.queues.lock();
        if queues.iter().all(|q| q.name != queue.name) {
            queues.push(queue);
            drop(queues);
            self.shared.queues_changed.notify_one();
        }
        Ok(())
    }

    /// Whether job queue `queue` is consumed by this node.
    pub fn consumes(&self, queue: &str) -> bool {
        self.shared.queues.lock().iter().any(|q| q.name == queue)
    }

    /// The connection's state and counters; cheap, no I/O.
    pub fn status(&self) -> AmqpStatus {
        let link = self.shared.link.lock().clone();
        let counters = &self.shared.counters;
        AmqpStatus {
            backend: "rabbitmq",
            state: link.state,
            url: redact_url(self.shared.settings.url.expose()),
            since: link.since,
            attempts: link.attempts,
            last_error: link.last_error,
            published: counters.published.load(Ordering::Relaxed),
            acknowledged: counters.acknowledged.load(Ordering::Relaxed),
            delayed: counters.delayed.load(Ordering::Relaxed),
            dead_lettered: counters.dead_lettered.load(Ordering::Relaxed),
        }
    }

    /// The names this backend declares.
    pub fn topology(&self) -> &Topology {
        &self.shared.topology
    }

    /// Stops consuming and publishing, waits up to `grace` for running jobs (their deliveries are
    /// acknowledged if they finish; the broker delivers the others again elsewhere), then closes
    /// the connection. Idempotent.
    pub async fn stop(&self, grace: Duration) {
        self.shared.stop.send_replace(true);
        let supervisor = self.supervisor.lock().take();
        let mut jobs = std::mem::take(&mut *self.shared.jobs.lock());
        let drained =
            tokio::time::timeout(grace, async { while jobs.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            jobs.abort_all();
        }
        self.shared.drained.send_replace(true);
        if let Some(supervisor) = supervisor {
            // The supervisor notices the stop flag and closes its connection; a session stuck in
            // a broker call is cut off instead.
            let abort = supervisor.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), supervisor)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
        self.shared.set_link(AmqpState::Stopped, None);
    }

    /// What a crash looks like to the broker: the connection goes away without a close and every
    /// running job is abandoned without an acknowledgement. For tests of redelivery.
    #[cfg(test)]
    pub(crate) fn kill(&self) {
        self.shared.stop.send_replace(true);
        self.shared.jobs.lock().abort_all();
        if let Some(supervisor) = self.supervisor.lock().take() {
            supervisor.abort();
        }
        self.shared.set_link(AmqpState::Stopped, None);
    }
}

/// Connects, runs a session until the connection fails, and tries again with backoff, until stop.
async fn supervise(shared: Arc<Shared>) {
    let mut stop = shared.stop.subscribe();
    let mut attempt: u32 = 0;
    loop {
        if shared.stopping() {
            return;
        }
        let error = match session(&shared).await {
            Ok(()) => return,
            Err(error) => error,
        };
        if shared.stopping() {
            return;
        }
        attempt = attempt.saturating_add(1);
        let text = shared.redact(&error);
        tracing::warn!(
            url = %redact_url(shared.settings.url.expose()),
            attempt,
            error = %text,
            "jobs: RabbitMQ connection failed; enqueued jobs wait in the job table until it is back"
        );
        shared.set_link(AmqpState::Reconnecting, Some(text));
        let pause = backoff(attempt);
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = stopped(&mut stop) => return,
        }
        // A connection that worked resets the backoff.
        if shared.link.lock().attempts == 0 {
            attempt = 0;
        }
    }
}

/// The delay before reconnection attempt `attempt` (1-based): 100 ms doubling up to 30 s, with up
/// to a quarter of jitter so nodes that lost the broker together do not return in step.
fn backoff(attempt: u32) -> Duration {
    let base_ms = 100u64.saturating_mul(1u64 << attempt.saturating_sub(1).min(9));
    let base_ms = base_ms.min(30_000);
    let jitter = (uuid::Uuid::new_v4().as_u128() % 1_000) as u64;
    Duration::from_millis(base_ms + base_ms * jitter / 4_000)
}

/// Resolves once stop was requested. The watch's guard stays inside, so callers' futures stay
/// `Send`.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

/// Why a session ended.
#[derive(Debug)]
enum SessionEnd {
    Broker(lapin::Error),
    Timeout(&'static str),
    Closed(&'static str),
}

impl fmt::Display for SessionEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Broker(error) => write!(f, "{error}"),
            Self::Timeout(what) => write!(f, "timed out while {what}"),
            Self::Closed(what) => write!(f, "{what}"),
        }
    }
}

impl From<lapin::Error> for SessionEnd {
    fn from(error: lapin::Error) -> Self {
        Self::Broker(error)
    }
}

/// How long connecting and declaring the topology may take before the attempt counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// One connection's life: connect, declare, consume and relay until the connection fails (an
/// error) or stop is requested (`Ok`).
async fn session(shared: &Arc<Shared>) -> Result<(), SessionEnd> {
    let connection = tokio::time::timeout(CONNECT_TIMEOUT, connect(shared))
        .await
        .map_err(|_| SessionEnd::Timeout("connecting to RabbitMQ"))??;
    let result = run_connected(shared, &connection).await;
    if result.is_ok() {
        // Stop: the consumers are cancelled; the jobs still running acknowledge on this
        // connection, so it closes only once stop has waited for them.
        let mut drained = shared.drained.subscribe();
        let _ = tokio::time::timeout(Duration::from_secs(60), drained.wait_for(|done| *done)).await;
        // A clean close lets the broker hand this node's unacknowledged deliveries to others now.
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            connection.close(200, "objectos node stopping".into()),
        )
        .await;
    }
    result
}

async fn connect(shared: &Shared) -> Result<Connection, SessionEnd> {
    let properties = ConnectionProperties::default()
        .with_connection_name(shared.settings.connection_name.clone().into());
    let connection = Connection::connect(shared.settings.url.expose(), properties).await?;
    let setup = connection.create_channel().await?;
    shared.topology.declare(&setup).await?;
    let queues = shared.queues.lock().clone();
    for queue in &queues {
        shared
            .topology
            .declare_work_queue(&setup, &queue.name)
            .await?;
    }
    // Best effort: the channel is only for the declarations above.
    let _ = setup.close(200, "topology declared".into()).await;
    Ok(connection)
}

async fn publisher_channel(connection: &Connection) -> Result<Channel, lapin::Error> {
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok(channel)
}

async fn run_connected(shared: &Arc<Shared>, connection: &Connection) -> Result<(), SessionEnd> {
    // The relay and the retry path publish on separate channels so a relay batch waiting for its
    // confirms does not hold up a consumer's retry.
    let relay_channel = publisher_channel(connection).await?;
    let retry_channel = publisher_channel(connection).await?;
    let mut consumed: Vec<String> = Vec::new();
    let mut tasks: JoinSet<Result<(), SessionEnd>> = JoinSet::new();
    let queues = shared.queues.lock().clone();
    for queue in &queues {
        let consumer = consumer::open(shared, connection, queue).await?;
        tasks.spawn(consumer::run(
            Arc::clone(shared),
            queue.name.clone(),
            consumer,
            retry_channel.clone(),
            claim_batch(shared, queue),
        ));
        consumed.push(queue.name.clone());
    }
    shared.set_link(AmqpState::Connected, None);
    tracing::info!(
        url = %redact_url(shared.settings.url.expose()),
        queues = consumed.len(),
        "jobs: connected to RabbitMQ"
    );

    let mut stop = shared.stop.subscribe();
    tasks.spawn(relay::run(Arc::clone(shared), relay_channel));
    // The consumers and the relay see a dropped connection on their next broker call; the tick
    // catches it when every queue is idle and nothing is being relayed.
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let end = loop {
        tokio::select! {
            () = stopped(&mut stop) => break Ok(()),
            ended = tasks.join_next() => break match ended {
                Some(Ok(Ok(()))) | None => Err(SessionEnd::Closed("a RabbitMQ consumer was cancelled")),
                Some(Ok(Err(error))) => Err(error),
                Some(Err(_)) => Err(SessionEnd::Closed("a RabbitMQ task panicked")),
            },
            _ = tick.tick() => {
                if !connection.status().connected() {
                    break Err(SessionEnd::Closed("the RabbitMQ connection closed"));
                }
            }
            () = shared.queues_changed.notified() => {
                // Queues added while connected: declared and consumed now; a failure ends the
                // session, and the next one consumes them from the start.
                let queues = shared.queues.lock().clone();
                for queue in queues {
                    if consumed.contains(&queue.name) {
                        continue;
                    }
                    let opened = async {
                        let setup = connection.create_channel().await?;
                        shared.topology.declare_work_queue(&setup, &queue.name).await?;
                        let _ = setup.close(200, "queue declared".into()).await;
                        consumer::open(shared, connection, &queue).await
                    };
                    match opened.await {
                        Ok(consumer) => {
                            tasks.spawn(consumer::run(
                                Arc::clone(shared),
                                queue.name.clone(),
                                consumer,
                                retry_channel.clone(),
                                claim_batch(shared, &queue),
                            ));
                            consumed.push(queue.name);
                        }
                        Err(error) => {
                            tasks.abort_all();
                            return Err(error.into());
                        }
                    }
                }
            }
        }
    };
    tasks.abort_all();
    end
}

/// How many deliveries of `queue` one claim statement takes at most.
fn claim_batch(shared: &Shared, queue: &AmqpQueue) -> usize {
    usize::from(queue.prefetch).min(shared.settings.claim_batch.max(1))
}

/// `text` with the URL's password replaced by `***` wherever it appears (a library error may
/// quote the URL it failed to use).
fn redact_text(text: &str, url: &str) -> String {
    let password = url
        .split_once("://")
        .and_then(|(_, rest)| {
            let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
            authority.rsplit_once('@')
        })
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, password)| password)
        .filter(|password| !password.is_empty());
    match password {
        Some(password) => text.replace(password, "***"),
        None => text.to_owned(),
    }
}
