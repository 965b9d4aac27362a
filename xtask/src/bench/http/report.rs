//! The Markdown table of a run, with the machine it ran on and the reference figures.

use super::*;

pub(super) fn fmt_latency(us: Option<u64>) -> String {
    match us {
        None => "n/a".to_owned(),
        Some(us) if us >= 1_000_000 => format!("{:.2} s", us as f64 / 1e6),
        Some(us) => format!("{:.2} ms", us as f64 / 1e3),
    }
}

pub(super) fn fmt_cpu(cpu: Option<Duration>) -> String {
    match cpu {
        None => "n/a".to_owned(),
        Some(d) => format!("{:.3} ms", d.as_secs_f64() * 1e3),
    }
}

pub(super) fn fmt_mib(kib: Option<u64>) -> String {
    match kib {
        None => "n/a".to_owned(),
        Some(k) => format!("{:.1} MiB", k as f64 / 1024.0),
    }
}

pub(super) fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

pub(super) fn machine() -> String {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_owned())
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|k| k.parse::<f64>().ok())
        .map(|k| format!(", {:.0} GiB RAM", k / 1024.0 / 1024.0))
        .unwrap_or_default();
    format!("nproc {cores}, {model}{mem_gib}")
}

pub(super) fn render(report: &Report, args: &BenchArgs, release: bool) -> String {
    let date = command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"])
        .unwrap_or_else(|| "unknown date".to_owned());
    let commit = command_output("git", &["rev-parse", "--short", "HEAD"])
        .unwrap_or_else(|| "unknown".to_owned());
    let dirty = command_output("git", &["status", "--porcelain", "--untracked-files=no"])
        .is_some_and(|s| !s.is_empty());
    let secured = args.profile == Profile::Secured;
    let mut command = format!("cargo xtask bench http --duration {}", args.duration);
    if secured {
        command.push_str(" --profile secured");
    }
    if args.skip_build {
        command.push_str(" --skip-build");
    }
    if let Some(b) = &args.binary {
        let _ = write!(command, " --binary {}", b.display());
    }
    if args.records != 10_000 {
        let _ = write!(command, " --records {}", args.records);
    }
    let build = if release {
        "release build"
    } else {
        "DEBUG build (not comparable; not for docs/benchmarks.md)"
    };

    let mut md = String::new();
    let _ = writeln!(
        md,
        "Measured {date}, commit `{commit}`{}, {build} ({} features), on {}; load generator on the same machine (one thread, {}).",
        if dirty { " + uncommitted changes" } else { "" },
        if secured { "standard" } else { "minimal" },
        machine(),
        LOADGEN_BUILD,
    );
    let _ = writeln!(
        md,
        "Load average (1, 5, 15 min) before the run: {}; after: {}.",
        report.load_before.as_deref().unwrap_or("n/a"),
        report.load_after.as_deref().unwrap_or("n/a"),
    );
    if secured {
        let _ = writeln!(
            md,
            "`objectos serve` on presets/crm plus a `bench_rep` permission set (RLS `owner_id = current_user.id` on `contact` for reads and writes, FLS hiding `contact.account`), audit on; every request carries the session token of a signed-in non-admin user holding `bench_rep`. {} contacts seeded by that user through `createMany` ({:.1} s); each scenario runs {} s after a short warm-up, keep-alive HTTP/1.1. Sign-in posts the user's email and password (argon2id, the default parameters: 19 MiB, 2 iterations).",
            report.seeded,
            report.seed_time.as_secs_f64(),
            args.duration
        );
    } else {
        let _ = writeln!(
            md,
            "`objectos serve presets/crm` on a temporary SQLite file with {} contacts seeded through `createMany` ({:.1} s); each scenario runs {} s after a short warm-up, keep-alive HTTP/1.1.",
            report.seeded,
            report.seed_time.as_secs_f64(),
            args.duration
        );
    }
    let _ = writeln!(md);
    let _ = writeln!(md, "Command: `{command}`");
    let _ = writeln!(md);
    if secured {
        let _ = writeln!(
            md,
            "| Scenario | Connections | ObjectOS req/s | p50 | p99 | Server CPU / request | Errors |"
        );
        let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|");
    } else {
        let _ = writeln!(
            md,
            "| Scenario | Connections | ObjectOS req/s | p50 | p99 | Server CPU / request | Errors | Official Node server (17.4), 32 connections |"
        );
        let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---|");
    }
    for s in &report.scenarios {
        let reference = if s.connections == 32 {
            NODE_REFERENCE
                .iter()
                .find(|(label, _, _)| *label == s.op.label())
                .map(|(_, rps, p50)| {
                    if *p50 == "n/a" {
                        format!("{rps:.1} req/s")
                    } else {
                        format!("{rps:.1} req/s (p50 {p50})")
                    }
                })
                .unwrap_or_default()
        } else {
            String::new()
        };
        let _ = write!(
            md,
            "| {} | {} | {:.1} | {} | {} | {} | {} |",
            s.op.label(),
            s.connections,
            s.rps(),
            fmt_latency(s.percentile(50.0)),
            fmt_latency(s.percentile(99.0)),
            fmt_cpu(s.cpu_per_request()),
            s.errors,
        );
        if secured {
            let _ = writeln!(md);
        } else {
            let _ = writeln!(md, " {reference} |");
        }
    }
    let _ = writeln!(md);
    if secured {
        let _ = writeln!(md, "| Process | ObjectOS |");
        let _ = writeln!(md, "|---|---:|");
        let _ = writeln!(
            md,
            "| Cold start (spawn to first 200 on `/ready`, empty database; median of 5) | {:.3} s |",
            report.cold_start.as_secs_f64()
        );
        let _ = writeln!(
            md,
            "| RSS idle after start | {} |",
            fmt_mib(report.idle_rss_kib)
        );
        let _ = writeln!(
            md,
            "| RSS after the load above | {} |",
            fmt_mib(report.loaded_rss_kib)
        );
    } else {
        let _ = writeln!(md, "| Process | ObjectOS | Official Node server (17.4) |");
        let _ = writeln!(md, "|---|---:|---:|");
        let _ = writeln!(
            md,
            "| Cold start (spawn to first 200 on `/ready`, empty database; median of 5) | {:.3} s | {NODE_COLD_START_S} s |",
            report.cold_start.as_secs_f64()
        );
        let _ = writeln!(
            md,
            "| RSS idle after start | {} | {NODE_IDLE_RSS_MIB} MiB |",
            fmt_mib(report.idle_rss_kib)
        );
        let _ = writeln!(
            md,
            "| RSS after the load above | {} | n/a |",
            fmt_mib(report.loaded_rss_kib)
        );
    }
    let failures: Vec<&ScenarioResult> = report
        .scenarios
        .iter()
        .filter(|s| s.first_error.is_some())
        .collect();
    if !failures.is_empty() {
        let _ = writeln!(md);
        let _ = writeln!(md, "First error per failing scenario:");
        for s in failures {
            let _ = writeln!(
                md,
                "- {} at {} connections: `{}`",
                s.op.label(),
                s.connections,
                s.first_error.as_deref().unwrap_or_default()
            );
        }
    }
    md
}
