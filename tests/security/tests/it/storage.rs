//! A full disk, as a client sees it: writes that cannot be stored answer 507 `STORAGE_FULL`
//! (or 503 for the writes that shared their transaction) with `retryable: true` and a
//! `Retry-After`, never a 2xx; every acknowledged record reads back, also after a restart; and
//! the server writes again once space is freed, without a restart.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Backend, CONFIG, Server};

const NOTE: &str = "name: note\nlabel: Note\nfields:\n  body: { type: textarea, label: Body }\n";

/// A size-limited tmpfs, mounted for the test's life (root only).
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .ok()?
            .success();
        ok.then_some(Self(dir))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0.path()).status();
    }
}

async fn read_back(srv: &Server, token: Option<&str>, ids: &[String], when: &str) {
    let mut missing = Vec::new();
    for id in ids {
        let r = srv.api.get(&format!("/api/v1/data/note/{id}"), token).await;
        if r.status != 200 {
            missing.push(format!("{id}: {}", r.status));
        }
    }
    assert!(
        missing.is_empty(),
        "{when}: {} of {} acknowledged notes are missing: {:?}",
        missing.len(),
        ids.len(),
        &missing[..missing.len().min(5)]
    );
}

/// Creates notes from `writers` concurrent clients; returns the acknowledged ids and the
/// refusals (checked against the contract on the way).
async fn storm(
    srv: &Server,
    token: &str,
    writers: usize,
    each: usize,
    size: usize,
) -> (Vec<String>, usize) {
    let mut tasks = Vec::new();
    for w in 0..writers {
        let api = srv.api;
        let token = token.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut refused = 0;
            for i in 0..each {
                let body = format!("{w}:{i};").repeat(size / 6 + 1);
                let r = api
                    .post("/api/v1/data/note", Some(&token), json!({"body": body}))
                    .await;
                match r.status {
                    200 | 201 => acked.push(r.body["record"]["id"].as_str().unwrap().to_owned()),
                    507 | 503 => {
                        assert!(
                            matches!(
                                r.body["code"].as_str(),
                                Some("STORAGE_FULL" | "SERVICE_UNAVAILABLE")
                            ),
                            "{}",
                            r.text
                        );
                        assert_eq!(r.body["retryable"], Value::Bool(true), "{}", r.text);
                        assert!(r.headers.get("retry-after").is_some(), "{}", r.text);
                        refused += 1;
                    }
                    other => panic!("a create on a full disk answered {other}: {}", r.text),
                }
            }
            (acked, refused)
        }));
    }
    let mut acked = Vec::new();
    let mut refused = 0;
    for t in tasks {
        let (a, r) = t.await.unwrap();
        acked.extend(a);
        refused += r;
    }
    (acked, refused)
}

#[tokio::test]
async fn a_full_disk_answers_507_and_loses_no_acknowledged_record() {
    let Some(fs) = Tmpfs::mount("8m") else {
        eprintln!("skipped: mounting a size-limited tmpfs needs root");
        return;
    };
    // Ballast removed later to free space: at least as much as the WAL can grow to.
    let ballast = fs.0.path().join("ballast");
    std::fs::write(&ballast, vec![1u8; 3 * 1024 * 1024]).unwrap();
    let meta = tempfile::tempdir().unwrap();
    std::fs::write(meta.path().join("note.object.yml"), NOTE).unwrap();
    let backend = Backend::SqliteFile(fs.0.path().join("app.db"));
    let srv = Server::start(&backend, meta.path(), CONFIG).await;
    let owner = srv.sign_up("owner", "Owner-pass-1").await;

    let mut acked = Vec::new();
    let mut refused = 0;
    for _ in 0..60 {
        let (a, r) = storm(&srv, &owner.token, 8, 10, 8000).await;
        acked.extend(a);
        refused += r;
        if refused >= 40 {
            break;
        }
    }
    assert!(
        refused > 0,
        "the disk never filled up ({} notes stored)",
        acked.len()
    );
    read_back(&srv, owner.t(), &acked, "while the disk is full").await;

    std::fs::remove_file(&ballast).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (after, refused_after) = storm(&srv, &owner.token, 4, 5, 2000).await;
    assert_eq!(
        (after.len(), refused_after),
        (20, 0),
        "writes did not recover once space was freed"
    );
    acked.extend(after);
    read_back(&srv, owner.t(), &acked, "after space was freed").await;
    assert!(
        !srv.log_text().contains("panicked"),
        "the server panicked:\n{}",
        srv.log_text()
    );
    srv.stop();

    // A restart on the same file: everything acknowledged is there.
    let srv = Server::start(&backend, meta.path(), CONFIG).await;
    let token = srv.sign_in(&owner).await;
    read_back(&srv, Some(&token), &acked, "after a restart").await;
    srv.stop();
    drop(fs);
}

/// One tenant cannot hold the writer with a huge bulk request, nor write faster than its
/// configured rate: 413 `BATCH_TOO_LARGE` above `data.maxBatchRecords` (checked before anything
/// is written), 429 `RATE_LIMIT_EXCEEDED` with `Retry-After` past `data.perUserPerSecond`.
#[tokio::test]
async fn bulk_requests_are_capped_and_write_rates_limited() {
    for b in crate::support::backends() {
        let config = format!("{CONFIG}data:\n  perUserPerSecond: 50\n  burst: 250\n");
        let srv = Server::start(&b, &crate::support::fixture_app(), &config).await;
        let owner = srv.sign_up("owner", "Owner-pass-1").await;
        let records =
            |n: usize| -> Value { (0..n).map(|i| json!({"name": format!("a{i}")})).collect() };
        let r = srv
            .api
            .post("/api/v1/data/account/createMany", owner.t(), records(201))
            .await;
        assert_eq!(
            (r.status, r.body["code"].as_str()),
            (413, Some("BATCH_TOO_LARGE")),
            "[{}] {}",
            srv.label,
            r.text
        );
        // 60,000 records in one batch body: refused, nothing written.
        let huge: Vec<Value> = (0..60_000).map(|_| json!({})).collect();
        let r = srv
            .api
            .post(
                "/api/v1/data/account/batch",
                owner.t(),
                json!({"operation": "create", "records": huge}),
            )
            .await;
        assert_eq!(
            (r.status, r.body["code"].as_str()),
            (413, Some("BATCH_TOO_LARGE")),
            "{}",
            r.text
        );
        let listed = srv.api.get("/api/v1/data/account?top=1", owner.t()).await;
        assert_eq!(listed.body["total"], 0, "[{}] {}", srv.label, listed.text);

        // 200 pass (the burst holds 250), then the user's bucket is nearly empty.
        let r = srv
            .api
            .post("/api/v1/data/account/createMany", owner.t(), records(200))
            .await;
        assert_eq!(r.status, 201, "[{}] {}", srv.label, r.text);
        let r = srv
            .api
            .post("/api/v1/data/account/createMany", owner.t(), records(100))
            .await;
        assert_eq!(
            (r.status, r.body["code"].as_str(), &r.body["retryable"]),
            (429, Some("RATE_LIMIT_EXCEEDED"), &Value::Bool(true)),
            "[{}] {}",
            srv.label,
            r.text
        );
        assert!(r.headers.get("retry-after").is_some(), "{:?}", r.headers);
        srv.stop();
    }
}
