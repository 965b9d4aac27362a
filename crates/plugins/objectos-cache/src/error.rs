//! The crate's one error type.

use objectos_kernel::KernelError;

/// What can go wrong in the cache plugin.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// A setting is missing or contradicts another (reported at init).
    #[error("cache configuration: {0}")]
    Config(String),
    /// A namespace is not a plain name.
    #[error(
        "cache namespace `{0}` is invalid: use 1 to 128 letters, digits, `.`, `_` or `-` (e.g. `auth.sessions`)"
    )]
    Namespace(String),
    /// Redis refused or did not answer in time; the message never carries the URL.
    #[error("redis: {0}")]
    Redis(String),
}

impl From<CacheError> for KernelError {
    fn from(e: CacheError) -> Self {
        let backend = match e {
            CacheError::Redis(_) => "redis",
            _ => "memory",
        };
        KernelError::Cache {
            backend: backend.to_owned(),
            message: e.to_string(),
        }
    }
}
