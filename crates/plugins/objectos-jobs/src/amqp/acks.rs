//! The acknowledgements of one consumer channel, coalesced: deliveries whose outcome is written
//! are acknowledged together, one `basic.ack` with `multiple` for the oldest run of them, right
//! after the completion batch that recorded them.
//!
//! `multiple` acknowledges every unsettled delivery up to a tag, so it may only name a tag whose
//! every predecessor on the channel is settled or ready: the deliveries are registered in
//! delivery order as they arrive ([`Acks::opened`]), and a ready delivery behind one still
//! running is acknowledged on its own, so a slow job never holds back the others' prefetch
//! slots.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use lapin::Acker;
use lapin::options::BasicAckOptions;
use parking_lot::Mutex;

use super::Shared;

/// One consumer channel's unsettled deliveries.
#[derive(Debug, Default)]
pub(super) struct Acks {
    state: Mutex<State>,
    /// Held from taking the ready deliveries until their acks are sent: a single ack still
    /// unsent when a later flush's `multiple` covers its tag would name a settled delivery,
    /// which RabbitMQ answers by closing the channel.
    sending: tokio::sync::Mutex<()>,
}

#[derive(Debug, Default)]
struct State {
    /// Delivered and not settled, by delivery tag; `Some` once ready to acknowledge.
    open: BTreeMap<u64, Option<Acker>>,
    /// A task has taken on the next flush; deliveries readied meanwhile go with it.
    flushing: bool,
}

/// Times a flushing task yields before it sends, so the other jobs of the same completion batch
/// (woken together) ready their deliveries first and go in the same acknowledgement.
const GATHER_YIELDS: usize = 3;

impl Acks {
    /// Registers a delivery as it arrives, before anything can settle it.
    pub(super) fn opened(&self, tag: u64) {
        self.state.lock().open.insert(tag, None);
    }

    /// The delivery was settled on its own (rejected, requeued): no acknowledgement covers it.
    pub(super) fn settled(&self, tag: u64) {
        self.state.lock().open.remove(&tag);
    }

    /// The delivery's outcome is recorded: it is acknowledged with the next flush, which the
    /// first caller since the last one sends after letting the others join.
    pub(super) async fn ready(&self, shared: &Shared, tag: u64, acker: Acker) {
        let lead = {
            let mut state = self.state.lock();
            state.open.insert(tag, Some(acker));
            !std::mem::replace(&mut state.flushing, true)
        };
        if !lead {
            return;
        }
        for _ in 0..GATHER_YIELDS {
            tokio::task::yield_now().await;
        }
        let _sending = self.sending.lock().await;
        let (front, behind) = self.take_ready();
        // A failed ack means the channel is gone: the broker delivers the messages again and
        // their rows, already updated, turn the repeats into no-ops.
        if let Some((acker, count)) = front {
            let options = BasicAckOptions {
                multiple: count > 1,
            };
            if acker.ack(options).await.is_ok() {
                shared
                    .counters
                    .acknowledged
                    .fetch_add(count, Ordering::Relaxed);
            }
        }
        for acker in behind {
            if acker.ack(BasicAckOptions::default()).await.is_ok() {
                shared.counters.acknowledged.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Takes every ready delivery: the run at the front as the last one's acker and the run's
    /// length (one `multiple` ack), and those behind an unsettled delivery one by one.
    fn take_ready(&self) -> (Option<(Acker, u64)>, Vec<Acker>) {
        let mut state = self.state.lock();
        state.flushing = false;
        let mut front = None;
        let mut count = 0u64;
        while let Some(entry) = state.open.first_entry() {
            if entry.get().is_none() {
                break;
            }
            front = entry.remove();
            count += 1;
        }
        let ready: Vec<u64> = state
            .open
            .iter()
            .filter(|(_, acker)| acker.is_some())
            .map(|(tag, _)| *tag)
            .collect();
        let behind = ready
            .into_iter()
            .filter_map(|tag| state.open.remove(&tag).flatten())
            .collect();
        (front.map(|acker| (acker, count)), behind)
    }
}
