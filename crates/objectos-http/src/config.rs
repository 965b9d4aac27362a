//! Settings of the HTTP server: listen address, body limit, CORS origins, compression.

/// Default request body limit: 1 MiB.
pub const DEFAULT_BODY_LIMIT: u64 = 1024 * 1024;

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:3000";

/// HTTP server settings (from `objectos.yml` `listen` and `http.*`, env, flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// `host:port`; port 0 picks a free port (the bound address is reported by the plugin).
    pub listen: String,
    /// Largest accepted request body in bytes; larger bodies get 413.
    pub body_limit: u64,
    /// Allowed CORS origins. Empty means permissive (any origin), which suits development.
    pub cors_origins: Vec<String>,
    /// Compress responses (gzip, brotli, zstd, deflate) when the client accepts it.
    pub compression: bool,
    /// Seconds to wait for in-flight requests at shutdown before closing connections.
    pub shutdown_grace_secs: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.to_owned(),
            body_limit: DEFAULT_BODY_LIMIT,
            cors_origins: Vec::new(),
            compression: true,
            // Below the kernel's default 10 s destroy timeout, so the forced close happens here
            // rather than the kernel abandoning the destroy.
            shutdown_grace_secs: 8,
        }
    }
}
