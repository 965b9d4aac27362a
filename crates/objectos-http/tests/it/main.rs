//! End-to-end tests of the HTTP plugin: every route over salvo's TestClient (and one real
//! listener through the kernel) against a real engine on SQLite in a temp dir.

#[cfg(test)]
mod batch;
#[cfg(test)]
mod data;
#[cfg(test)]
mod docs;
#[cfg(test)]
mod errors;
#[cfg(test)]
mod meta;
#[cfg(test)]
mod security;
#[cfg(test)]
mod server;
#[cfg(test)]
mod support;
#[cfg(test)]
mod system;
