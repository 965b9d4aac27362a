//! Embeds the system objects of `presets/base/objects` into the binary, so it works from any directory.
//!
//! The list is generated at build time (one `include_str!` per file) because the folder's contents
//! change as the product grows; a missing folder simply embeds nothing.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out);
        } else if let Some(name) = path.file_name().and_then(|n| n.to_str())
            && (name.ends_with(".object.yml")
                || name.ends_with(".object.yaml")
                || name.ends_with(".object.json"))
        {
            out.push(path);
        }
    }
}

/// `cfg(objectos_pg)` when `OBJECTOS_TEST_POSTGRES_URL` is set: the tests that need PostgreSQL
/// are marked `ignore` without it, so test runners count them as skipped instead of passed
/// (neither libtest nor nextest can skip a test once it runs). Setting or clearing the variable
/// rebuilds this crate. The same lines are in every crate with PostgreSQL tests.
fn postgres_tests_cfg() {
    println!("cargo::rustc-check-cfg=cfg(objectos_pg)");
    println!("cargo::rerun-if-env-changed=OBJECTOS_TEST_POSTGRES_URL");
    if std::env::var("OBJECTOS_TEST_POSTGRES_URL").is_ok_and(|v| !v.trim().is_empty()) {
        println!("cargo::rustc-cfg=objectos_pg");
    }
}

fn main() {
    postgres_tests_cfg();
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let base = manifest_dir.join("../../presets/base/objects");
    println!("cargo:rerun-if-changed={}", base.display());
    let mut files = Vec::new();
    collect(&base, &mut files);
    files.sort();
    let mut code = String::from("&[\n");
    for f in &files {
        let abs = f.canonicalize().unwrap_or_else(|_| f.clone());
        println!("cargo:rerun-if-changed={}", abs.display());
        let rel = f.strip_prefix(&base).unwrap_or(f).display().to_string();
        let _ = writeln!(
            code,
            "    (\"presets/base/objects/{}\", include_str!({:?})),",
            rel.replace('\\', "/"),
            abs.display().to_string()
        );
    }
    code.push_str("]\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default()).join("base_objects.rs");
    if let Err(e) = std::fs::write(&out, code) {
        panic!("cannot write {}: {e}", out.display());
    }
}
