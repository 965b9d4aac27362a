//! The Redis streams event transport: every node appends its events to one stream (`XADD`,
//! trimmed with `MAXLEN ~`) and reads everyone's from the last id it has seen (`XREAD BLOCK`),
//! skipping the entries it wrote itself.
//!
//! Two tasks, neither of which the bus ever waits on: the writer drains a bounded in-memory
//! queue into Redis in pipelined batches (a batch that fails is kept and sent again after a
//! reconnect, so an event may reach Redis twice but is not lost), and the reader delivers the
//! other nodes' entries to the local bus, resuming from its last id after any connection
//! drop. Both reconnect with capped, jittered exponential backoff and report their state.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use deadpool_redis::redis::{self, AsyncConnectionConfig, Value};
use deadpool_redis::{Hook, HookError, Manager, Pool, Runtime};
use objectos_kernel::{EventTransport, InboundSink, KernelError};
use objectos_spec::health::detail;
use objectos_spec::{Event, HealthReport, HealthStatus};
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::EventsSettings;
use crate::error::{ClusterError, Result};

/// Entry fields: the writing node and the event as JSON.
const FIELD_NODE: &str = "node";
const FIELD_EVENT: &str = "event";
/// Events per `XADD` pipeline and per `XREAD`.
const BATCH: usize = 256;
/// How long opening a connection may take before it counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a command other than the blocking read may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// Extra time the blocking read gets on top of its server-side block, so a slow network is
/// not taken for a dead connection.
const READ_SLACK: Duration = Duration::from_secs(5);
/// First reconnect pause; it doubles up to the configured maximum.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// One side of the link to Redis.
#[derive(Debug, Clone)]
enum Link {
    /// Not tried yet (the writer before its first event, the reader before its first connect).
    Idle,
    Connected,
    Reconnecting {
        error: String,
        since: Instant,
        attempts: u32,
    },
}

impl Link {
    fn failed(&mut self, error: String) {
        *self = match std::mem::replace(self, Link::Idle) {
            Link::Reconnecting {
                since, attempts, ..
            } => Link::Reconnecting {
                error,
                since,
                attempts: attempts.saturating_add(1),
            },
            _ => Link::Reconnecting {
                error,
                since: Instant::now(),
                attempts: 1,
            },
        };
    }
}

#[derive(Debug)]
struct Status {
    reader: Link,
    writer: Link,
}

#[derive(Debug, Default)]
struct Stats {
    published: AtomicU64,
    received: AtomicU64,
    dropped: AtomicU64,
    undecodable: AtomicU64,
    gaps: AtomicU64,
    /// Events taken off the queue whose `XADD` has not succeeded yet.
    in_flight: AtomicUsize,
}

/// State shared by the transport, its tasks and its health report.
#[derive(Debug)]
struct Shared {
    node_id: String,
    settings: EventsSettings,
    /// The password part of the URL, scrubbed from every error text kept or logged.
    password: Option<String>,
    tx: mpsc::Sender<Arc<Event>>,
    inbound: OnceLock<InboundSink>,
    status: Mutex<Status>,
    stats: Stats,
}

/// Carries the event bus across nodes through one Redis stream. Build it with
/// [`RedisTransport::new`], install it on the bus (the plugin contributes it), then
/// [`RedisTransport::start`] it; [`RedisTransport::stop`] flushes what is queued and ends it.
pub struct RedisTransport {
    shared: Arc<Shared>,
    client: redis::Client,
    pool: Pool,
    rx: Mutex<Option<mpsc::Receiver<Arc<Event>>>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for RedisTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No URL here: it may carry a password.
        f.debug_struct("RedisTransport")
            .field("node_id", &self.shared.node_id)
            .field("stream", &self.shared.settings.stream)
            .finish_non_exhaustive()
    }
}

impl RedisTransport {
    /// Parses the URL and prepares the connections; nothing is opened until
    /// [`RedisTransport::start`], so this works while Redis is down.
    pub fn new(url: &str, node_id: &str, settings: EventsSettings) -> Result<Self> {
        let password = password_of(url);
        let scrub = |e: &redis::RedisError| scrub(&e.to_string(), password.as_deref());
        let client = redis::Client::open(url).map_err(|e| ClusterError::Url(scrub(&e)))?;
        let manager = Manager::new_with_config(
            url,
            AsyncConnectionConfig::new()
                .set_connection_timeout(Some(CONNECT_TIMEOUT))
                .set_response_timeout(Some(COMMAND_TIMEOUT)),
        )
        .map_err(|e| ClusterError::Url(scrub(&e)))?;
        // One writer task uses it; the second slot lets a replacement connect while a broken
        // one is still being dropped.
        let writer_name = writer_name(node_id);
        let pool = Pool::builder(manager)
            .max_size(2)
            // Named like the reader, so `CLIENT LIST` shows whose connection it is.
            .post_create(Hook::async_fn(move |conn, _| {
                let name = writer_name.clone();
                Box::pin(async move {
                    redis::cmd("CLIENT")
                        .arg("SETNAME")
                        .arg(name)
                        .query_async::<()>(conn)
                        .await
                        .map_err(HookError::Backend)
                })
            }))
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(CONNECT_TIMEOUT))
            .wait_timeout(Some(COMMAND_TIMEOUT))
            .recycle_timeout(Some(COMMAND_TIMEOUT))
            .build()
            .map_err(|e| ClusterError::Url(e.to_string()))?;
        let (tx, rx) = mpsc::channel(settings.buffer.max(1));
        Ok(Self {
            shared: Arc::new(Shared {
                node_id: node_id.to_owned(),
                settings,
                password,
                tx,
                inbound: OnceLock::new(),
                status: Mutex::new(Status {
                    reader: Link::Idle,
                    writer: Link::Idle,
                }),
                stats: Stats::default(),
            }),
            client,
            pool,
            rx: Mutex::new(Some(rx)),
            tasks: Mutex::new(Vec::new()),
        })
    }

    /// This node's id, written into every entry so the node can skip its own.
    pub fn node_id(&self) -> &str {
        &self.shared.node_id
    }

    /// The Redis stream key.
    pub fn stream(&self) -> &str {
        &self.shared.settings.stream
    }

    /// The `CLIENT SETNAME` of the reader's connection (`objectos-events:<node id>`), so an
    /// operator can find it in `CLIENT LIST`.
    pub fn reader_client_name(&self) -> String {
        reader_name(&self.shared.node_id)
    }

    /// The `CLIENT SETNAME` of the writer's connections (`objectos-events-writer:<node id>`).
    pub fn writer_client_name(&self) -> String {
        writer_name(&self.shared.node_id)
    }

    /// Spawns the writer and, if the transport is installed on a bus, the reader. A second
    /// call does nothing. Must run inside a Tokio runtime.
    pub fn start(&self) {
        let Some(rx) = self.rx.lock().take() else {
            return;
        };
        let mut tasks = self.tasks.lock();
        tasks.push(tokio::spawn(write_loop(
            self.shared.clone(),
            self.pool.clone(),
            rx,
        )));
        if let Some(inbound) = self.shared.inbound.get().cloned() {
            tasks.push(tokio::spawn(read_loop(
                self.shared.clone(),
                self.client.clone(),
                inbound,
            )));
        }
    }

    /// Waits up to `drain` for queued events to reach Redis, then ends both tasks. Returns how
    /// many events were still waiting (they stay on this node).
    pub async fn stop(&self, drain: Duration) -> usize {
        let deadline = Instant::now() + drain;
        let running = !self.tasks.lock().is_empty();
        while running && self.waiting() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let left = self.waiting();
        for task in self.tasks.lock().drain(..) {
            task.abort();
        }
        if left > 0 {
            tracing::warn!(
                waiting = left,
                "Stopping with events not yet sent to other nodes; they were delivered on this node only."
            );
        }
        left
    }

    /// Events accepted for other nodes and not yet in Redis.
    pub fn waiting(&self) -> usize {
        let queued = self.shared.tx.max_capacity() - self.shared.tx.capacity();
        queued + self.shared.stats.in_flight.load(Ordering::Acquire)
    }

    /// True while both the reader (if any) and the writer have a working connection.
    pub fn is_connected(&self) -> bool {
        let status = self.shared.status.lock();
        let reading =
            self.shared.inbound.get().is_none() || matches!(status.reader, Link::Connected);
        reading && !matches!(status.writer, Link::Reconnecting { .. })
    }

    /// `healthy` while connected, `degraded` while reconnecting (local delivery goes on),
    /// `recovering` before the first connection; `details` carry backend, state, counters and
    /// the last error (never the URL).
    pub fn health(&self) -> HealthReport {
        let s = &self.shared;
        let status = s.status.lock();
        let failing = [("reader", &status.reader), ("writer", &status.writer)]
            .into_iter()
            .find_map(|(side, link)| match link {
                Link::Reconnecting {
                    error,
                    since,
                    attempts,
                } => Some((side, error.clone(), *since, *attempts)),
                _ => None,
            });
        let reading = s.inbound.get().is_none() || matches!(status.reader, Link::Connected);
        drop(status);
        let waiting = self.waiting();
        let report = match &failing {
            Some((side, error, since, attempts)) => HealthReport::with_status(
                HealthStatus::Degraded,
                format!(
                    "event bus: the Redis {side} has been reconnecting for {}s ({attempts} attempts, last error: {error}); events reach this node's subscribers only, {waiting} waiting to be sent",
                    since.elapsed().as_secs()
                ),
            )
            .backend("redis", "reconnecting")
            .detail("lastError", error.clone()),
            None if !reading => HealthReport::with_status(
                HealthStatus::Recovering,
                "event bus: connecting to Redis",
            )
            .backend("redis", "connecting"),
            None => HealthReport::healthy().backend("redis", "connected"),
        };
        report
            .detail(detail::SERVES, vec![detail::EVENTS])
            .detail("nodeId", s.node_id.clone())
            .detail("stream", s.settings.stream.clone())
            .detail("published", s.stats.published.load(Ordering::Relaxed))
            .detail("received", s.stats.received.load(Ordering::Relaxed))
            .detail("dropped", s.stats.dropped.load(Ordering::Relaxed))
            .detail("waiting", waiting)
            .detail("gaps", s.stats.gaps.load(Ordering::Relaxed))
    }
}

#[async_trait]
impl EventTransport for RedisTransport {
    fn name(&self) -> &str {
        "redis"
    }

    /// Queues the event for the writer without waiting: Redis being slow or down never holds
    /// up the publisher. A full queue drops the event for other nodes (counted, logged).
    async fn publish(&self, event: &Event) -> std::result::Result<(), KernelError> {
        match self.shared.tx.try_send(Arc::new(event.clone())) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                let n = self.shared.stats.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                // The first and then every thousandth, so an outage does not flood the log.
                if n == 1 || n.is_multiple_of(1000) {
                    tracing::warn!(
                        event = %event.name,
                        dropped = n,
                        buffer = self.shared.settings.buffer,
                        "Event queue for other nodes is full (Redis unreachable?); the event reached this node only."
                    );
                }
                Ok(())
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(KernelError::Transport {
                transport: "redis".into(),
                message: "the transport has stopped".into(),
            }),
        }
    }

    fn subscribe(&self, inbound: InboundSink) {
        let _ = self.shared.inbound.set(inbound);
    }
}

/// Drains the queue into Redis; a failed batch is retried (after a pause) until it is in.
async fn write_loop(shared: Arc<Shared>, pool: Pool, mut rx: mpsc::Receiver<Arc<Event>>) {
    let mut batch: Vec<Arc<Event>> = Vec::with_capacity(BATCH);
    let mut backoff = Backoff::new(shared.settings.max_backoff_ms);
    loop {
        if batch.is_empty() {
            if rx.recv_many(&mut batch, BATCH).await == 0 {
                return;
            }
            shared.stats.in_flight.store(batch.len(), Ordering::Release);
        }
        match shared.append(&pool, &batch).await {
            Ok(()) => {
                shared
                    .stats
                    .published
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                batch.clear();
                shared.stats.in_flight.store(0, Ordering::Release);
                shared.connected(Side::Writer);
                backoff.reset();
            }
            Err(error) => {
                shared.failed(Side::Writer, &error);
                tokio::time::sleep(backoff.next_pause()).await;
            }
        }
    }
}

/// Reads other nodes' entries and delivers them locally, reconnecting and resuming from the
/// last id seen. Ends when the bus is closed.
async fn read_loop(shared: Arc<Shared>, client: redis::Client, inbound: InboundSink) {
    let mut last: Option<String> = None;
    let mut backoff = Backoff::new(shared.settings.max_backoff_ms);
    loop {
        match shared
            .read_session(&client, &inbound, &mut last, &mut backoff)
            .await
        {
            Ok(()) => return,
            Err(error) => {
                shared.failed(Side::Reader, &error);
                tokio::time::sleep(backoff.next_pause()).await;
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Side {
    Reader,
    Writer,
}

impl Shared {
    fn connected(&self, side: Side) {
        let mut status = self.status.lock();
        let link = match side {
            Side::Reader => &mut status.reader,
            Side::Writer => &mut status.writer,
        };
        if let Link::Reconnecting { since, .. } = link {
            tracing::info!(
                side = ?side,
                after_ms = since.elapsed().as_millis() as u64,
                "Event bus reconnected to Redis."
            );
        }
        *link = Link::Connected;
    }

    fn failed(&self, side: Side, error: &ClusterError) {
        let text = scrub(&error.to_string(), self.password.as_deref());
        let mut status = self.status.lock();
        let link = match side {
            Side::Reader => &mut status.reader,
            Side::Writer => &mut status.writer,
        };
        // One line when the link breaks, not one per attempt.
        if !matches!(link, Link::Reconnecting { .. }) {
            tracing::warn!(side = ?side, error = %text, "Event bus lost Redis; events reach this node's subscribers only until it is back. Reconnecting.");
        }
        link.failed(text);
    }

    /// Appends a batch in one pipeline.
    async fn append(&self, pool: &Pool, batch: &[Arc<Event>]) -> Result<()> {
        let mut conn = pool.get().await.map_err(|e| ClusterError::Redis {
            what: "connect",
            message: e.to_string(),
        })?;
        let mut pipe = redis::pipe();
        for event in batch {
            let json = match serde_json::to_string(event.as_ref()) {
                Ok(json) => json,
                Err(e) => {
                    tracing::warn!(event = %event.name, error = %e, "Event could not be encoded for other nodes; it stays local.");
                    continue;
                }
            };
            pipe.cmd("XADD")
                .arg(&self.settings.stream)
                .arg("MAXLEN")
                .arg("~")
                .arg(self.settings.max_len)
                .arg("*")
                .arg(FIELD_NODE)
                .arg(&self.node_id)
                .arg(FIELD_EVENT)
                .arg(json)
                .ignore();
        }
        pipe.query_async::<()>(&mut *conn)
            .await
            .map_err(|e| ClusterError::redis("XADD", &e))
    }

    /// One connection's life: connect, find where to read from, then read until an error.
    /// `Ok` only when the bus has closed.
    async fn read_session(
        &self,
        client: &redis::Client,
        inbound: &InboundSink,
        last: &mut Option<String>,
        backoff: &mut Backoff,
    ) -> Result<()> {
        let block = Duration::from_millis(self.settings.block_ms);
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(block + READ_SLACK));
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| ClusterError::redis("connect", &e))?;
        redis::cmd("CLIENT")
            .arg("SETNAME")
            .arg(reader_name(&self.node_id))
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| ClusterError::redis("CLIENT SETNAME", &e))?;
        let stream = &self.settings.stream;
        let from = match last.clone() {
            // First connection: start at the end; what was written before this node came up
            // is history, not news.
            None => {
                let id = last_entry_id(&mut conn, stream).await?;
                *last = Some(id.clone());
                id
            }
            Some(id) => {
                self.check_gap(&mut conn, &id).await?;
                id
            }
        };
        self.connected(Side::Reader);
        backoff.reset();
        let mut from = from;
        loop {
            let reply: Value = redis::cmd("XREAD")
                .arg("COUNT")
                .arg(BATCH)
                .arg("BLOCK")
                .arg(self.settings.block_ms)
                .arg("STREAMS")
                .arg(stream)
                .arg(&from)
                .query_async(&mut conn)
                .await
                .map_err(|e| ClusterError::redis("XREAD", &e))?;
            for (id, fields) in stream_entries(reply)? {
                from.clone_from(&id);
                *last = Some(id);
                match self.decode(&fields) {
                    Decoded::Own => {}
                    Decoded::Bad(why) => {
                        self.stats.undecodable.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(stream = %stream, entry = %from, "Skipped a stream entry that is not an event: {why}.");
                    }
                    Decoded::Event(event, node) => {
                        // The per-event line operators (and the two-node test) follow an event
                        // across nodes by; off unless `objectos_cluster::inbound=trace`.
                        tracing::trace!(
                            target: "objectos_cluster::inbound",
                            event_id = %event.id,
                            event = %event.name,
                            from = %node,
                            entry = %from,
                            "Event received from another node."
                        );
                        if inbound.deliver(*event).await.is_err() {
                            return Ok(());
                        }
                        self.stats.received.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }

    /// After a reconnect: if Redis trimmed entries newer than the last one read, some events
    /// were lost to this node (it was away longer than `maxLen` events); say so.
    async fn check_gap(
        &self,
        conn: &mut redis::aio::MultiplexedConnection,
        last: &str,
    ) -> Result<()> {
        let exists: i64 = redis::cmd("EXISTS")
            .arg(&self.settings.stream)
            .query_async(conn)
            .await
            .map_err(|e| ClusterError::redis("EXISTS", &e))?;
        if exists == 0 {
            return Ok(());
        }
        let info: Value = redis::cmd("XINFO")
            .arg("STREAM")
            .arg(&self.settings.stream)
            .query_async(conn)
            .await
            .map_err(|e| ClusterError::redis("XINFO STREAM", &e))?;
        // `max-deleted-entry-id` exists from Redis 7; older servers give no answer, no warning.
        let deleted = pairs(info)
            .into_iter()
            .find(|(k, _)| text(k).as_deref() == Some("max-deleted-entry-id"))
            .and_then(|(_, v)| text(&v));
        if let Some(deleted) = deleted
            && id_after(&deleted, last)
        {
            self.stats.gaps.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                stream = %self.settings.stream,
                last_read = %last,
                trimmed_up_to = %deleted,
                max_len = self.settings.max_len,
                "Events published while this node was away from Redis were trimmed before it read them; they are lost to this node (raise events.maxLen)."
            );
        }
        Ok(())
    }

    fn decode(&self, fields: &[(Value, Value)]) -> Decoded {
        let mut node = None;
        let mut json = None;
        for (k, v) in fields {
            match text(k).as_deref() {
                Some(FIELD_NODE) => node = text(v),
                Some(FIELD_EVENT) => json = text(v),
                _ => {}
            }
        }
        if node.as_deref() == Some(self.node_id.as_str()) {
            return Decoded::Own;
        }
        let Some(json) = json else {
            return Decoded::Bad("no `event` field".into());
        };
        match serde_json::from_str::<Event>(&json) {
            Ok(event) => Decoded::Event(Box::new(event), node.unwrap_or_default()),
            Err(e) => Decoded::Bad(e.to_string()),
        }
    }
}

enum Decoded {
    Own,
    /// The event and the node that wrote it.
    Event(Box<Event>, String),
    Bad(String),
}

/// The id of the newest entry, or `0-0` for an empty or missing stream.
async fn last_entry_id(
    conn: &mut redis::aio::MultiplexedConnection,
    stream: &str,
) -> Result<String> {
    let reply: Value = redis::cmd("XREVRANGE")
        .arg(stream)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(conn)
        .await
        .map_err(|e| ClusterError::redis("XREVRANGE", &e))?;
    Ok(entries(reply)?
        .into_iter()
        .next()
        .map_or_else(|| "0-0".to_owned(), |(id, _)| id))
}

fn reader_name(node_id: &str) -> String {
    format!("objectos-events:{}", client_safe(node_id))
}

fn writer_name(node_id: &str) -> String {
    format!("objectos-events-writer:{}", client_safe(node_id))
}

/// Client names may not contain spaces or newlines.
fn client_safe(node_id: &str) -> String {
    node_id
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .collect()
}

/// One stream entry: its id and its field/value pairs.
type Entry = (String, Vec<(Value, Value)>);

/// The entries of an `XREAD` reply for one stream (RESP2 array or RESP3 map); none on timeout.
fn stream_entries(reply: Value) -> Result<Vec<Entry>> {
    let per_stream = match reply {
        Value::Nil => return Ok(Vec::new()),
        Value::Map(streams) => streams.into_iter().map(|(_, v)| v).collect(),
        Value::Array(streams) => streams
            .into_iter()
            .map(|s| match s {
                Value::Array(mut kv) if kv.len() == 2 => kv.pop().unwrap_or(Value::Nil),
                other => other,
            })
            .collect::<Vec<_>>(),
        other => {
            return Err(ClusterError::Reply {
                what: "XREAD",
                message: format!("{other:?}"),
            });
        }
    };
    let mut out = Vec::new();
    for entries_value in per_stream {
        out.extend(entries(entries_value)?);
    }
    Ok(out)
}

/// `[[id, [field, value, ...]], ...]` (fields as a RESP3 map too).
fn entries(value: Value) -> Result<Vec<Entry>> {
    let Value::Array(items) = value else {
        return match value {
            Value::Nil => Ok(Vec::new()),
            other => Err(ClusterError::Reply {
                what: "stream entries",
                message: format!("{other:?}"),
            }),
        };
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let Value::Array(mut parts) = item else {
            continue;
        };
        if parts.len() != 2 {
            continue;
        }
        let fields = parts.pop().unwrap_or(Value::Nil);
        let Some(id) = parts.pop().as_ref().and_then(text) else {
            continue;
        };
        out.push((id, pairs(fields)));
    }
    Ok(out)
}

/// Key/value pairs of a flat RESP2 array or a RESP3 map.
fn pairs(value: Value) -> Vec<(Value, Value)> {
    match value {
        Value::Map(p) => p,
        Value::Array(flat) => {
            let mut out = Vec::with_capacity(flat.len() / 2);
            let mut it = flat.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                out.push((k, v));
            }
            out
        }
        _ => Vec::new(),
    }
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

/// Whether stream id `a` (`<ms>-<seq>`) comes after `b`.
fn id_after(a: &str, b: &str) -> bool {
    fn parse(id: &str) -> (u64, u64) {
        let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
        (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
    }
    parse(a) > parse(b)
}

/// The password of `scheme://user:password@host...`, if any.
fn password_of(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let userinfo = authority.rsplit_once('@')?.0;
    let password = userinfo.split_once(':').map_or(userinfo, |(_, p)| p);
    (!password.is_empty()).then(|| password.to_owned())
}

/// Removes the password from a text that may quote the URL.
fn scrub(text: &str, password: Option<&str>) -> String {
    match password {
        Some(p) => text.replace(p, "***"),
        None => text.to_owned(),
    }
}

/// Capped exponential backoff with ±25 % jitter, so nodes that lost Redis together do not
/// all come back in the same millisecond.
#[derive(Debug)]
struct Backoff {
    next: Duration,
    max: Duration,
    hasher: RandomState,
    attempt: u64,
}

impl Backoff {
    fn new(max_ms: u64) -> Self {
        Self {
            next: FIRST_BACKOFF,
            max: Duration::from_millis(max_ms.max(1)),
            hasher: RandomState::new(),
            attempt: 0,
        }
    }

    fn reset(&mut self) {
        self.next = FIRST_BACKOFF;
    }

    fn next_pause(&mut self) -> Duration {
        self.attempt = self.attempt.wrapping_add(1);
        let base = self.next.min(self.max);
        self.next = (self.next * 2).min(self.max);
        // 0.75 .. 1.25 of the base.
        let spread = (self.hasher.hash_one(self.attempt) % 501) as f64 / 1000.0 + 0.75;
        base.mul_f64(spread)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_found_and_scrubbed() {
        assert_eq!(
            password_of("redis://:s3cret@h:6379/0").as_deref(),
            Some("s3cret")
        );
        assert_eq!(password_of("redis://u:pw@h").as_deref(), Some("pw"));
        assert_eq!(password_of("redis://h:6379"), None);
        assert_eq!(
            scrub("failed for redis://:s3cret@h", Some("s3cret")),
            "failed for redis://:***@h"
        );
    }

    #[test]
    fn ids_order_by_time_then_sequence() {
        assert!(id_after("2-0", "1-5"));
        assert!(id_after("1-6", "1-5"));
        assert!(!id_after("1-5", "1-5"));
        assert!(!id_after("0-0", "1-0"));
    }

    #[test]
    fn xread_replies_parse_in_both_protocols() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let entry = Value::Array(vec![
            bulk("5-1"),
            Value::Array(vec![bulk("node"), bulk("n1"), bulk("event"), bulk("{}")]),
        ]);
        let resp2 = Value::Array(vec![Value::Array(vec![
            bulk("s"),
            Value::Array(vec![entry.clone()]),
        ])]);
        let resp3 = Value::Map(vec![(bulk("s"), Value::Array(vec![entry]))]);
        for reply in [resp2, resp3] {
            let got = stream_entries(reply).unwrap();
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].0, "5-1");
            assert_eq!(got[0].1.len(), 2);
        }
        assert!(stream_entries(Value::Nil).unwrap().is_empty());
    }

    #[test]
    fn backoff_grows_to_its_cap_with_jitter() {
        let mut b = Backoff::new(1000);
        let pauses: Vec<Duration> = (0..8).map(|_| b.next_pause()).collect();
        assert!(pauses[0] >= Duration::from_millis(75) && pauses[0] <= Duration::from_millis(125));
        assert!(
            pauses[7] >= Duration::from_millis(750) && pauses[7] <= Duration::from_millis(1250)
        );
        b.reset();
        assert!(b.next_pause() <= Duration::from_millis(125));
    }

    #[test]
    fn reader_names_have_no_spaces() {
        assert_eq!(reader_name("a b\nc"), "objectos-events:a_b_c");
    }
}
