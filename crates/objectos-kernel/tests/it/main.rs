//! Integration tests of objectos-kernel: one test binary with a module per area.

// Test code may unwrap: a failure is a test failure with a backtrace.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod capability;
mod events;
mod health;
mod lifecycle;
mod registry;
mod resolve;
mod settings;
mod support;
mod transport;
