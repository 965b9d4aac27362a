//! Test harness on the shared testkit: a booted [`TestKernel`] (data, http, the testkit's
//! session hoop reading `x-test-*` headers, notification), the real SMTP server of
//! `objectos_testkit::smtp`, and the few notification-specific helpers (settings, a template,
//! reading a message's record).

use std::time::Duration;

use objectos_data::{DataEngine, OpContext};
use objectos_notification::config::{Security, Transport};
use objectos_notification::{NotificationPlugin, NotificationService, NotificationSettings};
use objectos_testkit::session::{ADMIN, ORG, SETS, USER};
use objectos_testkit::{Request, TestDatabase, TestKernel};
use serde_json::Value;

pub(crate) use objectos_testkit::smtp::{SmtpServer, parse_mail};

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

pub(crate) struct Harness {
    pub(crate) engine: DataEngine,
    pub(crate) service: NotificationService,
    tk: TestKernel,
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
        let plugin = NotificationPlugin::new(settings);
        let cell = plugin.service_cell();
        let tk = TestKernel::builder()
            .database(db)
            .files(files)
            .plugin(plugin)
            .try_boot()
            .await?;
        Ok(Self {
            engine: tk.engine.clone(),
            service: cell.get().unwrap().clone(),
            tk,
        })
    }

    pub(crate) async fn finish(self) {
        let Self { engine, tk, .. } = self;
        drop(engine);
        tk.stop().await;
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

    pub(crate) async fn call(&self, req: Request) -> Resp {
        let r = self.tk.send(req).await;
        Resp {
            status: r.status,
            body: r.json(),
        }
    }
}

/// Requests as the tests write them (JSON bodies by value).
pub(crate) struct Req;

impl Req {
    pub(crate) fn get(path: &str) -> Request {
        Request::get(path)
    }

    pub(crate) fn post(path: &str, body: Value) -> Request {
        Request::post(path, &body)
    }

    pub(crate) fn put(path: &str, body: Value) -> Request {
        Request::new("PUT", path).json(&body)
    }
}

/// Signing a request in through the testkit's session headers.
pub(crate) trait SignIn {
    /// As user `id` in `org`.
    fn user(self, id: &str, org: &str) -> Self;
    fn admin(self) -> Self;
    fn sets(self, sets: &str) -> Self;
}

impl SignIn for Request {
    fn user(self, id: &str, org: &str) -> Self {
        self.header(USER, id).header(ORG, org)
    }

    fn admin(self) -> Self {
        self.header(ADMIN, "1")
    }

    fn sets(self, sets: &str) -> Self {
        self.header(SETS, sets)
    }
}

#[derive(Debug)]
pub(crate) struct Resp {
    pub(crate) status: u16,
    pub(crate) body: Value,
}
