//! The plugin contract: a manifest plus `init`, `start`, `health` and `destroy`.

use async_trait::async_trait;
use objectos_spec::{HealthReport, PluginManifest};

use crate::context::{InitContext, StartContext, StopContext};
use crate::error::PluginError;

/// A plugin: a struct whose public fields are its settings, implementing this trait.
///
/// The kernel calls, in dependency order, every `init` (synchronous, no I/O: register services,
/// contributions and event handlers), then every `start` (asynchronous, bounded by the start
/// timeout: open pools, spawn tasks), then emits `kernel.ready`. On shutdown it calls `destroy`
/// in reverse start order, only for plugins whose `start` succeeded.
#[async_trait]
pub trait Plugin: Send + Sync + 'static {
    /// Static identity and contract. Cheap, no I/O; usually returns a `const MANIFEST`.
    fn manifest(&self) -> &PluginManifest;

    /// Phase 1: register services, contributions and event handlers. No I/O.
    fn init(&self, cx: &mut InitContext<'_>) -> Result<(), PluginError>;

    /// Phase 2: every plugin is initialised and the registry is frozen; look up services, open
    /// resources, spawn tasks.
    async fn start(&self, cx: &StartContext) -> Result<(), PluginError> {
        let _ = cx;
        Ok(())
    }

    /// A bounded probe; the kernel counts a probe that exceeds its time limit as unhealthy.
    async fn health(&self) -> HealthReport {
        HealthReport::healthy()
    }

    /// Phase 3: release what `start` acquired. Must be idempotent.
    async fn destroy(&self, cx: &StopContext) -> Result<(), PluginError> {
        let _ = cx;
        Ok(())
    }
}
