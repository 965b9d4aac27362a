//! `objectos serve --watch`: a valid edit of the metadata folder is served without a restart
//! (its table created), a broken edit keeps the running metadata and logs where it is broken.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::support::{http_as, objectos, write_metadata};

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for a log line containing `needle` (bounded, so a missing line fails the test).
fn wait_for_line(lines: &mpsc::Receiver<String>, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return line,
            Ok(_) => {}
            Err(e) => panic!("no log line with {needle:?}: {e}"),
        }
    }
}

#[test]
fn watch_swaps_valid_metadata_and_keeps_the_running_one_on_errors() {
    let dir = tempfile::tempdir().unwrap();
    let meta = write_metadata(dir.path());
    let mut child = Child(
        objectos(dir.path())
            .arg("serve")
            .arg(&meta)
            .args(["--listen", "127.0.0.1:0", "--watch"])
            .env("OBJECTOS_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // Logs go to stderr; a thread hands every line over.
    let stderr = child.0.stderr.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let stdout = child.0.stdout.take().unwrap();
    let mut first = String::new();
    BufReader::new(stdout).read_line(&mut first).unwrap();
    let addr: SocketAddr = first
        .trim()
        .strip_prefix("ObjectOS listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line: {first:?}"))
        .parse()
        .unwrap();
    wait_for_line(&lines, "Watching the metadata folders");

    #[cfg(feature = "plugin-auth")]
    let token = {
        let (status, body) = crate::support::http(
            addr,
            "POST",
            "/api/v1/auth/sign-up/email",
            Some("{\"email\":\"owner@example.com\",\"password\":\"Owner-Passw0rd!\",\"name\":\"Owner\"}"),
        )
        .unwrap();
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        Some(v["token"].as_str().unwrap().to_owned())
    };
    #[cfg(not(feature = "plugin-auth"))]
    let token: Option<String> = None;
    let token = token.as_deref();

    // A new object: served (and its table created) without a restart.
    std::fs::write(
        meta.join("deal.object.yml"),
        "name: deal\nlabel: Deal\nfields:\n  title: { type: text, required: true }\n",
    )
    .unwrap();
    wait_for_line(&lines, "Metadata reloaded.");
    let (status, body) = http_as(
        addr,
        "POST",
        "/api/v1/data/deal",
        Some("{\"title\":\"first\"}"),
        token,
    )
    .unwrap();
    assert_eq!(status, 201, "{body}");

    // A broken edit (and a valid one in the same save) changes nothing; the problem is logged
    // with its file and line.
    std::fs::write(
        meta.join("broken.object.yml"),
        "name: broken\nfields:\n  x: { type: no_such_type }\n",
    )
    .unwrap();
    std::fs::write(
        meta.join("other.object.yml"),
        "name: other\nfields:\n  y: { type: text }\n",
    )
    .unwrap();
    let located = wait_for_line(&lines, "broken.object.yml");
    assert!(located.contains("broken.object.yml:3"), "{located}");
    wait_for_line(&lines, "the running metadata stays");
    let (status, body) = http_as(addr, "GET", "/api/v1/data/other", None, token).unwrap();
    assert_eq!(status, 404, "{body}");
    let (status, body) = http_as(addr, "GET", "/api/v1/data/deal", None, token).unwrap();
    assert_eq!(status, 200, "{body}");

    // Fixing it applies both.
    std::fs::remove_file(meta.join("broken.object.yml")).unwrap();
    wait_for_line(&lines, "Metadata reloaded.");
    let (status, body) = http_as(addr, "GET", "/api/v1/data/other", None, token).unwrap();
    assert_eq!(status, 200, "{body}");
}
