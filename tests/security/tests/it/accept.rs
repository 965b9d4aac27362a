//! Descriptor exhaustion (issue item 10): with its file descriptors used up, the server must not
//! write an error line per failed accept (it wrote up to 200 a second), and must serve again once
//! descriptors are free. SQLite only: the accept loop does not depend on the database.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use crate::support::{Api, CONFIG, fixture_app};

/// Descriptors the server may hold: about twenty at idle (runtime, SQLite, listener), so a few
/// dozen client connections exhaust it.
const NOFILE: u32 = 40;

pub(crate) async fn run() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("objectos.yml"), CONFIG).unwrap();
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("app.db").display());
    let stdout = std::fs::File::create(dir.path().join("stdout.log")).unwrap();
    let stderr = std::fs::File::create(dir.path().join("server.log")).unwrap();
    let mut cmd = Command::new("sh");
    // The limit is set by the shell the server is exec'd from, so it applies to the server only.
    cmd.arg("-c")
        .arg(format!("ulimit -n {NOFILE} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_objectos-under-test"))
        .arg("serve")
        .arg(fixture_app())
        .args(["--listen", "127.0.0.1:0", "--database-url", &db])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr));
    for (k, _) in std::env::vars() {
        if k.starts_with("OBJECTOS_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    let mut child = cmd.env("OBJECTOS_LOG", "info").spawn().unwrap();
    let log = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(120);
    let addr = loop {
        if let Some(a) = log("stdout.log")
            .lines()
            .find_map(|l| l.strip_prefix("ObjectOS listening on http://"))
        {
            break a.trim().parse().unwrap();
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the server exited ({status}):\n{}", log("server.log"));
        }
        assert!(
            Instant::now() < deadline,
            "no listener:\n{}",
            log("server.log")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let api = Api { addr };
    assert_eq!(api.get("/ready", None).await.status, 200);

    // Connections the server cannot accept stay in the listen backlog; the ones it did accept
    // hold its descriptors. Two seconds of exhaustion.
    let mut held = Vec::new();
    for _ in 0..(NOFILE * 2) {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = log("server.log");
    let failures: Vec<&str> = during
        .lines()
        .filter(|l| l.contains("ERROR") && l.to_ascii_lowercase().contains("accept"))
        .collect();
    assert!(
        !failures.is_empty(),
        "the descriptors were not exhausted, the test proves nothing:\n{during}"
    );
    assert!(
        failures.len() <= 2,
        "{} accept error lines in 2 s:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // Descriptors free again: the server answers (within its back-off of at most a second).
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ok = tokio::time::timeout(Duration::from_secs(3), api.get("/ready", None))
            .await
            .is_ok_and(|r| r.status == 200);
        if ok {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no answer after the exhaustion:\n{}",
            log("server.log")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
}
