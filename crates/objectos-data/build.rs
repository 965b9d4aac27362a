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

fn main() {
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
