//! `cargo xtask web [--check]`: rebuilds the admin console (`apps/web`) into the web-shell crate's
//! `assets/`, which the crate embeds, or checks that the committed assets are what the sources build.
//!
//! The assets are committed so `cargo build` needs no Node; `--check` (in CI) builds into a
//! temporary folder and compares every file byte for byte, so stale assets cannot be merged. The
//! Vite build writes no timestamps, so equal sources give equal files on every machine.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::{display_path, project_root, walk_files};

fn app_dir() -> PathBuf {
    project_root().join("apps/web")
}

fn assets_dir() -> PathBuf {
    project_root().join("crates/objectos-web-shell/assets")
}

fn npm(args: &[&str]) -> anyhow::Result<()> {
    let dir = app_dir();
    let status = Command::new("npm")
        .args(args)
        .current_dir(&dir)
        .status()
        .with_context(|| {
            format!(
                "cannot run npm in {} (is Node 20.19+ installed?)",
                display_path(&dir)
            )
        })?;
    if !status.success() {
        bail!(
            "`npm {}` failed in {} ({status})",
            args.join(" "),
            display_path(&dir)
        );
    }
    Ok(())
}

/// Files under `dir`, relative and `/`-separated, with their bytes.
fn tree(dir: &Path) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    if !dir.exists() {
        return Ok(out);
    }
    for path in walk_files(dir)? {
        let rel = path
            .strip_prefix(dir)
            .unwrap_or(&path)
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        out.push((rel, bytes));
    }
    out.sort();
    Ok(out)
}

/// Paths that differ between the committed and the fresh build, each with what is wrong.
pub(crate) fn differences(committed: &Path, fresh: &Path) -> anyhow::Result<Vec<String>> {
    let a = tree(committed)?;
    let b = tree(fresh)?;
    let mut out = Vec::new();
    for (path, bytes) in &a {
        match b.iter().find(|(p, _)| p == path) {
            None => out.push(format!("{path}: committed but no longer built")),
            Some((_, fresh)) if fresh != bytes => {
                out.push(format!("{path}: differs from a fresh build"))
            }
            Some(_) => {}
        }
    }
    for (path, _) in &b {
        if !a.iter().any(|(p, _)| p == path) {
            out.push(format!("{path}: built but not committed"));
        }
    }
    Ok(out)
}

pub(crate) fn run(check: bool) -> anyhow::Result<bool> {
    if !check {
        npm(&["ci", "--no-audit", "--no-fund", "--loglevel=error"])?;
        npm(&["run", "build"])?;
        println!("web: console built into {}", display_path(&assets_dir()));
        return Ok(true);
    }
    if !app_dir().join("node_modules").is_dir() {
        bail!("apps/web/node_modules is missing; run `npm ci --prefix apps/web` first");
    }
    let tmp = std::env::temp_dir().join(format!("objectos-web-check-{}", std::process::id()));
    let tmp_arg = tmp.display().to_string();
    let result = npm(&["run", "build", "--", "--outDir", &tmp_arg, "--emptyOutDir"])
        .and_then(|()| differences(&assets_dir(), &tmp));
    let _ = std::fs::remove_dir_all(&tmp);
    let problems = result?;
    for p in &problems {
        println!("crates/objectos-web-shell/assets/{p}");
    }
    if problems.is_empty() {
        println!("web: committed console assets match the sources");
        Ok(true)
    } else {
        println!(
            "web: {} file(s) out of date; run `cargo xtask web` and commit crates/objectos-web-shell/assets",
            problems.len()
        );
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_name_every_kind_of_drift() {
        let root = std::env::temp_dir().join(format!("xtask-web-diff-{}", std::process::id()));
        let (a, b) = (root.join("a"), root.join("b"));
        for (dir, files) in [
            (
                &a,
                [("same.txt", "x"), ("changed.txt", "1"), ("gone.txt", "g")],
            ),
            (
                &b,
                [("same.txt", "x"), ("changed.txt", "2"), ("new.txt", "n")],
            ),
        ] {
            std::fs::create_dir_all(dir).unwrap();
            for (name, text) in files {
                std::fs::write(dir.join(name), text).unwrap();
            }
        }
        let diffs = differences(&a, &b).unwrap();
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(
            diffs,
            [
                "changed.txt: differs from a fresh build",
                "gone.txt: committed but no longer built",
                "new.txt: built but not committed",
            ]
        );
    }
}
