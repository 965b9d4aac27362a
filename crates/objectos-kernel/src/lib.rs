//! The ObjectOS kernel: plugin contract, dependency resolution, lifecycle, service registry, event bus and health.
//!
//! The kernel knows nothing about HTTP, SQL or any specific plugin; it depends only on
//! `objectos-spec` and runtime basics. The crate README (below) describes the plugin contract.
#![doc = include_str!("../README.md")]

pub mod cluster;
pub mod context;
pub mod contracts;
pub mod error;
pub mod events;
mod hash;
pub mod kernel;
pub mod plugin;
mod queue;
pub mod recorder;
pub mod registry;
pub mod resolve;
pub mod trace;

pub use async_trait::async_trait;
pub use cluster::ClusterSettings;
pub use context::{InitContext, PluginHandle, StartContext, StopContext};
pub use contracts::{
    Access, Authorizer, Caller, Clock, DeadLetter, DeadLetterStore, Directory, DirectoryUser,
    EventTransport, FieldAccess, LocalTransport, Mail, Mailer, ManualClock, Membership,
    MemoryDeadLetterStore, Organization, SystemClock, TransportContribution,
};
pub use error::{BoxError, KernelError, PluginError};
pub use events::{
    Backoff, EventBus, EventBusConfig, EventHandler, EventPattern, EventStats, HandlerError,
    InboundSink, RetryPolicy, SubscribeOptions, SubscriptionId, SyncHandler, new_event,
};
pub use kernel::{Kernel, KernelBuilder, ShutdownReport, Timeouts};
pub use plugin::Plugin;
pub use registry::{Contribution, ServiceInfo, ServiceRegistry};
pub use resolve::{Edge, EdgeKind, ResolvedPlan, resolve};

pub use objectos_spec::{
    Event, HealthReport, HealthStatus, KernelContext, KernelHealth, PluginManifest, RuntimeMode,
    StartupReport,
};
