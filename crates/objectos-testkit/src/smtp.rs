//! A real SMTP server on loopback for mail tests: `python3 -m aiosmtpd` (PyPI, `pip install
//! aiosmtpd==1.4.6`) with its Maildir handler, and the received messages read back with
//! Python's `email` package, as a mail client would (RFC 2047 headers, transfer encodings,
//! multipart bodies decoded).
//!
//! Without `aiosmtpd`, [`SmtpServer::start`] answers `None` and the test passes as skipped with
//! a note, unless [`REQUIRE_VAR`] is set (CI), which turns the missing server into a failure.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use serde_json::Value;
use tempfile::TempDir;

/// Set (to anything) in CI: a missing `aiosmtpd` then fails the SMTP tests instead of skipping
/// them.
pub const REQUIRE_VAR: &str = "OBJECTOS_TEST_REQUIRE_SMTP";

/// A running `aiosmtpd` on `127.0.0.1:port`, killed when dropped.
#[derive(Debug)]
pub struct SmtpServer {
    child: Child,
    pub port: u16,
    maildir: PathBuf,
    _dir: TempDir,
}

impl SmtpServer {
    /// Starts one, or `None` (the test skips) when `aiosmtpd` is not installed and
    /// [`REQUIRE_VAR`] is not set.
    pub fn start() -> Option<Self> {
        let installed = Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !installed {
            assert!(
                std::env::var_os(REQUIRE_VAR).is_none(),
                "{REQUIRE_VAR} is set but aiosmtpd is not installed (pip install aiosmtpd==1.4.6)"
            );
            eprintln!("skipped: aiosmtpd is not installed (pip install aiosmtpd==1.4.6)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let maildir = dir.path().join("box");
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Ready once it accepts connections.
        let up = (0..200).any(|_| {
            let ok = TcpStream::connect(("127.0.0.1", port)).is_ok();
            if !ok {
                std::thread::sleep(Duration::from_millis(50));
            }
            ok
        });
        assert!(up, "aiosmtpd did not start on port {port}");
        Some(Self {
            child,
            port,
            maildir,
            _dir: dir,
        })
    }

    /// The raw messages received so far, in the order they arrived.
    pub fn messages(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.maildir.join("new")) else {
            return Vec::new();
        };
        let mut out: Vec<(SystemTime, String, String)> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let at = e.metadata().and_then(|m| m.modified()).ok()?;
                let text = std::fs::read_to_string(e.path()).ok()?;
                Some((at, e.file_name().to_string_lossy().into_owned(), text))
            })
            .collect();
        out.sort();
        out.into_iter().map(|(_, _, text)| text).collect()
    }

    /// Waits (bounded: 10 s) until `n` messages arrived; the deliveries run in the background.
    pub async fn wait_for(&self, n: usize) -> Vec<String> {
        for _ in 0..400 {
            let m = self.messages();
            if m.len() >= n {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("expected {n} messages, got {}", self.messages().len());
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const PARSE_PY: &str = r#"
import email, json, sys
from email import policy
m = email.message_from_string(sys.stdin.read(), policy=policy.default)
def part(kind):
    p = m.get_body(preferencelist=(kind,))
    return p.get_content() if p is not None else None
print(json.dumps({
    "subject": m["subject"], "from": m["from"], "to": m["to"], "replyTo": m["reply-to"],
    "messageId": m["message-id"], "contentType": m.get_content_type(),
    "rcptTo": m["x-rcptto"], "text": part("plain"), "html": part("html"),
    "listUnsubscribe": m["list-unsubscribe"], "listUnsubscribePost": m["list-unsubscribe-post"],
    "transferEncodings": [p["content-transfer-encoding"] for p in m.walk() if not p.is_multipart()],
}))
"#;

/// A received message as Python's `email` package reads it: `subject`, `from`, `to`,
/// `replyTo`, `messageId`, `contentType`, `rcptTo`, `text`, `html`, `listUnsubscribe`,
/// `listUnsubscribePost` (headers decoded from RFC 2047) and `transferEncodings`.
pub fn parse_mail(raw: &str) -> Value {
    let mut child = Command::new("python3")
        .args(["-c", PARSE_PY])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(raw.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the message does not parse: {raw}");
    serde_json::from_slice(&out.stdout).unwrap()
}
