//! Test support for ObjectOS crates, used as a dev-dependency only: the one harness plugin tests
//! share.
//!
//! - [`TestDatabase`]: a SQLite file (or in-memory database) or a fresh PostgreSQL schema (from
//!   `OBJECTOS_TEST_POSTGRES_URL`) per test, dropped at its end.
//! - [`TestKernel`]: a booted kernel with the data plugin on that database, a metadata folder the
//!   test writes, the HTTP plugin on `127.0.0.1:0`, the plugins under test and a test plugin that
//!   signs requests in from `x-test-*` headers ([`session`]), contributes the test's interceptors
//!   and hoops, and publishes events.
//! - [`Client`] and [`Who`]: HTTP clients signed in as an admin, a restricted user (permission
//!   sets, roles, organization) or nobody, over a real TCP connection ([`http`]).
//! - [`TestDirectory`]: the `auth` directory without the auth plugin (every user exists, `root`
//!   is the platform administrator, memberships as the test adds them).
//! - [`Events`]: every event matching the test's patterns, record events from the outbox
//!   included, with bounded waits.
//! - [`wait`], [`TcpRelay`], [`rec`], [`user_cx`]: polling, a cuttable TCP relay in front of a
//!   service, and operation contexts.
//! - [`smtp`]: a real SMTP server on loopback (`aiosmtpd`) and received mail decoded as a mail
//!   client reads it.
//! - `otlp` (feature `otlp`): an OTLP/gRPC trace receiver on loopback that keeps every span.
//!
//! A harness failure is a test failure, so this crate unwraps and panics where a test would.

// Linked into tests only (`cargo xtask deps` refuses it as a normal dependency): panicking on a
// broken fixture is how a harness reports it, exactly as the tests' own helpers do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cx;
mod db;
mod directory;
mod events;
pub mod http;
mod kernel;
#[cfg(feature = "otlp")]
pub mod otlp;
mod relay;
pub mod session;
pub mod smtp;
pub mod wait;

pub use cx::{admin_cx, rec, user_cx};
pub use db::{POSTGRES_URL_VAR, TestDatabase, postgres_url};
pub use directory::{PLATFORM_ADMIN, TestDirectory};
pub use events::Events;
pub use http::{Client, Request, Response};
pub use kernel::{TEST_PLUGIN_ID, TestKernel, TestKernelBuilder};
pub use relay::{TcpRelay, host_port};
pub use session::Who;
