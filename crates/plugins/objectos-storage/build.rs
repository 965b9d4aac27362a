//! `cfg(objectos_pg)` when `OBJECTOS_TEST_POSTGRES_URL` is set and `cfg(objectos_s3)` when
//! `OBJECTOS_TEST_S3_URL` is set (an S3-compatible server such as `moto_server`): the tests
//! that need them are marked `ignore` without, so test runners count them as skipped instead of
//! passed. Setting or clearing a variable rebuilds this crate.

fn main() {
    for (cfg, var) in [
        ("objectos_pg", "OBJECTOS_TEST_POSTGRES_URL"),
        ("objectos_s3", "OBJECTOS_TEST_S3_URL"),
    ] {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        println!("cargo::rerun-if-env-changed={var}");
        if std::env::var(var).is_ok_and(|v| !v.trim().is_empty()) {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
}
