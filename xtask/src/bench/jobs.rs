//! `cargo xtask bench jobs`: builds and runs the `jobs_bench` example of objectos-jobs (release)
//! and writes its table between the `jobs-bench` markers of docs/benchmarks.md.

use std::process::Command;

use anyhow::{Context as _, bail};

use super::{BenchArgs, target_dir, write_section};
use crate::project_root;

const JOBS_START_MARKER: &str = "<!-- jobs-bench:start -->";
const JOBS_END_MARKER: &str = "<!-- jobs-bench:end -->";

/// `bench jobs`: builds and runs the jobs benchmark example, prints its table and writes it
/// between the `jobs-bench` markers of docs/benchmarks.md (release builds only).
pub(super) fn jobs(args: &BenchArgs) -> anyhow::Result<bool> {
    let root = project_root();
    let target = target_dir(&root, args);
    let binary = target.join("release").join("examples").join("jobs_bench");
    if !args.skip_build {
        let cargo_args = [
            "build",
            "--release",
            "-p",
            "objectos-jobs",
            "--example",
            "jobs_bench",
        ];
        println!(
            "bench: CARGO_TARGET_DIR={} cargo {}",
            target.display(),
            cargo_args.join(" ")
        );
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args(cargo_args)
            .env("CARGO_TARGET_DIR", &target)
            .current_dir(&root)
            .status()
            .context("cannot run cargo")?;
        if !status.success() {
            bail!("`cargo {}` failed ({status})", cargo_args.join(" "));
        }
    }
    if !binary.is_file() {
        bail!(
            "{} not found; run without --skip-build once",
            binary.display()
        );
    }
    let out = Command::new(&binary)
        .current_dir(&root)
        .output()
        .with_context(|| format!("cannot run {}", binary.display()))?;
    if !out.status.success() {
        bail!(
            "{} failed ({}): {}",
            binary.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    if rows.is_empty() {
        bail!("the benchmark printed no results");
    }
    let mut md = String::from(
        "| backend | database | no-op jobs/s (claim + run + complete) | enqueue (bulk) jobs/s | enqueue-to-start p50 | p99 |\n| --- | --- | ---: | ---: | ---: | ---: |\n",
    );
    for r in &rows {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} ms | {} ms |\n",
            r["backend"].as_str().unwrap_or("embedded"),
            r["database"].as_str().unwrap_or("?"),
            r["jobsPerSec"],
            r["enqueueJobsPerSec"],
            r["p50Ms"],
            r["p99Ms"]
        ));
    }
    md.push_str(&format!(
        "\n{} no-op jobs enqueued due together, drained by 64 workers (batches of 256); latency over {} jobs enqueued one at a time. `cargo xtask bench jobs`, release build.\n",
        rows[0]["jobs"], rows[0]["latencyJobs"]
    ));
    println!("{md}");
    if args.no_write {
        println!("bench: --no-write given; docs/benchmarks.md left unchanged");
    } else {
        let path = root.join("docs").join("benchmarks.md");
        write_section(&path, &md, (JOBS_START_MARKER, JOBS_END_MARKER))?;
        println!("bench: updated {}", crate::display_path(&path));
    }
    Ok(true)
}
