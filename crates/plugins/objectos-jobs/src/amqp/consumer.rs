//! Consumers: one channel per job queue with its prefetch, manual acknowledgements, and each
//! delivery run as its own task so a slow job holds only its own slot.
//!
//! A delivery is acknowledged only after the job table recorded what happened to the job, so
//! every path that loses the node before that (crash, dropped connection) ends with RabbitMQ
//! delivering the message again. The prefetch is larger than the handlers that run at once
//! (the queue's `workers`, enforced by the core): the deliveries beyond it are the ones being
//! claimed or waiting for their completion write, so the wait for the write does not idle a
//! handler slot. Claims are pipelined (two statements on their way) and acknowledgements
//! coalesced (`acks.rs`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{
    BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions, BasicRejectOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, Consumer};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::acks::Acks;
use super::relay::{Body, properties};
use super::topology::{Topology, short};
use super::{AmqpQueue, Delivered, Outcome, SessionEnd, Shared};

/// How long a delivery waits before another try when the job table could not be reached.
const TABLE_RETRY: Duration = Duration::from_secs(1);

/// Opens the queue's channel with its prefetch and starts consuming.
pub(super) async fn open(
    shared: &Shared,
    connection: &Connection,
    queue: &AmqpQueue,
) -> Result<Consumer, lapin::Error> {
    let channel = connection.create_channel().await?;
    channel
        .basic_qos(queue.prefetch, BasicQosOptions::default())
        .await?;
    let name = format!("{}.jobs.{}", shared.topology.prefix(), queue.name);
    let consumer = channel
        .basic_consume(
            short(&name),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(consumer)
}

/// Claim statements one consumer has on their way at once: while they are, the deliveries that
/// arrive gather into the next batch, so batches grow with the delivery rate and a claim is
/// never idle waiting for the previous one's answer.
const CLAIMS_IN_FLIGHT: usize = 2;

/// Hands deliveries to job tasks until the consumer ends, which ends the session. The
/// deliveries already waiting when one arrives (up to `batch`) go together, so their rows are
/// claimed in one statement instead of one each.
pub(super) async fn run(
    shared: Arc<Shared>,
    queue: String,
    mut consumer: Consumer,
    retry: Channel,
    batch: usize,
) -> Result<(), SessionEnd> {
    let max = batch.max(1);
    let claims = Arc::new(Semaphore::new(CLAIMS_IN_FLIGHT));
    let acks = Arc::new(Acks::default());
    while let Some(first) = consumer.next().await {
        let first = first?;
        acks.opened(first.delivery_tag);
        let mut batch = vec![first];
        // Waiting for a claim slot lets the deliveries arriving meanwhile join this batch.
        let Ok(claim) = Arc::clone(&claims).acquire_owned().await else {
            break;
        };
        while batch.len() < max {
            match consumer.next().now_or_never() {
                Some(Some(delivery)) => {
                    let delivery = delivery?;
                    acks.opened(delivery.delivery_tag);
                    batch.push(delivery);
                }
                Some(None) | None => break,
            }
        }
        let consumer = Consumed {
            shared: Arc::clone(&shared),
            retry: retry.clone(),
            acks: Arc::clone(&acks),
        };
        shared.spawn_job(consumer.handle(queue.clone(), batch, claim));
    }
    Err(SessionEnd::Closed("a RabbitMQ consumer was cancelled"))
}

/// What finishing a delivery needs: the backend, the channel for delayed copies and the
/// consumer channel's acknowledgements.
#[derive(Clone)]
struct Consumed {
    shared: Arc<Shared>,
    retry: Channel,
    acks: Arc<Acks>,
}

impl Consumed {
    /// Claims a batch's rows, then finishes each delivery in its own task so a slow job holds
    /// only its own message.
    async fn handle(self, queue: String, deliveries: Vec<Delivery>, claim: OwnedSemaphorePermit) {
        let mut jobs = Vec::with_capacity(deliveries.len());
        let mut kept = Vec::with_capacity(deliveries.len());
        for delivery in deliveries {
            let Ok(body) = serde_json::from_slice::<Body>(&delivery.data) else {
                // Not one of ours: keep it for an operator instead of redelivering it forever.
                tracing::warn!(queue = %queue, "jobs: rejected an unreadable RabbitMQ message into the dead letters");
                self.reject(&delivery).await;
                continue;
            };
            jobs.push(Delivered {
                id: body.id,
                queue: body.queue,
                redelivered: delivery.redelivered,
            });
            kept.push(delivery);
        }
        if jobs.is_empty() {
            return;
        }
        let taken = self.shared.table.take(jobs.clone()).await;
        drop(claim);
        let runs = match taken {
            Ok(runs) if runs.len() == jobs.len() => runs,
            Ok(_) => {
                tracing::warn!(queue = %queue, "jobs: the job table answered a batch of deliveries with the wrong count; trying again shortly");
                Vec::new()
            }
            Err(error) => {
                tracing::warn!(queue = %queue, %error, "jobs: could not claim delivered jobs; trying again shortly");
                Vec::new()
            }
        };
        if runs.is_empty() {
            for (job, delivery) in jobs.iter().zip(&kept) {
                self.later(job, delivery, TABLE_RETRY).await;
            }
            return;
        }
        for ((run, job), delivery) in runs.into_iter().zip(jobs).zip(kept) {
            let this = self.clone();
            self.shared.spawn_job(async move {
                let outcome = run.await;
                this.finish(&job, delivery, outcome).await;
            });
        }
    }

    /// Acknowledges, delays or rejects one delivery by what became of its job.
    async fn finish(
        &self,
        job: &Delivered,
        delivery: Delivery,
        outcome: Result<Outcome, crate::error::JobsError>,
    ) {
        match outcome {
            Ok(Outcome::Done) => self.ack(delivery).await,
            Ok(Outcome::RetryAfter(delay)) => self.later(job, &delivery, delay).await,
            Ok(Outcome::DeadLetter) => self.reject(&delivery).await,
            Err(error) => {
                tracing::warn!(job = %job.id, %error, "jobs: could not run a delivered job; trying again shortly");
                self.later(job, &delivery, TABLE_RETRY).await;
            }
        }
    }

    /// Acknowledges with the consumer's next coalesced acknowledgement.
    async fn ack(&self, delivery: Delivery) {
        let tag = delivery.delivery_tag;
        self.acks.ready(&self.shared, tag, delivery.acker).await;
    }

    async fn reject(&self, delivery: &Delivery) {
        let options = BasicRejectOptions { requeue: false };
        if delivery.acker.reject(options).await.is_ok() {
            self.shared
                .counters
                .dead_lettered
                .fetch_add(1, Ordering::Relaxed);
        }
        self.acks.settled(delivery.delivery_tag);
    }

    /// Sends the job through the delay tier for `delay`, then acknowledges this delivery; if the
    /// delayed copy is not confirmed, this delivery goes back to the queue instead.
    async fn later(&self, job: &Delivered, delivery: &Delivery, delay: Duration) {
        let shared = &self.shared;
        let retry = &self.retry;
        let tier = Topology::tier_for(delay);
        let priority = delivery.properties.priority().unwrap_or(0);
        let body = Body {
            id: job.id.clone(),
            queue: job.queue.clone(),
        };
        let published = match serde_json::to_vec(&body) {
            Ok(payload) => {
                let confirm = retry
                    .basic_publish(
                        short(&shared.topology.delay_exchange()),
                        short(&job.queue),
                        BasicPublishOptions {
                            mandatory: true,
                            ..BasicPublishOptions::default()
                        },
                        &payload,
                        properties(&job.id, priority).with_headers(Topology::delay_headers(tier)),
                    )
                    .await;
                match confirm {
                    Ok(confirm) => match confirm.await {
                        Ok(confirmation) => {
                            confirmation.is_ack() && confirmation.take_message().is_none()
                        }
                        Err(_) => false,
                    },
                    Err(_) => false,
                }
            }
            Err(_) => false,
        };
        if published {
            shared.counters.delayed.fetch_add(1, Ordering::Relaxed);
            // The delayed copy is the row's delivery now: without this mark, a relay would publish
            // the row again once it is due (the table clears the mark on a failed attempt, so a
            // crash before this line only costs a duplicate, which the claim drops).
            if let Err(error) = shared
                .table
                .mark_published(std::slice::from_ref(&job.id))
                .await
            {
                tracing::debug!(job = %job.id, %error, "jobs: could not mark a delayed job relayed");
            }
            self.acks
                .ready(shared, delivery.delivery_tag, delivery.acker.clone())
                .await;
        } else {
            let options = BasicNackOptions {
                requeue: true,
                ..BasicNackOptions::default()
            };
            // Nothing more to do if this fails too: the channel is gone and the broker redelivers.
            let _ = delivery.acker.nack(options).await;
            self.acks.settled(delivery.delivery_tag);
        }
    }
}
