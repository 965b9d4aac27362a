//! The outbox relay: committed job rows the broker has not confirmed go out with publisher
//! confirms, a batch at a time, and are marked published only once confirmed.
//!
//! A row whose confirm never came (connection lost, node killed) stays unpublished and goes out
//! again on the next round of any node's relay; the consumer's claim on the row absorbs the
//! duplicate delivery.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, Channel};
use serde::Serialize;

use super::topology::short;
use super::{Outgoing, SessionEnd, Shared, stopped};

/// The message body: the row's id and queue, nothing of the payload (the row holds it).
#[derive(Debug, Serialize, serde::Deserialize)]
pub(crate) struct Body {
    pub(crate) id: String,
    pub(crate) queue: String,
}

/// The properties of a job message: persistent, with its priority and the job id as message id.
pub(crate) fn properties(id: &str, priority: u8) -> BasicProperties {
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_priority(priority)
        .with_content_type("application/json".into())
        .with_message_id(short(id))
        .with_timestamp(u64::try_from(chrono::Utc::now().timestamp()).unwrap_or_default())
}

/// The longest pause between two passes that found nothing to relay. Every enqueue, promotion
/// and reclaim on this node wakes the relay at once, so a pass nobody woke only picks up what
/// another node's relay left behind (its in-flight marks expired, or its broker connection is
/// down). Such a pass reads past every pending row the broker already holds (they stay
/// `pending` until claimed, and no index tells them apart), so while the broker drains a
/// backlog, one pass per poll interval cost the database more than it relayed; the pause
/// doubles from the poll interval up to this while passes come back empty.
const IDLE_PASS_MAX: Duration = Duration::from_secs(2);

/// Relays until the connection fails (an error ends the session) or stop is requested.
pub(super) async fn run(shared: Arc<Shared>, channel: Channel) -> Result<(), SessionEnd> {
    let mut declared: HashSet<String> = shared
        .queues
        .lock()
        .iter()
        .map(|q| q.name.clone())
        .collect();
    let mut stop = shared.stop.subscribe();
    let batch = shared.settings.relay_batch;
    let interval = shared.settings.relay_interval;
    let mut idle = interval;
    loop {
        if shared.stopping() {
            return Ok(());
        }
        let rows = match shared.table.unpublished(batch).await {
            Ok(rows) => rows,
            Err(error) => {
                tracing::warn!(%error, "jobs: the RabbitMQ relay could not read the job table");
                Vec::new()
            }
        };
        let full = rows.len() >= batch;
        let pause = if rows.is_empty() {
            let pause = idle;
            idle = (idle * 2).min(IDLE_PASS_MAX.max(interval));
            pause
        } else {
            idle = interval;
            publish_batch(&shared, &channel, &mut declared, rows).await?;
            interval
        };
        if full {
            continue;
        }
        tokio::select! {
            () = shared.wake.notified() => {}
            () = tokio::time::sleep(pause) => {}
            () = stopped(&mut stop) => return Ok(()),
        }
    }
}

async fn publish_batch(
    shared: &Shared,
    channel: &Channel,
    declared: &mut HashSet<String>,
    rows: Vec<Outgoing>,
) -> Result<(), SessionEnd> {
    let exchange = short(&shared.topology.work_exchange());
    let mut pending = Vec::with_capacity(rows.len());
    let mut unsent = Vec::new();
    for row in rows {
        if !declared.contains(&row.queue) {
            // A queue no node consumes yet: declare it so the message waits there instead of
            // being returned as unroutable.
            if let Err(error) = shared.topology.work_queue(&row.queue) {
                tracing::warn!(job = %row.id, %error, "jobs: job left unpublished");
                unsent.push(row.id);
                continue;
            }
            shared
                .topology
                .declare_work_queue(channel, &row.queue)
                .await?;
            declared.insert(row.queue.clone());
        }
        let body = Body {
            id: row.id.clone(),
            queue: row.queue.clone(),
        };
        let Ok(payload) = serde_json::to_vec(&body) else {
            unsent.push(row.id);
            continue;
        };
        let max = i32::from(shared.topology.max_priority());
        let priority = u8::try_from(row.priority.clamp(0, max)).unwrap_or_default();
        let confirm = channel
            .basic_publish(
                exchange.clone(),
                short(&row.queue),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                &payload,
                properties(&row.id, priority),
            )
            .await?;
        pending.push((row.id, confirm));
    }
    let mut confirmed = Vec::with_capacity(pending.len());
    for (id, confirm) in pending {
        let confirmation = confirm.await?;
        // A nack or a returned message leaves the row unpublished for the next round.
        if confirmation.is_ack() && confirmation.take_message().is_none() {
            confirmed.push(id);
        } else {
            unsent.push(id);
        }
    }
    if let Err(error) = shared.table.release_unpublished(&unsent).await {
        // Their holds expire instead; the rows go out a little later.
        tracing::debug!(%error, count = unsent.len(), "jobs: could not release unpublished jobs");
    }
    if confirmed.is_empty() {
        return Ok(());
    }
    shared
        .counters
        .published
        .fetch_add(confirmed.len() as u64, Ordering::Relaxed);
    if let Err(error) = shared.table.mark_published(&confirmed).await {
        // The rows go out again next round; consumers take the duplicates in their stride.
        tracing::warn!(%error, count = confirmed.len(), "jobs: could not mark relayed jobs published");
    }
    Ok(())
}
