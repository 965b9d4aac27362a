//! The auth plugin on the shared test kernel (`objectos-testkit`) with a manual clock and an
//! event collector, plus request helpers that go through the plugin's own session hoop.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use objectos_auth::{
    Argon2Config, AuthConfig, AuthPlugin, LoggingMailer, RateLimitConfig, SecretKey,
};
use objectos_http::{
    ApiState, HoopContribution, HttpConfig, RouteContribution, ServiceEntry, build_service,
};
use objectos_kernel::{Kernel, ManualClock};
use objectos_spec::{Event, RuntimeMode};
use objectos_testkit::{Events, TestKernel};
use salvo::http::{HeaderMap, StatusCode};
use salvo::prelude::Service;
use salvo::test::{RequestBuilder, ResponseExt, TestClient};
use serde_json::{Value, json};

pub(crate) const BASE: &str = "http://127.0.0.1:5800";
pub(crate) const PASSWORD: &str = "Bench-Passw0rd!";

pub(crate) fn test_config() -> AuthConfig {
    AuthConfig {
        argon2: Argon2Config {
            memory_kib: 256,
            iterations: 1,
            parallelism: 1,
        },
        rate_limit: RateLimitConfig {
            enabled: true,
            per_ip_per_minute: 1000,
            per_email_per_minute: 1000,
        },
        ..AuthConfig::default()
    }
}

pub(crate) struct H {
    pub(crate) kernel: Arc<Kernel>,
    pub(crate) service: Service,
    pub(crate) clock: Arc<ManualClock>,
    pub(crate) mailer: Arc<LoggingMailer>,
    /// The plugin's service cell, for tests that call the service directly.
    pub(crate) auth: objectos_auth::AuthHandle,
    /// Every `auth.*` and `security.*` event.
    pub(crate) events: Events,
    pub(crate) addr: std::net::SocketAddr,
    tk: TestKernel,
}

#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Value,
    pub(crate) text: String,
}

impl Reply {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    #[track_caller]
    pub(crate) fn ok(&self) -> &Value {
        assert!(
            self.status.is_success(),
            "expected success, got {}: {}",
            self.status,
            self.text
        );
        &self.body
    }

    #[track_caller]
    pub(crate) fn error(&self, status: u16, code: &str) -> &Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text);
        assert_eq!(self.body["code"], code, "body: {}", self.text);
        &self.body
    }
}

pub(crate) fn database_url() -> String {
    "sqlite::memory:".to_owned()
}

impl H {
    pub(crate) async fn new() -> Self {
        Self::with(test_config(), database_url()).await
    }

    pub(crate) async fn with(config: AuthConfig, url: String) -> Self {
        Self::with_key(config, url, None).await
    }

    /// Like [`H::with`], with the TOTP encryption key given to the plugin.
    pub(crate) async fn with_key(config: AuthConfig, url: String, key: Option<SecretKey>) -> Self {
        match Self::try_with_key(config, url, key).await {
            Ok(h) => h,
            Err(report) => panic!("the kernel did not start every plugin: {report}"),
        }
    }

    /// Boots the kernel; `Err` (with the startup report) when a plugin failed to start.
    pub(crate) async fn try_with_key(
        config: AuthConfig,
        url: String,
        key: Option<SecretKey>,
    ) -> Result<Self, String> {
        Self::boot(config, url, key, HttpConfig::default()).await
    }

    /// Like [`H::with`], with the service's `http.trustedProxies`.
    pub(crate) async fn with_proxies(config: AuthConfig, url: String, proxies: &[&str]) -> Self {
        let http = HttpConfig {
            trusted_proxies: proxies.iter().map(|p| p.parse().unwrap()).collect(),
            ..HttpConfig::default()
        };
        Self::boot(config, url, None, http)
            .await
            .unwrap_or_else(|report| panic!("the kernel did not start every plugin: {report}"))
    }

    async fn boot(
        config: AuthConfig,
        url: String,
        key: Option<SecretKey>,
        service_http: HttpConfig,
    ) -> Result<Self, String> {
        let mut auth = AuthPlugin::new(config);
        if let Some(key) = key {
            auth = auth.with_secret_key(key);
        }
        let clock = Arc::new(ManualClock::new(
            Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap(),
        ));
        let mailer = Arc::new(LoggingMailer::new());
        let auth_handle = auth.handle();
        // The plugin's own session hoop signs requests in: no `x-test-*` session here.
        let tk = TestKernel::builder()
            .database_url(url)
            .include_base(true)
            .max_connections(2)
            .mode(RuntimeMode::Test)
            .clock(clock.clone())
            .without_session()
            .collect("auth.**")
            .collect("security.**")
            .plugin(auth.with_mailer(mailer.clone()))
            .try_boot()
            .await?;
        let kernel = tk.kernel.clone();
        let reg = kernel.registry();
        let engine = tk.engine.clone();
        let routes: Vec<RouteContribution> = reg
            .contributions::<RouteContribution>()
            .unwrap()
            .iter()
            .map(|c| c.value.clone())
            .collect();
        let hoops: Vec<HoopContribution> = reg
            .contributions::<HoopContribution>()
            .unwrap()
            .iter()
            .map(|c| c.value.clone())
            .collect();
        let state = ApiState::builder(engine)
            .config(service_http)
            .service(ServiceEntry {
                name: "data".into(),
                provider: "com.objectos.data".into(),
                route: None,
            })
            .service(ServiceEntry {
                name: "auth".into(),
                provider: "com.objectos.auth".into(),
                route: Some("/api/v1/auth".into()),
            })
            .build();
        let service = build_service(state, &routes, &hoops);
        Ok(Self {
            kernel,
            service,
            clock,
            mailer,
            auth: auth_handle,
            events: tk.events.clone(),
            addr: tk.addr(),
            tk,
        })
    }

    /// One text column of the first row `sql` returns (`?` placeholders on SQLite, `$n` on
    /// PostgreSQL: write the SQL without parameters).
    pub(crate) async fn sql_text(&self, sql: &str) -> Option<String> {
        self.tk.query_text(sql).await
    }

    /// Runs a statement without parameters.
    pub(crate) async fn sql_exec(&self, sql: &str) {
        self.tk.exec(sql).await;
    }

    pub(crate) async fn send(&self, req: RequestBuilder) -> Reply {
        self.send_request(req.build()).await
    }

    /// Sends a request as if it arrived over TCP from `peer`.
    pub(crate) async fn send_from(&self, req: RequestBuilder, peer: std::net::SocketAddr) -> Reply {
        let mut req = req.build();
        *req.remote_addr_mut() = peer.into();
        self.send_request(req).await
    }

    async fn send_request(&self, req: salvo::Request) -> Reply {
        let mut res = self.service.handle(req).await;
        // What `RequestBuilder::send` does with cookies the handlers set through the jar.
        let jar: Vec<salvo::http::HeaderValue> = res
            .cookies
            .delta()
            .filter_map(|c| c.encoded().to_string().parse().ok())
            .collect();
        for v in jar {
            res.headers_mut().insert(salvo::http::header::SET_COOKIE, v);
        }
        let status = res.status_code.unwrap_or(StatusCode::OK);
        let headers = res.headers().clone();
        let text = res.take_string().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
            text,
        }
    }

    pub(crate) async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        let mut req = TestClient::get(format!("{BASE}{path}"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        self.send(req).await
    }

    pub(crate) async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Reply {
        let mut req = TestClient::post(format!("{BASE}{path}")).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        self.send(req).await
    }

    pub(crate) async fn sign_up(&self, email: &str, password: &str) -> Reply {
        self.post(
            "/api/v1/auth/sign-up/email",
            None,
            &json!({"email": email, "password": password, "name": "Bench User"}),
        )
        .await
    }

    pub(crate) async fn sign_in(&self, email: &str, password: &str) -> Reply {
        self.post(
            "/api/v1/auth/sign-in/email",
            None,
            &json!({"email": email, "password": password}),
        )
        .await
    }

    /// Signs up the owner and returns the token.
    pub(crate) async fn owner(&self) -> String {
        let r = self.sign_up("bench@example.com", PASSWORD).await;
        r.ok()["token"].as_str().unwrap().to_owned()
    }

    pub(crate) fn advance_minutes(&self, m: u64) {
        self.clock.advance(Duration::from_secs(m * 60));
    }

    /// Waits (bounded) until an event named `name` was delivered, and returns it.
    pub(crate) async fn event(&self, name: &str) -> Event {
        self.events.wait_for(name).await
    }

    pub(crate) fn event_names(&self) -> Vec<String> {
        self.events.names()
    }

    /// A GET over the real listener (for discovery as the plugin itself builds it).
    pub(crate) async fn raw_get(&self, path: &str) -> String {
        let addr = self.addr;
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            write!(
                s,
                "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
            )
            .unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        })
        .await
        .unwrap()
    }

    pub(crate) async fn stop(self) {
        let Self {
            kernel,
            service,
            tk,
            ..
        } = self;
        drop((kernel, service));
        tk.stop().await;
    }
}

impl H {
    /// The manual clock's time in Unix seconds.
    pub(crate) fn clock_now(&self) -> i64 {
        use objectos_kernel::Clock;
        self.clock.now().timestamp()
    }
}

/// A database a scenario runs on: SQLite in memory always, and PostgreSQL (a fresh schema of
/// its own, dropped by `cleanup`) when `OBJECTOS_TEST_POSTGRES_URL` is set.
pub(crate) type TestDb = objectos_testkit::TestDatabase;

/// SQLite, then PostgreSQL when configured (else a printed skip note).
pub(crate) async fn databases(prefix: &str) -> Vec<TestDb> {
    TestDb::all_in_memory(prefix).await
}
