//! Errors of the kernel (`KernelError`) and errors plugins return (`PluginError`).
//!
//! `KernelError` covers resolution problems (collected, never just the first), registry and event-bus
//! failures and misuse of the lifecycle. `PluginError` is what a plugin's `init`, `start`, `destroy`
//! and event handlers return, and what the contexts return when a plugin asks for something it did
//! not declare. Every message names what is wrong, where, and how to fix it.

use std::fmt;
use std::time::Duration;

use objectos_spec::settings::{SettingsProblem, format_path};

/// A boxed error used as the source of [`PluginError::Other`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong inside the kernel itself.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KernelError {
    /// Plugin resolution failed; `problems` holds every problem found, each one a resolution variant below.
    #[error("{}", ProblemList(problems))]
    Resolution { problems: Vec<KernelError> },

    /// Two plugins share one id.
    #[error("plugin `{id}` is registered more than once; register each plugin exactly once")]
    DuplicatePlugin { id: String },

    /// A non-optional dependency is not registered.
    #[error(
        "plugin `{plugin}` requires `{dependency}` {range} but no plugin `{dependency}` is registered; add it to the kernel or remove the dependency"
    )]
    MissingDependency {
        plugin: String,
        dependency: String,
        range: String,
    },

    /// A dependency is registered with a version outside the required range.
    #[error(
        "plugin `{plugin}` requires `{dependency}` {required} but `{dependency}` is version {found}; use a version of `{dependency}` that matches {required} or change the range in `{plugin}`'s manifest"
    )]
    VersionMismatch {
        plugin: String,
        dependency: String,
        required: String,
        found: String,
    },

    /// Plugins depend on each other in a circle; `path` starts and ends with the same plugin.
    #[error(
        "dependency cycle: {}; remove one of these dependencies (or `requires` entries) to break the cycle",
        path.join(" -> ")
    )]
    Cycle { path: Vec<String> },

    /// A manifest version is not semver.
    #[error(
        "plugin `{plugin}` has version `{version}`, which is not semver ({reason}); use MAJOR.MINOR.PATCH such as `1.0.0`"
    )]
    InvalidVersion {
        plugin: String,
        version: String,
        reason: String,
    },

    /// A dependency range is not a semver requirement.
    #[error(
        "plugin `{plugin}` depends on `{dependency}` with range `{range}`, which is not a semver range ({reason}); use a range such as `^1.2` or `>=1, <2`"
    )]
    InvalidRange {
        plugin: String,
        dependency: String,
        range: String,
        reason: String,
    },

    /// A manifest field is malformed (empty id, bad event pattern, ...).
    #[error("plugin `{plugin}` has an invalid manifest `{field}` value `{value}`: {reason}")]
    InvalidManifest {
        plugin: String,
        field: &'static str,
        value: String,
        reason: String,
    },

    /// A plugin `requires` a service that no registered plugin `provides`.
    #[error(
        "plugin `{plugin}` requires service `{service}` but no registered plugin provides it; add a plugin whose manifest `provides` \"{service}\" or remove \"{service}\" from `{plugin}`'s `requires`"
    )]
    MissingService { plugin: String, service: String },

    /// Two plugins declare that they provide the same service.
    #[error(
        "service `{service}` is provided by both `{first}` and `{second}`; keep only one provider in the kernel"
    )]
    DuplicateService {
        service: String,
        first: String,
        second: String,
    },

    /// `boot` was called twice.
    #[error("the kernel was already booted; build a new kernel to boot again")]
    AlreadyBooted,

    /// A method that needs a booted kernel was called before `boot`.
    #[error("the kernel is not booted yet; call `boot().await` first")]
    NotBooted,

    /// Something tried to change the registry after it was frozen at the end of `init`.
    #[error(
        "plugin `{plugin}` cannot {what}: the service registry is frozen once every plugin has run `init`; register services and contributions in `init`"
    )]
    RegistryFrozen { plugin: String, what: String },

    /// A lookup happened before the registry was frozen.
    #[error(
        "service `{service}` was looked up before every plugin finished `init`; look services up in `start` or later"
    )]
    RegistryNotReady { service: String },

    /// No service is registered under the name or type.
    #[error(
        "no service `{service}` is registered; the plugin that provides it must register it in `init`"
    )]
    ServiceNotFound { service: String },

    /// A service was registered twice (by name or by type).
    #[error(
        "service `{service}` is registered twice, by `{first}` and by `{second}`; each service has one provider"
    )]
    DuplicateServiceRegistration {
        service: String,
        first: String,
        second: String,
    },

    /// A service exists under the name, but with another type.
    #[error(
        "service `{service}` is registered as `{registered}`, not as the requested `{requested}`"
    )]
    ServiceTypeMismatch {
        service: String,
        registered: &'static str,
        requested: &'static str,
    },

    /// A typed lookup matched several services of the same type.
    #[error(
        "type `{type_name}` is registered under several service names ({}); look it up by name instead",
        names.join(", ")
    )]
    AmbiguousService {
        type_name: &'static str,
        names: Vec<String>,
    },

    /// An event name or pattern is malformed.
    #[error("invalid event name or pattern `{name}`: {reason}")]
    InvalidEventName { name: String, reason: String },

    /// `try_publish` found a full subscriber queue; nothing was delivered.
    #[error(
        "event `{event}` was not published: the queue of {} is full; retry later or use `publish().await` to wait",
        subscribers.join(", ")
    )]
    QueueFull {
        event: String,
        subscribers: Vec<String>,
    },

    /// The event bus was closed by shutdown.
    #[error(
        "event `{event}` was not published: the event bus is closed because the kernel is shutting down"
    )]
    BusClosed { event: String },

    /// Something that spawns tasks ran outside a Tokio runtime.
    #[error(
        "{what} needs a running Tokio runtime; call it from inside `#[tokio::main]` or a runtime"
    )]
    NoRuntime { what: &'static str },

    /// Listening for shutdown signals failed.
    #[error("cannot listen for shutdown signals: {message}")]
    Signal { message: String },

    /// The dead-letter store could not keep an entry.
    #[error("dead-letter store failed: {message}")]
    DeadLetter { message: String },

    /// A transport could not publish an event to other nodes.
    #[error("event transport `{transport}` failed: {message}")]
    Transport { transport: String, message: String },

    /// A cache backend could not serve a request (see `contracts::Cache`).
    #[error("cache `{backend}` failed: {message}")]
    Cache { backend: String, message: String },

    /// A blob store could not serve a request (see `contracts::BlobStore`); `key` is the
    /// object's key in the store.
    #[error("blob store `{backend}` failed on `{key}`: {message}")]
    Blob {
        backend: String,
        key: String,
        message: String,
    },

    /// A second transport was offered to a bus that already has one.
    #[error(
        "event transport `{refused}` refused: the bus already carries transport `{existing}`; a node has one transport"
    )]
    TransportInstalled { existing: String, refused: String },

    /// More than one plugin (or the host and a plugin) contributed an event transport.
    #[error(
        "two event transports were offered, by {first} and by {second}; a node has one transport: remove one of them"
    )]
    DuplicateTransport { first: String, second: String },
}

/// Formats a resolution problem list as a header plus one bullet per problem.
struct ProblemList<'a>(&'a [KernelError]);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(
            f,
            "plugin resolution failed with {n} problem{}:",
            if n == 1 { "" } else { "s" }
        )?;
        for p in self.0 {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

/// Settings problems as `section.path: message`, separated by `; `.
struct SettingsProblems<'a> {
    section: &'a str,
    problems: &'a [SettingsProblem],
}

impl fmt::Display for SettingsProblems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", format_path(self.section, &p.path), p.message)?;
        }
        Ok(())
    }
}

impl KernelError {
    /// The individual problems of a resolution error, or the error itself for any other variant.
    pub fn problems(&self) -> &[KernelError] {
        match self {
            Self::Resolution { problems } => problems,
            other => std::slice::from_ref(other),
        }
    }
}

/// What a plugin returns from its lifecycle methods and handlers, and what contexts return on refusal.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    /// The plugin's configuration is missing or invalid.
    #[error("plugin `{plugin}` configuration is invalid: {message}")]
    Config { plugin: String, message: String },

    /// The plugin's `objectos.yml` section (its kernel configuration) has problems, each with
    /// its path inside the section (`InitContext::settings_or`).
    #[error(
        "plugin `{plugin}` configuration is invalid: {}",
        SettingsProblems { section, problems }
    )]
    Settings {
        plugin: String,
        section: String,
        problems: Vec<SettingsProblem>,
    },

    /// The plugin asked for something its manifest does not declare.
    #[error("plugin `{plugin}` may not {what}: {missing_declaration}")]
    Capability {
        plugin: String,
        what: String,
        missing_declaration: String,
    },

    /// A service lookup or registration failed.
    #[error("plugin `{plugin}`: service `{service}`: {source}")]
    Service {
        plugin: String,
        service: String,
        #[source]
        source: Box<KernelError>,
    },

    /// Publishing or subscribing failed.
    #[error("plugin `{plugin}`: event `{event}`: {source}")]
    Event {
        plugin: String,
        event: String,
        #[source]
        source: Box<KernelError>,
    },

    /// `start` could not complete, or was not attempted because a dependency failed.
    #[error("plugin `{plugin}` did not start: {message}")]
    Startup { plugin: String, message: String },

    /// A lifecycle phase or health probe ran past its time limit.
    #[error(
        "plugin `{plugin}` {phase} did not finish within {after:?}; make it return sooner or raise the timeout"
    )]
    Timeout {
        plugin: String,
        phase: &'static str,
        after: Duration,
    },

    /// A plugin or handler panicked; the panic was caught and isolated.
    #[error("{context} panicked: {message}")]
    Panicked { context: String, message: String },

    /// Any other failure, with its source.
    #[error("{message}")]
    Other {
        message: String,
        #[source]
        source: Option<BoxError>,
    },
}

impl PluginError {
    /// A failure described by a message only.
    pub fn msg(message: impl fmt::Display) -> Self {
        Self::Other {
            message: message.to_string(),
            source: None,
        }
    }

    /// A failure caused by another error; the message is the source's text.
    pub fn other(source: impl Into<BoxError>) -> Self {
        let source = source.into();
        Self::Other {
            message: source.to_string(),
            source: Some(source),
        }
    }

    /// A failure with a message and its source.
    pub fn with_source(message: impl fmt::Display, source: impl Into<BoxError>) -> Self {
        Self::Other {
            message: message.to_string(),
            source: Some(source.into()),
        }
    }

    /// A configuration error for `plugin`.
    pub fn config(plugin: impl Into<String>, message: impl fmt::Display) -> Self {
        Self::Config {
            plugin: plugin.into(),
            message: message.to_string(),
        }
    }

    /// A short machine-readable code for reports (`config`, `capability`, `service`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Config { .. } | Self::Settings { .. } => "config",
            Self::Capability { .. } => "capability",
            Self::Service { .. } => "service",
            Self::Event { .. } => "event",
            Self::Startup { .. } => "startup",
            Self::Timeout { .. } => "timeout",
            Self::Panicked { .. } => "panic",
            Self::Other { .. } => "other",
        }
    }
}

/// Turns a caught panic payload into its message text.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic payload".to_owned()
    }
}
