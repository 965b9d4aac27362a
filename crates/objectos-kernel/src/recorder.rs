//! Whether the process's metrics recorder is installed, and handles kept once it is.
//!
//! The `metrics` facade looks a series up in the recorder on every `counter!`/`histogram!` call
//! (hash the name and labels, find the entry): about a thousand instructions each, several per
//! request on the hot path (#11's callgrind). Keeping the handle avoids that, but a handle taken
//! before the recorder is installed is the no-op one and stays so forever, and plugins build
//! their parts (the engine, the permission interceptor) before the metrics plugin starts. So a
//! handle is kept only once the metrics plugin has said the recorder is in place; until then
//! each call takes a fresh handle, which is what the facade did anyway. The kernel does not
//! depend on `metrics`: [`Kept`] holds any handle type.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Called by the plugin that installs the process-wide recorder, after installing it. The
/// recorder of a process never changes once set, so this is never undone.
pub fn mark_installed() {
    INSTALLED.store(true, Ordering::Release);
}

/// Whether [`mark_installed`] has been called in this process.
pub fn installed() -> bool {
    INSTALLED.load(Ordering::Acquire)
}

/// A metric handle taken once the recorder is installed and reused from then on.
#[derive(Debug)]
pub struct Kept<T>(OnceLock<T>);

impl<T> Kept<T> {
    /// An empty slot (usable in a `static`).
    pub const fn new() -> Self {
        Self(OnceLock::new())
    }

    /// Runs `use_handle` on the kept handle; takes it with `take` first if none is kept. A
    /// handle taken before the recorder is installed is used once and dropped.
    pub fn with<R>(&self, take: impl FnOnce() -> T, use_handle: impl FnOnce(&T) -> R) -> R {
        if let Some(handle) = self.0.get() {
            return use_handle(handle);
        }
        if installed() {
            use_handle(self.0.get_or_init(take))
        } else {
            use_handle(&take())
        }
    }
}

impl<T> Default for Kept<T> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_after_installation() {
        let kept = Kept::<u32>::new();
        let mut taken = 0;
        // Before installation every call takes a fresh handle.
        let before = INSTALLED.load(Ordering::Acquire);
        if !before {
            kept.with(
                || {
                    taken += 1;
                    1
                },
                |_| (),
            );
            assert!(kept.0.get().is_none(), "a pre-installation handle was kept");
        }
        mark_installed();
        for _ in 0..3 {
            let seen = kept.with(
                || {
                    taken += 1;
                    7
                },
                |h| *h,
            );
            assert_eq!(seen, 7);
        }
        assert_eq!(
            taken,
            if before { 1 } else { 2 },
            "taken once after installation"
        );
    }
}
