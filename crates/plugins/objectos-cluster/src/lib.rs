//! ObjectOS cluster plugin (`com.objectos.cluster`): carries the kernel's event bus across
//! nodes over a Redis stream when the core `cluster.redisUrl` (`OBJECTOS_REDIS_URL`) is set.
//! See the crate README for why a stream and not pub/sub.

pub mod config;
pub mod error;
pub mod plugin;
pub mod transport;

pub use config::{CONFIG_SECTION, EventsSettings};
pub use error::ClusterError;
pub use plugin::{ClusterPlugin, MANIFEST, PLUGIN_ID};
pub use transport::RedisTransport;
