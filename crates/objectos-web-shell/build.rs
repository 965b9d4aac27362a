//! Embeds the built console (`assets/`, written by `cargo xtask web`) as a static table of
//! `include_bytes!` entries, so `cargo build` needs no Node and no embedding crate.
//!
//! Each entry carries a strong ETag (FNV-1a of the bytes) computed here, once per build, so the
//! server never hashes at run time. Files are listed in sorted order: the generated code, like
//! the assets, is the same on every machine.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let assets = manifest_dir.join("assets");
    println!("cargo:rerun-if-changed=assets");
    println!("cargo:rerun-if-changed=build.rs");

    let mut files = Vec::new();
    collect(&assets, &mut files);
    files.sort();

    let mut code = String::from(
        "/// Every file of the built console, sorted by path.\npub(crate) static ASSETS: &[Asset] = &[\n",
    );
    for file in &files {
        let Ok(rel) = file.strip_prefix(&assets) else {
            continue;
        };
        let rel = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        if rel == ".gitkeep" {
            continue;
        }
        let bytes = match std::fs::read(file) {
            Ok(b) => b,
            Err(e) => panic!("cannot read console asset {}: {e}", file.display()),
        };
        let _ = writeln!(
            code,
            "    Asset {{ path: {rel:?}, bytes: include_bytes!({abs:?}), etag: \"\\\"{hash:016x}\\\"\" }},",
            abs = file.display().to_string(),
            hash = fnv1a(&bytes),
        );
    }
    code.push_str("];\n");

    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default()).join("assets.rs");
    if let Err(e) = std::fs::write(&out, code) {
        panic!("cannot write {}: {e}", out.display());
    }
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => collect(&path, out),
            Ok(t) if t.is_file() => out.push(path),
            _ => {}
        }
    }
}

/// 64-bit FNV-1a: enough to tell two versions of a file apart for caching.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}
