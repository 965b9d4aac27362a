//! `cargo xtask bench notifications`: builds and runs the `notification_bench` example of
//! objectos-notification (release) and writes its table between the `notifications-bench`
//! markers of docs/benchmarks.md.

use super::{BenchArgs, example_rows, publish};

const START_MARKER: &str = "<!-- notifications-bench:start -->";
const END_MARKER: &str = "<!-- notifications-bench:end -->";

/// `bench notifications`: builds and runs the notification benchmark example, prints its table
/// and writes it between the `notifications-bench` markers of docs/benchmarks.md.
pub(super) fn notifications(args: &BenchArgs) -> anyhow::Result<bool> {
    let rows = example_rows(args, "objectos-notification", "notification_bench")?;
    let mut md = String::from(
        "| database | enqueue p50 | enqueue p99 | queued mails/s (32 callers) | sent mails/s to a local SMTP sink |\n| --- | ---: | ---: | ---: | ---: |\n",
    );
    for r in &rows {
        md.push_str(&format!(
            "| {} | {} ms | {} ms | {} | {} |\n",
            r["database"].as_str().unwrap_or("?"),
            r["enqueueP50Ms"],
            r["enqueueP99Ms"],
            per_sec(&r["queuedPerSec"]),
            per_sec(&r["sentPerSec"]),
        ));
    }
    md.push_str(&format!(
        "\nEnqueue: `queue_email` (check, render, then one transaction: the `sys_email` record, its contents, and its job when the jobs plugin runs; hand over) over {} mails queued one at a time while earlier ones are delivered. Throughput: {} mails queued by 32 callers until the last is `sent` (SMTP over loopback to a minimal sink, pooled connections, delivery in-process without the jobs plugin). `cargo xtask bench notifications`, release build.\n",
        rows[0]["latencyMails"], rows[0]["mails"]
    ));
    publish(args, &md, (START_MARKER, END_MARKER))?;
    Ok(true)
}

/// A rate as a whole number (the example prints a rounded float: `1669.0`).
fn per_sec(v: &serde_json::Value) -> String {
    v.as_f64()
        .map_or_else(|| v.to_string(), |x| format!("{x:.0}"))
}
