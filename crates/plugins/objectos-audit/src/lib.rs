//! ObjectOS audit plugin: a hash-chained audit log of every mutation, auth and permission event,
//! field history for objects with `enable.trackHistory`, retention with chain anchors, and export.
#![doc = include_str!("../README.md")]

pub mod config;
pub mod error;
pub mod event;
pub mod plugin;
pub mod recorder;
pub mod redact;
pub mod routes;
pub mod store;

pub use config::{AuditConfig, DEFAULT_REDACT_FIELDS};
pub use error::{AuditError, Result};
pub use event::{Actor, AuditEvent, Change, GENESIS_HASH};
pub use plugin::{AuditPlugin, AuditStore, MANIFEST, PLUGIN_ID, prune_once};
pub use recorder::{AuditInterceptor, ClientInfo, with_client};
pub use redact::{REDACTED, Redactor};
pub use store::{
    BrokenLink, EventFilter, EventPage, FieldHistory, PruneReport, VerifyReport, schema,
};
