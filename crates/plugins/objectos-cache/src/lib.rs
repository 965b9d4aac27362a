//! ObjectOS cache plugin: the kernel's `Cache` contract (service `cache`) in process (moka) or
//! on Redis with an in-process first level, with invalidations broadcast to every node and a
//! staleness bound while they cannot be heard.
#![doc = include_str!("../README.md")]

pub mod config;
pub mod error;
mod local;
pub mod plugin;
mod redis;
pub mod service;

pub use config::{BackendChoice, CONFIG_SECTION, CacheConfig};
pub use error::CacheError;
pub use plugin::{CachePlugin, MANIFEST, PLUGIN_ID};
pub use redis::client_name;
pub use service::ObjectCache;
