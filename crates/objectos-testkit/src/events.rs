//! Collecting events: what plugins publish and what the outbox delivers (`data.<object>.<verb>`).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use objectos_kernel::{Event, Kernel, SubscribeOptions};

/// How long [`Events::wait_for`] waits before failing the test: far beyond any healthy delivery,
/// so a missing event fails instead of hanging.
const WAIT: Duration = Duration::from_secs(10);

/// Every event matching the patterns it was attached with, in delivery order.
#[derive(Debug, Clone, Default)]
pub struct Events(Arc<Mutex<Vec<Event>>>);

impl Events {
    /// Subscribes to `pattern` (bus wildcards: `data.*.created`, `auth.**`) on the kernel's bus,
    /// inline so events are recorded in order. Attach before `boot` to see start-up events.
    ///
    /// # Panics
    /// When the pattern is malformed.
    pub fn attach(&self, kernel: &Kernel, pattern: &str) {
        let sink = self.0.clone();
        kernel
            .bus()
            .subscribe_inline(
                "testkit",
                pattern,
                move |e: &Event| {
                    lock(&sink).push(e.clone());
                    Ok(())
                },
                SubscribeOptions::default(),
            )
            .unwrap_or_else(|e| panic!("subscribing to {pattern}: {e}"));
    }

    /// Every event so far.
    pub fn all(&self) -> Vec<Event> {
        lock(&self.0).clone()
    }

    /// The names of every event so far.
    pub fn names(&self) -> Vec<String> {
        lock(&self.0).iter().map(|e| e.name.clone()).collect()
    }

    /// The events named `name` so far.
    pub fn named(&self, name: &str) -> Vec<Event> {
        lock(&self.0)
            .iter()
            .filter(|e| e.name == name)
            .cloned()
            .collect()
    }

    /// Forgets what was collected.
    pub fn clear(&self) {
        lock(&self.0).clear();
    }

    /// The first event named `name`, waiting (bounded) for it to arrive.
    ///
    /// # Panics
    /// When it has not arrived after ten seconds; the message lists what did.
    pub async fn wait_for(&self, name: &str) -> Event {
        self.wait_count(name, 1).await.remove(0)
    }

    /// The first `n` events named `name`, waiting (bounded) for them.
    ///
    /// # Panics
    /// When fewer arrived after ten seconds.
    pub async fn wait_count(&self, name: &str, n: usize) -> Vec<Event> {
        let arrived = crate::wait::until_async(WAIT, async || self.named(name).len() >= n).await;
        let seen = self.named(name);
        assert!(
            arrived.is_some(),
            "expected {n} `{name}` event(s), got {}; all events: {:?}",
            seen.len(),
            self.names()
        );
        seen.into_iter().take(n).collect()
    }
}

/// A handler that panicked while holding the lock poisons it; the events are still good.
fn lock(m: &Mutex<Vec<Event>>) -> MutexGuard<'_, Vec<Event>> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
