//! A real `objectos serve` on 127.0.0.1:0: the start-up banner, wait for /ready, create and
//! read a record.

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
    let banner = read_banner(&mut child);
    let line = banner.lines().next().unwrap_or_default();
    let url = line
        .trim()
        .strip_prefix("ObjectOS listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"));
    let addr: SocketAddr = url.parse().unwrap();
    // The banner says where to go next: the docs, discovery, the database in use.
    assert!(
        banner.contains(&format!("http://{addr}/api/v1/docs")),
        "{banner}"
    );
    assert!(
        banner.contains(&format!("http://{addr}/api/v1/discovery")),
        "{banner}"
    );
    assert!(
        banner.contains("Database:   sqlite://./objectos.db?mode=rwc (development mode)"),
        "{banner}"
    );
    // With auth compiled in and no account yet, it tells how the owner signs up.
    assert_eq!(
        banner.contains("/api/v1/auth/sign-up/email"),
        cfg!(feature = "plugin-auth"),
        "{banner}"
    );

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

    // Started again on the same database, which has its owner now: no sign-up hint.
    #[cfg(feature = "plugin-auth")]
    {
        drop(child);
        let mut again = Child(
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
        let banner = read_banner(&mut again);
        assert!(banner.contains("/api/v1/docs"), "{banner}");
        assert!(!banner.contains("sign-up"), "{banner}");
    }
}

/// The start-up banner: every line up to the empty line that ends it.
fn read_banner(child: &mut Child) -> String {
    let stdout = child.0.stdout.take().unwrap();
    let mut reader = BufReader::new(stdout);
    let mut banner = String::new();
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).unwrap();
        assert!(n > 0, "stdout ended inside the banner: {banner}");
        if line.trim().is_empty() {
            return banner;
        }
        banner.push_str(&line);
    }
}
