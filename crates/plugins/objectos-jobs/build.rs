//! `cfg(objectos_pg)` when `OBJECTOS_TEST_POSTGRES_URL` is set: the tests that need PostgreSQL
//! are marked `ignore` without it, so test runners count them as skipped instead of passed.
//! `cfg(objectos_amqp)` likewise for `OBJECTOS_TEST_AMQP_URL` (the RabbitMQ transport's tests).

fn main() {
    println!("cargo::rustc-check-cfg=cfg(objectos_pg)");
    println!("cargo::rustc-check-cfg=cfg(objectos_amqp)");
    println!("cargo::rerun-if-env-changed=OBJECTOS_TEST_POSTGRES_URL");
    println!("cargo::rerun-if-env-changed=OBJECTOS_TEST_AMQP_URL");
    if std::env::var("OBJECTOS_TEST_POSTGRES_URL").is_ok_and(|v| !v.trim().is_empty()) {
        println!("cargo::rustc-cfg=objectos_pg");
    }
    if std::env::var("OBJECTOS_TEST_AMQP_URL").is_ok_and(|v| !v.trim().is_empty()) {
        println!("cargo::rustc-cfg=objectos_amqp");
    }
}
