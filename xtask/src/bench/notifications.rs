//! `cargo xtask bench notifications`: builds and runs the `notification_bench` example of the
//! server package (release; it links the notification and jobs plugins together, which only
//! the server may) and writes its table between the `notifications-bench` markers of
//! docs/benchmarks.md.

use super::{BenchArgs, example_rows, publish};

const START_MARKER: &str = "<!-- notifications-bench:start -->";
const END_MARKER: &str = "<!-- notifications-bench:end -->";

/// `bench notifications`: builds and runs the notification benchmark example, prints its table
/// and writes it between the `notifications-bench` markers of docs/benchmarks.md.
pub(super) fn notifications(args: &BenchArgs) -> anyhow::Result<bool> {
    let rows = example_rows(args, "objectos-server", "notification_bench")?;
    let first = &rows[0];
    let mut md = format!(
        "| database | enqueue p50 / p99 at {rate} mails/s offered | one at a time p50 / p99 | {callers} callers (saturated) p50 / p99 | queued mails/s ({callers} callers) | sent mails/s to a local SMTP sink |\n| --- | ---: | ---: | ---: | ---: | ---: |\n",
        rate = per_sec(&first["offeredRate"]),
        callers = first["callers"],
    );
    for r in &rows {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            r["database"].as_str().unwrap_or("?"),
            p50_p99(&r["offered"]),
            p50_p99(&r["serial"]),
            p50_p99(&r["saturated"]),
            per_sec(&r["queuedPerSec"]),
            per_sec(&r["sentPerSec"]),
        ));
    }
    md.push_str(&format!(
        "\nEnqueue: `queue_email` (check, render, then one transaction: the `sys_email` record, its contents and its `notification.deliver` job{jobs}; hand over to the workers) while earlier mails are delivered. Offered: {offered} mails in an open loop at a fixed rate, each timed from its scheduled start (the request-path figure, below saturation). One at a time: {serial} mails, each sent when the previous returned. Saturated: {mails} mails by {callers} callers back to back (mostly time spent queued behind the other callers), timed until the last is `sent` for the throughput (SMTP over loopback to a minimal sink, pooled connections). `cargo xtask bench notifications`, release build.\n",
        jobs = if first["jobs"].as_bool() == Some(false) {
            " (run without the jobs plugin: delivered by the plugin's own tasks)"
        } else {
            " through the jobs plugin's transactional enqueue, delivered by its workers"
        },
        offered = first["offeredMails"],
        serial = first["serialMails"],
        mails = first["mails"],
        callers = first["callers"],
    ));
    publish(args, &md, (START_MARKER, END_MARKER))?;
    Ok(true)
}

/// `p50 / p99 ms` of a percentiles object.
fn p50_p99(v: &serde_json::Value) -> String {
    format!("{} / {} ms", v["p50"], v["p99"])
}

/// A rate as a whole number (the example prints a rounded float: `1669.0`).
fn per_sec(v: &serde_json::Value) -> String {
    v.as_f64()
        .map_or_else(|| v.to_string(), |x| format!("{x:.0}"))
}
