//! `cargo xtask bench jobs`: builds and runs the `jobs_bench` example of objectos-jobs (release)
//! and writes its table between the `jobs-bench` markers of docs/benchmarks.md.
//! `OBJECTOS_JOBS_BENCH_ONLY=embedded-postgres,rabbitmq-postgres` (names `embedded|rabbitmq` `-`
//! `sqlite|postgres`) measures only those combinations and prints them without writing: a partial
//! table must not replace the recorded one.

use super::{BenchArgs, example_rows, publish};

const JOBS_START_MARKER: &str = "<!-- jobs-bench:start -->";
const JOBS_END_MARKER: &str = "<!-- jobs-bench:end -->";

/// `bench jobs`: builds and runs the jobs benchmark example, prints its table and writes it
/// between the `jobs-bench` markers of docs/benchmarks.md (release builds only).
pub(super) fn jobs(args: &BenchArgs) -> anyhow::Result<bool> {
    let rows = example_rows(args, "objectos-jobs", "jobs_bench")?;
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
        "\n{} no-op jobs enqueued due together, drained by 64 workers (batches of 256; RabbitMQ prefetch 512); latency over {} jobs enqueued one at a time. `cargo xtask bench jobs`, release build.\n",
        rows[0]["jobs"], rows[0]["latencyJobs"]
    ));
    let filtered = std::env::var("OBJECTOS_JOBS_BENCH_ONLY").is_ok_and(|o| !o.trim().is_empty());
    if filtered {
        println!("{md}");
        println!("bench: OBJECTOS_JOBS_BENCH_ONLY given; docs/benchmarks.md left unchanged");
    } else {
        publish(args, &md, (JOBS_START_MARKER, JOBS_END_MARKER))?;
    }
    Ok(true)
}
