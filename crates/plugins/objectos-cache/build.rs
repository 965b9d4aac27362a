//! `cfg(objectos_redis)` when `OBJECTOS_TEST_REDIS_URL` is set: the tests that need Redis are
//! marked `ignore` without it, so test runners count them as skipped instead of passed (the
//! same scheme as `cfg(objectos_pg)` in the crates with PostgreSQL tests). Setting or clearing
//! the variable rebuilds this crate.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(objectos_redis)");
    println!("cargo::rerun-if-env-changed=OBJECTOS_TEST_REDIS_URL");
    if std::env::var("OBJECTOS_TEST_REDIS_URL").is_ok_and(|v| !v.trim().is_empty()) {
        println!("cargo::rustc-cfg=objectos_redis");
    }
}
