//! `cargo xtask bench <suite>`: load benchmarks whose figures go into docs/benchmarks.md.
//!
//! - `http` ([`http`]): the REST API of `objectos serve presets/crm` from the release build;
//! - `jobs` ([`jobs`]): the jobs plugin's no-op throughput and enqueue-to-start latency;
//! - `notifications` ([`notifications`]): email enqueue latency and delivery throughput;
//! - `storage` ([`storage`]): a 256 MiB upload and download against a raw disk copy, with RSS.
//!
//! This module holds what the suites share: the arguments, the release target folder, the
//! marked sections of docs/benchmarks.md each suite rewrites, and the server process and scratch
//! folder of the suites that run `objectos serve` ([`ServerProcess`], [`Scratch`]).

mod http;
mod jobs;
mod notifications;
mod storage;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use http::Op;

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
    /// The notification plugin: email enqueue latency (p50, p99) in the request path and
    /// mails/s delivered to a local SMTP sink (the `notification_bench` example, release
    /// build), on a SQLite file and, with `OBJECTOS_TEST_POSTGRES_URL`, PostgreSQL.
    Notifications,
    /// The storage plugin: a 256 MiB file uploaded (presigned and chunked) and downloaded
    /// through a release `objectos serve`, against a raw copy on the same disk, with the
    /// server's RSS growth (`--binary` to reuse a build).
    Storage,
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
    /// `bench http --profile secured` only: YAML appended to the bench's objectos.yml (top-level
    /// sections other than `auth`), e.g. `metrics: {enabled: false}` or a Redis `cache:` section,
    /// to measure what a setting costs. Implies --no-write: the recorded table is the default setup.
    #[arg(long, value_name = "PATH")]
    extra_config: Option<PathBuf>,
}

const START_MARKER: &str = "<!-- http-bench:start -->";
const END_MARKER: &str = "<!-- http-bench:end -->";
const SECURED_START_MARKER: &str = "<!-- http-bench-secured:start -->";
const SECURED_END_MARKER: &str = "<!-- http-bench-secured:end -->";
pub(crate) fn run(args: &BenchArgs) -> anyhow::Result<bool> {
    match args.suite {
        Suite::Http => http::http(args),
        Suite::Jobs => jobs::jobs(args),
        Suite::Notifications => notifications::notifications(args),
        Suite::Storage => storage::storage(args),
    }
}

fn target_dir(root: &Path, args: &BenchArgs) -> PathBuf {
    args.target_dir
        .clone()
        .or_else(|| std::env::var_os("OBJECTOS_RELEASE_TARGET_DIR").map(PathBuf::from))
        .or_else(|| std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from))
        .unwrap_or_else(|| root.join("target"))
}

/// Runs `cargo <cargo_args>` from `root` with the release target folder of `args` (see
/// [`target_dir`]); `note` is printed after the command (how long a cold build takes).
fn cargo_build(
    root: &Path,
    args: &BenchArgs,
    cargo_args: &[&str],
    note: &str,
) -> anyhow::Result<()> {
    let target = target_dir(root, args);
    println!(
        "bench: CARGO_TARGET_DIR={} cargo {}{note}",
        target.display(),
        cargo_args.join(" ")
    );
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = std::process::Command::new(cargo)
        .args(cargo_args)
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(root)
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        anyhow::bail!("`cargo {}` failed ({status})", cargo_args.join(" "));
    }
    Ok(())
}

/// Builds the release `example` of `package` (unless `--skip-build`), runs it from the project
/// root and returns the JSON objects it printed, one a line (other lines are progress).
fn example_rows(
    args: &BenchArgs,
    package: &str,
    example: &str,
) -> anyhow::Result<Vec<serde_json::Value>> {
    let root = crate::project_root();
    let binary = target_dir(&root, args)
        .join("release")
        .join("examples")
        .join(example);
    if !args.skip_build {
        let build = ["build", "--release", "-p", package, "--example", example];
        cargo_build(&root, args, &build, "")?;
    }
    if !binary.is_file() {
        anyhow::bail!(
            "{} not found; run without --skip-build once",
            binary.display()
        );
    }
    let out = std::process::Command::new(&binary)
        .current_dir(&root)
        .output()
        .with_context(|| format!("cannot run {}", binary.display()))?;
    if !out.status.success() {
        anyhow::bail!(
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
        anyhow::bail!("the benchmark printed no results");
    }
    Ok(rows)
}

/// A scratch folder under the system's temporary one, removed when dropped.
#[derive(Debug)]
pub(crate) struct Scratch(pub(crate) PathBuf);

impl Scratch {
    /// `objectos-<what>-<pid>-<nanos>`, created.
    pub(crate) fn new(what: &str) -> anyhow::Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir =
            std::env::temp_dir().join(format!("objectos-{what}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Self(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An `objectos` server started by a bench on a free loopback port, with a SQLite file in its
/// folder and its output in `server.log` there; stopped when dropped, so a failed run never
/// leaves it behind. Each suite polls for readiness its own way (see [`Self::exited`]).
#[derive(Debug)]
pub(crate) struct ServerProcess {
    child: Child,
    pub(crate) addr: SocketAddr,
    log: PathBuf,
}

impl ServerProcess {
    /// Runs `binary <args> --listen <free port> --database-url sqlite://<folder>/bench.db`
    /// from `cwd`.
    pub(crate) fn spawn(
        binary: &Path,
        args: &[String],
        cwd: &Path,
        folder: &Path,
    ) -> anyhow::Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("cannot find a free local port")?
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log = folder.join("server.log");
        let out = std::fs::File::create(&log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let err = out
            .try_clone()
            .context("cannot duplicate the server log handle")?;
        let db = format!("sqlite://{}?mode=rwc", folder.join("bench.db").display());
        let child = Command::new(binary)
            .args(args)
            .args(["--listen", &addr.to_string(), "--database-url", &db])
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        Ok(Self { child, addr, log })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// An error with the log's last lines once the process has exited.
    pub(crate) fn exited(&mut self) -> anyhow::Result<()> {
        match self
            .child
            .try_wait()
            .context("cannot poll the server process")?
        {
            Some(status) => anyhow::bail!(
                "the server exited during start-up ({status}); its output:\n{}",
                self.log_tail()
            ),
            None => Ok(()),
        }
    }

    /// SIGTERM first so the server can shut down cleanly; a kill after 5 s is the fallback.
    pub(crate) fn stop(&mut self) {
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

    pub(crate) fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

/// Prints `md` and, unless `--no-write`, writes it between `markers` of docs/benchmarks.md.
fn publish(args: &BenchArgs, md: &str, markers: (&str, &str)) -> anyhow::Result<()> {
    println!("{md}");
    if args.no_write {
        println!("bench: --no-write given; docs/benchmarks.md left unchanged");
    } else {
        let path = crate::project_root().join("docs").join("benchmarks.md");
        write_section(&path, md, markers)?;
        println!("bench: updated {}", crate::display_path(&path));
    }
    Ok(())
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
}
