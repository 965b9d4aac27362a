//! The exchanges and queues of the RabbitMQ backend, all named under one prefix and declared
//! idempotently (same name, same arguments) on every connect:
//!
//! | name | kind | purpose |
//! | --- | --- | --- |
//! | `<p>.jobs` | direct exchange | routes a job id to its queue by the job queue's name |
//! | `<p>.jobs.<queue>` | durable queue, `x-max-priority` | one per job queue; rejected messages dead-letter to `<p>.dead` |
//! | `<p>.delay` | headers exchange | routes a delayed message to its tier by the `objectos-delay` header |
//! | `<p>.delay.<ms>` | durable queue, `x-message-ttl` | a delay tier: messages expire back into `<p>.jobs` with their routing key |
//! | `<p>.dead` | fanout exchange | dead letters |
//! | `<p>.dead` | durable queue, `x-max-length` | what operators can inspect; the job table's dead-letter store stays the truth |
//!
//! One queue per delay with a fixed TTL (instead of a per-message expiration on one queue) keeps
//! expiry in queue order: RabbitMQ only expires messages at the head of a queue.

use std::time::Duration;

use lapin::options::{
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};

use crate::error::JobsError;

/// The delay tiers in milliseconds. A delay uses the longest tier not above it, so a long backoff
/// takes several hops; each hop asks the job table again (which knows the real due time).
pub const DELAY_TIERS_MS: [u64; 7] = [250, 1_000, 5_000, 30_000, 120_000, 600_000, 3_600_000];

/// The header that routes a message to its delay tier.
const DELAY_HEADER: &str = "objectos-delay";

/// Dead letters RabbitMQ keeps before dropping the oldest.
const DEAD_LETTER_MAX_LENGTH: i64 = 100_000;

/// The names under one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    prefix: String,
    max_priority: u8,
}

impl Topology {
    /// Checks the prefix (`[a-z0-9._-]`, 1 to 64 characters) and the priority range.
    pub fn new(prefix: &str, max_priority: u8) -> Result<Self, JobsError> {
        check_name("jobs.rabbitmq.prefix", prefix, 64)?;
        if max_priority == 0 {
            return Err(JobsError::Config(
                "jobs.rabbitmq.maxPriority must be between 1 and 255".to_owned(),
            ));
        }
        Ok(Self {
            prefix: prefix.to_owned(),
            max_priority,
        })
    }

    /// The prefix every name starts with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The highest priority a message can carry.
    pub fn max_priority(&self) -> u8 {
        self.max_priority
    }

    /// The direct exchange that routes job ids by queue name.
    pub fn work_exchange(&self) -> String {
        format!("{}.jobs", self.prefix)
    }

    /// The RabbitMQ queue of job queue `queue`; fails on a name RabbitMQ cannot take.
    pub fn work_queue(&self, queue: &str) -> Result<String, JobsError> {
        check_name("job queue", queue, 180)?;
        Ok(format!("{}.jobs.{queue}", self.prefix))
    }

    /// The headers exchange in front of the delay tiers.
    pub fn delay_exchange(&self) -> String {
        format!("{}.delay", self.prefix)
    }

    /// The queue of one delay tier.
    pub fn delay_queue(&self, tier_ms: u64) -> String {
        format!("{}.delay.{tier_ms}", self.prefix)
    }

    /// The dead-letter exchange, and its queue of the same name.
    pub fn dead_letters(&self) -> String {
        format!("{}.dead", self.prefix)
    }

    /// Declares the exchanges, the delay tiers and the dead-letter queue (not the work queues).
    pub(crate) async fn declare(&self, channel: &Channel) -> Result<(), lapin::Error> {
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        let work = self.work_exchange();
        channel
            .exchange_declare(
                short(&work),
                ExchangeKind::Direct,
                durable,
                FieldTable::default(),
            )
            .await?;
        let dead = self.dead_letters();
        channel
            .exchange_declare(
                short(&dead),
                ExchangeKind::Fanout,
                durable,
                FieldTable::default(),
            )
            .await?;
        let mut dead_args = FieldTable::default();
        dead_args.insert(
            "x-max-length".into(),
            AMQPValue::LongLongInt(DEAD_LETTER_MAX_LENGTH),
        );
        channel
            .queue_declare(short(&dead), QueueDeclareOptions::durable(), dead_args)
            .await?;
        channel
            .queue_bind(
                short(&dead),
                short(&dead),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let delay = self.delay_exchange();
        channel
            .exchange_declare(
                short(&delay),
                ExchangeKind::Headers,
                durable,
                FieldTable::default(),
            )
            .await?;
        for tier in DELAY_TIERS_MS {
            let queue = self.delay_queue(tier);
            let mut args = FieldTable::default();
            args.insert(
                "x-message-ttl".into(),
                AMQPValue::LongLongInt(i64::try_from(tier).unwrap_or(i64::MAX)),
            );
            // No dead-letter routing key: an expired message keeps its own, the job queue's name.
            args.insert(
                "x-dead-letter-exchange".into(),
                AMQPValue::LongString(LongString::from(work.as_str())),
            );
            channel
                .queue_declare(short(&queue), QueueDeclareOptions::durable(), args)
                .await?;
            let mut binding = FieldTable::default();
            binding.insert("x-match".into(), AMQPValue::LongString("all".into()));
            binding.insert(
                DELAY_HEADER.into(),
                AMQPValue::LongString(LongString::from(tier.to_string().as_str())),
            );
            channel
                .queue_bind(
                    short(&queue),
                    short(&delay),
                    "".into(),
                    QueueBindOptions::default(),
                    binding,
                )
                .await?;
        }
        Ok(())
    }

    /// Declares job queue `queue`'s RabbitMQ queue and binds it; `queue` was checked by
    /// [`Topology::work_queue`] before.
    pub(crate) async fn declare_work_queue(
        &self,
        channel: &Channel,
        queue: &str,
    ) -> Result<(), lapin::Error> {
        let name = format!("{}.jobs.{queue}", self.prefix);
        let mut args = FieldTable::default();
        args.insert(
            "x-max-priority".into(),
            AMQPValue::ShortShortUInt(self.max_priority),
        );
        args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(LongString::from(self.dead_letters().as_str())),
        );
        channel
            .queue_declare(short(&name), QueueDeclareOptions::durable(), args)
            .await?;
        channel
            .queue_bind(
                short(&name),
                short(&self.work_exchange()),
                short(queue),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
    }

    /// The tier a delay goes through, and the header value that routes to it.
    pub(crate) fn tier_for(delay: Duration) -> u64 {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        DELAY_TIERS_MS
            .iter()
            .rev()
            .copied()
            .find(|tier| *tier <= ms)
            .unwrap_or(DELAY_TIERS_MS[0])
    }

    /// The headers of a message for delay tier `tier_ms`.
    pub(crate) fn delay_headers(tier_ms: u64) -> FieldTable {
        let mut headers = FieldTable::default();
        headers.insert(
            DELAY_HEADER.into(),
            AMQPValue::LongString(LongString::from(tier_ms.to_string().as_str())),
        );
        headers
    }
}

/// Deletes every exchange and queue under `prefix`, with the work queues of `queues`, whatever
/// they hold. For tests and for tearing down a deployment; running nodes declare them again.
pub async fn delete_topology(url: &str, prefix: &str, queues: &[&str]) -> Result<(), JobsError> {
    let topology = Topology::new(prefix, 1)?;
    let broker = |e: lapin::Error| JobsError::Broker(super::redact_text(&e.to_string(), url));
    let connection = Connection::connect(url, ConnectionProperties::default())
        .await
        .map_err(broker)?;
    let channel = connection.create_channel().await.map_err(broker)?;
    let mut names: Vec<String> = Vec::new();
    for queue in queues {
        names.push(topology.work_queue(queue)?);
    }
    names.extend(DELAY_TIERS_MS.iter().map(|t| topology.delay_queue(*t)));
    names.push(topology.dead_letters());
    for name in &names {
        channel
            .queue_delete(short(name), QueueDeleteOptions::default())
            .await
            .map_err(broker)?;
    }
    for exchange in [
        topology.work_exchange(),
        topology.delay_exchange(),
        topology.dead_letters(),
    ] {
        channel
            .exchange_delete(short(&exchange), ExchangeDeleteOptions::default())
            .await
            .map_err(broker)?;
    }
    let _ = connection.close(200, "topology deleted".into()).await;
    Ok(())
}

/// Deletes a prefix's exchanges and queues (see [`delete_topology`]) when dropped, also when a
/// test fails before its end: what tests and benchmarks that declare a uniquely named prefix
/// hold first, so the broker keeps nothing of them. The drop blocks its thread until the broker
/// answered (at most 10 s).
#[derive(Debug)]
pub struct TopologyCleanup {
    url: String,
    prefix: String,
    queues: Vec<String>,
}

impl TopologyCleanup {
    /// Deletes `prefix`'s topology with the work queues of `queues` when dropped.
    pub fn new(url: &str, prefix: &str, queues: &[&str]) -> Self {
        Self {
            url: url.to_owned(),
            prefix: prefix.to_owned(),
            queues: queues.iter().map(|q| (*q).to_owned()).collect(),
        }
    }
}

impl Drop for TopologyCleanup {
    fn drop(&mut self) {
        let url = std::mem::take(&mut self.url);
        let prefix = std::mem::take(&mut self.prefix);
        let queues = std::mem::take(&mut self.queues);
        // A thread and runtime of its own: the drop may run on an async test's runtime, which
        // must not block on a future, or while a failed test unwinds.
        let deleting = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            let queues: Vec<&str> = queues.iter().map(String::as_str).collect();
            runtime.block_on(async {
                match tokio::time::timeout(
                    Duration::from_secs(10),
                    delete_topology(&url, &prefix, &queues),
                )
                .await
                {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(error)) => Err(error.to_string()),
                    Err(_) => Err("timed out".to_owned()),
                }
            })
        });
        match deleting.join() {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                eprintln!("could not delete the RabbitMQ exchanges and queues: {error}")
            }
            Err(_) => eprintln!("deleting the RabbitMQ exchanges and queues panicked"),
        }
    }
}

/// A name already checked to fit (see [`check_name`]); names are at most 64 + 180 + a few bytes.
pub(crate) fn short(name: &str) -> ShortString {
    ShortString::try_new(name).unwrap_or_default()
}

fn check_name(what: &str, name: &str, max: usize) -> Result<(), JobsError> {
    let valid = !name.is_empty()
        && name.len() <= max
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        });
    if valid {
        Ok(())
    } else {
        Err(JobsError::Config(format!(
            "{what} `{name}` is not a valid RabbitMQ name part: use 1 to {max} characters of a-z, 0-9, `.`, `_` and `-`"
        )))
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn a_delay_takes_the_longest_tier_not_above_it() {
        assert_eq!(Topology::tier_for(Duration::ZERO), 250);
        assert_eq!(Topology::tier_for(Duration::from_millis(999)), 250);
        assert_eq!(Topology::tier_for(Duration::from_secs(1)), 1_000);
        assert_eq!(Topology::tier_for(Duration::from_secs(7)), 5_000);
        assert_eq!(Topology::tier_for(Duration::from_secs(86_400)), 3_600_000);
    }

    #[test]
    fn names_are_checked_and_prefixed() {
        let t = Topology::new("objectos", 9).unwrap();
        assert_eq!(t.work_queue("default").unwrap(), "objectos.jobs.default");
        assert_eq!(t.delay_queue(5_000), "objectos.delay.5000");
        assert!(t.work_queue("Bad Name").is_err());
        assert!(t.work_queue("").is_err());
        assert!(Topology::new("x".repeat(65).as_str(), 9).is_err());
        assert!(Topology::new("objectos", 0).is_err());
    }
}
