//! Integration tests of the auth plugin: a real kernel (data + auth + http) on SQLite (and on
//! PostgreSQL when `OBJECTOS_TEST_POSTGRES_URL` is set), driven over HTTP with salvo's TestClient
//! through the service the HTTP plugin would mount, with a manual clock.

#[cfg(test)]
mod accounts;
#[cfg(test)]
mod cluster;
#[cfg(test)]
mod directory;
#[cfg(test)]
mod flows;
#[cfg(test)]
mod invitations;
#[cfg(test)]
mod orgs;
#[cfg(test)]
mod proxies;
#[cfg(test)]
mod races;
#[cfg(test)]
mod services;
#[cfg(test)]
mod settings;
#[cfg(test)]
mod sso;
#[cfg(test)]
mod support;
#[cfg(test)]
mod verification;
