//! The Redis event transport against the real Redis at `OBJECTOS_TEST_REDIS_URL`: two kernels
//! exchanging events, no echo, resume after a killed connection, and Redis down at start.
//! Without the variable every test here is marked ignored at build time (see `build.rs`).

// Helpers outside `#[test]` functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;
mod transport;
