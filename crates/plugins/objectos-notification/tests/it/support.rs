//! Test harness: a booted kernel (data, http, notification, and a test plugin that sets the
//! principal and organization from headers), a real SMTP server on loopback (`aiosmtpd` from
//! PyPI, storing what it receives in a Maildir the test reads), and a small HTTP client.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use objectos_data::{DataConfig, DataEngine, DataPlugin, OpContext, Principal};
use objectos_http::{HoopContribution, HttpConfig, HttpPlugin, RequestContext};
use objectos_kernel::{InitContext, Kernel, Plugin, PluginError};
use objectos_notification::config::{Security, Transport};
use objectos_notification::{NotificationPlugin, NotificationService, NotificationSettings};
use objectos_spec::PluginManifest;
use objectos_testkit::TestDatabase;
use salvo::prelude::*;
use serde_json::Value;
use tempfile::TempDir;

/// Set (to anything) in CI: a missing `aiosmtpd` then fails the SMTP tests instead of skipping
/// them.
pub(crate) const REQUIRE_VAR: &str = "OBJECTOS_TEST_REQUIRE_SMTP";

pub(crate) const WELCOME_TEMPLATE: &str = "\
name: welcome
label: Welcome
defaultLocale: en
locales:
  en:
    subject: \"Welcome, {{name}}\"
    text: \"Hello {{name}}, your code is {{code}}.\"
    html: \"<p>Hello <b>{{name}}</b>, your code is {{code}}.</p>\"
  de:
    subject: \"Willkommen, {{name}} – schön, dass du da bist\"
    text: \"Hallo {{name}}, dein Code ist {{code}}. Grüße!\"
";

/// Reads `x-test-user`, `x-test-admin`, `x-test-sets` and `x-test-org` into the request
/// context.
#[handler]
async fn test_session(req: &mut Request, depot: &mut Depot) {
    let user = req.header::<String>("x-test-user");
    let admin = req.header::<String>("x-test-admin").is_some();
    let sets: Vec<String> = req
        .header::<String>("x-test-sets")
        .map(|s| s.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    let org = req.header::<String>("x-test-org");
    if let Ok(cx) = depot.get_typed::<RequestContext>() {
        let mut cx = cx.clone();
        if let Some(id) = user {
            cx.principal = Principal::User {
                id,
                roles: vec![],
                permission_sets: sets,
                is_admin: admin,
            };
        }
        cx.tenant = org;
        depot.insert_typed(cx);
    }
}

const TEST_MANIFEST: PluginManifest = PluginManifest {
    permissions: &["routes.mount"],
    ..PluginManifest::new("com.example.notificationtest", "Notification test", "0.1.0")
};

struct TestPlugin;

#[async_trait]
impl Plugin for TestPlugin {
    fn manifest(&self) -> &PluginManifest {
        &TEST_MANIFEST
    }
    fn init(&self, cx: &mut InitContext<'_>) -> Result<(), PluginError> {
        cx.contribute(HoopContribution::new(0, test_session))?;
        Ok(())
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A real SMTP server: `python3 -m aiosmtpd` with its `Mailbox` handler, on a loopback port.
pub(crate) struct SmtpServer {
    child: Child,
    pub(crate) port: u16,
    maildir: PathBuf,
    _dir: TempDir,
}

impl SmtpServer {
    /// Starts one, or `None` (the test skips) when `aiosmtpd` is not installed and
    /// [`REQUIRE_VAR`] is not set.
    pub(crate) fn start() -> Option<Self> {
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
        let port = free_port();
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
        let mut up = false;
        for _ in 0..200 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                up = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(up, "aiosmtpd did not start on port {port}");
        Some(Self {
            child,
            port,
            maildir,
            _dir: dir,
        })
    }

    /// The raw messages received so far.
    pub(crate) fn messages(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.maildir.join("new")) else {
            return Vec::new();
        };
        let mut out: Vec<String> = entries
            .filter_map(Result::ok)
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .collect();
        out.sort();
        out
    }

    /// Waits until `n` messages arrived (bounded; the delivery runs in the background).
    pub(crate) async fn wait_for(&self, n: usize) -> Vec<String> {
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

pub(crate) struct Harness {
    pub(crate) kernel: Arc<Kernel>,
    pub(crate) engine: DataEngine,
    pub(crate) service: NotificationService,
    pub(crate) addr: SocketAddr,
    _files: TempDir,
    db: Option<TestDatabase>,
}

/// Settings sending to the SMTP server on `port` without TLS, retrying fast.
pub(crate) fn smtp_settings(port: u16) -> NotificationSettings {
    let mut s = NotificationSettings::default();
    s.email.transport = Transport::Smtp;
    s.email.smtp.host = "127.0.0.1".into();
    s.email.smtp.port = Some(port);
    s.email.smtp.security = Security::None;
    s.email.smtp.timeout_seconds = 5;
    s.email.from = "ObjectOS Test <no-reply@objectos.test>".into();
    s.email.reply_to = Some("help@objectos.test".into());
    s.delivery.max_attempts = 3;
    s.delivery.backoff_ms = 20;
    s.delivery.max_backoff_ms = 50;
    s
}

impl Harness {
    pub(crate) async fn boot(db: TestDatabase, settings: NotificationSettings) -> Self {
        Self::boot_with(db, settings, &[("welcome.template.yml", WELCOME_TEMPLATE)])
            .await
            .unwrap()
    }

    /// Boots with `files` in the metadata folder; the boot report's text when a plugin failed.
    pub(crate) async fn boot_with(
        db: TestDatabase,
        settings: NotificationSettings,
        files: &[(&str, &str)],
    ) -> Result<Self, String> {
        let dir = tempfile::tempdir().unwrap();
        let meta = dir.path().join("metadata");
        std::fs::create_dir_all(&meta).unwrap();
        for (name, text) in files {
            std::fs::write(meta.join(name), text).unwrap();
        }
        let data = DataPlugin::new(DataConfig {
            database_url: db.url.clone(),
            metadata_dirs: vec![meta],
            include_base: false,
            max_connections: 4,
            auto_migrate: true,
            owned: Vec::new(),
        });
        let handle = data.handle();
        let http = HttpPlugin::new(HttpConfig {
            listen: "127.0.0.1:0".into(),
            ..HttpConfig::default()
        });
        let control = http.control();
        let plugin = NotificationPlugin::new(settings);
        let cell = plugin.service_cell();
        let kernel = Arc::new(
            Kernel::builder()
                .plugin(data)
                .plugin(http)
                .plugin(TestPlugin)
                .plugin(plugin)
                .build()
                .unwrap(),
        );
        control.attach(&kernel);
        let report = kernel.boot().await.unwrap();
        if !report.all_started() {
            kernel.shutdown().await;
            db.cleanup().await;
            return Err(format!("{report:?}"));
        }
        let engine = handle.engine().unwrap().clone();
        Ok(Self {
            kernel,
            engine,
            service: cell.get().unwrap().clone(),
            addr: control.local_addr().unwrap(),
            _files: dir,
            db: Some(db),
        })
    }

    pub(crate) async fn finish(mut self) {
        self.kernel.shutdown().await;
        drop(self.engine);
        if let Some(db) = self.db.take() {
            db.cleanup().await;
        }
    }

    /// The `sys_email` record `id` (read as the system in `org`).
    pub(crate) async fn email(&self, org: Option<&str>, id: &str) -> Value {
        let mut cx = OpContext::system("test");
        cx.tenant = org.map(str::to_owned);
        let rec = self
            .engine
            .get(&cx, "sys_email", id, Default::default())
            .await
            .unwrap();
        Value::Object(rec)
    }

    /// Waits until the message `id` has left `queued` and answers its record.
    pub(crate) async fn settled(&self, org: Option<&str>, id: &str) -> Value {
        for _ in 0..400 {
            let rec = self.email(org, id).await;
            if rec["status"] != "queued" {
                return rec;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("message {id} stayed queued");
    }

    pub(crate) async fn call(&self, req: Req) -> Resp {
        let addr = self.addr;
        tokio::task::spawn_blocking(move || send(addr, &req))
            .await
            .unwrap()
    }
}

/// A request for [`send`].
#[derive(Debug, Clone)]
pub(crate) struct Req {
    method: &'static str,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<Value>,
}

impl Req {
    pub(crate) fn get(path: &str) -> Self {
        Self {
            method: "GET",
            path: path.to_owned(),
            headers: Vec::new(),
            body: None,
        }
    }

    pub(crate) fn post(path: &str, body: Value) -> Self {
        Self {
            method: "POST",
            path: path.to_owned(),
            headers: Vec::new(),
            body: Some(body),
        }
    }

    pub(crate) fn put(path: &str, body: Value) -> Self {
        Self {
            method: "PUT",
            path: path.to_owned(),
            headers: Vec::new(),
            body: Some(body),
        }
    }

    /// As user `id` in `org`.
    pub(crate) fn user(mut self, id: &str, org: &str) -> Self {
        self.headers.push(("x-test-user".into(), id.into()));
        self.headers.push(("x-test-org".into(), org.into()));
        self
    }

    pub(crate) fn admin(mut self) -> Self {
        self.headers.push(("x-test-admin".into(), "1".into()));
        self
    }

    pub(crate) fn sets(mut self, sets: &str) -> Self {
        self.headers.push(("x-test-sets".into(), sets.into()));
        self
    }
}

#[derive(Debug)]
pub(crate) struct Resp {
    pub(crate) status: u16,
    pub(crate) body: Value,
}

fn dechunk(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        let Some(pos) = rest.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(std::str::from_utf8(&rest[..pos]).unwrap().trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            return out;
        }
        let start = pos + 2;
        out.extend_from_slice(&rest[start..start + size]);
        rest = &rest[start + size + 2..];
    }
}

/// One HTTP/1.1 exchange with `Connection: close`.
pub(crate) fn send(addr: SocketAddr, req: &Req) -> Resp {
    let mut stream = TcpStream::connect(addr).unwrap();
    let body = req
        .body
        .as_ref()
        .map(|b| b.to_string().into_bytes())
        .unwrap_or_default();
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        req.method,
        req.path,
        body.len()
    );
    if req.body.is_some() {
        head.push_str("Content-Type: application/json\r\n");
    }
    for (k, v) in &req.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&body).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_lowercase();
    let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut payload = raw[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        payload = dechunk(&payload);
    }
    let body = serde_json::from_slice(&payload).unwrap_or(Value::Null);
    Resp { status, body }
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

/// A received message as Python's `email` package reads it (headers decoded from RFC 2047,
/// bodies from their transfer encoding): what a mail client shows.
pub(crate) fn parse_mail(raw: &str) -> Value {
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
