//! Integration tests of the cache plugin: the in-process backend always; the Redis backend
//! against the real Redis at `OBJECTOS_TEST_REDIS_URL` (ignored without it, see `build.rs`).

#[cfg(test)]
mod memory;
#[cfg(test)]
mod redis;
#[cfg(test)]
mod support;
