//! Plugin contexts: what a plugin may do in each phase, limited to what its manifest declares.
//!
//! [`PluginHandle`] is the capability-checked view of the kernel for one plugin: service lookups
//! (only names in `requires`, `optional_requires`, `lazy_requires` or `provides`), publishing (only names matching `emits`, with the
//! `events.publish` permission) and the kernel context. It is cheap to clone, so a plugin can keep
//! one in the tasks it spawns. [`InitContext`], [`StartContext`] and [`StopContext`] dereference
//! to it; `InitContext` adds registration, contributions, subscriptions and configuration
//! (`settings_or`: a plugin's typed `objectos.yml` section, checked, every problem located).

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use objectos_spec::manifest::capabilities;
use objectos_spec::settings::{ConfigSection, PluginSettings, SettingsProblem, deserialize_all};
use objectos_spec::{Event, KernelContext, PluginManifest};
use serde::de::DeserializeOwned;

use crate::cluster::ClusterSettings;
use crate::contracts::Clock;
use crate::error::{KernelError, PluginError};
use crate::events::{
    EventBus, EventHandler, EventPattern, HandlerError, SubscribeOptions, SubscriptionId,
    make_event,
};
use crate::registry::{Contribution, ServiceRegistry};

/// What every context shares: the kernel's identity, registry, bus and clock.
pub(crate) struct Shared {
    pub(crate) kernel: Arc<KernelContext>,
    pub(crate) registry: Arc<ServiceRegistry>,
    pub(crate) bus: EventBus,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) cluster: Arc<ClusterSettings>,
}

/// A plugin's declarations, precompiled for checks.
struct Grants {
    manifest: PluginManifest,
    emits: Vec<EventPattern>,
    subscribes: Vec<EventPattern>,
    can_publish: bool,
    can_subscribe: bool,
}

/// The capability-checked view of the kernel for one plugin.
#[derive(Clone)]
pub struct PluginHandle {
    grants: Arc<Grants>,
    shared: Arc<Shared>,
}

impl fmt::Debug for PluginHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginHandle")
            .field("plugin", &self.grants.manifest.id)
            .field("instance", &self.shared.kernel.instance_id)
            .finish_non_exhaustive()
    }
}

impl PluginHandle {
    pub(crate) fn new(manifest: &PluginManifest, shared: Arc<Shared>) -> Self {
        // Patterns were validated during resolution; an invalid one simply grants nothing.
        let compile = |list: &[&str]| -> Vec<EventPattern> {
            list.iter()
                .filter_map(|p| EventPattern::parse(p).ok())
                .collect()
        };
        let grants = Grants {
            manifest: *manifest,
            emits: compile(manifest.emits),
            subscribes: compile(manifest.subscribes),
            can_publish: manifest.permissions.contains(&capabilities::EVENTS_PUBLISH),
            can_subscribe: manifest
                .permissions
                .contains(&capabilities::EVENTS_SUBSCRIBE),
        };
        Self {
            grants: Arc::new(grants),
            shared,
        }
    }

    /// The plugin's id.
    pub fn plugin_id(&self) -> &'static str {
        self.grants.manifest.id
    }

    /// The plugin's manifest.
    pub fn manifest(&self) -> &PluginManifest {
        &self.grants.manifest
    }

    /// Identity, mode, version and start time of the running kernel.
    pub fn kernel(&self) -> &KernelContext {
        &self.shared.kernel
    }

    /// Queue depth and dead letters of the event bus (read-only; the metrics plugin's gauges).
    pub fn event_stats(&self) -> crate::events::EventStats {
        self.shared.bus.stats()
    }

    /// The kernel's clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.shared.clock
    }

    /// This node's id and the shared services (Redis, RabbitMQ) configured for the deployment.
    pub fn cluster(&self) -> &ClusterSettings {
        &self.shared.cluster
    }

    fn refuse(&self, what: String, missing_declaration: String) -> PluginError {
        PluginError::Capability {
            plugin: self.plugin_id().to_owned(),
            what,
            missing_declaration,
        }
    }

    fn may_use_service(&self, name: &str) -> Result<(), PluginError> {
        let m = &self.grants.manifest;
        if m.requires.contains(&name)
            || m.optional_requires.contains(&name)
            || m.lazy_requires.contains(&name)
            || m.provides.contains(&name)
        {
            Ok(())
        } else {
            Err(self.refuse(
                format!("look up service `{name}`"),
                format!("add \"{name}\" to its manifest `requires`"),
            ))
        }
    }

    fn service_error(&self, service: &str, source: KernelError) -> PluginError {
        PluginError::Service {
            plugin: self.plugin_id().to_owned(),
            service: service.to_owned(),
            source: Box::new(source),
        }
    }

    fn event_error(&self, event: &str, source: KernelError) -> PluginError {
        PluginError::Event {
            plugin: self.plugin_id().to_owned(),
            event: event.to_owned(),
            source: Box::new(source),
        }
    }

    /// The service registered with contract type `T` (e.g. `dyn Cache`), if its name is declared.
    pub fn get<T>(&self) -> Result<Arc<T>, PluginError>
    where
        T: ?Sized + Send + Sync + 'static,
    {
        let (name, value) = self
            .shared
            .registry
            .get_entry::<T>()
            .map_err(|e| self.service_error(std::any::type_name::<T>(), e))?;
        self.may_use_service(name)?;
        Ok(value.clone())
    }

    /// The service registered under the spec name `name`, if declared; it must have type `T`.
    pub fn get_named<T>(&self, name: &str) -> Result<Arc<T>, PluginError>
    where
        T: ?Sized + Send + Sync + 'static,
    {
        self.may_use_service(name)?;
        self.shared
            .registry
            .get_named::<T>(name)
            .map_err(|e| self.service_error(name, e))
    }

    /// Every contribution of type `T` from every plugin.
    pub fn contributions<T>(&self) -> Result<&[Contribution<T>], PluginError>
    where
        T: Send + Sync + 'static,
    {
        self.shared
            .registry
            .contributions::<T>()
            .map_err(|e| self.service_error(std::any::type_name::<T>(), e))
    }

    /// A new event from this plugin (fresh id, current time, `source` = plugin id).
    pub fn event(&self, name: impl Into<String>, payload: serde_json::Value) -> Event {
        make_event(
            name.into(),
            self.plugin_id().to_owned(),
            payload,
            self.shared.clock.as_ref(),
        )
    }

    fn may_emit(&self, name: &str) -> Result<(), PluginError> {
        objectos_spec::event::validate_event_name(name, false).map_err(|reason| {
            self.event_error(
                name,
                KernelError::InvalidEventName {
                    name: name.to_owned(),
                    reason,
                },
            )
        })?;
        if !self.grants.can_publish {
            return Err(self.refuse(
                format!("publish event `{name}`"),
                format!(
                    "add \"{}\" to its manifest `permissions`",
                    capabilities::EVENTS_PUBLISH
                ),
            ));
        }
        if !self.grants.emits.iter().any(|p| p.matches(name)) {
            return Err(self.refuse(
                format!("publish event `{name}`"),
                format!("add \"{name}\" (or a pattern matching it) to its manifest `emits`"),
            ));
        }
        Ok(())
    }

    /// Publishes on the asynchronous lane, waiting while a subscriber queue is full.
    pub async fn publish(&self, event: impl Into<Arc<Event>>) -> Result<usize, PluginError> {
        let event = event.into();
        self.may_emit(&event.name)?;
        // An `Arc` clone keeps the name for the error path without copying it on every publish.
        let kept = event.clone();
        self.shared
            .bus
            .publish(event)
            .await
            .map_err(|e| self.event_error(&kept.name, e))
    }

    /// Publishes a batch on the asynchronous lane (see `EventBus::publish_many`); every event's
    /// name is checked against the manifest before anything is queued.
    pub async fn publish_many(&self, events: &[Arc<Event>]) -> Result<usize, PluginError> {
        for event in events {
            self.may_emit(&event.name)?;
        }
        match self.shared.bus.publish_many(events).await {
            Ok(n) => Ok(n),
            Err(e) => Err(self.event_error(events.first().map_or("", |ev| &ev.name), e)),
        }
    }

    /// Publishes on the asynchronous lane, or fails with `QueueFull` without delivering anything.
    pub fn try_publish(&self, event: impl Into<Arc<Event>>) -> Result<usize, PluginError> {
        let event = event.into();
        self.may_emit(&event.name)?;
        let kept = event.clone();
        self.shared
            .bus
            .try_publish(event)
            .map_err(|e| self.event_error(&kept.name, e))
    }

    /// Runs the synchronous handlers inline and returns their failures.
    pub fn publish_sync(&self, event: &Event) -> Result<Vec<HandlerError>, PluginError> {
        self.may_emit(&event.name)?;
        Ok(self.shared.bus.publish_sync(event))
    }

    fn may_subscribe(&self, pattern: &str) -> Result<(), PluginError> {
        let requested = EventPattern::parse(pattern).map_err(|e| self.event_error(pattern, e))?;
        if !self.grants.can_subscribe {
            return Err(self.refuse(
                format!("subscribe to `{pattern}`"),
                format!(
                    "add \"{}\" to its manifest `permissions`",
                    capabilities::EVENTS_SUBSCRIBE
                ),
            ));
        }
        if !self.grants.subscribes.iter().any(|p| p.covers(&requested)) {
            return Err(self.refuse(
                format!("subscribe to `{pattern}`"),
                format!(
                    "add \"{pattern}\" (or a pattern covering it) to its manifest `subscribes`"
                ),
            ));
        }
        Ok(())
    }
}

/// The context of `init`: register services and contributions, subscribe, read configuration.
pub struct InitContext<'a> {
    handle: PluginHandle,
    config: &'a serde_json::Value,
}

impl fmt::Debug for InitContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InitContext")
            .field("plugin", &self.plugin_id())
            .finish_non_exhaustive()
    }
}

impl Deref for InitContext<'_> {
    type Target = PluginHandle;
    fn deref(&self) -> &PluginHandle {
        &self.handle
    }
}

impl<'a> InitContext<'a> {
    pub(crate) fn new(handle: PluginHandle, config: &'a serde_json::Value) -> Self {
        Self { handle, config }
    }

    /// A clone of the plugin's handle, to keep in handlers and tasks.
    pub fn handle(&self) -> PluginHandle {
        self.handle.clone()
    }

    /// The plugin's configuration as given to the kernel builder (`null` when none was given).
    pub fn config(&self) -> &serde_json::Value {
        self.config
    }

    /// The plugin's configuration deserialised into its settings type.
    pub fn config_as<C: DeserializeOwned>(&self) -> Result<C, PluginError> {
        C::deserialize(self.config).map_err(|e| {
            PluginError::config(
                self.plugin_id(),
                format!(
                    "{e}; expected the shape of `{}`",
                    std::any::type_name::<C>()
                ),
            )
        })
    }

    /// The plugin's settings from its `objectos.yml` section: `T::default()` when none was given.
    /// See [`InitContext::settings_or`].
    pub fn settings<T: PluginSettings>(&self, section: &ConfigSection) -> Result<T, PluginError> {
        self.settings_or(section, T::default())
    }

    /// The plugin's settings from its `objectos.yml` section, or `default` (usually the settings
    /// the host built the plugin with) when none was given (`null`), then checked with
    /// [`PluginSettings::problems`]. The server checked the file's section already; a host that
    /// builds a kernel itself has not, so every unknown key, bad value and failed check comes
    /// back at once as [`PluginError::Settings`], each problem with its path in `section`.
    pub fn settings_or<T: PluginSettings>(
        &self,
        section: &ConfigSection,
        default: T,
    ) -> Result<T, PluginError> {
        let settings = if self.config.is_null() {
            default
        } else {
            deserialize_all::<T>(self.config).map_err(|p| self.settings_error(section, p))?
        };
        let problems = settings.problems();
        if problems.is_empty() {
            Ok(settings)
        } else {
            Err(self.settings_error(section, problems))
        }
    }

    fn settings_error(
        &self,
        section: &ConfigSection,
        problems: Vec<SettingsProblem>,
    ) -> PluginError {
        PluginError::Settings {
            plugin: self.plugin_id().to_owned(),
            section: section.name.to_owned(),
            problems,
        }
    }

    /// Registers a service under its spec `name` and its contract type `T`; `name` must be in `provides`.
    pub fn register<T>(&mut self, name: &str, value: Arc<T>) -> Result<(), PluginError>
    where
        T: ?Sized + Send + Sync + 'static,
    {
        if !self.manifest().provides.contains(&name) {
            return Err(self.refuse(
                format!("register service `{name}`"),
                format!("add \"{name}\" to its manifest `provides`"),
            ));
        }
        self.shared
            .registry
            .register::<T>(self.plugin_id(), name, value)
            .map_err(|e| self.service_error(name, e))
    }

    /// Adds a contribution (routes, interceptors, migrations...) read back by type at `start`.
    pub fn contribute<T>(&mut self, value: T) -> Result<(), PluginError>
    where
        T: Send + Sync + 'static,
    {
        self.shared
            .registry
            .contribute(self.plugin_id(), value)
            .map_err(|e| self.service_error(std::any::type_name::<T>(), e))
    }

    /// Subscribes an asynchronous handler with the default queue and retry policy.
    pub fn subscribe(
        &mut self,
        pattern: &str,
        handler: impl EventHandler,
    ) -> Result<SubscriptionId, PluginError> {
        self.subscribe_with(pattern, handler, SubscribeOptions::default())
    }

    /// Subscribes an asynchronous handler with explicit options.
    pub fn subscribe_with(
        &mut self,
        pattern: &str,
        handler: impl EventHandler,
        options: SubscribeOptions,
    ) -> Result<SubscriptionId, PluginError> {
        self.may_subscribe(pattern)?;
        self.shared
            .bus
            .subscribe(self.plugin_id(), pattern, handler, options)
            .map_err(|e| self.event_error(pattern, e))
    }

    /// Subscribes a plain function on the asynchronous lane (own queue, task, retries), without a
    /// future per event; for cheap handlers that never block.
    pub fn subscribe_inline(
        &mut self,
        pattern: &str,
        handler: impl Fn(&Event) -> Result<(), PluginError> + Send + Sync + 'static,
    ) -> Result<SubscriptionId, PluginError> {
        self.may_subscribe(pattern)?;
        self.shared
            .bus
            .subscribe_inline(
                self.plugin_id(),
                pattern,
                handler,
                SubscribeOptions::default(),
            )
            .map_err(|e| self.event_error(pattern, e))
    }

    /// Subscribes a synchronous handler, run inline by `publish_sync`.
    pub fn subscribe_sync(
        &mut self,
        pattern: &str,
        handler: impl Fn(&Event) -> Result<(), PluginError> + Send + Sync + 'static,
    ) -> Result<SubscriptionId, PluginError> {
        self.may_subscribe(pattern)?;
        self.shared
            .bus
            .subscribe_sync(self.plugin_id(), pattern, handler)
            .map_err(|e| self.event_error(pattern, e))
    }
}

/// The context of `start`: look services up, publish events.
#[derive(Debug, Clone)]
pub struct StartContext {
    handle: PluginHandle,
}

impl StartContext {
    pub(crate) fn new(handle: PluginHandle) -> Self {
        Self { handle }
    }

    /// A clone of the plugin's handle, to keep in spawned tasks.
    pub fn handle(&self) -> PluginHandle {
        self.handle.clone()
    }
}

impl Deref for StartContext {
    type Target = PluginHandle;
    fn deref(&self) -> &PluginHandle {
        &self.handle
    }
}

/// The context of `destroy`.
#[derive(Debug, Clone)]
pub struct StopContext {
    handle: PluginHandle,
}

impl StopContext {
    pub(crate) fn new(handle: PluginHandle) -> Self {
        Self { handle }
    }
}

impl Deref for StopContext {
    type Target = PluginHandle;
    fn deref(&self) -> &PluginHandle {
        &self.handle
    }
}
