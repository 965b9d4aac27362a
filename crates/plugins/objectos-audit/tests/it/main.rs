//! Integration tests of the audit plugin: a real kernel (data + http + audit + a test plugin) on
//! SQLite and, when `OBJECTOS_TEST_POSTGRES_URL` is set, on PostgreSQL.

#[cfg(test)]
mod support;

#[cfg(test)]
mod bus;
#[cfg(test)]
mod chain;
#[cfg(test)]
mod mutations;
#[cfg(test)]
mod routes;
#[cfg(test)]
mod schema;
