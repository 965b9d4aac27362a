//! The crate's one error type.

/// What can go wrong carrying events between nodes.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The Redis URL could not be parsed (the URL itself is never shown: it may carry a password).
    #[error("the cluster Redis URL is not usable: {0}")]
    Url(String),
    /// A Redis command failed.
    #[error("Redis {what} failed: {message}")]
    Redis { what: &'static str, message: String },
    /// Redis answered something the transport did not expect.
    #[error("unexpected Redis reply to {what}: {message}")]
    Reply { what: &'static str, message: String },
}

impl ClusterError {
    pub(crate) fn redis(what: &'static str, error: &deadpool_redis::redis::RedisError) -> Self {
        Self::Redis {
            what,
            message: error.to_string(),
        }
    }
}

pub type Result<T, E = ClusterError> = std::result::Result<T, E>;
