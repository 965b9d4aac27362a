//! Structured logs through tracing-subscriber: text or JSON on stderr, filtered by `RUST_LOG`
//! (when set) or the configured level (`log.level` / `OBJECTOS_LOG`).

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, ServerConfig};

/// Installs the global subscriber; a second call (tests running commands in-process) is a no-op.
pub fn init(config: &ServerConfig) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .or_else(|| EnvFilter::try_new(&config.log_level).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let result = match config.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    // An already installed subscriber is fine: the first configuration wins.
    let _ = result;
}
