//! The test harness: kernel with a manual clock, an event collector plugin, request helpers.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use objectos_auth::{
    Argon2Config, AuthConfig, AuthPlugin, LoggingMailer, RateLimitConfig, SecretKey,
};
use objectos_data::{DataConfig, DataHandle, DataPlugin};
use objectos_http::{
    ApiState, HoopContribution, HttpConfig, HttpPlugin, RouteContribution, ServiceEntry,
    build_service,
};
use objectos_kernel::{InitContext, Kernel, ManualClock, Plugin, PluginError, async_trait};
use objectos_spec::{Event, PluginManifest, RuntimeMode};
use parking_lot_shim::Mutex;
use salvo::http::{HeaderMap, StatusCode};
use salvo::prelude::Service;
use salvo::test::{RequestBuilder, ResponseExt, TestClient};
use serde_json::{Value, json};

/// A tiny std-based mutex wrapper (the test binary does not depend on parking_lot).
pub(crate) mod parking_lot_shim {
    pub(crate) struct Mutex<T>(std::sync::Mutex<T>);
    impl<T> Mutex<T> {
        pub(crate) fn new(v: T) -> Self {
            Self(std::sync::Mutex::new(v))
        }
        pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, T> {
            self.0.lock().unwrap_or_else(|e| e.into_inner())
        }
    }
}

pub(crate) const BASE: &str = "http://127.0.0.1:5800";
pub(crate) const PASSWORD: &str = "Bench-Passw0rd!";

/// Collects every `auth.*` and `security.*` event.
struct Collector(Arc<Mutex<Vec<Event>>>);

const COLLECTOR: PluginManifest = PluginManifest {
    permissions: &["events.subscribe"],
    subscribes: &["auth.**", "security.**"],
    ..PluginManifest::new("com.example.collector", "Collector", "0.1.0")
};

#[async_trait]
impl Plugin for Collector {
    fn manifest(&self) -> &PluginManifest {
        &COLLECTOR
    }
    fn init(&self, cx: &mut InitContext<'_>) -> Result<(), PluginError> {
        for p in ["auth.**", "security.**"] {
            let sink = self.0.clone();
            cx.subscribe_inline(p, move |e| {
                sink.lock().push(e.clone());
                Ok(())
            })?;
        }
        Ok(())
    }
}

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
    pub(crate) events: Arc<Mutex<Vec<Event>>>,
    pub(crate) addr: std::net::SocketAddr,
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
        let events = Arc::new(Mutex::new(Vec::new()));
        let http = HttpPlugin::new(HttpConfig {
            listen: "127.0.0.1:0".into(),
            ..HttpConfig::default()
        });
        let control = http.control();
        let kernel = Kernel::builder()
            .mode(RuntimeMode::Test)
            .clock(clock.clone())
            .plugin(DataPlugin::new(DataConfig {
                database_url: url,
                metadata_dirs: Vec::new(),
                include_base: true,
                max_connections: 2,
                auto_migrate: true,
                owned: Vec::new(),
            }))
            .plugin(auth.with_mailer(mailer.clone()))
            .plugin(Collector(events.clone()))
            .plugin(http)
            .build()
            .unwrap();
        let kernel = Arc::new(kernel);
        control.attach(&kernel);
        let report = kernel.boot().await.unwrap();
        if !report.all_started() {
            kernel.shutdown().await;
            return Err(format!("{report:?}"));
        }
        let reg = kernel.registry();
        let engine = reg
            .get_named::<DataHandle>("data")
            .unwrap()
            .engine()
            .cloned()
            .unwrap();
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
        let addr = control.local_addr().unwrap();
        Ok(Self {
            kernel,
            service,
            clock,
            mailer,
            auth: auth_handle,
            events,
            addr,
        })
    }

    /// The data engine (for checks of what the plugin stored).
    pub(crate) fn engine(&self) -> objectos_data::DataEngine {
        self.kernel
            .registry()
            .get_named::<DataHandle>("data")
            .unwrap()
            .engine()
            .cloned()
            .unwrap()
    }

    /// One text column of the first row `sql` returns (`?` placeholders on SQLite, `$n` on
    /// PostgreSQL: write the SQL without parameters).
    pub(crate) async fn sql_text(&self, sql: &str) -> Option<String> {
        use objectos_data::store::{Sql, Store};
        let engine = self.engine();
        let pool = engine.pool();
        let row = pool
            .fetch_optional(Sql::with(pool.dialect(), sql, vec![]).unwrap())
            .await
            .unwrap()?;
        row.get::<Option<String>>(0).unwrap()
    }

    /// Runs a statement without parameters.
    pub(crate) async fn sql_exec(&self, sql: &str) {
        use objectos_data::store::{Sql, Store};
        let engine = self.engine();
        let writer = engine.writer();
        writer
            .execute(Sql::with(writer.dialect(), sql, vec![]).unwrap())
            .await
            .unwrap();
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
        for _ in 0..500 {
            if let Some(e) = self.events.lock().iter().find(|e| e.name == name) {
                return e.clone();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("event {name} never arrived; got {:?}", self.event_names());
    }

    pub(crate) fn event_names(&self) -> Vec<String> {
        self.events.lock().iter().map(|e| e.name.clone()).collect()
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
        self.kernel.shutdown().await;
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
