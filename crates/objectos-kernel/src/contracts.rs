//! Service contracts: what the kernel itself needs (a `Clock`, and the event-bus seams
//! `DeadLetterStore` and `EventTransport` with its `TransportContribution`), and the contracts
//! two or more crates share, each registered under its spec service name:
//! [`Authorizer`] (`permissions`), [`Directory`] (`auth`), [`Mailer`] (`notification`) and
//! [`Cache`] (`cache`: values and cross-node invalidations, used by auth and permissions).
//!
//! [`JobQueue`] (`job` and `queue`) is the job queue's contract (handlers, enqueue, retry,
//! dead letters). [`BlobStore`] (`file-storage`) keeps file contents as streamed objects (local
//! directory or S3). [`I18n`] (`i18n`) translates messages and metadata labels and formats
//! values per locale (the HTTP plugin's `/api/v1/meta` and `/api/v1/ui` ask it). [`Notifier`]
//! (`notification`) queues email, in-app and webhook messages and is also the [`Mailer`]. Other
//! contracts (`KvStore`) arrive with the issues that need them; a contract moves here only when
//! two crates need it.

mod access;
mod blob;
mod cache;
mod directory;
mod i18n;
mod jobs;
mod mail;
mod notify;

pub use access::{Access, Authorizer, Caller, FieldAccess, Principal};
pub use blob::{BlobMeta, BlobRead, BlobStore, ByteStream};
pub use cache::{
    Cache, CacheState, CacheStats, Invalidation, InvalidationCallback, InvalidationOrigin,
    InvalidationSubscription, NamespaceStats,
};
pub use directory::{Directory, DirectoryUser, Membership, Organization};
pub use i18n::{DateStyle, I18n, I18nArg, LabelPart, LocaleInfo, LocaleRequest};
pub use jobs::{
    BuiltinSchedule, CancelFlag, DEFAULT_QUEUE, EnqueueRequest, Enqueued, JobContext, JobError,
    JobFailure, JobFilter, JobHandler, JobId, JobInfo, JobPage, JobQueue, JobStatus, Periodic,
    RetryPolicy, handler_fn, run_every,
};
pub use mail::{Mail, Mailer};
pub use notify::{
    Delivery, DeliveryStatus, EmailRequest, InAppRequest, Notifier, TemplateRef, mailer_of,
};

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use objectos_spec::Event;
use parking_lot::Mutex;
use serde::Serialize;

use crate::error::KernelError;
use crate::events::InboundSink;

/// Wall-clock time, behind a contract so tests can control it.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current time in UTC.
    fn now(&self) -> DateTime<Utc>;
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to; for tests.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            now: Mutex::new(start),
        }
    }

    /// Moves the clock forward; a duration too large for chrono leaves the clock unchanged.
    pub fn advance(&self, by: Duration) {
        if let Ok(delta) = chrono::TimeDelta::from_std(by) {
            let mut now = self.now.lock();
            if let Some(next) = now.checked_add_signed(delta) {
                *now = next;
            }
        }
    }

    /// Sets the clock to `to`.
    pub fn set(&self, to: DateTime<Utc>) {
        *self.now.lock() = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock()
    }
}

/// An event whose handler kept failing after every retry.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    pub event: Event,
    /// The subscriber that failed: `<plugin id> <pattern>`.
    pub subscriber: String,
    /// The last error's text.
    pub error: String,
    /// How many retries were made after the first failure.
    pub retries: u32,
    pub first_failed_at: DateTime<Utc>,
    pub last_failed_at: DateTime<Utc>,
}

/// Where events that exhausted their retries go.
#[async_trait]
pub trait DeadLetterStore: Send + Sync + fmt::Debug + 'static {
    /// Keeps one dead letter.
    async fn put(&self, letter: DeadLetter) -> Result<(), KernelError>;
    /// The oldest `limit` dead letters still kept.
    async fn list(&self, limit: usize) -> Vec<DeadLetter>;
    /// How many dead letters are kept.
    async fn len(&self) -> usize;
    /// True when no dead letter is kept.
    async fn is_empty(&self) -> bool {
        self.len().await == 0
    }
}

/// The default dead-letter store: in memory, bounded, dropping the oldest entry when full.
#[derive(Debug)]
pub struct MemoryDeadLetterStore {
    items: Mutex<VecDeque<DeadLetter>>,
    capacity: usize,
}

impl MemoryDeadLetterStore {
    /// A store keeping at most `capacity` entries (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            items: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
        }
    }
}

impl Default for MemoryDeadLetterStore {
    fn default() -> Self {
        Self::new(10_000)
    }
}

#[async_trait]
impl DeadLetterStore for MemoryDeadLetterStore {
    async fn put(&self, letter: DeadLetter) -> Result<(), KernelError> {
        let mut items = self.items.lock();
        if items.len() >= self.capacity
            && let Some(dropped) = items.pop_front()
        {
            tracing::warn!(
                event = %dropped.event.name,
                subscriber = %dropped.subscriber,
                capacity = self.capacity,
                "Dead-letter store is full; dropped the oldest entry."
            );
        }
        items.push_back(letter);
        Ok(())
    }

    async fn list(&self, limit: usize) -> Vec<DeadLetter> {
        self.items.lock().iter().take(limit).cloned().collect()
    }

    async fn len(&self) -> usize {
        self.items.lock().len()
    }
}

/// Fans events out to other nodes (Redis, NATS, ... later) and feeds theirs back in.
///
/// The bus calls [`EventTransport::subscribe`] once when the transport is installed (when the bus
/// is built, or by the kernel after every `init`), handing over the sink for events that arrive
/// from other nodes, and [`EventTransport::publish`] after each local
/// asynchronous publish. A transport is responsible for not echoing a node's own events back.
#[async_trait]
pub trait EventTransport: Send + Sync + fmt::Debug + 'static {
    /// A short name for logs and errors, e.g. `redis`.
    fn name(&self) -> &str;
    /// Sends one event to the other nodes.
    async fn publish(&self, event: &Event) -> Result<(), KernelError>;
    /// Receives the sink through which events from other nodes are delivered locally.
    fn subscribe(&self, inbound: InboundSink);
}

/// A plugin's offer to carry the event bus across nodes, contributed in `init`
/// (`cx.contribute(TransportContribution(..))`).
///
/// After every `init` the kernel installs the single contributed transport on the bus, before
/// any `start`, so events published in `start` already fan out. Two contributions (or one plus
/// `KernelBuilder::transport`) fail the boot with an error naming both.
#[derive(Debug, Clone)]
pub struct TransportContribution(pub std::sync::Arc<dyn EventTransport>);

/// The single-node transport: publishing goes nowhere and nothing arrives.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalTransport;

#[async_trait]
impl EventTransport for LocalTransport {
    fn name(&self) -> &str {
        "local"
    }

    async fn publish(&self, _event: &Event) -> Result<(), KernelError> {
        Ok(())
    }

    fn subscribe(&self, _inbound: InboundSink) {}
}
