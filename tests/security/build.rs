//! `cfg(objectos_pg)` when `OBJECTOS_TEST_POSTGRES_URL` is set: the tests that need PostgreSQL
//! are marked `ignore` without it, so test runners count them as skipped instead of passed
//! (neither libtest nor nextest can skip a test once it runs). Setting or clearing the variable
//! rebuilds this crate. The same lines are in every crate with PostgreSQL tests.
//! `cfg(objectos_redis)` likewise when `OBJECTOS_TEST_REDIS_URL` is set (the two-node tests),
//! and `cfg(objectos_amqp)` when `OBJECTOS_TEST_AMQP_URL` is set (the two-node jobs test on
//! RabbitMQ).

fn main() {
    println!("cargo::rustc-check-cfg=cfg(objectos_pg)");
    println!("cargo::rerun-if-env-changed=OBJECTOS_TEST_POSTGRES_URL");
    if std::env::var("OBJECTOS_TEST_POSTGRES_URL").is_ok_and(|v| !v.trim().is_empty()) {
        println!("cargo::rustc-cfg=objectos_pg");
    }
    println!("cargo::rustc-check-cfg=cfg(objectos_redis)");
    println!("cargo::rerun-if-env-changed=OBJECTOS_TEST_REDIS_URL");
    if std::env::var("OBJECTOS_TEST_REDIS_URL").is_ok_and(|v| !v.trim().is_empty()) {
        println!("cargo::rustc-cfg=objectos_redis");
    }
    println!("cargo::rustc-check-cfg=cfg(objectos_amqp)");
    println!("cargo::rerun-if-env-changed=OBJECTOS_TEST_AMQP_URL");
    if std::env::var("OBJECTOS_TEST_AMQP_URL").is_ok_and(|v| !v.trim().is_empty()) {
        println!("cargo::rustc-cfg=objectos_amqp");
    }
}
