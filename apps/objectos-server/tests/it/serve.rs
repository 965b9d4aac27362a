//! A real `objectos serve` on 127.0.0.1:0: wait for /ready, create and read a record.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{http, http_as, objectos, write_metadata};

/// Kills the server even when an assertion fails.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn serve_answers_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let meta = write_metadata(dir.path());
    let mut child = Child(
        objectos(dir.path())
            .arg("serve")
            .arg(&meta)
            .args(["--listen", "127.0.0.1:0"])
            .env("OBJECTOS_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let url = line
        .trim()
        .strip_prefix("ObjectOS listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"));
    let addr: SocketAddr = url.parse().unwrap();

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok((200, _)) = http(addr, "GET", "/ready", None) {
            break;
        }
        assert!(Instant::now() < deadline, "server never became ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The default SQLite file is created in the working directory.
    assert!(dir.path().join("objectos.db").exists());

    // With the auth plugin compiled in, data access needs a session: sign up the owner first.
    #[cfg(feature = "plugin-auth")]
    let token = {
        let (status, body) = http(addr, "GET", "/api/v1/data/contact", None).unwrap();
        assert_eq!(status, 401, "{body}");
        let (status, body) = http(
            addr,
            "POST",
            "/api/v1/auth/sign-up/email",
            Some("{\"email\":\"owner@example.com\",\"password\":\"Owner-Passw0rd!\",\"name\":\"Owner\"}"),
        )
        .unwrap();
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        Some(v["token"].as_str().unwrap().to_owned())
    };
    #[cfg(not(feature = "plugin-auth"))]
    let token: Option<String> = None;
    let token = token.as_deref();
    let (status, body) = http_as(
        addr,
        "POST",
        "/api/v1/data/contact",
        Some("{\"name\":\"Alice\",\"status\":\"active\"}"),
        token,
    )
    .unwrap();
    assert_eq!(status, 201, "{body}");
    let created: Value = serde_json::from_str(&body).unwrap();
    let id = created["id"].as_str().unwrap();
    let (status, body) = http_as(
        addr,
        "GET",
        &format!("/api/v1/data/contact/{id}"),
        None,
        token,
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let got: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(got["record"]["name"], "Alice");
    let (status, body) = http(addr, "GET", "/api/v1/discovery", None).unwrap();
    assert_eq!(status, 200);
    let d: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(d["name"], "ObjectOS");
    assert_eq!(d["environment"], "development");
}
