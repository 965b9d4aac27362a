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
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode, header};
use hyper_util::rt::TokioIo;

use crate::project_root;

/// What to benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Suite {
    /// The REST API of `objectos serve presets/crm`.
    Http,
    /// The jobs plugin: no-op jobs/s and enqueue-to-start latency (the `jobs_bench` example
    /// of objectos-jobs, release build), embedded on a SQLite file and, with
    /// `OBJECTOS_TEST_POSTGRES_URL`, PostgreSQL; again through RabbitMQ with
    /// `OBJECTOS_TEST_AMQP_URL`.
    Jobs,
}

/// Which build and set-up the HTTP suite measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Profile {
    /// `--features minimal` (kernel + data + http), anonymous requests.
    Minimal,
    /// The standard features (auth, permissions, audit): a signed-in non-admin user, RLS and FLS on
    /// `contact`, audit on; also measures sign-in.
    Secured,
}

impl Profile {
    fn name(self) -> &'static str {
        match self {
            Profile::Minimal => "minimal",
            Profile::Secured => "secured",
        }
    }

    /// The cargo arguments selecting the profile's features.
    fn cargo_features(self) -> &'static [&'static str] {
        match self {
            Profile::Minimal => &["--no-default-features", "--features", "minimal"],
            Profile::Secured => &[],
        }
    }

    fn markers(self) -> (&'static str, &'static str) {
        match self {
            Profile::Minimal => (START_MARKER, END_MARKER),
            Profile::Secured => (SECURED_START_MARKER, SECURED_END_MARKER),
        }
    }

    fn ops(self) -> &'static [Op] {
        match self {
            Profile::Minimal => &[Op::Get, Op::List, Op::Create, Op::Update],
            Profile::Secured => &[Op::Get, Op::List, Op::Create, Op::Update, Op::SignIn],
        }
    }
}

#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    /// The benchmark suite to run.
    #[arg(value_enum)]
    suite: Suite,
    /// `minimal`: the unsecured data path; `secured`: auth, RLS, FLS and audit on, plus sign-in.
    #[arg(long, value_enum, default_value_t = Profile::Minimal)]
    profile: Profile,
    /// Cargo target folder of the release build (default: $OBJECTOS_RELEASE_TARGET_DIR, else
    /// $CARGO_TARGET_DIR, else ./target); keeps the 17-minute release build out of the debug folder.
    #[arg(long, value_name = "PATH")]
    target_dir: Option<PathBuf>,
    /// Seconds each scenario is measured for (after a short warm-up).
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Do not run `cargo build --release -p objectos-server` first (use the existing release binary).
    #[arg(long)]
    skip_build: bool,
    /// Benchmark this `objectos` binary instead of the release build (implies --skip-build).
    #[arg(long)]
    binary: Option<PathBuf>,
    /// Number of contacts seeded before measuring.
    #[arg(long, default_value_t = 10_000)]
    records: usize,
    /// Print the results only; never touch docs/benchmarks.md.
    #[arg(long)]
    no_write: bool,
    /// Run only these scenarios (repeatable; implies --no-write, a partial table must not
    /// replace the recorded one): get, list, create, update, sign-in.
    #[arg(long, value_enum, value_name = "SCENARIO")]
    only: Vec<Op>,
}

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

const START_MARKER: &str = "<!-- http-bench:start -->";
const END_MARKER: &str = "<!-- http-bench:end -->";
const SECURED_START_MARKER: &str = "<!-- http-bench-secured:start -->";
const SECURED_END_MARKER: &str = "<!-- http-bench-secured:end -->";
const CONNECTION_COUNTS: [usize; 2] = [1, 32];
/// Extra cold starts (each on an empty database) whose median, with the measured server's own
/// start, is reported.
const COLD_STARTS: usize = 4;
/// Records per seeding `createMany` (the server takes at most `data.maxBatchRecords`, 200 by default).
const SEED_CHUNK: usize = 200;
const LIST_PATH: &str =
    "/api/v1/data/contact?top=50&sort=-amount&filter=%5B%22status%22%2C%22%3D%22%2C%22active%22%5D";
const STATUSES: [&str; 3] = ["new", "active", "closed"];

pub(crate) fn run(args: &BenchArgs) -> anyhow::Result<bool> {
    match args.suite {
        Suite::Http => http(args),
        Suite::Jobs => jobs(args),
    }
}

const JOBS_START_MARKER: &str = "<!-- jobs-bench:start -->";
const JOBS_END_MARKER: &str = "<!-- jobs-bench:end -->";

/// `bench jobs`: builds and runs the jobs benchmark example, prints its table and writes it
/// between the `jobs-bench` markers of docs/benchmarks.md (release builds only).
fn jobs(args: &BenchArgs) -> anyhow::Result<bool> {
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

fn http(args: &BenchArgs) -> anyhow::Result<bool> {
    if args.duration == 0 {
        bail!("--duration must be at least 1 second, got 0");
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
    if args.no_write || !args.only.is_empty() {
        println!("bench: --no-write or --only given; docs/benchmarks.md left unchanged");
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

fn target_dir(root: &Path, args: &BenchArgs) -> PathBuf {
    args.target_dir
        .clone()
        .or_else(|| std::env::var_os("OBJECTOS_RELEASE_TARGET_DIR").map(PathBuf::from))
        .or_else(|| std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from))
        .unwrap_or_else(|| root.join("target"))
}

fn is_release_binary(binary: &Path) -> bool {
    binary.components().any(|c| c.as_os_str() == "release")
}

fn build_release(root: &Path, args: &BenchArgs) -> anyhow::Result<()> {
    // The minimal figures measure the data path alone (kernel + data + http); the secured ones the
    // standard build, where every request goes through the session hoop, permissions and audit.
    let mut cargo_args = vec!["build", "--release", "-p", "objectos-server"];
    cargo_args.extend_from_slice(args.profile.cargo_features());
    let target = target_dir(root, args);
    println!(
        "bench: CARGO_TARGET_DIR={} cargo {} (about 15+ minutes cold on 2 cores)",
        target.display(),
        cargo_args.join(" ")
    );
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(&cargo_args)
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(root)
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("`cargo {}` failed ({status})", cargo_args.join(" "));
    }
    Ok(())
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
enum Op {
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

/// The server child process; killed when dropped so a failed run never leaves it behind.
#[derive(Debug)]
struct Server {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Server {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stop(&mut self) {
        // SIGTERM first so the server can shut down cleanly; the kill below is the fallback.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

/// A scratch folder removed when dropped.
#[derive(Debug)]
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn measure(root: &Path, binary: &Path, args: &BenchArgs) -> anyhow::Result<Report> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let tmp = TempDir(
        std::env::temp_dir().join(format!("objectos-bench-{}-{nanos}", std::process::id())),
    );
    std::fs::create_dir_all(&tmp.0)
        .with_context(|| format!("cannot create {}", tmp.0.display()))?;
    let load_before = load_average();

    // Cold start is the median of a few starts, each on its own empty database: a single start
    // swings with whatever else the machine does in that instant (the first one also pays for a
    // cold page cache of the binary).
    let mut starts = Vec::with_capacity(COLD_STARTS);
    for i in 0..COLD_STARTS {
        let dir = tmp.0.join(format!("cold-{i}"));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let (mut probe, took) = start_server(root, binary, &dir, args.profile).await?;
        probe.stop();
        starts.push(took);
    }
    let (mut server, first) = start_server(root, binary, &tmp.0, args.profile).await?;
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
/// signs in far more often than the per-minute limits allow).
fn secured_setup(root: &Path, tmp: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let meta = tmp.join("crm");
    copy_dir(&root.join("presets").join("crm"), &meta)?;
    let perms = meta.join("permissions");
    std::fs::create_dir_all(&perms)?;
    std::fs::write(perms.join("bench_rep.permission.yml"), BENCH_PERMISSION_SET)
        .context("cannot write the bench permission set")?;
    let config = tmp.join("objectos.yml");
    std::fs::write(&config, BENCH_CONFIG).context("cannot write the bench objectos.yml")?;
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

/// `/proc/loadavg`'s 1, 5 and 15 minute averages, for the report.
fn load_average() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let parts: Vec<&str> = text.split_whitespace().take(3).collect();
    (parts.len() == 3).then(|| parts.join(" "))
}

async fn start_server(
    root: &Path,
    binary: &Path,
    tmp: &Path,
    profile: Profile,
) -> anyhow::Result<(Server, Duration)> {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .context("cannot find a free local port")?
        .port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let log = tmp.join("server.log");
    let log_file =
        std::fs::File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
    let log_err = log_file
        .try_clone()
        .context("cannot duplicate the server log handle")?;
    let db = format!("sqlite://{}?mode=rwc", tmp.join("bench.db").display());
    let mut args: Vec<String> = Vec::new();
    match profile {
        Profile::Minimal => args.extend(["serve".to_owned(), "presets/crm".to_owned()]),
        Profile::Secured => {
            let (meta, config) = secured_setup(root, tmp)?;
            args.extend([
                "--config".to_owned(),
                config.display().to_string(),
                "serve".to_owned(),
                meta.display().to_string(),
            ]);
        }
    }
    args.extend([
        "--listen".to_owned(),
        addr.to_string(),
        "--database-url".to_owned(),
        db,
    ]);
    let started = Instant::now();
    let child = Command::new(binary)
        .args(&args)
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(log_err)
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    let mut server = Server { child, addr, log };
    let deadline = started + Duration::from_secs(120);
    loop {
        if let Some(status) = server
            .child
            .try_wait()
            .context("cannot poll the server process")?
        {
            bail!(
                "the server exited during start-up ({status}); its output:\n{}",
                server.log_tail()
            );
        }
        if let Ok(StatusCode::OK) = probe_ready(addr).await {
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

async fn run_scenario(
    addr: SocketAddr,
    op: Op,
    connections: usize,
    duration: Duration,
    ids: &[String],
    seed: u64,
    session: Option<&Session>,
) -> anyhow::Result<ScenarioResult> {
    let ids: std::sync::Arc<[String]> = ids.into();
    let authorization = session.map(|s| s.authorization.clone());
    let sign_in_body = session.map(|s| {
        std::sync::Arc::new(
            serde_json::to_vec(&serde_json::json!({"email": s.email, "password": s.password}))
                .unwrap_or_default(),
        )
    });
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::with_capacity(connections);
    for c in 0..connections {
        let ids = ids.clone();
        let authorization = authorization.clone();
        let sign_in_body = sign_in_body.clone();
        // Sign-in is a public route: it is sent without the session token.
        let conn_auth = if op == Op::SignIn {
            None
        } else {
            authorization.clone()
        };
        let mut conn = Conn::open(addr, conn_auth.clone()).await?;
        let mut rng = Rng::new(seed.wrapping_mul(1_000_003).wrapping_add(c as u64 + 1));
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let mut first_error = None;
            let mut created = 0usize;
            while Instant::now() < deadline {
                let (method, path, body) =
                    request_for(op, &ids, &mut rng, c, &mut created, sign_in_body.as_deref());
                let t = Instant::now();
                match conn.send(method.clone(), &path, body).await {
                    Ok((status, _)) if status.is_success() => {
                        lat.push(u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX));
                    }
                    Ok((status, bytes)) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| {
                            format!(
                                "{method} {path} -> {status} {}",
                                String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
                            )
                        });
                    }
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| format!("{method} {path} -> {e:#}"));
                        // The connection is likely gone; open a fresh one so the run continues.
                        match Conn::open(addr, conn_auth.clone()).await {
                            Ok(fresh) => conn = fresh,
                            Err(_) => break,
                        }
                    }
                }
            }
            (lat, errors, first_error)
        }));
    }
    let mut latencies_us = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for t in tasks {
        let (lat, e, fe) = t.await.context("a load-generator task panicked")?;
        latencies_us.extend(lat);
        errors += e;
        if first_error.is_none() {
            first_error = fe;
        }
    }
    let elapsed = started.elapsed();
    latencies_us.sort_unstable();
    Ok(ScenarioResult {
        op,
        connections,
        ok: latencies_us.len() as u64,
        errors,
        first_error,
        elapsed,
        latencies_us,
        cpu: None,
    })
}

fn request_for(
    op: Op,
    ids: &[String],
    rng: &mut Rng,
    conn: usize,
    created: &mut usize,
    sign_in_body: Option<&Vec<u8>>,
) -> (Method, String, Option<Vec<u8>>) {
    let pick = |rng: &mut Rng| ids[rng.below(ids.len() as u64) as usize].clone();
    match op {
        Op::Get => (
            Method::GET,
            format!("/api/v1/data/contact/{}", pick(rng)),
            None,
        ),
        Op::List => (Method::GET, LIST_PATH.to_owned(), None),
        Op::Create => {
            *created += 1;
            let body = serde_json::json!({
                "name": format!("Bench {conn}-{created}"),
                "email": format!("bench{conn}-{created}@example.com"),
                "amount": rng.below(1_000_000) as f64 / 100.0,
                "status": STATUSES[rng.below(3) as usize],
            });
            (
                Method::POST,
                "/api/v1/data/contact".to_owned(),
                serde_json::to_vec(&body).ok(),
            )
        }
        Op::Update => {
            let body = serde_json::json!({ "amount": rng.below(1_000_000) as f64 / 100.0 });
            (
                Method::PATCH,
                format!("/api/v1/data/contact/{}", pick(rng)),
                serde_json::to_vec(&body).ok(),
            )
        }
        Op::SignIn => (
            Method::POST,
            "/api/v1/auth/sign-in/email".to_owned(),
            sign_in_body.cloned(),
        ),
    }
}

/// One keep-alive HTTP/1.1 connection.
#[derive(Debug)]
struct Conn {
    sender: SendRequest<Full<Bytes>>,
    host: String,
    /// `Authorization` header sent with every request (the secured profile's session).
    authorization: Option<String>,
}

impl Conn {
    async fn open(addr: SocketAddr, authorization: Option<String>) -> anyhow::Result<Conn> {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("HTTP/1.1 handshake failed")?;
        // The connection future drives the socket; it ends when the sender is dropped or the peer closes.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Conn {
            sender,
            host: addr.to_string(),
            authorization,
        })
    }

    async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        self.sender.ready().await.context("connection closed")?;
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, &self.host)
            .header(header::ACCEPT, "application/json");
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        if let Some(a) = &self.authorization {
            req = req.header(header::AUTHORIZATION, a);
        }
        let req = req.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
        let res = self.sender.send_request(req).await?;
        let status = res.status();
        let bytes = res.into_body().collect().await?.to_bytes();
        Ok((status, bytes))
    }
}

/// xorshift64*: seeded, reproducible ids and values without a `rand` dependency.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

// --- /proc sampling -------------------------------------------------------------------------------

/// utime + stime of `pid` in clock ticks (fields 14 and 15 of /proc/<pid>/stat).
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_cpu_ticks(&stat)
}

fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may contain spaces, so fields are counted after its closing paren.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state), so utime (14) and stime (15) are at indexes 11 and 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_rss(&status)
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn clock_ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

// --- report -----------------------------------------------------------------------------------------

fn fmt_latency(us: Option<u64>) -> String {
    match us {
        None => "n/a".to_owned(),
        Some(us) if us >= 1_000_000 => format!("{:.2} s", us as f64 / 1e6),
        Some(us) => format!("{:.2} ms", us as f64 / 1e3),
    }
}

fn fmt_cpu(cpu: Option<Duration>) -> String {
    match cpu {
        None => "n/a".to_owned(),
        Some(d) => format!("{:.3} ms", d.as_secs_f64() * 1e3),
    }
}

fn fmt_mib(kib: Option<u64>) -> String {
    match kib {
        None => "n/a".to_owned(),
        Some(k) => format!("{:.1} MiB", k as f64 / 1024.0),
    }
}

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn machine() -> String {
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

fn render(report: &Report, args: &BenchArgs, release: bool) -> String {
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

/// Replaces the text between the profile's markers in `path` with `section`.
fn write_section(path: &Path, section: &str, markers: (&str, &str)) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|_| "# Benchmarks\n".to_owned());
    let updated = replace_section(&text, section, markers);
    std::fs::write(path, updated).with_context(|| format!("cannot write {}", path.display()))
}

fn replace_section(text: &str, section: &str, (start_marker, end_marker): (&str, &str)) -> String {
    let block = format!("{start_marker}\n{}\n{end_marker}", section.trim_end());
    match (text.find(start_marker), text.find(end_marker)) {
        (Some(start), Some(end)) if end > start => {
            format!(
                "{}{block}{}",
                &text[..start],
                &text[end + end_marker.len()..]
            )
        }
        _ => format!("{}\n\n{block}\n", text.trim_end()),
    }
}

#[cfg(test)]
mod tests {
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
    fn section_between_markers_is_replaced_and_the_rest_kept() {
        let text = "# Benchmarks\n\n## Kernel\n\nk\n\n## HTTP\n\nnote\n\n<!-- http-bench:start -->\nold\n<!-- http-bench:end -->\ntail\n";
        let out = replace_section(text, "new table\n", (START_MARKER, END_MARKER));
        assert_eq!(
            out,
            "# Benchmarks\n\n## Kernel\n\nk\n\n## HTTP\n\nnote\n\n<!-- http-bench:start -->\nnew table\n<!-- http-bench:end -->\ntail\n"
        );
    }

    #[test]
    fn missing_markers_append_the_section() {
        let out = replace_section("# Benchmarks\n", "t", (START_MARKER, END_MARKER));
        assert_eq!(
            out,
            "# Benchmarks\n\n<!-- http-bench:start -->\nt\n<!-- http-bench:end -->\n"
        );
    }

    #[test]
    fn the_secured_section_leaves_the_minimal_one_alone() {
        let text = "<!-- http-bench:start -->\nmin\n<!-- http-bench:end -->\n\n<!-- http-bench-secured:start -->\nold\n<!-- http-bench-secured:end -->\n";
        let out = replace_section(text, "sec", Profile::Secured.markers());
        assert_eq!(
            out,
            "<!-- http-bench:start -->\nmin\n<!-- http-bench:end -->\n\n<!-- http-bench-secured:start -->\nsec\n<!-- http-bench-secured:end -->\n"
        );
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
