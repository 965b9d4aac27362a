//! `cfg(objectos_pg)` when `OBJECTOS_TEST_POSTGRES_URL` is set: the PostgreSQL runs of the
//! tests are marked `ignore` without it, so test runners count them as skipped instead of
//! passed. Setting or clearing the variable rebuilds this crate.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(objectos_pg)");
    println!("cargo::rerun-if-env-changed=OBJECTOS_TEST_POSTGRES_URL");
    if std::env::var("OBJECTOS_TEST_POSTGRES_URL").is_ok_and(|v| !v.trim().is_empty()) {
        println!("cargo::rustc-cfg=objectos_pg");
    }
}
