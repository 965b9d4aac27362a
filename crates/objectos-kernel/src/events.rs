//! The event bus: pattern subscriptions, a synchronous lane for in-transaction handlers and an
//! asynchronous lane with bounded per-subscriber queues, retries and a dead-letter store.
//!
//! Two lanes, chosen by the subscriber:
//! - synchronous handlers run inline, in subscription order, when someone calls
//!   [`EventBus::publish_sync`]; their errors come back to the publisher (an interceptor inside a
//!   transaction decides what to do with them);
//! - asynchronous handlers each own a bounded queue and a task; [`EventBus::publish`] and
//!   [`EventBus::publish_many`] wait when a queue is full (backpressure), [`EventBus::try_publish`]
//!   refuses instead. A failing or panicking handler is retried per its [`RetryPolicy`], then the
//!   event goes to the [`DeadLetterStore`].
//!
//! Routing is precomputed: every subscription change rebuilds an immutable route table (swapped in
//! with `arc_swap`), where each exact name already lists every subscriber that matches it, in
//! subscription order. Routing takes no lock and allocates nothing on the common path; queueing
//! takes each matching subscriber's queue lock once per event, or once per run of equally named
//! events with [`EventBus::publish_many`] (see `queue.rs`).
//!
//! Trace context: while a tracing backend is installed ([`crate::trace`]), an event made or
//! published inside a traced span carries that span's W3C `traceparent` in its metadata (unless
//! it already has one, as outbox events do), and an asynchronous subscriber handles it in an
//! `event.handle` span whose parent is that context, so the work a subscriber does (its writes,
//! the jobs it enqueues, the webhooks it calls) stays in the trace of the request that caused
//! it. Without a backend this is one atomic load per event.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::BuildHasherDefault;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use futures_util::FutureExt;
use objectos_spec::event::validate_event_name;
use objectos_spec::{Event, EventMetadata};
use parking_lot::Mutex;
use tokio::task::JoinHandle;
use tracing::Instrument as _;

use crate::contracts::{
    Clock, DeadLetter, DeadLetterStore, EventTransport, MemoryDeadLetterStore, SystemClock,
};
use crate::error::{KernelError, PluginError, panic_message};
use crate::hash::FxBuild;
use crate::queue::{self, PushError};

/// One segment of a compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(Box<str>),
    /// `*`: exactly one segment.
    One,
    /// A trailing `**`: one or more segments.
    Rest,
}

/// A compiled event name pattern: `data.account.created`, `data.*.created`, `data.**`.
///
/// `*` matches exactly one segment; a trailing `**` matches one or more segments (so `data.**`
/// matches `data.created` and `data.a.b`, but not `data`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventPattern {
    text: Box<str>,
    segments: Box<[Segment]>,
}

impl EventPattern {
    /// Compiles a pattern, checking it with the spec's naming rules.
    pub fn parse(pattern: &str) -> Result<Self, KernelError> {
        validate_event_name(pattern, true).map_err(|reason| KernelError::InvalidEventName {
            name: pattern.to_owned(),
            reason,
        })?;
        let segments = pattern
            .split('.')
            .map(|s| match s {
                "*" => Segment::One,
                "**" => Segment::Rest,
                lit => Segment::Literal(lit.into()),
            })
            .collect();
        Ok(Self {
            text: pattern.into(),
            segments,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// True when the pattern has no wildcard.
    pub fn is_exact(&self) -> bool {
        self.segments
            .iter()
            .all(|s| matches!(s, Segment::Literal(_)))
    }

    /// True when `name` matches the pattern.
    pub fn matches(&self, name: &str) -> bool {
        let mut parts = name.split('.');
        for seg in self.segments.iter() {
            match seg {
                Segment::Literal(lit) => match parts.next() {
                    Some(p) if p == &**lit => {}
                    _ => return false,
                },
                Segment::One => {
                    if parts.next().is_none() {
                        return false;
                    }
                }
                Segment::Rest => return parts.next().is_some(),
            }
        }
        parts.next().is_none()
    }

    /// True when every name matched by `other` is also matched by `self`.
    pub fn covers(&self, other: &EventPattern) -> bool {
        let mut theirs = other.segments.iter();
        for seg in self.segments.iter() {
            let Some(t) = theirs.next() else { return false };
            match (seg, t) {
                (Segment::Rest, _) => return true,
                (Segment::One, Segment::Literal(_) | Segment::One) => {}
                (Segment::Literal(a), Segment::Literal(b)) if a == b => {}
                _ => return false,
            }
        }
        theirs.next().is_none()
    }
}

impl fmt::Display for EventPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Builds an event with a fresh v7 id, the given source and the current time.
pub fn new_event(
    name: impl Into<String>,
    source: impl Into<String>,
    payload: serde_json::Value,
) -> Event {
    make_event(name.into(), source.into(), payload, &SystemClock)
}

pub(crate) fn make_event(
    name: String,
    source: String,
    payload: serde_json::Value,
    clock: &dyn Clock,
) -> Event {
    let mut event = Event {
        id: uuid::Uuid::now_v7().to_string(),
        name,
        payload,
        metadata: EventMetadata {
            source,
            timestamp: clock.now(),
            ..EventMetadata::default()
        },
    };
    stamp_trace(&mut event.metadata);
    event
}

/// Gives `metadata` the current span's trace context, unless it carries one already (an event
/// made inside the traced work, an outbox event written by a traced request) or no tracing
/// backend is installed.
fn stamp_trace(metadata: &mut EventMetadata) {
    if metadata.traceparent.is_some() || !crate::trace::enabled() {
        return;
    }
    if let Some(h) = crate::trace::current() {
        metadata.traceparent = Some(h.traceparent);
        metadata.tracestate = h.tracestate;
    }
}

/// [`stamp_trace`] on an event about to be published: copies it only when it needs the stamp
/// and someone else holds it too.
fn stamped(mut event: Arc<Event>) -> Arc<Event> {
    if event.metadata.traceparent.is_none()
        && crate::trace::enabled()
        && let Some(h) = crate::trace::current()
    {
        let m = &mut Arc::make_mut(&mut event).metadata;
        m.traceparent = Some(h.traceparent);
        m.tracestate = h.tracestate;
    }
    event
}

/// The span an asynchronous subscriber handles `event` in: a child of the context the event
/// carries. `None` (no span at all) while tracing is off or when the event carries no context,
/// so untraced events cost nothing and start no trace of their own.
fn handler_span(event: &Event, subscriber: &str) -> Option<tracing::Span> {
    if !crate::trace::enabled() {
        return None;
    }
    let traceparent = event.metadata.traceparent.as_deref()?;
    let span = tracing::debug_span!(
        "event.handle",
        otel.kind = "consumer",
        event = %event.name,
        subscriber = %subscriber,
        trace_id = tracing::field::Empty,
    );
    if span.is_disabled() {
        return None;
    }
    crate::trace::continue_remote(&span, Some(traceparent), event.tracestate());
    Some(span)
}

/// How long to wait between retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backoff {
    /// `base` every time.
    Fixed,
    /// `base * attempt`.
    Linear,
    /// `base * 2^(attempt-1)`.
    #[default]
    Exponential,
}

/// Retries of a failing asynchronous handler before the event goes to the dead-letter store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub backoff: Backoff,
    pub base: Duration,
    /// Upper bound of any single delay.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 3,
            backoff: Backoff::Exponential,
            base: Duration::from_millis(100),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// No retries: a failure goes straight to the dead-letter store.
    pub fn none() -> Self {
        Self {
            max_retries: 0,
            ..Self::default()
        }
    }

    /// The delay before retry number `attempt` (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let attempt = attempt.max(1);
        let d = match self.backoff {
            Backoff::Fixed => self.base,
            Backoff::Linear => self.base.saturating_mul(attempt),
            Backoff::Exponential => self.base.saturating_mul(1u32 << (attempt - 1).min(31)),
        };
        d.min(self.max_delay)
    }
}

/// Options of one asynchronous subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscribeOptions {
    /// Queue capacity (at least 1); a full queue makes publishers wait.
    pub capacity: usize,
    pub retry: RetryPolicy,
    /// Only events published on this node, none that the transport brought from another.
    ///
    /// For a subscriber that writes what it receives into storage every node shares (the audit
    /// trail records `auth.*` events in the database): with a cross-node transport each node
    /// would otherwise record every other node's events again. Subscribers that keep per-node
    /// state (caches, live connections) want every node's events and leave it `false`.
    pub local_only: bool,
}

impl Default for SubscribeOptions {
    fn default() -> Self {
        Self {
            capacity: 1024,
            retry: RetryPolicy::default(),
            local_only: false,
        }
    }
}

/// An asynchronous event handler. Closures `Fn(Arc<Event>) -> impl Future<Output = Result<(), PluginError>>` implement it.
#[async_trait]
pub trait EventHandler: Send + Sync + 'static {
    async fn handle(&self, event: Arc<Event>) -> Result<(), PluginError>;
}

#[async_trait]
impl<F, Fut> EventHandler for F
where
    F: Fn(Arc<Event>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), PluginError>> + Send + 'static,
{
    async fn handle(&self, event: Arc<Event>) -> Result<(), PluginError> {
        (self)(event).await
    }
}

/// A synchronous handler, run inline by [`EventBus::publish_sync`].
pub type SyncHandler = dyn Fn(&Event) -> Result<(), PluginError> + Send + Sync + 'static;

/// A synchronous handler that failed or panicked; the other handlers still ran.
#[derive(Debug)]
pub struct HandlerError {
    /// `<plugin id> <pattern>` of the subscription.
    pub subscriber: String,
    pub event: String,
    pub error: PluginError,
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "handler {} failed on event `{}`: {}",
            self.subscriber, self.event, self.error
        )
    }
}

impl std::error::Error for HandlerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// Identifies one subscription, for [`EventBus::unsubscribe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriptionId(u64);

enum Lane {
    Sync(Box<SyncHandler>),
    Async(queue::Sender),
}

struct Subscriber {
    id: SubscriptionId,
    owner: Box<str>,
    pattern: EventPattern,
    lane: Lane,
    /// [`SubscribeOptions::local_only`]: skipped for events from other nodes.
    local_only: bool,
}

impl Subscriber {
    fn label(&self) -> String {
        format!("`{}` on `{}`", self.owner, self.pattern)
    }
}

type NameMap<V> = HashMap<Box<str>, V, FxBuild>;

/// One lane's routing: exact names precomputed, everything else by scanning wildcard patterns.
#[derive(Default)]
struct RouteTable {
    exact: NameMap<Box<[Arc<Subscriber>]>>,
    wildcard: Box<[Arc<Subscriber>]>,
}

impl RouteTable {
    fn build(subs: &[Arc<Subscriber>]) -> Self {
        let mut exact: NameMap<Box<[Arc<Subscriber>]>> =
            HashMap::with_hasher(BuildHasherDefault::default());
        for s in subs.iter().filter(|s| s.pattern.is_exact()) {
            let key = s.pattern.as_str();
            if !exact.contains_key(key) {
                let list: Box<[Arc<Subscriber>]> = subs
                    .iter()
                    .filter(|o| o.pattern.matches(key))
                    .cloned()
                    .collect();
                exact.insert(key.into(), list);
            }
        }
        let wildcard = subs
            .iter()
            .filter(|s| !s.pattern.is_exact())
            .cloned()
            .collect();
        Self { exact, wildcard }
    }

    /// Calls `f` for every subscriber matching `name`, in subscription order.
    #[inline]
    fn for_each<'r>(&'r self, name: &str, mut f: impl FnMut(&'r Arc<Subscriber>)) {
        if let Some(list) = self.exact.get(name) {
            list.iter().for_each(f);
        } else {
            for s in self.wildcard.iter() {
                if s.pattern.matches(name) {
                    f(s);
                }
            }
        }
    }
}

#[derive(Default)]
struct Routes {
    sync: RouteTable,
    asynchronous: RouteTable,
}

/// How the bus is built: where dead letters go, which transport fans out, which clock stamps.
#[derive(Clone)]
pub struct EventBusConfig {
    pub dead_letters: Arc<dyn DeadLetterStore>,
    /// `None` means single node unless one is installed later ([`EventBus::install_transport`]).
    pub transport: Option<Arc<dyn EventTransport>>,
    pub clock: Arc<dyn Clock>,
}

impl Default for EventBusConfig {
    fn default() -> Self {
        Self {
            dead_letters: Arc::new(MemoryDeadLetterStore::default()),
            transport: None,
            clock: Arc::new(SystemClock),
        }
    }
}

impl fmt::Debug for EventBusConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventBusConfig")
            .field("dead_letters", &self.dead_letters)
            .field(
                "transport",
                &self.transport.as_ref().map(|t| t.name().to_owned()),
            )
            .field("clock", &self.clock)
            .finish()
    }
}

struct BusInner {
    /// Events every asynchronous subscription gave up on (sent to the dead-letter store), for
    /// [`EventBus::stats`].
    dead_lettered: Arc<AtomicU64>,
    routes: ArcSwap<Routes>,
    subscribers: Mutex<Vec<Arc<Subscriber>>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    next_id: AtomicU64,
    closed: AtomicBool,
    config: EventBusConfig,
    /// Set once (from the config, or by the kernel after every `init`) and never replaced, so
    /// publishing reads it with one atomic load.
    transport: OnceLock<Arc<dyn EventTransport>>,
}

/// A snapshot of the bus for metrics ([`EventBus::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventStats {
    /// Events queued for asynchronous subscribers and not yet taken by their tasks.
    pub queued: usize,
    /// Events sent to the dead-letter store after every retry failed.
    pub dead_lettered: u64,
}

/// The event bus. Cloning is cheap and shares the bus.
#[derive(Clone)]
pub struct EventBus {
    inner: Arc<BusInner>,
}

impl fmt::Debug for EventBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventBus")
            .field("subscribers", &self.inner.subscribers.lock().len())
            .field("closed", &self.inner.closed.load(Ordering::Relaxed))
            .field("config", &self.inner.config)
            .field("transport", &self.transport_name())
            .finish()
    }
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new(EventBusConfig::default())
    }
}

impl EventBus {
    /// Builds a bus; if a transport is configured it is installed now.
    pub fn new(config: EventBusConfig) -> Self {
        let configured = config.transport.clone();
        let bus = Self {
            inner: Arc::new(BusInner {
                dead_lettered: Arc::new(AtomicU64::new(0)),
                routes: ArcSwap::from_pointee(Routes::default()),
                subscribers: Mutex::new(Vec::new()),
                tasks: Mutex::new(Vec::new()),
                next_id: AtomicU64::new(1),
                closed: AtomicBool::new(false),
                config,
                transport: OnceLock::new(),
            }),
        };
        if let Some(t) = configured {
            // A fresh bus has no transport, so this cannot be refused.
            let _ = bus.install_transport(t);
        }
        bus
    }

    /// Installs the cross-node transport: it receives the inbound sink now, and every later
    /// asynchronous publish is handed to it. A bus carries one transport for its whole life;
    /// a second is refused with [`KernelError::TransportInstalled`] naming both.
    pub fn install_transport(&self, transport: Arc<dyn EventTransport>) -> Result<(), KernelError> {
        let name = transport.name().to_owned();
        if let Err(refused) = self.inner.transport.set(transport) {
            let existing = self
                .inner
                .transport
                .get()
                .map_or_else(String::new, |t| t.name().to_owned());
            drop(refused);
            return Err(KernelError::TransportInstalled {
                existing,
                refused: name,
            });
        }
        if let Some(t) = self.inner.transport.get() {
            t.subscribe(InboundSink {
                bus: Arc::downgrade(&self.inner),
            });
        }
        Ok(())
    }

    /// Events waiting in the asynchronous subscriptions' queues now, and events sent to the
    /// dead-letter store since the bus was built: what the metrics plugin reads at scrape time
    /// (one lock per subscription, so not for a hot path).
    pub fn stats(&self) -> EventStats {
        let queued = self
            .inner
            .subscribers
            .lock()
            .iter()
            .map(|s| match &s.lane {
                Lane::Async(tx) => tx.len(),
                Lane::Sync(_) => 0,
            })
            .sum();
        EventStats {
            queued,
            dead_lettered: self.inner.dead_lettered.load(Ordering::Relaxed),
        }
    }

    /// The installed transport's name, if any.
    pub fn transport_name(&self) -> Option<&str> {
        self.inner.transport.get().map(|t| t.name())
    }

    /// The dead-letter store in use.
    pub fn dead_letters(&self) -> &Arc<dyn DeadLetterStore> {
        &self.inner.config.dead_letters
    }

    /// The clock used to stamp events and dead letters.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.config.clock
    }

    /// Subscribes a synchronous handler, run inline by [`EventBus::publish_sync`].
    pub fn subscribe_sync(
        &self,
        owner: &str,
        pattern: &str,
        handler: impl Fn(&Event) -> Result<(), PluginError> + Send + Sync + 'static,
    ) -> Result<SubscriptionId, KernelError> {
        let pattern = EventPattern::parse(pattern)?;
        Ok(self.add(owner, pattern, Lane::Sync(Box::new(handler)), false))
    }

    /// Subscribes an asynchronous handler with its own bounded queue and task.
    ///
    /// Must be called inside a Tokio runtime.
    pub fn subscribe(
        &self,
        owner: &str,
        pattern: &str,
        handler: impl EventHandler,
        options: SubscribeOptions,
    ) -> Result<SubscriptionId, KernelError> {
        let pattern = EventPattern::parse(pattern)?;
        self.spawn_worker(
            owner,
            pattern,
            AsyncHandler::Future(Arc::new(handler)),
            options,
        )
    }

    /// Subscribes a plain function on the asynchronous lane: it gets its own bounded queue, task,
    /// retries and dead letters like [`EventBus::subscribe`], but runs without allocating a future
    /// per event. For cheap handlers that never block (counters, cache invalidation).
    ///
    /// Must be called inside a Tokio runtime.
    pub fn subscribe_inline(
        &self,
        owner: &str,
        pattern: &str,
        handler: impl Fn(&Event) -> Result<(), PluginError> + Send + Sync + 'static,
        options: SubscribeOptions,
    ) -> Result<SubscriptionId, KernelError> {
        let pattern = EventPattern::parse(pattern)?;
        self.spawn_worker(
            owner,
            pattern,
            AsyncHandler::Inline(Box::new(handler)),
            options,
        )
    }

    fn spawn_worker(
        &self,
        owner: &str,
        pattern: EventPattern,
        handler: AsyncHandler,
        options: SubscribeOptions,
    ) -> Result<SubscriptionId, KernelError> {
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| KernelError::NoRuntime {
                what: "subscribing an asynchronous handler",
            })?;
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(KernelError::BusClosed {
                event: pattern.as_str().to_owned(),
            });
        }
        let (tx, rx) = queue::bounded(options.capacity);
        let worker = Worker {
            handler,
            label: format!("`{owner}` on `{pattern}`"),
            retry: options.retry,
            dead_letters: self.inner.config.dead_letters.clone(),
            dead_lettered: self.inner.dead_lettered.clone(),
            clock: self.inner.config.clock.clone(),
        };
        let task = runtime.spawn(worker.run(rx));
        self.inner.tasks.lock().push(task);
        Ok(self.add(owner, pattern, Lane::Async(tx), options.local_only))
    }

    fn add(
        &self,
        owner: &str,
        pattern: EventPattern,
        lane: Lane,
        local_only: bool,
    ) -> SubscriptionId {
        let id = SubscriptionId(self.inner.next_id.fetch_add(1, Ordering::Relaxed));
        let mut subs = self.inner.subscribers.lock();
        subs.push(Arc::new(Subscriber {
            id,
            owner: owner.into(),
            pattern,
            lane,
            local_only,
        }));
        self.rebuild(&subs);
        id
    }

    fn rebuild(&self, subs: &[Arc<Subscriber>]) {
        let (sync, asynchronous): (Vec<_>, Vec<_>) = subs
            .iter()
            .cloned()
            .partition(|s| matches!(s.lane, Lane::Sync(_)));
        self.inner.routes.store(Arc::new(Routes {
            sync: RouteTable::build(&sync),
            asynchronous: RouteTable::build(&asynchronous),
        }));
    }

    /// Removes one subscription; its task ends once its queue is drained. Returns false if unknown.
    pub fn unsubscribe(&self, id: SubscriptionId) -> bool {
        let mut subs = self.inner.subscribers.lock();
        let before = subs.len();
        subs.retain(|s| s.id != id);
        let removed = subs.len() != before;
        if removed {
            self.rebuild(&subs);
        }
        removed
    }

    /// Removes every subscription made by `owner`; returns how many.
    pub fn unsubscribe_owner(&self, owner: &str) -> usize {
        let mut subs = self.inner.subscribers.lock();
        let before = subs.len();
        subs.retain(|s| &*s.owner != owner);
        let removed = before - subs.len();
        if removed > 0 {
            self.rebuild(&subs);
        }
        removed
    }

    /// Number of live subscriptions (both lanes).
    pub fn subscription_count(&self) -> usize {
        self.inner.subscribers.lock().len()
    }

    /// Runs every matching synchronous handler inline, in subscription order.
    ///
    /// A handler that fails or panics is reported in the returned list; the others still run.
    pub fn publish_sync(&self, event: &Event) -> Vec<HandlerError> {
        let mut errors = Vec::new();
        let routes = self.inner.routes.load();
        routes.sync.for_each(&event.name, |sub| {
            let Lane::Sync(handler) = &sub.lane else { return };
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| handler(event)));
            let error = match outcome {
                Ok(Ok(())) => return,
                Ok(Err(e)) => e,
                Err(payload) => PluginError::Panicked {
                    context: format!("synchronous handler {}", sub.label()),
                    message: panic_message(payload.as_ref()),
                },
            };
            tracing::warn!(event = %event.name, subscriber = %sub.label(), error = %error, "Synchronous event handler failed.");
            errors.push(HandlerError { subscriber: sub.label(), event: event.name.clone(), error });
        });
        errors
    }

    /// Queues the event for every matching asynchronous subscriber, waiting while a queue is full,
    /// then hands it to the transport. Returns how many local subscribers received it.
    pub async fn publish(&self, event: impl Into<Arc<Event>>) -> Result<usize, KernelError> {
        let event = stamped(event.into());
        let delivered = self.publish_local(&event).await?;
        if let Some(t) = self.inner.transport.get()
            && let Err(error) = t.publish(&event).await
        {
            tracing::warn!(event = %event.name, transport = t.name(), %error, "Event transport failed to publish.");
        }
        Ok(delivered)
    }

    /// Queues the event for the local asynchronous subscribers only, never handing it to the
    /// transport: for facts about this node alone (`kernel.ready`, `kernel.shutdown`).
    pub async fn publish_node_local(
        &self,
        event: impl Into<Arc<Event>>,
    ) -> Result<usize, KernelError> {
        self.publish_local(&stamped(event.into())).await
    }

    async fn publish_local(&self, event: &Arc<Event>) -> Result<usize, KernelError> {
        self.deliver_here(event, Origin::ThisNode).await
    }

    /// Queues `event` for this node's asynchronous subscribers; one from another node skips the
    /// `local_only` ones.
    async fn deliver_here(&self, event: &Arc<Event>, origin: Origin) -> Result<usize, KernelError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(KernelError::BusClosed {
                event: event.name.clone(),
            });
        }
        let (mut delivered, waiting) = self.offer(event, origin);
        for sub in waiting.into_iter().flatten() {
            if let Lane::Async(tx) = &sub.lane
                && tx.push(event).await.is_ok()
            {
                delivered += 1;
            }
        }
        Ok(delivered)
    }

    /// Tries every matching queue without waiting; returns the count delivered and the
    /// subscribers whose queue was full.
    fn offer(&self, event: &Arc<Event>, origin: Origin) -> (usize, Option<Vec<Arc<Subscriber>>>) {
        let routes = self.inner.routes.load();
        let mut delivered = 0;
        let mut waiting: Option<Vec<Arc<Subscriber>>> = None;
        routes.asynchronous.for_each(&event.name, |sub| {
            if sub.local_only && origin == Origin::OtherNode {
                return;
            }
            let Lane::Async(tx) = &sub.lane else { return };
            match tx.try_push(event) {
                Ok(()) => delivered += 1,
                Err(PushError::Full) => waiting.get_or_insert_with(Vec::new).push(sub.clone()),
                // A closed queue belongs to a subscriber being removed; it simply misses the event.
                Err(PushError::Closed) => {}
            }
        });
        (delivered, waiting)
    }

    /// Publishes a batch: like calling [`EventBus::publish`] for each event in order, but routing
    /// once per run of equally named events and queueing each run into a subscriber's queue under
    /// one lock with one wake-up, which is several times cheaper per event.
    ///
    /// Every subscriber sees the events it matches in slice order. Waits while a queue is full
    /// (backpressure), then hands every event to the transport. Returns the number of deliveries
    /// (events times local subscribers that received them).
    pub async fn publish_many(&self, events: &[Arc<Event>]) -> Result<usize, KernelError> {
        let delivered = self.publish_local_many(events).await?;
        if let Some(t) = self.inner.transport.get() {
            for event in events {
                if let Err(error) = t.publish(event).await {
                    tracing::warn!(event = %event.name, transport = t.name(), %error, "Event transport failed to publish.");
                }
            }
        }
        Ok(delivered)
    }

    async fn publish_local_many(&self, events: &[Arc<Event>]) -> Result<usize, KernelError> {
        let Some(first) = events.first() else {
            return Ok(0);
        };
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(KernelError::BusClosed {
                event: first.name.clone(),
            });
        }
        let mut delivered = 0;
        let mut rest = events;
        while let Some(head) = rest.first() {
            let run_len = rest
                .iter()
                .position(|e| e.name != head.name)
                .unwrap_or(rest.len());
            let (run, tail) = rest.split_at(run_len);
            rest = tail;
            // First every queue takes what fits without waiting, so one full queue does not
            // hold the others back; then the full ones are waited for, in subscription order.
            let mut waiting: Vec<(Arc<Subscriber>, usize)> = Vec::new();
            {
                let routes = self.inner.routes.load();
                routes.asynchronous.for_each(&head.name, |sub| {
                    let Lane::Async(tx) = &sub.lane else { return };
                    if let Ok(n) = tx.try_push_many(run) {
                        delivered += n;
                        if n < run.len() {
                            waiting.push((sub.clone(), n));
                        }
                    }
                });
            }
            for (sub, done) in waiting {
                if let Lane::Async(tx) = &sub.lane {
                    delivered += tx.push_all(&run[done..]).await;
                }
            }
        }
        Ok(delivered)
    }

    /// Queues the event for every matching asynchronous subscriber, or for none if any queue is full.
    ///
    /// On success the transport (if any) publishes in a spawned task.
    pub fn try_publish(&self, event: impl Into<Arc<Event>>) -> Result<usize, KernelError> {
        let event = stamped(event.into());
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(KernelError::BusClosed {
                event: event.name.clone(),
            });
        }
        let routes = self.inner.routes.load();
        let mut permits = Vec::new();
        let mut full = Vec::new();
        routes.asynchronous.for_each(&event.name, |sub| {
            let Lane::Async(tx) = &sub.lane else { return };
            match tx.try_reserve() {
                Ok(permit) => permits.push(permit),
                Err(PushError::Full) => full.push(sub.label()),
                Err(PushError::Closed) => {}
            }
        });
        if !full.is_empty() {
            // Dropping the permits gives their slots back, so nobody receives the event.
            return Err(KernelError::QueueFull {
                event: event.name.clone(),
                subscribers: full,
            });
        }
        let delivered = permits.len();
        for permit in permits {
            permit.send(event.clone());
        }
        drop(routes);
        if let Some(t) = self.inner.transport.get().cloned() {
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    rt.spawn(async move {
                        if let Err(error) = t.publish(&event).await {
                            tracing::warn!(event = %event.name, transport = t.name(), %error, "Event transport failed to publish.");
                        }
                    });
                }
                Err(_) => {
                    tracing::warn!(event = %event.name, "No runtime to hand the event to the transport; it stays local.");
                }
            }
        }
        Ok(delivered)
    }

    /// Closes the bus: no more publishing; every asynchronous subscriber drains its queue and stops.
    ///
    /// Waits up to `drain` for the subscriber tasks, then aborts the rest; returns how many were aborted.
    pub async fn close(&self, drain: Duration) -> usize {
        self.inner.closed.store(true, Ordering::Release);
        {
            let mut subs = self.inner.subscribers.lock();
            subs.retain(|s| matches!(s.lane, Lane::Sync(_)));
            self.rebuild(&subs);
        }
        let tasks: Vec<JoinHandle<()>> = std::mem::take(&mut *self.inner.tasks.lock());
        let deadline = tokio::time::Instant::now() + drain;
        let mut aborted = 0;
        for mut task in tasks {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                task.abort();
                aborted += 1;
            }
        }
        if aborted > 0 {
            tracing::warn!(
                aborted,
                "Event subscribers did not drain in time and were aborted."
            );
        }
        aborted
    }

    /// True once [`EventBus::close`] ran.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }
}

/// The handle a transport uses to deliver events that arrived from other nodes.
///
/// Inbound events reach the local asynchronous subscribers only: they are never sent back out.
#[derive(Clone)]
pub struct InboundSink {
    bus: Weak<BusInner>,
}

impl fmt::Debug for InboundSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InboundSink")
            .field("alive", &(self.bus.strong_count() > 0))
            .finish()
    }
}

impl InboundSink {
    /// Delivers one remote event locally; returns how many subscribers received it.
    pub async fn deliver(&self, event: Event) -> Result<usize, KernelError> {
        let Some(inner) = self.bus.upgrade() else {
            return Err(KernelError::BusClosed { event: event.name });
        };
        EventBus { inner }
            .deliver_here(&Arc::new(event), Origin::OtherNode)
            .await
    }
}

/// Where an event being delivered was published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    ThisNode,
    OtherNode,
}

/// What an asynchronous subscription runs per event.
enum AsyncHandler {
    Future(Arc<dyn EventHandler>),
    Inline(Box<SyncHandler>),
}

/// The task behind one asynchronous subscription.
struct Worker {
    handler: AsyncHandler,
    label: String,
    retry: RetryPolicy,
    dead_letters: Arc<dyn DeadLetterStore>,
    dead_lettered: Arc<AtomicU64>,
    clock: Arc<dyn Clock>,
}

/// How many queued events a worker takes per wake-up.
const BATCH: usize = 256;

impl Worker {
    async fn run(self, mut rx: queue::Receiver) {
        let mut batch = Vec::with_capacity(BATCH);
        while rx.recv_many(&mut batch, BATCH).await > 0 {
            match &self.handler {
                AsyncHandler::Inline(f) => {
                    for event in batch.drain(..) {
                        let span = handler_span(&event, &self.label);
                        let outcome = {
                            let _entered = span.as_ref().map(tracing::Span::enter);
                            call_inline(f, &event)
                        };
                        if let Err(error) = outcome {
                            self.recover_in(span, event, error).await;
                        }
                    }
                }
                AsyncHandler::Future(h) => {
                    for event in batch.drain(..) {
                        let span = handler_span(&event, &self.label);
                        let outcome = match &span {
                            Some(s) => call_future(h, &event).instrument(s.clone()).await,
                            None => call_future(h, &event).await,
                        };
                        if let Err(error) = outcome {
                            self.recover_in(span, event, error).await;
                        }
                    }
                }
            }
        }
    }

    /// [`Worker::recover`] inside the handler's span, when there is one.
    async fn recover_in(&self, span: Option<tracing::Span>, event: Arc<Event>, error: String) {
        match span {
            Some(s) => self.recover(event, error).instrument(s).await,
            None => self.recover(event, error).await,
        }
    }

    async fn attempt(&self, event: &Arc<Event>) -> Result<(), String> {
        match &self.handler {
            AsyncHandler::Inline(f) => call_inline(f, event),
            AsyncHandler::Future(h) => call_future(h, event).await,
        }
    }

    /// The slow path after a first failure: retries per the policy, then the dead-letter store.
    async fn recover(&self, event: Arc<Event>, mut error: String) {
        let mut retries = 0u32;
        let first = self.clock.now();
        let mut last = first;
        while retries < self.retry.max_retries {
            retries += 1;
            let delay = self.retry.delay(retries);
            tracing::warn!(event = %event.name, subscriber = %self.label, retry = retries, delay_ms = delay.as_millis() as u64, %error, "Event handler failed; retrying.");
            tokio::time::sleep(delay).await;
            match self.attempt(&event).await {
                Ok(()) => return,
                Err(e) => {
                    error = e;
                    last = self.clock.now();
                }
            }
        }
        tracing::error!(event = %event.name, subscriber = %self.label, retries, %error, "Event handler failed after every retry; sending the event to the dead-letter store.");
        self.dead_lettered.fetch_add(1, Ordering::Relaxed);
        let letter = DeadLetter {
            event: (*event).clone(),
            subscriber: self.label.clone(),
            error,
            retries,
            first_failed_at: first,
            last_failed_at: last,
        };
        if let Err(e) = self.dead_letters.put(letter).await {
            tracing::error!(event = %event.name, subscriber = %self.label, error = %e, "Dead-letter store refused an event; it is lost.");
        }
    }
}

/// Runs an inline handler once, turning an error or a panic into the message to record.
#[inline]
fn call_inline(f: &SyncHandler, event: &Event) -> Result<(), String> {
    match std::panic::catch_unwind(AssertUnwindSafe(|| f(event))) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(payload) => Err(format!(
            "handler panicked: {}",
            panic_message(payload.as_ref())
        )),
    }
}

/// Runs a future handler once, turning an error or a panic into the message to record.
#[inline]
async fn call_future(h: &Arc<dyn EventHandler>, event: &Arc<Event>) -> Result<(), String> {
    match AssertUnwindSafe(h.handle(event.clone()))
        .catch_unwind()
        .await
    {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(payload) => Err(format!(
            "handler panicked: {}",
            panic_message(payload.as_ref())
        )),
    }
}
