//! `cargo xtask bench storage`: a 256 MiB file through the storage plugin of a release
//! `objectos serve` (standard build, signed in, local backend on a temporary folder), compared
//! with a raw copy of the same file on the same disk, while the server's RSS is sampled from
//! /proc. The figures go between the `storage-bench` markers of docs/benchmarks.md.
//!
//! Measured, each [`ROUNDS`] times (the median is reported): an upload through the presigned
//! path (presign, one raw `PUT` of the whole file, complete), an upload through the chunked path
//! (init, 8 MiB parts, complete), and a download (signed URL, raw `GET` written to a file on the
//! same disk, then an `fsync` of that file). The targets (issue 14): within 80 % of the speed of
//! a raw disk copy, and RSS growing by less than 32 MiB while it runs.
//!
//! Every path is compared with the same baseline, what `cp` then `sync` does with the file:
//! `std::fs::copy` (read, write) and an `fsync` of the copy. An upload reads the client's file,
//! writes the server's and syncs it before it is acknowledged; a download reads the server's
//! file, writes the client's and syncs it: the same disk work, with HTTP in between. A raw copy
//! is timed right before every round of every path, so the baseline sees the same machine load
//! as the transfer it is compared with; the ratio is the median baseline over the median
//! transfer.
//!
//! The client is a few lines of blocking HTTP/1.1 over `std::net`: the body is sent from the
//! file by `io::copy` (sendfile) and the download written straight to a file in blocks of
//! [`CLIENT_BUFFER`], so the client never holds the file in memory either.

use std::io::{BufRead as _, BufReader, Read as _, Seek as _, SeekFrom, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use super::http::sample::{load_average, rss_kib};
use super::{BenchArgs, Scratch, ServerProcess, cargo_build, target_dir, write_section};
use crate::project_root;

const STORAGE_START_MARKER: &str = "<!-- storage-bench:start -->";
const STORAGE_END_MARKER: &str = "<!-- storage-bench:end -->";

const MIB: u64 = 1024 * 1024;
/// The file the target names.
const FILE_SIZE: u64 = 256 * MIB;
/// The chunked path's part size (the official client's default is 5 MiB, the minimum).
const CHUNK_SIZE: u64 = 8 * MIB;
const ROUNDS: usize = 5;
/// The client's read buffer: what a download is written to its file in.
const CLIENT_BUFFER: usize = 1024 * 1024;
const PASSWORD: &str = "Bench-pass-2026!";
/// The targets.
const SPEED_TARGET: f64 = 0.8;
const RSS_TARGET_MIB: f64 = 32.0;

/// `bench storage`.
pub(super) fn storage(args: &BenchArgs) -> anyhow::Result<bool> {
    let root = project_root();
    let binary = match &args.binary {
        Some(path) => path.clone(),
        None => {
            let binary = target_dir(&root, args).join("release").join("objectos");
            if !args.skip_build {
                build_release(&root, args)?;
            }
            binary
        }
    };
    if !binary.is_file() {
        bail!(
            "objectos binary not found at {}; run without --skip-build once, or pass --binary PATH",
            binary.display()
        );
    }
    let release = binary.components().any(|c| c.as_os_str() == "release");
    let tmp = Scratch::new("bench-storage")?;
    let load_before = load_average();
    let rows = measure(&root, &binary, &tmp.0)?;
    let load = [load_before, load_average()].map(|l| l.unwrap_or_else(|| "?".into()));
    let md = render(&rows, release, &binary, &load);
    println!("{md}");
    let ok = rows.iter().all(Row::meets_targets);
    if args.no_write {
        println!("bench: --no-write given; docs/benchmarks.md left unchanged");
    } else {
        let path = root.join("docs").join("benchmarks.md");
        write_section(&path, &md, (STORAGE_START_MARKER, STORAGE_END_MARKER))?;
        println!("bench: updated {}", crate::display_path(&path));
    }
    if !ok {
        println!("bench: a target is missed (see the table)");
    }
    Ok(true)
}

fn build_release(root: &Path, args: &BenchArgs) -> anyhow::Result<()> {
    cargo_build(
        root,
        args,
        &["build", "--release", "-p", "objectos-server"],
        "",
    )
}

/// Starts the server on `tmp` (its config, database, log and files there) and waits for
/// `/ready`.
fn start_server(root: &Path, binary: &Path, tmp: &Path) -> anyhow::Result<ServerProcess> {
    let config = tmp.join("objectos.yml");
    // The folder is named although it is the default (next to the database): a binary
    // built before that default would otherwise write into the working folder.
    std::fs::write(
        &config,
        format!(
            "# Written by `cargo xtask bench storage`.\nauth:\n  allowSignUp: true\n  rateLimit:\n    enabled: false\nstorage:\n  signingKey: bench-signing-key-0123456789abcdef0123456789\n  local:\n    root: {}\n",
            serde_json::to_string(&tmp.join("files").display().to_string())?
        ),
    )
    .context("cannot write the bench objectos.yml")?;
    let args = [
        "--config".to_owned(),
        config.display().to_string(),
        "serve".to_owned(),
        root.join("presets").join("crm").display().to_string(),
    ];
    let mut server = ServerProcess::spawn(binary, &args, tmp, tmp)?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        server.exited()?;
        if call(server.addr, "GET", "/ready", &[], Body::None).is_ok_and(|r| r.status == 200) {
            return Ok(server);
        }
        if Instant::now() > deadline {
            bail!(
                "the server did not answer /ready within 120 s:\n{}",
                server.log_tail()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// --- a small blocking HTTP/1.1 client ------------------------------------------------------------

enum Body<'a> {
    None,
    Json(&'a Value),
    /// `len` bytes of the file from `offset`.
    File {
        path: &'a Path,
        offset: u64,
        len: u64,
    },
}

struct Reply {
    status: u16,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// `data` of a `{success: true, data}` envelope; an error otherwise.
    fn data(&self, what: &str) -> anyhow::Result<Value> {
        if !(200..300).contains(&self.status) {
            bail!(
                "{what} answered {}: {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            );
        }
        Ok(self.json()["data"].clone())
    }
}

fn text(v: &Value, key: &str) -> anyhow::Result<String> {
    v[key]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("no `{key}` in {v}"))
}

/// Sends one request on a new connection; the answer's body goes to `sink` when given (and is
/// then not kept), else into the reply.
fn exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Body<'_>,
    sink: Option<&mut std::fs::File>,
) -> anyhow::Result<Reply> {
    let mut stream = TcpStream::connect(addr).context("cannot connect to the server")?;
    stream.set_nodelay(true).ok();
    let (len, content_type) = match &body {
        Body::None => (0, None),
        Body::Json(v) => (
            serde_json::to_vec(v)?.len() as u64,
            Some("application/json"),
        ),
        Body::File { len, .. } => (*len, Some("application/octet-stream")),
    };
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {len}\r\n"
    );
    if let Some(ct) = content_type {
        head.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    match body {
        Body::None => {}
        Body::Json(v) => stream.write_all(&serde_json::to_vec(v)?)?,
        Body::File { path, offset, len } => {
            let mut file = std::fs::File::open(path)?;
            file.seek(SeekFrom::Start(offset))?;
            let sent = std::io::copy(&mut file.take(len), &mut stream)?;
            if sent != len {
                bail!("{} ended after {sent} of {len} bytes", path.display());
            }
        }
    }
    let mut reader = BufReader::with_capacity(CLIENT_BUFFER, stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("not an HTTP answer: {line:?}"))?;
    let mut length: Option<u64> = None;
    let mut chunked = false;
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            if k == "content-length" {
                length = v.parse().ok();
            } else if k == "transfer-encoding" && v.contains("chunked") {
                chunked = true;
            }
        }
    }
    let mut kept = Vec::new();
    let mut out: Box<dyn std::io::Write + '_> = match sink {
        Some(file) if (200..300).contains(&status) => Box::new(file),
        _ => Box::new(&mut kept),
    };
    if chunked {
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            let size = u64::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16)
                .context("a bad chunk size")?;
            if size == 0 {
                break;
            }
            copy_body(&mut reader, Some(size), &mut out)?;
            line.clear();
            reader.read_line(&mut line)?;
        }
    } else {
        copy_body(&mut reader, length, &mut out)?;
    }
    drop(out);
    Ok(Reply { status, body: kept })
}

/// Copies `len` bytes (or all, when `None`) of `reader` to `out` through one buffer of
/// [`CLIENT_BUFFER`] bytes, written as received, as `cp` copies in large blocks (`io::copy`
/// would go through 8 KiB writes here).
fn copy_body(
    reader: &mut impl std::io::Read,
    len: Option<u64>,
    out: &mut dyn std::io::Write,
) -> anyhow::Result<()> {
    let mut buf = vec![0u8; CLIENT_BUFFER];
    let mut left = len.unwrap_or(u64::MAX);
    while left > 0 {
        let want = usize::try_from(left).map_or(buf.len(), |l| l.min(buf.len()));
        let n = match reader.read(&mut buf[..want]) {
            Ok(0) if len.is_none() => return Ok(()),
            Ok(0) => bail!("the answer ended {left} bytes early"),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        out.write_all(&buf[..n])?;
        left -= n as u64;
    }
    Ok(())
}

fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Body<'_>,
) -> anyhow::Result<Reply> {
    exchange(addr, method, path, headers, body, None)
}

// --- RSS ------------------------------------------------------------------------------------------

/// Samples the server's RSS every 5 ms on a thread of its own; the peak since it started.
struct RssSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssSampler {
    fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(rss_kib(pid).unwrap_or(0)));
        let (s, p) = (stop.clone(), peak.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if let Some(kib) = rss_kib(pid) {
                    p.fetch_max(kib, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        Self {
            stop,
            peak,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.peak.load(Ordering::Relaxed)
    }
}

// --- the measurement ------------------------------------------------------------------------------

/// One measured path: its median time, the raw baseline's (timed before each of its rounds),
/// and the RSS growth.
struct Row {
    label: &'static str,
    seconds: f64,
    raw_seconds: f64,
    rss_growth_kib: u64,
}

impl Row {
    fn ratio(&self) -> f64 {
        self.raw_seconds / self.seconds
    }

    fn meets_targets(&self) -> bool {
        self.ratio() >= SPEED_TARGET && (self.rss_growth_kib as f64 / 1024.0) < RSS_TARGET_MIB
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Writes `size` bytes of pseudo-random content (not compressible, not all zeros).
fn write_source(path: &Path, size: u64) -> anyhow::Result<()> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut block = vec![0u8; MIB as usize];
    for _ in 0..size / MIB {
        for word in block.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        file.write_all(&block)?;
    }
    file.into_inner()
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .sync_all()?;
    Ok(())
}

fn same_content(a: &Path, b: &Path) -> anyhow::Result<bool> {
    let (mut fa, mut fb) = (std::fs::File::open(a)?, std::fs::File::open(b)?);
    if fa.metadata()?.len() != fb.metadata()?.len() {
        return Ok(false);
    }
    let (mut ba, mut bb) = (vec![0u8; MIB as usize], vec![0u8; MIB as usize]);
    loop {
        let n = fa.read(&mut ba)?;
        if n == 0 {
            return Ok(true);
        }
        fb.read_exact(&mut bb[..n])?;
        if ba[..n] != bb[..n] {
            return Ok(false);
        }
    }
}

/// A raw copy of `from`, with or without an fsync of the copy; seconds.
fn raw_copy(from: &Path, to: &Path, sync: bool) -> anyhow::Result<f64> {
    let _ = std::fs::remove_file(to);
    let t = Instant::now();
    std::fs::copy(from, to)?;
    if sync {
        std::fs::File::open(to)?.sync_all()?;
    }
    let took = t.elapsed().as_secs_f64();
    std::fs::remove_file(to)?;
    Ok(took)
}

/// `POST path` with a JSON `body` (and `auth` when given): the `data` of its success.
fn post(
    addr: SocketAddr,
    path: &str,
    auth: Option<&str>,
    body: &Value,
    what: &str,
) -> anyhow::Result<Value> {
    let headers: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
    call(addr, "POST", path, &headers, Body::Json(body))?.data(what)
}

fn sign_up(addr: SocketAddr) -> anyhow::Result<String> {
    let r = call(
        addr,
        "POST",
        "/api/v1/auth/sign-up/email",
        &[],
        Body::Json(&json!({"email": "owner@bench.example", "password": PASSWORD, "name": "Owner"})),
    )?;
    if r.status != 200 {
        bail!(
            "sign-up answered {}: {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
    }
    Ok(format!("Bearer {}", text(&r.json(), "token")?))
}

/// Presign, one raw PUT, complete; the file id.
fn upload_presigned(
    addr: SocketAddr,
    auth: &str,
    source: &Path,
    size: u64,
) -> anyhow::Result<String> {
    let data = post(
        addr,
        "/api/v1/storage/upload/presigned",
        Some(auth),
        &json!({"filename": "bench.bin", "size": size}),
        "presigned",
    )?;
    let body = Body::File {
        path: source,
        offset: 0,
        len: size,
    };
    call(addr, "PUT", &text(&data, "uploadUrl")?, &[], body)?.data("raw PUT")?;
    let done = post(
        addr,
        "/api/v1/storage/upload/complete",
        Some(auth),
        &json!({"fileId": data["fileId"]}),
        "complete",
    )?;
    text(&done, "fileId")
}

/// Init, every part in order, complete; the file id.
fn upload_chunked(
    addr: SocketAddr,
    auth: &str,
    source: &Path,
    size: u64,
) -> anyhow::Result<String> {
    let session = post(
        addr,
        "/api/v1/storage/upload/chunked",
        Some(auth),
        &json!({"filename": "bench.bin", "totalSize": size, "chunkSize": CHUNK_SIZE}),
        "chunked init",
    )?;
    let id = text(&session, "uploadId")?;
    let token = text(&session, "resumeToken")?;
    let headers = [("Authorization", auth), ("x-resume-token", token.as_str())];
    let mut parts = Vec::new();
    for (index, offset) in (0..size).step_by(CHUNK_SIZE as usize).enumerate() {
        let body = Body::File {
            path: source,
            offset,
            len: CHUNK_SIZE.min(size - offset),
        };
        let path = format!("/api/v1/storage/upload/chunked/{id}/chunk/{index}");
        let part = call(addr, "PUT", &path, &headers, body)?.data("chunk")?;
        parts.push(json!({"chunkIndex": index, "eTag": part["eTag"]}));
    }
    let done = post(
        addr,
        &format!("/api/v1/storage/upload/chunked/{id}/complete"),
        Some(auth),
        &json!({ "parts": parts }),
        "chunked complete",
    )?;
    text(&done, "fileId")
}

/// The signed URL, then the raw GET into `to`, synced.
fn download(addr: SocketAddr, auth: &str, file_id: &str, to: &Path) -> anyhow::Result<()> {
    let data = call(
        addr,
        "GET",
        &format!("/api/v1/storage/files/{file_id}/url"),
        &[("Authorization", auth)],
        Body::None,
    )?
    .data("download url")?;
    let url = text(&data, "url")?;
    // The URL may be absolute; only its path goes on the wire.
    let path = match url.find("/api/") {
        Some(i) => url[i..].to_owned(),
        None => url,
    };
    let mut file = std::fs::File::create(to)?;
    let r = exchange(addr, "GET", &path, &[], Body::None, Some(&mut file))?;
    if r.status != 200 {
        bail!(
            "raw GET answered {}: {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
    }
    // What `sync` after `cp` does: the download counts once its copy is on the disk.
    file.sync_all()?;
    Ok(())
}

/// [`ROUNDS`] runs of `run`, each timed and with the server's RSS sampled, each right after a
/// raw copy of `source` (with its `fsync`) timed on the same disk: the row.
fn rounds(
    server: &ServerProcess,
    label: &'static str,
    source: &Path,
    mut run: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Row> {
    let copy = source.with_extension("copy");
    let mut times = Vec::new();
    let mut raw = Vec::new();
    let mut peak = 0;
    for _ in 0..ROUNDS {
        raw.push(raw_copy(source, &copy, true)?);
        let before = rss_kib(server.pid()).unwrap_or(0);
        let sampler = RssSampler::start(server.pid());
        let t = Instant::now();
        run().with_context(|| server.log_tail())?;
        times.push(t.elapsed().as_secs_f64());
        peak = peak.max(sampler.finish().saturating_sub(before));
    }
    let row = Row {
        label,
        seconds: median(times.clone()),
        raw_seconds: median(raw.clone()),
        rss_growth_kib: peak,
    };
    let mibs = |v: &[f64]| {
        v.iter()
            .map(|s| format!("{:.0}", FILE_SIZE as f64 / MIB as f64 / s))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!(
        "bench: {label}: {:.0} MiB/s ({}), raw copy + fsync {:.0} MiB/s ({}): {:.0} % of the raw copy, RSS +{:.1} MiB",
        FILE_SIZE as f64 / MIB as f64 / row.seconds,
        mibs(&times),
        FILE_SIZE as f64 / MIB as f64 / row.raw_seconds,
        mibs(&raw),
        row.ratio() * 100.0,
        row.rss_growth_kib as f64 / 1024.0
    );
    Ok(row)
}

fn measure(root: &Path, binary: &Path, tmp: &Path) -> anyhow::Result<Vec<Row>> {
    let source = tmp.join("source.bin");
    println!("bench: writing a {} MiB source file", FILE_SIZE / MIB);
    write_source(&source, FILE_SIZE)?;
    // For reference only (no figure is compared with it): what the copy costs without its
    // `fsync`, the page cache's speed.
    let copy = tmp.join("copy.bin");
    let plain = median(
        (0..ROUNDS)
            .map(|_| raw_copy(&source, &copy, false))
            .collect::<anyhow::Result<Vec<_>>>()?,
    );
    println!(
        "bench: raw copy without fsync {:.0} MiB/s (for reference; every path is compared with the copy + fsync timed before each of its rounds)",
        FILE_SIZE as f64 / MIB as f64 / plain
    );

    let server = start_server(root, binary, tmp)?;
    let auth = sign_up(server.addr).with_context(|| server.log_tail())?;
    // A small round trip first, so lazily made state (pools, first-use allocations) is in the
    // baseline and not counted as growth.
    let warm = tmp.join("warm.bin");
    write_source(&warm, MIB)?;
    let id = upload_presigned(server.addr, &auth, &warm, MIB)?;
    download(server.addr, &auth, &id, &tmp.join("warm.out"))?;
    std::thread::sleep(Duration::from_millis(300));

    let baseline = rss_kib(server.pid()).unwrap_or(0);
    println!("bench: server RSS before the transfers {} KiB", baseline);
    let mut last_id = String::new();
    let presigned = rounds(&server, "upload, presigned PUT", &source, || {
        last_id = upload_presigned(server.addr, &auth, &source, FILE_SIZE)?;
        Ok(())
    })?;
    let chunked = rounds(&server, "upload, chunked (8 MiB parts)", &source, || {
        last_id = upload_chunked(server.addr, &auth, &source, FILE_SIZE)?;
        Ok(())
    })?;
    let out = tmp.join("download.bin");
    let downloaded = rounds(
        &server,
        "download (signed URL, raw GET to a file, fsync)",
        &source,
        || {
            let _ = std::fs::remove_file(&out);
            download(server.addr, &auth, &last_id, &out)
        },
    )?;
    if !same_content(&source, &out)? {
        bail!("the downloaded file differs from the uploaded one");
    }
    let rows = vec![presigned, chunked, downloaded];
    let end = rss_kib(server.pid()).unwrap_or(0);
    println!("bench: server RSS after the transfers {end} KiB");
    drop(server);
    Ok(rows)
}

/// The table and its note; `load` is the load average (1, 5, 15 min) before and after.
fn render(rows: &[Row], release: bool, binary: &Path, load: &[String; 2]) -> String {
    let mib = FILE_SIZE as f64 / MIB as f64;
    let mut md = String::from(
        "| path | time | MiB/s | raw copy + fsync, MiB/s | share of the raw copy (target ≥ 80 %) | server RSS growth (target < 32 MiB) |\n| --- | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for r in rows {
        md.push_str(&format!(
            "| {} | {:.2} s | {:.0} | {:.0} | {:.0} %{} | {:.1} MiB{} |\n",
            r.label,
            r.seconds,
            mib / r.seconds,
            mib / r.raw_seconds,
            r.ratio() * 100.0,
            if r.ratio() >= SPEED_TARGET {
                ""
            } else {
                " (missed)"
            },
            r.rss_growth_kib as f64 / 1024.0,
            if (r.rss_growth_kib as f64 / 1024.0) < RSS_TARGET_MIB {
                ""
            } else {
                " (missed)"
            },
        ));
    }
    md.push_str(&format!(
        "\nA {} MiB file of random bytes through `objectos serve presets/crm` (standard build, signed in, local backend on a temporary folder of the same disk as the raw copies), median of {ROUNDS} rounds; the time covers every request of the path (presign or init, the bytes, complete; the signed URL, the raw GET written to a file and its `fsync`). Every path is compared with the same baseline, a raw copy of the file on the same disk with an `fsync` of the copy (`std::fs::copy`, what `cp` then `sync` do: read, write, sync), timed right before each round: an upload reads the client's file, writes the server's and syncs it before answering, a download reads the server's file and writes and syncs the client's. RSS growth is the server's peak VmRSS during a transfer minus its VmRSS before it, sampled every 5 ms. `cargo xtask bench storage`, {}; load average {} before, {} after (a busy machine gives pessimistic figures).\n",
        FILE_SIZE / MIB,
        if release {
            "release build".to_owned()
        } else {
            format!(
                "**DEBUG build** ({}): not representative, rerun with a release binary",
                binary.display()
            )
        },
        load[0],
        load[1],
    ));
    md
}
