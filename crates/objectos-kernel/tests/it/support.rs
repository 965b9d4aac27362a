//! Test plugins and manifest builders shared by the test modules.

use std::sync::Arc;
use std::time::Duration;

use objectos_kernel::{
    HealthReport, InitContext, Plugin, PluginError, PluginHandle, PluginManifest, StartContext,
    StopContext, async_trait,
};
use objectos_spec::PluginDependency;
use parking_lot::Mutex;

fn leak_str(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

fn leak_list(items: &[&str]) -> &'static [&'static str] {
    Box::leak(
        items
            .iter()
            .map(|s| leak_str(s))
            .collect::<Vec<_>>()
            .into_boxed_slice(),
    )
}

/// Builds a manifest with `'static` slices by leaking (fine in tests).
#[derive(Clone)]
pub(crate) struct Man {
    m: PluginManifest,
    deps: Vec<PluginDependency>,
}

impl Man {
    pub(crate) fn new(id: &str, version: &str) -> Self {
        Self {
            m: PluginManifest::new(leak_str(id), leak_str(id), leak_str(version)),
            deps: Vec::new(),
        }
    }
    pub(crate) fn dep(mut self, id: &str, range: &str) -> Self {
        self.deps.push(PluginDependency {
            id: leak_str(id),
            version: leak_str(range),
            optional: false,
        });
        self
    }
    pub(crate) fn opt_dep(mut self, id: &str, range: &str) -> Self {
        self.deps.push(PluginDependency {
            id: leak_str(id),
            version: leak_str(range),
            optional: true,
        });
        self
    }
    pub(crate) fn provides(mut self, names: &[&str]) -> Self {
        self.m.provides = leak_list(names);
        self
    }
    pub(crate) fn requires(mut self, names: &[&str]) -> Self {
        self.m.requires = leak_list(names);
        self
    }
    pub(crate) fn optional_requires(mut self, names: &[&str]) -> Self {
        self.m.optional_requires = leak_list(names);
        self
    }
    pub(crate) fn lazy_requires(mut self, names: &[&str]) -> Self {
        self.m.lazy_requires = leak_list(names);
        self
    }
    pub(crate) fn permissions(mut self, names: &[&str]) -> Self {
        self.m.permissions = leak_list(names);
        self
    }
    pub(crate) fn emits(mut self, names: &[&str]) -> Self {
        self.m.emits = leak_list(names);
        self
    }
    pub(crate) fn subscribes(mut self, names: &[&str]) -> Self {
        self.m.subscribes = leak_list(names);
        self
    }
    pub(crate) fn build(self) -> PluginManifest {
        let mut m = self.m;
        m.dependencies = Box::leak(self.deps.into_boxed_slice());
        m
    }
}

/// A shared, ordered log of what happened.
#[derive(Clone, Default)]
pub(crate) struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    pub(crate) fn push(&self, entry: impl Into<String>) {
        self.0.lock().push(entry.into());
    }
    pub(crate) fn entries(&self) -> Vec<String> {
        self.0.lock().clone()
    }
}

pub(crate) type InitFn = Box<dyn Fn(&mut InitContext<'_>) -> Result<(), PluginError> + Send + Sync>;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    Ok,
    Fail,
    Panic,
    Hang,
}

/// A configurable plugin that logs `init:<id>`, `start:<id>` and `destroy:<id>`.
pub(crate) struct TestPlugin {
    pub manifest: PluginManifest,
    pub log: Log,
    pub on_init: Option<InitFn>,
    pub start: Start,
    pub fail_init: bool,
    pub fail_destroy: bool,
    pub health: Option<HealthReport>,
    pub health_hangs: bool,
    /// Receives the plugin's handle at start.
    pub handle: Arc<Mutex<Option<PluginHandle>>>,
}

impl TestPlugin {
    pub(crate) fn new(manifest: PluginManifest, log: &Log) -> Self {
        Self {
            manifest,
            log: log.clone(),
            on_init: None,
            start: Start::Ok,
            fail_init: false,
            fail_destroy: false,
            health: None,
            health_hangs: false,
            handle: Arc::default(),
        }
    }
    pub(crate) fn on_init(
        mut self,
        f: impl Fn(&mut InitContext<'_>) -> Result<(), PluginError> + Send + Sync + 'static,
    ) -> Self {
        self.on_init = Some(Box::new(f));
        self
    }
    pub(crate) fn start(mut self, s: Start) -> Self {
        self.start = s;
        self
    }
    pub(crate) fn fail_init(mut self) -> Self {
        self.fail_init = true;
        self
    }
    pub(crate) fn fail_destroy(mut self) -> Self {
        self.fail_destroy = true;
        self
    }
    pub(crate) fn health(mut self, r: HealthReport) -> Self {
        self.health = Some(r);
        self
    }
    pub(crate) fn health_hangs(mut self) -> Self {
        self.health_hangs = true;
        self
    }
    pub(crate) fn handle_slot(&self) -> Arc<Mutex<Option<PluginHandle>>> {
        self.handle.clone()
    }
}

#[async_trait]
impl Plugin for TestPlugin {
    fn manifest(&self) -> &PluginManifest {
        &self.manifest
    }

    fn init(&self, cx: &mut InitContext<'_>) -> Result<(), PluginError> {
        self.log.push(format!("init:{}", self.manifest.id));
        if let Some(f) = &self.on_init {
            f(cx)?;
        }
        if self.fail_init {
            return Err(PluginError::msg("init refused"));
        }
        Ok(())
    }

    async fn start(&self, cx: &StartContext) -> Result<(), PluginError> {
        self.log.push(format!("start:{}", self.manifest.id));
        *self.handle.lock() = Some(cx.handle());
        match self.start {
            Start::Ok => Ok(()),
            Start::Fail => Err(PluginError::msg("database unreachable")),
            Start::Panic => panic!("start exploded"),
            Start::Hang => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(())
            }
        }
    }

    async fn health(&self) -> HealthReport {
        if self.health_hangs {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        self.health.clone().unwrap_or_else(HealthReport::healthy)
    }

    async fn destroy(&self, _cx: &StopContext) -> Result<(), PluginError> {
        self.log.push(format!("destroy:{}", self.manifest.id));
        if self.fail_destroy {
            return Err(PluginError::msg("flush failed"));
        }
        Ok(())
    }
}

/// Polls `cond` every few milliseconds for up to two seconds.
pub(crate) async fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..400 {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cond()
}
