//! The harness: a real `objectos serve` child process on a free loopback port (SQLite file in a
//! temp dir, or a fresh PostgreSQL schema), a small HTTP/1.1 client, and the assertion helpers
//! every refusal goes through.
//!
//! Everything the suite checks goes over HTTP, and so does the set-up (users through
//! `admin/create-user`, organizations and members through `organization/*`). The database
//! connection in [`Server::sql`] is only for what no client could do: moving a session's clock
//! back (instead of sleeping past a timeout).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use serde_json::{Value, json};
use tokio::net::TcpStream;

/// Where the suite's own metadata lives (objects, permission set, role, sharing rule).
pub(crate) fn fixture_app() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/app")
}

/// The CRM preset the README's quick start serves.
pub(crate) fn crm_preset() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../presets/crm")
}

/// `objectos.yml` of the suite: sign-up open (some scenarios register users themselves; the
/// owner creates the others with `admin/create-user`), a cheap argon2 (debug builds), lockout
/// after 3 failures, a per-email limit of 5 a minute, and resolved sessions cached for one
/// second (the bound on changes written straight into the tables, which some scenarios make).
pub(crate) const CONFIG: &str = "\
auth:
  allowSignUp: true
  sessionCacheSeconds: 1
  argon2: { memoryKib: 8192, iterations: 1, parallelism: 1 }
  lockout: { maxFailedAttempts: 3, lockMinutes: 15 }
  rateLimit: { enabled: true, perIpPerMinute: 600, perEmailPerMinute: 5 }
";

/// A database the scenario runs on.
#[derive(Debug, Clone)]
pub(crate) enum Backend {
    Sqlite,
    /// The base URL from `OBJECTOS_TEST_POSTGRES_URL`; each server gets a schema of its own.
    Postgres(String),
    /// A SQLite file at this path (one on a size-limited file system, a restart on the same
    /// file).
    SqliteFile(PathBuf),
}

impl Backend {
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Self::Sqlite | Self::SqliteFile(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }
}

/// SQLite always; PostgreSQL when `OBJECTOS_TEST_POSTGRES_URL` is set (else a skip note).
pub(crate) fn backends() -> Vec<Backend> {
    let mut out = vec![Backend::Sqlite];
    match std::env::var("OBJECTOS_TEST_POSTGRES_URL") {
        Ok(url) if !url.trim().is_empty() => out.push(Backend::Postgres(url)),
        _ => eprintln!(
            "PostgreSQL skipped: set OBJECTOS_TEST_POSTGRES_URL to run the security suite on PostgreSQL too"
        ),
    }
    out
}

/// One HTTP answer.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    /// `METHOD path`, for assertion messages.
    pub(crate) what: String,
    pub(crate) status: u16,
    pub(crate) headers: hyper::HeaderMap,
    pub(crate) text: String,
    pub(crate) body: Value,
}

impl Reply {
    /// The `records` of a list answer.
    #[track_caller]
    pub(crate) fn records(&self) -> Vec<Value> {
        assert_eq!(self.status, 200, "{}: {}", self.what, self.text);
        self.body["records"]
            .as_array()
            .unwrap_or_else(|| panic!("{}: no records in {}", self.what, self.text))
            .clone()
    }

    /// The `record` of a single-record answer.
    #[track_caller]
    pub(crate) fn record(&self) -> Value {
        assert!(
            self.status == 200 || self.status == 201,
            "{}: {}",
            self.what,
            self.text
        );
        self.body["record"].clone()
    }

    /// The `name`s of a list answer, sorted.
    #[track_caller]
    pub(crate) fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .records()
            .iter()
            .map(|r| r["name"].as_str().unwrap_or_default().to_owned())
            .collect();
        names.sort();
        names
    }
}

/// Percent-encodes a query-string value.
pub(crate) fn enc(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An HTTP/1.1 client for one server: a fresh connection per request, like separate clients.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Api {
    pub(crate) addr: SocketAddr,
}

impl Api {
    pub(crate) async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Reply {
        let what = format!("{method} {path}");
        let stream = TcpStream::connect(self.addr).await.unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(conn);
        let bytes = body
            .map(|b| serde_json::to_vec(b).unwrap())
            .unwrap_or_default();
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.addr.to_string());
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = sender
            .send_request(req.body(Full::new(Bytes::from(bytes))).unwrap())
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let data = res.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&data).into_owned();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            what,
            status,
            headers,
            text,
            body,
        }
    }

    fn auth(token: Option<&str>) -> Option<String> {
        token.map(|t| format!("Bearer {t}"))
    }

    pub(crate) async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let auth = Self::auth(token);
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| vec![("authorization", a)])
            .unwrap_or_default();
        self.send(method, path, &headers, body.as_ref()).await
    }

    pub(crate) async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.call("GET", path, token, None).await
    }

    pub(crate) async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.call("POST", path, token, Some(body)).await
    }

    pub(crate) async fn patch(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.call("PATCH", path, token, Some(body)).await
    }

    pub(crate) async fn delete(&self, path: &str, token: Option<&str>) -> Reply {
        self.call("DELETE", path, token, None).await
    }
}

/// A signed-in account.
#[derive(Debug, Clone)]
pub(crate) struct User {
    pub(crate) id: String,
    pub(crate) email: String,
    pub(crate) password: String,
    pub(crate) token: String,
}

impl User {
    pub(crate) fn t(&self) -> Option<&str> {
        Some(&self.token)
    }
}

/// A running server; killed (and its PostgreSQL schema dropped) when dropped.
#[derive(Debug)]
pub(crate) struct Server {
    pub(crate) api: Api,
    pub(crate) label: &'static str,
    pub(crate) database_url: String,
    child: Child,
    dir: tempfile::TempDir,
    pg: Option<(String, String)>,
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}_{nanos:x}_{}", std::process::id())
}

impl Server {
    /// Starts `objectos serve METADATA` with `config` as `objectos.yml`, waits for `/ready`.
    pub(crate) async fn start(backend: &Backend, metadata: &Path, config: &str) -> Server {
        Self::start_with(backend, metadata, config, None, &[]).await
    }

    /// [`Server::start`] with `env` added to the server's environment (after the suite's own
    /// `OBJECTOS_LOG`, which it may replace) and, with `shared`, on that server's database: a
    /// second node of one deployment (its PostgreSQL schema stays `shared`'s to drop).
    pub(crate) async fn start_with(
        backend: &Backend,
        metadata: &Path,
        config: &str,
        shared: Option<&Server>,
        env: &[(&str, &str)],
    ) -> Server {
        let mut server = Self::spawn(backend, metadata, config, shared, env).await;
        server.api.addr = server.wait_listening().await;
        server.wait_ready().await;
        server
    }

    /// Two nodes of one deployment started at the same moment on one new database (the second
    /// spawned before the first is listening, each with its `env`), both waited for until
    /// `/ready`. The first owns the PostgreSQL schema.
    pub(crate) async fn start_together(
        backend: &Backend,
        metadata: &Path,
        config: &str,
        env: [&[(&str, &str)]; 2],
    ) -> (Server, Server) {
        let mut first = Self::spawn(backend, metadata, config, None, env[0]).await;
        let mut second = Self::spawn(backend, metadata, config, Some(&first), env[1]).await;
        let (one, two) = tokio::join!(first.wait_listening(), second.wait_listening());
        first.api.addr = one;
        second.api.addr = two;
        tokio::join!(first.wait_ready(), second.wait_ready());
        (first, second)
    }

    /// Spawns the server process without waiting for it (see [`Server::start_with`]).
    async fn spawn(
        backend: &Backend,
        metadata: &Path,
        config: &str,
        shared: Option<&Server>,
        env: &[(&str, &str)],
    ) -> Server {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("objectos.yml"), config).unwrap();
        let (database_url, pg) = match (backend, shared) {
            (_, Some(first)) => (first.database_url.clone(), None),
            (Backend::SqliteFile(path), None) => {
                (format!("sqlite://{}?mode=rwc", path.display()), None)
            }
            (Backend::Sqlite, None) => (
                format!("sqlite://{}?mode=rwc", dir.path().join("app.db").display()),
                None,
            ),
            (Backend::Postgres(base), None) => {
                let schema = unique("sec");
                let db = Database::connect(base).await.unwrap();
                db.execute_unprepared(&format!("CREATE SCHEMA \"{schema}\""))
                    .await
                    .unwrap();
                db.close().await.ok();
                let sep = if base.contains('?') { '&' } else { '?' };
                (
                    format!("{base}{sep}options[search_path]={schema}"),
                    Some((base.clone(), schema)),
                )
            }
        };
        let stdout = std::fs::File::create(dir.path().join("stdout.log")).unwrap();
        let stderr = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_objectos-under-test"));
        cmd.current_dir(dir.path());
        for (k, _) in std::env::vars() {
            if k.starts_with("OBJECTOS_") || k == "RUST_LOG" {
                cmd.env_remove(k);
            }
        }
        // Debug logs: the secret check below reads everything the server writes.
        cmd.env("OBJECTOS_LOG", "debug")
            .envs(env.iter().copied())
            .arg("serve")
            .arg(metadata)
            .args(["--listen", "127.0.0.1:0", "--database-url", &database_url])
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr));
        let child = cmd.spawn().unwrap();
        Server {
            api: Api {
                addr: "127.0.0.1:1".parse().unwrap(),
            },
            label: backend.label(),
            database_url,
            child,
            dir,
            pg,
        }
    }

    async fn wait_listening(&mut self) -> SocketAddr {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let out = std::fs::read_to_string(self.dir.path().join("stdout.log")).unwrap();
            if let Some(addr) = out
                .lines()
                .find_map(|l| l.strip_prefix("ObjectOS listening on http://"))
            {
                return addr.trim().parse().unwrap();
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "[{}] the server exited ({status}) before listening:\n{}",
                    self.label,
                    self.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "[{}] the server did not listen within 120 s:\n{}",
                self.label,
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self.api.get("/ready", None).await.status == 200 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "[{}] /ready never answered 200",
                self.label
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Everything the server wrote to stderr so far (its log).
    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    async fn connect(&self) -> DatabaseConnection {
        Database::connect(&self.database_url).await.unwrap()
    }

    /// Runs one statement with `?` placeholders (rewritten to `$n` on PostgreSQL); returns the
    /// number of rows changed. Set-up only, see the module comment.
    pub(crate) async fn sql(&self, sql: &str, values: Vec<sea_orm::Value>) -> u64 {
        let db = self.connect().await;
        let backend = db.get_database_backend();
        let sql = if self.pg.is_some() {
            let mut out = String::new();
            let mut n = 0;
            for c in sql.chars() {
                if c == '?' {
                    n += 1;
                    out.push_str(&format!("${n}"));
                } else {
                    out.push(c);
                }
            }
            out
        } else {
            sql.to_owned()
        };
        let res = db
            .execute_raw(Statement::from_sql_and_values(backend, &sql, values))
            .await
            .unwrap_or_else(|e| panic!("[{}] {sql}: {e}", self.label));
        db.close().await.ok();
        res.rows_affected()
    }

    /// Signs up a new account (the first one becomes the owner and administrator).
    pub(crate) async fn sign_up(&self, name: &str, password: &str) -> User {
        let email = format!("{name}@example.com");
        let r = self
            .api
            .post(
                "/api/v1/auth/sign-up/email",
                None,
                json!({"email": email, "password": password, "name": name}),
            )
            .await;
        assert_eq!(r.status, 200, "[{}] sign-up {name}: {}", self.label, r.text);
        User {
            id: r.body["user"]["id"].as_str().unwrap().to_owned(),
            email,
            password: password.to_owned(),
            token: r.body["token"].as_str().unwrap().to_owned(),
        }
    }

    /// Creates an account as `admin` (`POST /api/v1/auth/admin/create-user`, a member of the
    /// admin's active organization) and signs it in.
    pub(crate) async fn create_user(&self, admin: &User, name: &str, password: &str) -> User {
        let email = format!("{name}@example.com");
        let r = self
            .api
            .post(
                "/api/v1/auth/admin/create-user",
                admin.t(),
                json!({"email": email, "password": password, "name": name}),
            )
            .await;
        assert_eq!(r.status, 200, "[{}] create {name}: {}", self.label, r.text);
        let mut user = User {
            id: r.body["user"]["id"].as_str().unwrap().to_owned(),
            email,
            password: password.to_owned(),
            token: String::new(),
        };
        user.token = self.sign_in(&user).await;
        user
    }

    /// Signs in again: a new session token for `user`.
    pub(crate) async fn sign_in(&self, user: &User) -> String {
        let r = self
            .api
            .post(
                "/api/v1/auth/sign-in/email",
                None,
                json!({"email": user.email, "password": user.password}),
            )
            .await;
        assert_eq!(
            r.status, 200,
            "[{}] sign-in {}: {}",
            self.label, user.email, r.text
        );
        r.body["token"].as_str().unwrap().to_owned()
    }

    /// Kills the server and drops its PostgreSQL schema.
    pub(crate) fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some((base, schema)) = self.pg.take() {
            // Drop may run inside the test's runtime, which cannot block on another future:
            // a thread with a runtime of its own does the clean-up.
            let _ = std::thread::spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async {
                    if let Ok(db) = Database::connect(&base).await {
                        let _ = db
                            .execute_unprepared(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
                            .await;
                        db.close().await.ok();
                    }
                });
            })
            .join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Asserts a refusal: its status, its stable `code`, a non-empty message; returns the message.
#[track_caller]
pub(crate) fn refused(r: &Reply, status: u16, code: &str) -> String {
    assert_eq!(r.status, status, "{}: {}", r.what, r.text);
    assert!(
        matches!(status, 400 | 401 | 403 | 404 | 429),
        "{}: {status} is not a refusal status",
        r.what
    );
    assert_eq!(r.body["code"], code, "{}: {}", r.what, r.text);
    let message = r.body["message"].as_str().unwrap_or_default().to_owned();
    assert!(!message.is_empty(), "{}: no message in {}", r.what, r.text);
    message
}

/// Asserts that none of `hidden` appears anywhere in the answer (body or headers).
#[track_caller]
pub(crate) fn no_leak(r: &Reply, hidden: &[&str]) {
    for h in hidden {
        assert!(
            !r.text.contains(h),
            "{}: the answer reveals {h:?}: {}",
            r.what,
            r.text
        );
        for (name, value) in &r.headers {
            assert!(
                !value.to_str().unwrap_or_default().contains(h),
                "{}: header {name} reveals {h:?}",
                r.what
            );
        }
    }
}

/// A 404 `RECORD_NOT_FOUND` whose message is the one a made-up id gets, with the id swapped:
/// a hidden record and a missing one must be indistinguishable.
#[track_caller]
pub(crate) fn same_as_missing(hidden: &Reply, missing: &Reply, hidden_id: &str, missing_id: &str) {
    let a = refused(hidden, 404, "RECORD_NOT_FOUND");
    let b = refused(missing, 404, "RECORD_NOT_FOUND");
    assert_eq!(
        a.replace(hidden_id, "<id>"),
        b.replace(missing_id, "<id>"),
        "{} and {} differ",
        hidden.what,
        missing.what
    );
    let strip = |r: &Reply, id: &str| r.text.replace(id, "<id>");
    assert_eq!(strip(hidden, hidden_id), strip(missing, missing_id));
}
