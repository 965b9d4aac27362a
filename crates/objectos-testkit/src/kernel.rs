//! [`TestKernel`]: a booted kernel with the data plugin on a [`TestDatabase`], the HTTP plugin on
//! a free loopback port, the plugins under test, and the test plugin.
//!
//! The test plugin (`com.objectos.testkit`) contributes the [`crate::session`] hoop, the test's
//! own interceptors and hoops, and keeps its kernel handle so a test can publish events as a
//! plugin would (its manifest may emit anything).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use objectos_data::store::{Sql, Store};
use objectos_data::{
    DataConfig, DataEngine, DataPlugin, Interceptor, InterceptorContribution, MetadataHandle,
};
use objectos_http::{HoopContribution, HttpConfig, HttpPlugin};
use objectos_kernel::contracts::Directory;
use objectos_kernel::{
    Clock, ClusterSettings, InitContext, Kernel, Plugin, PluginError, PluginHandle, StartContext,
};
use objectos_spec::manifest::services;
use objectos_spec::{PluginManifest, RuntimeMode};
use serde_json::Value;

use crate::TestDatabase;
use crate::directory::TestDirectory;
use crate::events::Events;
use crate::http::{Client, Request, Response, fetch};
use crate::session::Who;

/// The test plugin's id.
pub const TEST_PLUGIN_ID: &str = "com.objectos.testkit";

const TEST_MANIFEST: PluginManifest = PluginManifest {
    description: "Test support: signs requests in from x-test-* headers, contributes the test's hooks, publishes the test's events",
    permissions: &["routes.mount", "events.publish"],
    emits: &["**"],
    ..PluginManifest::new(TEST_PLUGIN_ID, "Testkit", "0.1.0")
};

/// The same, registering the test's [`TestDirectory`] under `auth` (a manifest is constant, so
/// providing the service or not takes one of each).
const TEST_MANIFEST_WITH_DIRECTORY: PluginManifest = PluginManifest {
    provides: &[services::AUTH],
    ..TEST_MANIFEST
};

struct TestPlugin {
    session: bool,
    directory: Option<Arc<TestDirectory>>,
    interceptors: Vec<Arc<dyn Interceptor>>,
    hoops: Vec<HoopContribution>,
    handle: Arc<OnceLock<PluginHandle>>,
}

#[async_trait]
impl Plugin for TestPlugin {
    fn manifest(&self) -> &PluginManifest {
        if self.directory.is_some() {
            &TEST_MANIFEST_WITH_DIRECTORY
        } else {
            &TEST_MANIFEST
        }
    }
    fn init(&self, cx: &mut InitContext<'_>) -> Result<(), PluginError> {
        if let Some(directory) = &self.directory {
            cx.register::<dyn Directory>(services::AUTH, directory.clone())?;
        }
        if self.session {
            cx.contribute(crate::session::hoop())?;
        }
        for hoop in &self.hoops {
            cx.contribute(hoop.clone())?;
        }
        for i in &self.interceptors {
            cx.contribute(InterceptorContribution(i.clone()))?;
        }
        Ok(())
    }
    async fn start(&self, cx: &StartContext) -> Result<(), PluginError> {
        let _ = self.handle.set(cx.handle());
        Ok(())
    }
}

/// What the test's kernel runs on and with; see [`TestKernel::builder`].
pub struct TestKernelBuilder {
    db: Option<TestDatabase>,
    url: Option<String>,
    meta_dir: Option<PathBuf>,
    files: Vec<(String, String)>,
    include_base: bool,
    max_connections: u32,
    plugins: Vec<Box<dyn Plugin>>,
    configs: Vec<(String, Value)>,
    clock: Option<Arc<dyn Clock>>,
    mode: Option<RuntimeMode>,
    cluster: Option<ClusterSettings>,
    http: Option<HttpConfig>,
    session: bool,
    directory: Option<Arc<TestDirectory>>,
    interceptors: Vec<Arc<dyn Interceptor>>,
    hoops: Vec<HoopContribution>,
    collect: Vec<String>,
    version: Option<String>,
}

impl std::fmt::Debug for TestKernelBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestKernelBuilder")
            .field("db", &self.db)
            .field("files", &self.files.len())
            .field("plugins", &self.plugins.len())
            .finish_non_exhaustive()
    }
}

impl Default for TestKernelBuilder {
    fn default() -> Self {
        Self {
            db: None,
            url: None,
            meta_dir: None,
            files: Vec::new(),
            include_base: false,
            max_connections: 4,
            plugins: Vec::new(),
            configs: Vec::new(),
            clock: None,
            mode: None,
            cluster: None,
            http: Some(HttpConfig::default()),
            session: true,
            directory: None,
            interceptors: Vec::new(),
            hoops: Vec::new(),
            collect: Vec::new(),
            version: None,
        }
    }
}

impl TestKernelBuilder {
    /// The kernel's version (what `objectos_build_info` and discovery report).
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }

    /// Runs on `db` (default: a SQLite file of its own), whose schema [`TestKernel::stop`] drops.
    pub fn database(mut self, db: TestDatabase) -> Self {
        self.db = Some(db);
        self
    }

    /// Runs on a database the test owns and cleans up itself.
    pub fn database_url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// Reads metadata from `dir` (the test's own folder) instead of a fresh temporary one; files
    /// added with [`TestKernelBuilder::file`] are written into it.
    pub fn metadata_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.meta_dir = Some(dir.into());
        self
    }

    /// A metadata file (`contact.object.yml`, `translations/app.de.ftl`), relative to the
    /// metadata folder.
    pub fn file(mut self, path: &str, text: &str) -> Self {
        self.files.push((path.to_owned(), text.to_owned()));
        self
    }

    /// Several metadata files.
    pub fn files(mut self, files: &[(&str, &str)]) -> Self {
        for (p, t) in files {
            self = self.file(p, t);
        }
        self
    }

    /// Loads the built-in `presets/base` objects too (off by default).
    pub fn include_base(mut self, yes: bool) -> Self {
        self.include_base = yes;
        self
    }

    /// The data engine's pool size (default 4).
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n;
        self
    }

    /// A plugin under test.
    pub fn plugin(mut self, plugin: impl Plugin) -> Self {
        self.plugins.push(Box::new(plugin));
        self
    }

    /// A plugin's configuration section.
    pub fn config(mut self, plugin_id: &str, value: Value) -> Self {
        self.configs.push((plugin_id.to_owned(), value));
        self
    }

    /// The kernel's clock (a `ManualClock` for tests of expiry).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The runtime mode (the kernel's default otherwise).
    pub fn mode(mut self, mode: RuntimeMode) -> Self {
        self.mode = Some(mode);
        self
    }

    /// Cluster settings (node id, Redis and AMQP URLs).
    pub fn cluster(mut self, cluster: ClusterSettings) -> Self {
        self.cluster = Some(cluster);
        self
    }

    /// The HTTP plugin's configuration; it always listens on `127.0.0.1:0`.
    pub fn http(mut self, config: HttpConfig) -> Self {
        self.http = Some(config);
        self
    }

    /// No HTTP plugin (engine-only tests).
    pub fn without_http(mut self) -> Self {
        self.http = None;
        self
    }

    /// No `x-test-*` session hoop (the test signs in through a real auth plugin).
    pub fn without_session(mut self) -> Self {
        self.session = false;
        self
    }

    /// Registers `directory` under `auth` (the kernel's `Directory` contract), standing in for
    /// the auth plugin: plugins that look users up (platform administrators, memberships) get
    /// its answers. Not with a real auth plugin, which provides `auth` itself.
    pub fn directory(mut self, directory: Arc<TestDirectory>) -> Self {
        self.directory = Some(directory);
        self
    }

    /// An interceptor the test plugin contributes (installed before the engine is reachable).
    pub fn interceptor(mut self, interceptor: Arc<dyn Interceptor>) -> Self {
        self.interceptors.push(interceptor);
        self
    }

    /// A hoop the test plugin contributes.
    pub fn hoop(mut self, hoop: HoopContribution) -> Self {
        self.hoops.push(hoop);
        self
    }

    /// Collects the events matching `pattern` into [`TestKernel::events`] from before boot
    /// (`data.**` collects what the outbox delivers).
    pub fn collect(mut self, pattern: &str) -> Self {
        self.collect.push(pattern.to_owned());
        self
    }

    /// Boots the kernel.
    ///
    /// # Panics
    /// When a plugin did not start (the message holds the startup report).
    pub async fn boot(self) -> TestKernel {
        self.try_boot()
            .await
            .unwrap_or_else(|report| panic!("the kernel did not start every plugin: {report}"))
    }

    /// Boots the kernel; `Err` with the startup report when a plugin did not start (the kernel
    /// is shut down again and the database cleaned up).
    pub async fn try_boot(self) -> Result<TestKernel, String> {
        let Self {
            db,
            url,
            meta_dir,
            files,
            include_base,
            max_connections,
            plugins,
            configs,
            clock,
            mode,
            cluster,
            http,
            session,
            directory,
            interceptors,
            hoops,
            collect,
            version,
        } = self;
        let db = match (db, &url) {
            (Some(db), _) => Some(db),
            (None, Some(_)) => None,
            (None, None) => Some(TestDatabase::sqlite_file()),
        };
        let database_url =
            url.unwrap_or_else(|| db.as_ref().map(|d| d.url.clone()).unwrap_or_default());
        let dir = tempfile::tempdir().expect("a temporary folder");
        let meta_dir = meta_dir.unwrap_or_else(|| dir.path().join("metadata"));
        write_files(&meta_dir, &files);
        let data = DataPlugin::new(DataConfig {
            database_url,
            metadata_dirs: vec![meta_dir.clone()],
            include_base,
            max_connections,
            auto_migrate: true,
            owned: Vec::new(),
        });
        let data_handle = data.handle();
        let metadata = data.metadata();
        let publisher = Arc::new(OnceLock::new());
        let mut builder = Kernel::builder().plugin(data);
        for (id, value) in configs {
            builder = builder.config(id, value);
        }
        if let Some(clock) = clock {
            builder = builder.clock(clock);
        }
        if let Some(mode) = mode {
            builder = builder.mode(mode);
        }
        if let Some(cluster) = cluster {
            builder = builder.cluster(cluster);
        }
        if let Some(version) = version {
            builder = builder.version(version);
        }
        for p in plugins {
            builder = builder.boxed_plugin(p);
        }
        builder = builder.plugin(TestPlugin {
            session,
            directory,
            interceptors,
            hoops,
            handle: publisher.clone(),
        });
        let control = http.map(|config| {
            let plugin = HttpPlugin::new(HttpConfig {
                listen: "127.0.0.1:0".into(),
                ..config
            });
            let control = plugin.control();
            (plugin, control)
        });
        let control = match control {
            Some((plugin, control)) => {
                builder = builder.plugin(plugin);
                Some(control)
            }
            None => None,
        };
        let kernel = Arc::new(builder.build().map_err(|e| e.to_string())?);
        if let Some(control) = &control {
            control.attach(&kernel);
        }
        let events = Events::default();
        for pattern in &collect {
            events.attach(&kernel, pattern);
        }
        let report = kernel.boot().await.map_err(|e| e.to_string())?;
        if !report.all_started() {
            kernel.shutdown().await;
            if let Some(db) = db {
                db.cleanup().await;
            }
            return Err(format!("{report:?}"));
        }
        let engine = data_handle
            .engine()
            .cloned()
            .expect("the data engine is open");
        Ok(TestKernel {
            addr: control
                .as_ref()
                .and_then(objectos_http::HttpControl::local_addr),
            handle: publisher.get().cloned().expect("the test plugin started"),
            kernel,
            engine,
            metadata,
            events,
            meta_dir,
            db,
            _dir: dir,
        })
    }
}

fn write_files(meta: &Path, files: &[(String, String)]) {
    std::fs::create_dir_all(meta).expect("the metadata folder");
    for (path, text) in files {
        let file = meta.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).expect("the metadata sub-folder");
        }
        std::fs::write(&file, text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    }
}

/// A booted test kernel and what tests reach into.
pub struct TestKernel {
    pub kernel: Arc<Kernel>,
    pub engine: DataEngine,
    /// The `metadata` service (snapshot and reload).
    pub metadata: Arc<MetadataHandle>,
    /// Where the HTTP plugin listens; `None` without it.
    pub addr: Option<SocketAddr>,
    /// The test plugin's handle, to publish events as a plugin (its manifest emits anything).
    pub handle: PluginHandle,
    /// What [`TestKernelBuilder::collect`] subscribed to.
    pub events: Events,
    /// The metadata folder the data plugin reads.
    pub meta_dir: PathBuf,
    db: Option<TestDatabase>,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for TestKernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestKernel")
            .field("addr", &self.addr)
            .field("db", &self.db)
            .field("meta_dir", &self.meta_dir)
            .finish_non_exhaustive()
    }
}

impl TestKernel {
    /// A builder: SQLite file, empty metadata folder, HTTP on loopback, the session hoop.
    pub fn builder() -> TestKernelBuilder {
        TestKernelBuilder::default()
    }

    /// The listener's address.
    ///
    /// # Panics
    /// When the kernel runs without HTTP.
    pub fn addr(&self) -> SocketAddr {
        self.addr.expect("the test kernel runs without HTTP")
    }

    /// A client signed in as `who`.
    pub fn client(&self, who: Who) -> Client {
        Client::new(self.addr(), who)
    }

    /// A client without a session.
    pub fn anonymous(&self) -> Client {
        self.client(Who::anonymous())
    }

    /// A client signed in as the administrator `root`.
    pub fn admin(&self) -> Client {
        self.client(Who::admin())
    }

    /// A client signed in as restricted user `id` (no sets or roles, no organization).
    pub fn user(&self, id: &str) -> Client {
        self.client(Who::user(id))
    }

    /// Sends `req` as it is (no session headers added).
    pub async fn send(&self, req: Request) -> Response {
        fetch(self.addr(), req).await
    }

    /// The database the kernel runs on (when the testkit made it).
    pub fn database(&self) -> Option<&TestDatabase> {
        self.db.as_ref()
    }

    /// Runs one statement without parameters on the writer (tampering, setup); rows affected.
    pub async fn exec(&self, sql: &str) -> u64 {
        let w = self.engine.writer();
        w.execute(Sql::with(w.dialect(), sql, Vec::new()).expect("a statement"))
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// The first column of the first row `sql` returns, as text.
    pub async fn query_text(&self, sql: &str) -> Option<String> {
        let pool = self.engine.pool();
        let row = pool
            .fetch_optional(Sql::with(pool.dialect(), sql, Vec::new()).expect("a statement"))
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))?;
        row.get::<Option<String>>(0).expect("a text column")
    }

    /// Shuts the kernel down, closes the database and drops its PostgreSQL schema.
    pub async fn stop(self) {
        let Self {
            kernel,
            engine,
            metadata,
            handle,
            db,
            ..
        } = self;
        kernel.shutdown().await;
        // Every pool handle goes before the schema is dropped.
        drop((kernel, engine, metadata, handle));
        if let Some(db) = db {
            db.cleanup().await;
        }
    }
}
