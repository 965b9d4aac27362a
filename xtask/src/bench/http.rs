//! `cargo xtask bench http`: builds the release `objectos`, serves presets/crm on a temp SQLite file, seeds
//! 10,000 contacts, drives it with keep-alive HTTP/1.1 connections and writes the figures into docs/benchmarks.md.
//!
//! Two profiles: `minimal` (kernel + data + http, anonymous requests: the data path alone) and `secured`
//! (the standard build: every request carries a signed-in user's session token, the benched object has
//! a row-level-security policy and a field hidden by field-level security, audit records every write in
//! the write's transaction; plus a sign-in measurement).
//!
//! The load generator is deliberately small: N connections, each a task sending requests back to back for a
//! fixed duration, every latency kept in a Vec and sorted once for the percentiles. It runs on one thread so
//! that it takes at most one of the machine's cores away from the server.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode, header};
use hyper_util::rt::TokioIo;

mod load;
mod report;
pub(super) mod sample;

use super::{
    BenchArgs, Profile, Scratch, ServerProcess as Server, cargo_build, target_dir, write_section,
};
use crate::project_root;
use load::{Conn, Rng, run_scenario};
use report::{fmt_cpu, fmt_latency, render};
use sample::{clock_ticks_per_second, cpu_ticks, load_average, rss_kib};

/// The official Node server (@objectstack 17.4, `objectstack serve`, SQLite) measured on this machine kind,
/// GET by id / list / create / update at 32 connections: (req/s, p50 text).
const NODE_REFERENCE: [(&str, f64, &str); 4] = [
    ("GET by id", 8.4, "2.8 s"),
    ("list 50, filter + sort", 7.7, "n/a"),
    ("create", 8.0, "n/a"),
    ("update (PATCH)", 7.3, "n/a"),
];
const NODE_COLD_START_S: f64 = 7.1;
const NODE_IDLE_RSS_MIB: f64 = 376.0;

const CONNECTION_COUNTS: [usize; 2] = [1, 32];
/// Extra cold starts (each on an empty database) whose median, with the measured server's own
/// start, is reported.
const COLD_STARTS: usize = 4;
/// Records per seeding `createMany` (the server takes at most `data.maxBatchRecords`, 200 by default).
const SEED_CHUNK: usize = 200;
const LIST_PATH: &str =
    "/api/v1/data/contact?top=50&sort=-amount&filter=%5B%22status%22%2C%22%3D%22%2C%22active%22%5D";
const STATUSES: [&str; 3] = ["new", "active", "closed"];

pub(super) fn http(args: &BenchArgs) -> anyhow::Result<bool> {
    if args.duration == 0 {
        bail!("--duration must be at least 1 second, got 0");
    }
    if args.extra_config.is_some() && args.profile != Profile::Secured {
        bail!(
            "--extra-config needs --profile secured (the minimal build has no plugins to configure)"
        );
    }
    let root = project_root();
    let binary = match &args.binary {
        Some(path) => path.clone(),
        None => {
            let release = target_dir(&root, args).join("release");
            // Each profile keeps its own copy: both builds write `release/objectos`.
            let copy = release.join(format!("objectos-bench-{}", args.profile.name()));
            if !args.skip_build {
                build_release(&root, args)?;
                std::fs::copy(release.join("objectos"), &copy).with_context(|| {
                    format!("cannot copy the release binary to {}", copy.display())
                })?;
            }
            copy
        }
    };
    if !binary.is_file() {
        bail!(
            "objectos binary not found at {}; run without --skip-build once, or pass --binary PATH",
            binary.display()
        );
    }
    let release = is_release_binary(&binary);
    if cfg!(debug_assertions) {
        println!(
            "bench: this load generator is a debug build and will cap the figures; prefer `CARGO_TARGET_DIR=<release dir> cargo run --release -p xtask -- bench http ...`"
        );
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime for the load generator")?;
    let report = runtime.block_on(measure(&root, &binary, args))?;
    let markdown = render(&report, args, release);
    println!("{markdown}");
    if args.no_write || !args.only.is_empty() || args.extra_config.is_some() {
        println!(
            "bench: --no-write, --only or --extra-config given; docs/benchmarks.md left unchanged"
        );
    } else if !release {
        println!(
            "bench: {} is not a release build (no `release` folder in its path): these are DEBUG numbers, so docs/benchmarks.md is left unchanged",
            binary.display()
        );
    } else {
        let path = root.join("docs").join("benchmarks.md");
        write_section(&path, &markdown, args.profile.markers())?;
        println!("bench: updated {}", crate::display_path(&path));
    }
    Ok(report.scenarios.iter().all(|s| s.errors == 0 && s.ok > 0))
}

fn is_release_binary(binary: &Path) -> bool {
    binary.components().any(|c| c.as_os_str() == "release")
}

fn build_release(root: &Path, args: &BenchArgs) -> anyhow::Result<()> {
    // The minimal figures measure the data path alone (kernel + data + http); the secured ones the
    // standard build, where every request goes through the session hoop, permissions and audit.
    let mut cargo_args = vec!["build", "--release", "-p", "objectos-server"];
    cargo_args.extend_from_slice(args.profile.cargo_features());
    cargo_build(
        root,
        args,
        &cargo_args,
        " (about 15+ minutes cold on 2 cores)",
    )
}

// --- the measurement ------------------------------------------------------------------------------

#[derive(Debug)]
struct Report {
    load_before: Option<String>,
    load_after: Option<String>,
    cold_start: Duration,
    idle_rss_kib: Option<u64>,
    loaded_rss_kib: Option<u64>,
    seeded: usize,
    seed_time: Duration,
    scenarios: Vec<ScenarioResult>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum Op {
    Get,
    List,
    Create,
    Update,
    SignIn,
}

impl Op {
    fn label(self) -> &'static str {
        match self {
            Op::Get => "GET by id",
            Op::List => "list 50, filter + sort",
            Op::Create => "create",
            Op::Update => "update (PATCH)",
            Op::SignIn => "sign-in (argon2id)",
        }
    }
}

/// The signed-in bench user of the secured profile.
#[derive(Debug, Clone)]
struct Session {
    /// `Bearer <token>`, sent on every request.
    authorization: String,
    email: String,
    password: String,
}

#[derive(Debug)]
struct ScenarioResult {
    op: Op,
    connections: usize,
    ok: u64,
    errors: u64,
    first_error: Option<String>,
    elapsed: Duration,
    /// Per-request latencies in microseconds, sorted.
    latencies_us: Vec<u64>,
    /// Server CPU time (user + system) spent during the measured window.
    cpu: Option<Duration>,
}

impl ScenarioResult {
    fn rps(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> Option<u64> {
        if self.latencies_us.is_empty() {
            return None;
        }
        let rank = ((p / 100.0) * self.latencies_us.len() as f64).ceil() as usize;
        let idx = rank.clamp(1, self.latencies_us.len()) - 1;
        self.latencies_us.get(idx).copied()
    }

    fn cpu_per_request(&self) -> Option<Duration> {
        let total = self.ok + self.errors;
        self.cpu
            .filter(|_| total > 0)
            .map(|c| c / u32::try_from(total).unwrap_or(u32::MAX))
    }
}

async fn measure(root: &Path, binary: &Path, args: &BenchArgs) -> anyhow::Result<Report> {
    let tmp = Scratch::new("bench")?;
    let load_before = load_average();

    // Cold start is the median of a few starts, each on its own empty database: a single start
    // swings with whatever else the machine does in that instant (the first one also pays for a
    // cold page cache of the binary).
    let mut starts = Vec::with_capacity(COLD_STARTS);
    for i in 0..COLD_STARTS {
        let dir = tmp.0.join(format!("cold-{i}"));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let (mut probe, took) = start_server(root, binary, &dir, args).await?;
        probe.stop();
        starts.push(took);
    }
    let (mut server, first) = start_server(root, binary, &tmp.0, args).await?;
    starts.push(first);
    starts.sort_unstable();
    let cold_start = starts[starts.len() / 2];
    println!(
        "bench: cold starts {} ms (median {:.0} ms)",
        starts
            .iter()
            .map(|d| format!("{:.0}", d.as_secs_f64() * 1000.0))
            .collect::<Vec<_>>()
            .join(" "),
        cold_start.as_secs_f64() * 1000.0
    );
    println!(
        "bench: server pid {} ready on {} after {:.0} ms",
        server.pid(),
        server.addr,
        first.as_secs_f64() * 1000.0
    );
    // Let start-up work that runs after /ready (migrations, background tasks) settle before sampling RSS.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_rss_kib = rss_kib(server.pid());

    let session = match args.profile {
        Profile::Minimal => None,
        Profile::Secured => match sign_up_bench_user(server.addr).await {
            Ok(s) => Some(s),
            Err(e) => bail!(
                "setting up the signed-in bench user failed: {e:#}\nserver log (last lines):\n{}",
                server.log_tail()
            ),
        },
    };
    let seed_started = Instant::now();
    let ids = match seed(server.addr, args.records, session.as_ref()).await {
        Ok(ids) => ids,
        Err(e) => bail!(
            "seeding failed: {e:#}\nserver log (last lines):\n{}",
            server.log_tail()
        ),
    };
    let seed_time = seed_started.elapsed();
    println!(
        "bench: seeded {} contacts in {:.1} s",
        ids.len(),
        seed_time.as_secs_f64()
    );

    let clk_tck = clock_ticks_per_second();
    let duration = Duration::from_secs(args.duration);
    let warmup = Duration::from_millis((args.duration * 100).clamp(200, 1000));
    let mut scenarios = Vec::new();
    for &op in args.profile.ops() {
        if !args.only.is_empty() && !args.only.contains(&op) {
            continue;
        }
        for &connections in &CONNECTION_COUNTS {
            // The warm-up fills caches and connection pools; its numbers are discarded.
            run_scenario(
                server.addr,
                op,
                connections,
                warmup,
                &ids,
                0,
                session.as_ref(),
            )
            .await?;
            let before = cpu_ticks(server.pid());
            let mut result = run_scenario(
                server.addr,
                op,
                connections,
                duration,
                &ids,
                1,
                session.as_ref(),
            )
            .await?;
            let after = cpu_ticks(server.pid());
            result.cpu = match (before, after) {
                (Some(b), Some(a)) if a >= b => {
                    Some(Duration::from_secs_f64((a - b) as f64 / clk_tck as f64))
                }
                _ => None,
            };
            println!(
                "bench: {:<24} {:>2} conn: {:>9.1} req/s  p50 {:>9}  p99 {:>9}  cpu/req {:>9}  errors {}",
                op.label(),
                connections,
                result.rps(),
                fmt_latency(result.percentile(50.0)),
                fmt_latency(result.percentile(99.0)),
                fmt_cpu(result.cpu_per_request()),
                result.errors
            );
            if let Some(e) = &result.first_error {
                println!("bench:   first error: {e}");
            }
            scenarios.push(result);
        }
    }
    let loaded_rss_kib = rss_kib(server.pid());
    server.stop();
    Ok(Report {
        load_before,
        load_after: load_average(),
        cold_start,
        idle_rss_kib,
        loaded_rss_kib,
        seeded: ids.len(),
        seed_time,
        scenarios,
    })
}

/// The secured profile's metadata: presets/crm plus a permission set for the bench user with a
/// row-level-security policy on `contact` (own records only) and a field hidden by field-level
/// security; and an `objectos.yml` that opens sign-up and lifts the sign-in rate limit (the bench
/// signs in far more often than the per-minute limits allow). `extra` (`--extra-config`) is
/// appended to that file: the overhead runs switch metrics, tracing or the Redis cache on with it.
fn secured_setup(
    root: &Path,
    tmp: &Path,
    extra: Option<&Path>,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    let meta = tmp.join("crm");
    copy_dir(&root.join("presets").join("crm"), &meta)?;
    let perms = meta.join("permissions");
    std::fs::create_dir_all(&perms)?;
    std::fs::write(perms.join("bench_rep.permission.yml"), BENCH_PERMISSION_SET)
        .context("cannot write the bench permission set")?;
    let mut text = BENCH_CONFIG.to_owned();
    if let Some(extra) = extra {
        let more = std::fs::read_to_string(extra)
            .with_context(|| format!("cannot read --extra-config {}", extra.display()))?;
        text.push_str(&more);
    }
    let config = tmp.join("objectos.yml");
    std::fs::write(&config, text).context("cannot write the bench objectos.yml")?;
    Ok((meta, config))
}

const BENCH_PERMISSION_SET: &str = "\
# Written by `cargo xtask bench http --profile secured`.
name: bench_rep
label: Bench representative
objects:
  contact: { allowRead: true, allowCreate: true, allowEdit: true }
  account: { allowRead: true }
fields:
  contact.account: { readable: false, editable: false }
rowLevelSecurity:
  - name: own_contacts
    object: contact
    operation: all
    using: \"owner_id = current_user.id\"
    check: \"owner_id = current_user.id\"
";

const BENCH_CONFIG: &str = "\
# Written by `cargo xtask bench http --profile secured`.
auth:
  allowSignUp: true
  rateLimit:
    enabled: false
";

const BENCH_PASSWORD: &str = "Bench-pass-2026!";

/// How this load generator was compiled. A debug build (plain `cargo xtask`) spends several
/// times more CPU per request than the server's fast paths and caps the figures; run the bench
/// from a release build of xtask for numbers worth recording.
const LOADGEN_BUILD: &str = if cfg!(debug_assertions) {
    "DEBUG build: figures are lower bounds"
} else {
    "release build"
};

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
    for entry in
        std::fs::read_dir(from).with_context(|| format!("cannot list {}", from.display()))?
    {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)
                .with_context(|| format!("cannot copy {}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// Signs up the owner (the first account, an administrator) and the bench user, gives the bench
/// user the `bench_rep` permission set, and signs the bench user in.
async fn sign_up_bench_user(addr: SocketAddr) -> anyhow::Result<Session> {
    let mut conn = Conn::open(addr, None).await?;
    let owner = post_json(
        &mut conn,
        "/api/v1/auth/sign-up/email",
        &serde_json::json!({"email": "owner@bench.example", "password": BENCH_PASSWORD, "name": "Owner"}),
    )
    .await?;
    let owner_token = owner
        .get("token")
        .and_then(|t| t.as_str())
        .context("sign-up answered without a token")?
        .to_owned();
    let email = "rep@bench.example".to_owned();
    let rep = post_json(
        &mut conn,
        "/api/v1/auth/sign-up/email",
        &serde_json::json!({"email": email, "password": BENCH_PASSWORD, "name": "Rep"}),
    )
    .await?;
    let rep_id = rep
        .pointer("/user/id")
        .and_then(|t| t.as_str())
        .context("sign-up answered without user.id")?
        .to_owned();
    let mut admin = Conn::open(addr, Some(format!("Bearer {owner_token}"))).await?;
    post_json(
        &mut admin,
        "/api/v1/permissions/assignments",
        &serde_json::json!({"userId": rep_id, "permissionSet": "bench_rep"}),
    )
    .await?;
    let signed_in = post_json(
        &mut conn,
        "/api/v1/auth/sign-in/email",
        &serde_json::json!({"email": email, "password": BENCH_PASSWORD}),
    )
    .await?;
    let token = signed_in
        .get("token")
        .and_then(|t| t.as_str())
        .context("sign-in answered without a token")?;
    Ok(Session {
        authorization: format!("Bearer {token}"),
        email,
        password: BENCH_PASSWORD.to_owned(),
    })
}

/// POSTs `body` and returns the JSON answer (unwrapping a `{success, data}` envelope); non-2xx is an error.
async fn post_json(
    conn: &mut Conn,
    path: &str,
    body: &serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    let (status, bytes) = conn
        .send(Method::POST, path, Some(serde_json::to_vec(body)?))
        .await?;
    if !status.is_success() {
        bail!(
            "POST {path} answered {status}: {}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(500)])
        );
    }
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .with_context(|| format!("POST {path} answered a body that is not JSON"))?;
    Ok(match value.get("data") {
        Some(data) if value.get("success").is_some() => data.clone(),
        _ => value,
    })
}

async fn start_server(
    root: &Path,
    binary: &Path,
    tmp: &Path,
    bench: &BenchArgs,
) -> anyhow::Result<(Server, Duration)> {
    let mut args: Vec<String> = Vec::new();
    match bench.profile {
        Profile::Minimal => args.extend(["serve".to_owned(), "presets/crm".to_owned()]),
        Profile::Secured => {
            let (meta, config) = secured_setup(root, tmp, bench.extra_config.as_deref())?;
            args.extend([
                "--config".to_owned(),
                config.display().to_string(),
                "serve".to_owned(),
                meta.display().to_string(),
            ]);
        }
    }
    let started = Instant::now();
    let mut server = Server::spawn(binary, &args, root, tmp)?;
    let deadline = started + Duration::from_secs(120);
    loop {
        server.exited()?;
        if let Ok(StatusCode::OK) = probe_ready(server.addr).await {
            return Ok((server, started.elapsed()));
        }
        if Instant::now() > deadline {
            server.stop();
            bail!(
                "the server did not answer 200 on /ready within 120 s; its output:\n{}",
                server.log_tail()
            );
        }
        // 1 ms between probes: the figure is tens of milliseconds, coarser polling would add up to it.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

async fn probe_ready(addr: SocketAddr) -> anyhow::Result<StatusCode> {
    let mut conn = Conn::open(addr, None).await?;
    let (status, _) = conn.send(Method::GET, "/ready", None).await?;
    Ok(status)
}

/// Creates `count` contacts through `POST /createMany` and returns their ids.
async fn seed(
    addr: SocketAddr,
    count: usize,
    session: Option<&Session>,
) -> anyhow::Result<Vec<String>> {
    let mut conn = Conn::open(addr, session.map(|s| s.authorization.clone())).await?;
    let mut rng = Rng::new(0x5eed);
    let mut ids = Vec::with_capacity(count);
    let mut n = 0;
    while n < count {
        let chunk = SEED_CHUNK.min(count - n);
        let records: Vec<serde_json::Value> =
            (n..n + chunk).map(|i| contact(i, &mut rng)).collect();
        let body = serde_json::to_vec(&records)?;
        let (status, bytes) = conn
            .send(Method::POST, "/api/v1/data/contact/createMany", Some(body))
            .await?;
        if !status.is_success() {
            bail!(
                "POST /api/v1/data/contact/createMany answered {status}: {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(500)])
            );
        }
        let value: serde_json::Value = serde_json::from_slice(&bytes)
            .context("createMany answered a body that is not JSON")?;
        // Accept both the bare body and the `{success, data}` envelope.
        let data = value
            .get("data")
            .filter(|_| value.get("success").is_some())
            .unwrap_or(&value);
        let records = data
            .get("records")
            .and_then(|r| r.as_array())
            .context("createMany answer has no `records` array")?;
        for r in records {
            let id = r
                .get("id")
                .and_then(|v| v.as_str())
                .context("a created record has no string `id`")?;
            ids.push(id.to_owned());
        }
        n += chunk;
    }
    if ids.len() != count {
        bail!(
            "asked createMany for {count} contacts, got {} ids back",
            ids.len()
        );
    }
    Ok(ids)
}

fn contact(i: usize, rng: &mut Rng) -> serde_json::Value {
    let cents = rng.below(1_000_000);
    serde_json::json!({
        "name": format!("Contact {i:05}"),
        "email": format!("contact{i}@example.com"),
        "amount": cents as f64 / 100.0,
        "status": STATUSES[(rng.below(3)) as usize],
    })
}

#[cfg(test)]
mod tests {
    use super::sample::{parse_cpu_ticks, parse_vm_rss};
    use super::*;

    #[test]
    fn cpu_ticks_are_read_after_the_command_name() {
        let stat = "4242 (objectos serve) S 1 2 3 4 5 6 7 8 9 10 150 25 0 0 20 0 9 0 100 1000 200";
        assert_eq!(parse_cpu_ticks(stat), Some(175));
    }

    #[test]
    fn vm_rss_is_read_in_kib() {
        let status = "Name:\tobjectos\nVmPeak:\t  99999 kB\nVmRSS:\t   12345 kB\n";
        assert_eq!(parse_vm_rss(status), Some(12345));
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let r = ScenarioResult {
            op: Op::Get,
            connections: 1,
            ok: 100,
            errors: 0,
            first_error: None,
            elapsed: Duration::from_secs(1),
            latencies_us: (1..=100).collect(),
            cpu: Some(Duration::from_millis(50)),
        };
        assert_eq!(r.percentile(50.0), Some(50));
        assert_eq!(r.percentile(99.0), Some(99));
        assert_eq!(r.cpu_per_request(), Some(Duration::from_micros(500)));
        assert!((r.rps() - 100.0).abs() < 1e-9);
    }

    #[test]
    fn release_binaries_are_recognised_by_their_folder() {
        assert!(is_release_binary(Path::new("/t/release/objectos")));
        assert!(!is_release_binary(Path::new("/t/debug/objectos")));
    }
}
