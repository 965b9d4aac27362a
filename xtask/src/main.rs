//! Project automation (`cargo xtask <task>`): spec-audit, deps, tidy, json-schema, web, bench.
//!
//! Each task is one module; `main` only dispatches. Every check also runs as a `#[test]`, so a plain `cargo test` enforces it.

mod bench;
mod deps;
mod json_schema;
mod spec_audit;
mod tidy;
mod web;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "ObjectOS project automation")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Check every compiled-in plugin manifest and every metadata file under presets/ and PATHs against the spec.
    SpecAudit {
        /// Extra files or folders to audit (presets/ is always audited).
        paths: Vec<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Skip the presets/ folder and compiled-in manifests; audit only PATHs.
        #[arg(long)]
        only: bool,
    },
    /// Enforce the dependency rules between workspace crates (design.md section 3).
    Deps,
    /// Source hygiene: `//!` headers, no dbg!/todo!/unimplemented! outside tests.
    Tidy,
    /// Write the spec types' JSON Schemas to docs/schemas/ (`--check`: fail when they are out of date).
    JsonSchema {
        #[arg(long)]
        check: bool,
    },
    /// Rebuild the admin console (apps/web) into crates/objectos-web-shell/assets (`--check`: fail when the committed assets differ from a fresh build).
    Web {
        #[arg(long)]
        check: bool,
    },
    /// Load benchmarks: `bench http` serves presets/crm from the release build and updates docs/benchmarks.md.
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::SpecAudit { paths, json, only } => spec_audit::run(&paths, json, only),
        Task::Deps => deps::run(),
        Task::Tidy => tidy::run(),
        Task::JsonSchema { check } => json_schema::run(check),
        Task::Web { check } => web::run(check),
        Task::Bench(args) => bench::run(&args),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("xtask: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// The workspace root, derived from this crate's manifest dir so the tasks work from any cwd.
pub(crate) fn project_root() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    dir.parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| dir.to_path_buf())
}

/// Folders never walked: build output, dependencies, VCS data.
pub(crate) fn is_skipped_dir(name: &str) -> bool {
    matches!(name, "target" | "node_modules" | ".git" | "dist" | ".cache")
}

/// Every file under `root` (recursively, sorted, skipping [`is_skipped_dir`] folders).
pub(crate) fn walk_files(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    if root.is_file() {
        out.push(root.to_path_buf());
        return Ok(out);
    }
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| anyhow::anyhow!("cannot read folder {}: {e}", dir.display()))?;
        for entry in entries {
            let entry = entry?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let kind = entry.file_type()?;
            if kind.is_dir() {
                if !is_skipped_dir(&name) {
                    stack.push(path);
                }
            } else if kind.is_file() {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// `path` relative to the project root when it lies inside it, for stable messages.
pub(crate) fn display_path(path: &Path) -> String {
    let root = project_root();
    path.strip_prefix(&root)
        .unwrap_or(path)
        .display()
        .to_string()
}
