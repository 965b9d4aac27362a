//! Consumers: one channel per job queue with its prefetch, manual acknowledgements, and each
//! delivery run as its own task so a slow job holds only its own slot.
//!
//! A delivery is acknowledged only after the job table recorded what happened to the job, so
//! every path that loses the node before that (crash, dropped connection) ends with RabbitMQ
//! delivering the message again.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    BasicRejectOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, Consumer};

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

/// Hands deliveries to job tasks until the consumer ends, which ends the session. The
/// deliveries already waiting when one arrives (up to the prefetch) go together, so their rows
/// are claimed in one statement instead of one each.
pub(super) async fn run(
    shared: Arc<Shared>,
    queue: String,
    mut consumer: Consumer,
    retry: Channel,
    prefetch: u16,
) -> Result<(), SessionEnd> {
    let max = usize::from(prefetch.max(1));
    while let Some(first) = consumer.next().await {
        let mut batch = vec![first?];
        while batch.len() < max {
            match consumer.next().now_or_never() {
                Some(Some(delivery)) => batch.push(delivery?),
                Some(None) | None => break,
            }
        }
        let task = handle(Arc::clone(&shared), queue.clone(), batch, retry.clone());
        shared.spawn_job(task);
    }
    Err(SessionEnd::Closed("a RabbitMQ consumer was cancelled"))
}

/// Claims a batch's rows, then finishes each delivery in its own task so a slow job holds
/// only its own message.
async fn handle(shared: Arc<Shared>, queue: String, deliveries: Vec<Delivery>, retry: Channel) {
    let mut jobs = Vec::with_capacity(deliveries.len());
    let mut kept = Vec::with_capacity(deliveries.len());
    for delivery in deliveries {
        let Ok(body) = serde_json::from_slice::<Body>(&delivery.data) else {
            // Not one of ours: keep it for an operator instead of redelivering it forever.
            tracing::warn!(queue = %queue, "jobs: rejected an unreadable RabbitMQ message into the dead letters");
            reject(&shared, &delivery).await;
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
    let runs = match shared.table.take(jobs.clone()).await {
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
            later(&shared, &retry, job, delivery, TABLE_RETRY).await;
        }
        return;
    }
    for ((run, job), delivery) in runs.into_iter().zip(jobs).zip(kept) {
        let shared2 = Arc::clone(&shared);
        let retry = retry.clone();
        shared.spawn_job(async move {
            finish(&shared2, &retry, &job, &delivery, run.await).await;
        });
    }
}

/// Acknowledges, delays or rejects one delivery by what became of its job.
async fn finish(
    shared: &Shared,
    retry: &Channel,
    job: &Delivered,
    delivery: &Delivery,
    outcome: Result<Outcome, crate::error::JobsError>,
) {
    match outcome {
        Ok(Outcome::Done) => ack(shared, delivery).await,
        Ok(Outcome::RetryAfter(delay)) => later(shared, retry, job, delivery, delay).await,
        Ok(Outcome::DeadLetter) => reject(shared, delivery).await,
        Err(error) => {
            tracing::warn!(job = %job.id, %error, "jobs: could not run a delivered job; trying again shortly");
            later(shared, retry, job, delivery, TABLE_RETRY).await;
        }
    }
}

async fn ack(shared: &Shared, delivery: &Delivery) {
    // A failed ack means the channel is gone: the broker delivers the message again and the row,
    // already updated, turns the repeat into a no-op.
    if delivery.acker.ack(BasicAckOptions::default()).await.is_ok() {
        shared.counters.acknowledged.fetch_add(1, Ordering::Relaxed);
    }
}

async fn reject(shared: &Shared, delivery: &Delivery) {
    let options = BasicRejectOptions { requeue: false };
    if delivery.acker.reject(options).await.is_ok() {
        shared
            .counters
            .dead_lettered
            .fetch_add(1, Ordering::Relaxed);
    }
}

/// Sends the job through the delay tier for `delay`, then acknowledges this delivery; if the
/// delayed copy is not confirmed, this delivery goes back to the queue instead.
async fn later(
    shared: &Shared,
    retry: &Channel,
    job: &Delivered,
    delivery: &Delivery,
    delay: Duration,
) {
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
        ack(shared, delivery).await;
    } else {
        let options = BasicNackOptions {
            requeue: true,
            ..BasicNackOptions::default()
        };
        // Nothing more to do if this fails too: the channel is gone and the broker redelivers.
        let _ = delivery.acker.nack(options).await;
    }
}
