//! End-to-end tests of the `objectos` binary: configuration precedence, `validate`, `migrate
//! --dry-run`, and a real `serve` on 127.0.0.1:0 driven with plain HTTP.

#[cfg(test)]
mod cli;
#[cfg(all(test, feature = "plugin-storage", feature = "plugin-permissions"))]
mod files;
#[cfg(test)]
mod metadata;
#[cfg(test)]
mod new_plugin;
#[cfg(test)]
mod serve;
#[cfg(test)]
mod support;
#[cfg(test)]
mod watch;
