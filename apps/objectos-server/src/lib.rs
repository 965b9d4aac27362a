//! The objectos binary's library: CLI, configuration, logging, the plugin selection, and the
//! `serve`, `migrate` and `validate` commands.
//!
//! This is the only crate that names plugin crates; each optional plugin sits behind a
//! `plugin-<name>` Cargo feature (see `Cargo.toml`).

pub mod cli;
pub mod config;
pub mod logging;
pub mod output;
pub mod scaffold;
mod watch;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use objectos_data::{DataConfig, DataEngine, DataPlugin, PluginSchema};
use objectos_http::{HttpConfig, HttpPlugin};
use objectos_kernel::{Kernel, KernelBuilder};
use objectos_spec::PluginManifest;
use objectos_spec::audit::{AuditReport, Auditor};
use objectos_spec::settings::ConfigSection;

use crate::cli::{Cli, Command, ConfigCommand, MigrateArgs, ServeArgs, ValidateArgs};
use crate::config::{ServerConfig, redact_url};
use crate::output::outln;

/// Exit code for invalid metadata or configuration (the server refuses to start).
pub const EXIT_INVALID: u8 = 2;

/// A plugin compiled into this binary: its manifest and the `objectos.yml` section it reads.
#[derive(Debug, Clone, Copy)]
pub struct CompiledPlugin {
    pub manifest: &'static PluginManifest,
    /// `None` for the core plugins, whose settings are core keys of the file.
    pub config: Option<&'static ConfigSection>,
}

/// Every plugin compiled into this binary, in start order: the one place that lists them.
pub fn compiled_plugins() -> Vec<CompiledPlugin> {
    let core = |manifest| CompiledPlugin {
        manifest,
        config: None,
    };
    // NOTE: data first (it provides `data` and `metadata`), then http (it requires both).
    #[allow(unused_mut)]
    let mut out = vec![
        core(&objectos_data::MANIFEST),
        core(&objectos_http::MANIFEST),
    ];
    // NOTE: before auth and permissions, which use it (`optional_requires`) when present.
    #[cfg(feature = "plugin-cache")]
    out.push(CompiledPlugin {
        manifest: &objectos_cache::MANIFEST,
        config: Some(&objectos_cache::CONFIG_SECTION),
    });
    // NOTE: before audit, which schedules its retention on it (`optional_requires`) when present.
    #[cfg(feature = "plugin-jobs")]
    out.push(CompiledPlugin {
        manifest: &objectos_jobs::MANIFEST,
        config: Some(&objectos_jobs::CONFIG_SECTION),
    });
    #[cfg(feature = "plugin-storage")]
    out.push(CompiledPlugin {
        manifest: &objectos_storage::MANIFEST,
        config: Some(&objectos_storage::CONFIG_SECTION),
    });
    // NOTE: after jobs (deliveries run as jobs) and before auth, which sends its mail through
    // it (`optional_requires`) when present.
    #[cfg(feature = "plugin-notification")]
    out.push(CompiledPlugin {
        manifest: &objectos_notification::MANIFEST,
        config: Some(&objectos_notification::CONFIG_SECTION),
    });
    #[cfg(feature = "plugin-permissions")]
    out.push(CompiledPlugin {
        manifest: &objectos_permissions::MANIFEST,
        config: Some(&objectos_permissions::CONFIG_SECTION),
    });
    #[cfg(feature = "plugin-audit")]
    out.push(CompiledPlugin {
        manifest: &objectos_audit::MANIFEST,
        config: Some(&objectos_audit::config::CONFIG_SECTION),
    });
    #[cfg(feature = "plugin-auth")]
    out.push(CompiledPlugin {
        manifest: &objectos_auth::MANIFEST,
        config: Some(&objectos_auth::config::CONFIG_SECTION),
    });
    #[cfg(feature = "plugin-metrics")]
    out.push(CompiledPlugin {
        manifest: &objectos_metrics::MANIFEST,
        config: Some(&objectos_metrics::CONFIG_SECTION),
    });
    #[cfg(feature = "plugin-web-shell")]
    out.push(CompiledPlugin {
        manifest: &objectos_web_shell::MANIFEST,
        config: Some(&objectos_web_shell::CONFIG_SECTION),
    });
    #[cfg(feature = "plugin-cluster")]
    out.push(CompiledPlugin {
        manifest: &objectos_cluster::MANIFEST,
        config: Some(&objectos_cluster::CONFIG_SECTION),
    });
    #[cfg(feature = "plugin-i18n")]
    out.push(CompiledPlugin {
        manifest: &objectos_i18n::MANIFEST,
        config: Some(&objectos_i18n::CONFIG_SECTION),
    });
    // objectos-new-plugin: compiled-plugins (`objectos new plugin` inserts above this line)
    out
}

/// Every plugin manifest compiled into this binary, in start order.
pub fn compiled_manifests() -> Vec<&'static PluginManifest> {
    compiled_plugins().into_iter().map(|p| p.manifest).collect()
}

/// The `objectos.yml` sections of the plugins compiled into this binary.
pub fn config_sections() -> Vec<&'static ConfigSection> {
    compiled_plugins()
        .into_iter()
        .filter_map(|p| p.config)
        .collect()
}

/// The whole `objectos` process: installs the TLS crypto provider, parses the command line, builds
/// the runtime and runs the command. Every binary that is "the objectos server" calls this, so the
/// security suite's copy cannot drift from the shipped one.
pub fn main_entry() -> ExitCode {
    // Exactly one rustls provider (ring) is compiled in; crates that use the process default need it installed first.
    if rustls::crypto::ring::default_provider()
        .install_default()
        .is_err()
    {
        eprintln!("objectos: a TLS crypto provider was already installed; continuing with it");
    }
    let cli = <Cli as clap::Parser>::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("objectos: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        // The reader of our stdout left (`| head`): it has what it wanted (see `output`).
        Err(e) if output::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("objectos: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a parsed command line; the `Err` text is printed by `main`.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let cwd = std::env::current_dir()?;
    match &cli.command {
        Command::Serve(args) => serve(&cli, args, &cwd).await,
        Command::Migrate(args) => migrate(&cli, args, &cwd).await,
        Command::Validate(args) => validate(args).await,
        Command::New(args) => scaffold::run(args, &cwd),
        Command::Config(args) => match args.command {
            ConfigCommand::Schema => {
                let schema = config::schema(&config_sections());
                outln!("{}", serde_json::to_string_pretty(&schema)?)?;
                Ok(ExitCode::SUCCESS)
            }
        },
        #[cfg(feature = "plugin-audit")]
        Command::Audit(args) => audit(&cli, args, &cwd).await,
        #[cfg(feature = "plugin-auth")]
        Command::User(args) => user(&cli, args, &cwd).await,
        #[cfg(feature = "plugin-jobs")]
        Command::Jobs(args) => jobs(&cli, args, &cwd).await,
        #[cfg(feature = "plugin-i18n")]
        Command::I18n(args) => i18n(args),
    }
}

/// `objectos i18n extract`: a bundle skeleton on stdout.
#[cfg(feature = "plugin-i18n")]
fn i18n(args: &cli::I18nArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        cli::I18nCommand::Extract { dir, locale } => {
            match objectos_i18n::extract::skeleton(dir, locale) {
                Ok(text) => {
                    outln!("{}", text.trim_end())?;
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("objectos i18n extract: {e}");
                    Ok(ExitCode::from(EXIT_INVALID))
                }
            }
        }
    }
}

/// Adds a warning for every translatable string the translation bundles under `dir` miss,
/// per locale (nothing without the i18n plugin, or without bundles).
pub fn audit_translations(report: &mut AuditReport, dir: &Path) {
    #[cfg(feature = "plugin-i18n")]
    report
        .diagnostics
        .extend(objectos_i18n::extract::missing_keys(dir));
    #[cfg(not(feature = "plugin-i18n"))]
    let _ = (report, dir);
}

/// Loads file < env < flags, printing file warnings (unknown keys) to stderr.
fn load_config(cli: &Cli, cwd: &Path, flags: config::Layer) -> Result<ServerConfig, ExitCode> {
    let file =
        config::load_file(cli.global.config.as_deref(), cwd, &config_sections()).map_err(|e| {
            eprintln!("{e}");
            ExitCode::from(EXIT_INVALID)
        })?;
    for w in &file.warnings {
        eprintln!("{w}");
    }
    let env = config::env_layer(&|k| std::env::var(k).ok()).map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(EXIT_INVALID)
    })?;
    Ok(config::resolve(file.layer, env, flags))
}

/// Audits every metadata folder; prints problems; `Ok(false)` when there are errors.
fn audit_dirs(dirs: &[PathBuf]) -> anyhow::Result<AuditReport> {
    let mut auditor = Auditor::new();
    for dir in dirs {
        if !dir.exists() {
            anyhow::bail!("{}: no such metadata folder", dir.display());
        }
        for file in walk(dir)? {
            let name = file.display().to_string();
            if !objectos_spec::audit::is_auditable(&name) {
                continue;
            }
            let text = std::fs::read_to_string(&file)
                .map_err(|e| anyhow::anyhow!("{name}: cannot read: {e}"))?;
            auditor.add_file(&name, &text);
        }
        if dir.is_file() {
            add_neighbours(&mut auditor, dir)?;
        }
    }
    Ok(auditor.finish())
}

/// For a single file: the other metadata files of its package, as context, so the objects it
/// refers to are known but their own problems are not reported. The package is the nearest
/// folder above the file (at most three levels up) holding a `manifest.yml` or
/// `objectstack.yml`, read with its subfolders; without one, the files beside it (not below:
/// a file in a home folder must not walk the whole home).
fn add_neighbours(auditor: &mut Auditor, file: &Path) -> anyhow::Result<()> {
    let folder = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let has_manifest = |dir: &Path| {
        ["manifest", "objectstack"].iter().any(|stem| {
            ["yml", "yaml", "json"]
                .iter()
                .any(|ext| dir.join(format!("{stem}.{ext}")).is_file())
        })
    };
    let neighbours = match folder.ancestors().take(4).find(|dir| has_manifest(dir)) {
        Some(package) => walk(package)?,
        None => {
            let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
                .map_err(|e| anyhow::anyhow!("{}: cannot list: {e}", folder.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect();
            files.sort();
            files
        }
    };
    let own = std::fs::canonicalize(file).ok();
    for other in neighbours {
        let name = other.display().to_string();
        if !objectos_spec::audit::is_auditable(&name) || std::fs::canonicalize(&other).ok() == own {
            continue;
        }
        // A neighbour that cannot be read only loses its objects as context.
        if let Ok(text) = std::fs::read_to_string(&other) {
            auditor.add_context_file(&name, &text);
        }
    }
    Ok(())
}

/// Files under `root` (or `root` itself), sorted for stable output; hidden entries are skipped.
fn walk(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    if root.is_file() {
        out.push(root.to_path_buf());
        return Ok(out);
    }
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| anyhow::anyhow!("{}: cannot list: {e}", dir.display()))?;
        for entry in entries {
            let entry = entry?;
            let path = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn data_config(config: &ServerConfig) -> DataConfig {
    DataConfig {
        database_url: config.database_url.clone(),
        metadata_dirs: config.metadata_dirs.clone(),
        include_base: true,
        max_connections: if config.database_url.starts_with("sqlite") {
            4
        } else {
            16
        },
        auto_migrate: true,
        owned: Vec::new(),
    }
}

/// The file a SQLite URL names (`sqlite://PATH`, `sqlite:PATH`, query ignored), or `None` for
/// an in-memory SQLite database and for PostgreSQL. Percent-escapes are not decoded: a path
/// written with them is taken as missing, which errs on the side of not creating anything.
fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let memory =
        path.is_empty() || path == ":memory:" || query.split('&').any(|pair| pair == "mode=memory");
    (!memory).then(|| PathBuf::from(path))
}

/// The data folder: the folder of the SQLite database file, resolved against `cwd`; `None`
/// for PostgreSQL and an in-memory database (plugins then use the working folder).
#[cfg_attr(not(feature = "plugin-storage"), allow(dead_code))]
fn data_dir(config: &ServerConfig, cwd: &Path) -> Option<PathBuf> {
    let file = cwd.join(sqlite_file(&config.database_url)?);
    file.parent().map(Path::to_path_buf)
}

/// The permissions plugin's settings from the `permissions:` section of `objectos.yml`.
#[cfg(feature = "plugin-permissions")]
pub fn authz_config(config: &ServerConfig) -> anyhow::Result<objectos_permissions::AuthzConfig> {
    let settings: objectos_permissions::PermissionsSettings =
        config.settings(&objectos_permissions::CONFIG_SECTION)?;
    let auth_compiled = compiled_manifests().iter().any(|m| {
        m.provides
            .contains(&objectos_spec::manifest::services::AUTH)
    });
    Ok(settings.authz_config(auth_compiled))
}

/// Handles into plugins of the kernel that `serve` reads after boot.
struct PluginHandles {
    /// Reaches the started auth service, which the banner asks whether an owner exists.
    #[cfg(feature = "plugin-auth")]
    auth: objectos_auth::AuthHandle,
}

/// The kernel of this build: the data and HTTP plugins and every plugin compiled in, each
/// configured from its `objectos.yml` section. `serve` boots it; `migrate` and the other
/// commands that open the database run only its `init` to learn what the plugins own.
fn kernel_with_plugins(
    config: &ServerConfig,
    cwd: &Path,
    http: HttpPlugin,
) -> anyhow::Result<(KernelBuilder, PluginHandles)> {
    let kernel = Kernel::builder()
        .mode(config.mode)
        .version(env!("CARGO_PKG_VERSION"))
        .cwd(cwd.display().to_string())
        .cluster(config.cluster())
        .plugin({
            let mut data = DataPlugin::new(data_config(config));
            data.limits = config.data.clone();
            data
        })
        .plugin(http);
    // In process, or Redis when `cache.redisUrl` or `cluster.redisUrl` is set (`cache:` section).
    #[cfg(feature = "plugin-cache")]
    let kernel = kernel.plugin(objectos_cache::CachePlugin::default());
    // Background jobs and `*.job.yml` schedules (`jobs:` section).
    #[cfg(feature = "plugin-jobs")]
    let kernel = kernel.plugin(objectos_jobs::JobsPlugin::default());
    // Files: local folder or S3, the client's storage namespace (`storage:` section). The local
    // folder defaults to `files` next to the SQLite database (the data folder), not the
    // working folder.
    #[cfg(feature = "plugin-storage")]
    let kernel = kernel.plugin(match data_dir(config, cwd) {
        Some(dir) => objectos_storage::StoragePlugin::default().with_data_dir(dir),
        None => objectos_storage::StoragePlugin::default(),
    });
    // Email over SMTP, the in-app inbox, webhooks; auth's mails go through it
    // (`notifications:` section).
    #[cfg(feature = "plugin-notification")]
    let kernel = kernel.plugin(objectos_notification::NotificationPlugin::default());
    #[cfg(feature = "plugin-permissions")]
    let kernel = kernel.plugin(objectos_permissions::PermissionsPlugin::new(authz_config(
        config,
    )?));
    #[cfg(feature = "plugin-audit")]
    let kernel = kernel.plugin(objectos_audit::AuditPlugin::default());
    #[cfg(feature = "plugin-metrics")]
    let kernel = kernel.plugin(objectos_metrics::MetricsPlugin::default());
    // Reads cluster.redisUrl itself; without one it contributes no transport.
    #[cfg(feature = "plugin-cluster")]
    let kernel = kernel.plugin(objectos_cluster::ClusterPlugin::default());
    #[cfg(feature = "plugin-auth")]
    let (kernel, auth) = {
        let plugin = objectos_auth::AuthPlugin::default();
        let handle = plugin.handle();
        (kernel.plugin(plugin), handle)
    };
    #[cfg(feature = "plugin-web-shell")]
    let kernel = kernel.plugin(objectos_web_shell::WebShellPlugin::default());
    // Translation bundles and Fluent files, translated metadata labels (`i18n:` section).
    #[cfg(feature = "plugin-i18n")]
    let kernel = kernel.plugin(objectos_i18n::I18nPlugin::new(
        config.settings(&objectos_i18n::CONFIG_SECTION)?,
    )?);
    // objectos-new-plugin: kernel-plugins (`objectos new plugin` inserts above this line)
    // Each plugin section of objectos.yml (checked against its type when the file was read)
    // becomes the kernel configuration of the plugin that declared it.
    let mut kernel = kernel;
    for section in config_sections() {
        if let Some(value) = config.plugins.get(section.name) {
            kernel = kernel.config(section.plugin, value.clone());
        }
    }
    Ok((
        kernel,
        PluginHandles {
            #[cfg(feature = "plugin-auth")]
            auth,
        },
    ))
}

/// What the plugins of this build own in the database (private tables, objects), read from a
/// kernel that runs `init` only: the same contributions `serve` hands the data plugin, so
/// `migrate` plans exactly what a start would create. Nothing is opened or started.
async fn plugin_schemas(config: &ServerConfig, cwd: &Path) -> anyhow::Result<Vec<PluginSchema>> {
    let (kernel, _) = kernel_with_plugins(config, cwd, HttpPlugin::new(HttpConfig::default()))?;
    let kernel = kernel.build()?;
    let failed = kernel.initialise().await?;
    if let Some((plugin, error)) = failed.first() {
        anyhow::bail!("plugin {plugin} cannot be initialised: {error}");
    }
    let contributions = kernel
        .registry()
        .contributions::<PluginSchema>()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(objectos_data::owned_schemas(contributions))
}

/// What the plugins compiled into this build own (tables, embedded objects, metadata kinds),
/// read from their `init` with the default configuration: for checks that run without a
/// deployment (`cargo xtask spec-audit`).
pub async fn compiled_plugin_schemas() -> anyhow::Result<Vec<PluginSchema>> {
    plugin_schemas(&ServerConfig::default(), Path::new(".")).await
}

/// Adds the objects plugins ship inside their crates to an audit, named after their plugin.
pub fn audit_plugin_objects(auditor: &mut Auditor, schemas: &[PluginSchema]) {
    for schema in schemas {
        for (path, text) in schema.objects() {
            auditor.add_file(&format!("plugin {}: {path}", schema.plugin()), text);
        }
    }
}

/// Checks the files of the plugins' metadata kinds (`*.role.yml`, `*.flow.yml`, ...) with the
/// plugins' own parsers, adding every located problem to `report`; files the spec audit
/// already checks (objects, manifests, permission sets) are left to it.
pub fn audit_plugin_kinds(
    report: &mut AuditReport,
    files: &[(String, String)],
    schemas: &[PluginSchema],
) {
    for (name, text) in files {
        if objectos_spec::audit::is_auditable(name) {
            continue;
        }
        let Some(kind) = PluginSchema::kind_of(schemas, name) else {
            continue;
        };
        report.files_checked += 1;
        if let Err(problems) = kind.parse_file(name, text) {
            report.diagnostics.extend(problems);
        }
    }
    // Files that cannot be read first, as the audit itself orders them.
    objectos_spec::audit::sort_diagnostics(&mut report.diagnostics);
}

/// The data engine's configuration with the plugins' schemas, for the commands that open the
/// database without booting the server.
async fn data_config_with_plugins(config: &ServerConfig, cwd: &Path) -> anyhow::Result<DataConfig> {
    Ok(DataConfig {
        owned: plugin_schemas(config, cwd).await?,
        ..data_config(config)
    })
}

async fn serve(cli: &Cli, args: &ServeArgs, cwd: &Path) -> anyhow::Result<ExitCode> {
    let config = match load_config(cli, cwd, args.layer(&cli.global)) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    if let Some(format) = args.print_config {
        match config.render(&config_sections(), format) {
            Ok(text) => {
                output::write(format_args!("{text}"))?;
                return Ok(ExitCode::SUCCESS);
            }
            Err(e) => {
                eprintln!("{e}");
                return Ok(ExitCode::from(EXIT_INVALID));
            }
        }
    }
    let telemetry = logging::init(&config);
    // Metadata problems are reported all at once, with file and path, before anything starts.
    let report = audit_dirs(&config.metadata_dirs)?;
    for d in &report.diagnostics {
        eprintln!("{d}");
    }
    if report.error_count() > 0 {
        eprintln!(
            "objectos: metadata has {} error(s); not starting",
            report.error_count()
        );
        return Ok(ExitCode::from(EXIT_INVALID));
    }
    tracing::info!(database = %redact_url(&config.database_url), mode = config.mode.as_str(), "Starting ObjectOS.");

    let http = HttpPlugin::new(HttpConfig {
        listen: config.listen.clone(),
        body_limit: config.body_limit,
        cors_origins: config.cors_origins.clone(),
        trusted_proxies: config.trusted_proxies.clone(),
        trusted_origins: config.trusted_origins.clone(),
        hsts_max_age: config.hsts_max_age,
        ..HttpConfig::default()
    })
    .with_packages(
        compiled_manifests()
            .into_iter()
            .map(PluginManifest::to_spec)
            .collect(),
    );
    let control = http.control();
    let (kernel, handles) = kernel_with_plugins(&config, cwd, http)?;
    #[cfg(feature = "plugin-auth")]
    let auth = handles.auth;
    #[cfg(not(feature = "plugin-auth"))]
    let _ = handles;
    let kernel = kernel.build()?;
    let kernel = Arc::new(kernel);
    control.attach(&kernel);
    let startup = kernel.boot().await?;
    if !startup.all_started() {
        for p in startup.plugins.iter().filter(|p| !p.success) {
            if let Some(e) = &p.error {
                eprintln!("objectos: plugin {} did not start: {}", p.id, e.message);
            }
        }
        kernel.shutdown().await;
        return Ok(ExitCode::from(EXIT_INVALID));
    }
    #[cfg(feature = "plugin-auth")]
    let needs_owner = match auth.service() {
        Some(service) => match service.has_owner().await {
            Ok(has) => !has,
            Err(e) => {
                tracing::debug!(error = %e, "Could not tell whether an owner exists; no sign-up hint.");
                false
            }
        },
        None => false,
    };
    #[cfg(not(feature = "plugin-auth"))]
    let needs_owner = false;
    let text = match control.local_addr() {
        Some(addr) => banner(addr, &config, needs_owner),
        None => "ObjectOS started (no HTTP listener)\n".to_owned(),
    };
    // A closed stdout must not stop a running server: the banner is a courtesy.
    if let Err(e) = output::write(format_args!("{text}")) {
        tracing::debug!(error = %e, "The start-up banner could not be written to stdout.");
    }
    // Kept alive while the server runs; dropping it stops the watch.
    let _watching = if args.watch {
        let metadata = kernel
            .registry()
            .get_named::<objectos_data::MetadataHandle>(objectos_spec::manifest::services::METADATA)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Some(watch::spawn(&config.metadata_dirs, metadata)?)
    } else {
        None
    };
    kernel.run_until_signal().await?;
    // After the kernel stopped, so the shutdown's spans are exported too.
    telemetry.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// What `serve` prints once it listens: the address (first line, the one tests and scripts
/// parse), where to read the docs, the database, and, while no account exists, how to create
/// the owner. Ends with an empty line, so a reader knows the banner is complete.
fn banner(addr: std::net::SocketAddr, config: &ServerConfig, needs_owner: bool) -> String {
    use std::fmt::Write as _;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    // A wildcard address cannot be opened in a browser; the links use loopback instead.
    let mut reach = addr;
    if addr.ip().is_unspecified() {
        reach.set_ip(match addr.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        });
    }
    let base = format!("http://{reach}");
    let mut text = format!("ObjectOS listening on http://{addr}\n");
    // `write!` into a String cannot fail.
    let _ = writeln!(text, "  API docs:   {base}/api/v1/docs");
    let _ = writeln!(text, "  Discovery:  {base}/api/v1/discovery");
    let _ = writeln!(
        text,
        "  Database:   {} ({} mode)",
        redact_url(&config.database_url),
        config.mode.as_str()
    );
    if needs_owner {
        let _ = writeln!(
            text,
            "  No account yet: the first to sign up becomes the owner and administrator:\n    curl -X POST {base}/api/v1/auth/sign-up/email -H 'content-type: application/json' -d '{{\"email\":\"me@example.com\",\"password\":\"Change-me-1\",\"name\":\"Me\"}}'\n    or: objectos user create --admin --email me@example.com --password-stdin (same database settings as this server)"
        );
    }
    text.push('\n');
    text
}

async fn migrate(cli: &Cli, args: &MigrateArgs, cwd: &Path) -> anyhow::Result<ExitCode> {
    let flags: config::Layer = args.common.layer(&cli.global);
    let config = match load_config(cli, cwd, flags) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    logging::init(&config);
    let report = audit_dirs(&config.metadata_dirs)?;
    for d in &report.diagnostics {
        eprintln!("{d}");
    }
    if report.error_count() > 0 {
        eprintln!(
            "objectos: metadata has {} error(s); nothing migrated",
            report.error_count()
        );
        return Ok(ExitCode::from(EXIT_INVALID));
    }
    if config.metadata_dirs.is_empty() {
        eprintln!(
            "objectos: warning: no metadata folder given (pass DIR or set metadataDirs); only the system objects are migrated"
        );
    }
    let shown = redact_url(&config.database_url);
    // A dry run must not create the database it plans for, and opening a SQLite file creates
    // it. A file that does not exist yet is planned on an empty in-memory database instead:
    // the same plan a fresh file would get.
    let fresh = args.dry_run
        && sqlite_file(&config.database_url).is_some_and(|path| !cwd.join(path).exists());
    let mut config = config;
    if fresh {
        config.database_url = "sqlite::memory:".to_owned();
    }
    let engine = DataEngine::open(DataConfig {
        auto_migrate: false,
        ..data_config_with_plugins(&config, cwd).await?
    })
    .await?;
    let plan = engine.plan_migration().await?;
    if args.dry_run {
        if fresh {
            outln!(
                "-- {shown} does not exist yet (nothing was created); plan for a new database:"
            )?;
        } else if plan.is_empty() {
            outln!("-- {shown} is up to date: nothing to migrate")?;
            return Ok(ExitCode::SUCCESS);
        } else {
            outln!("-- migration plan for {shown}")?;
        }
        outln!("{plan}")?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!("Migrating {shown}")?;
    // A reader that left must not stop a migration half-way: step lines that cannot be written
    // are dropped, and the closed pipe is reported by the summary line below.
    let report = engine
        .migrate(&|step| {
            let _ = outln!("  {step}");
        })
        .await?;
    if report.applied == 0 && report.skipped_manual == 0 {
        outln!("Up to date: nothing to migrate")?;
    } else {
        outln!(
            "Done: {} step(s) applied, {} manual step(s) skipped, {} object(s) recorded",
            report.applied,
            report.skipped_manual,
            report.objects_recorded
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn validate(args: &ValidateArgs) -> anyhow::Result<ExitCode> {
    let mut report = match audit_dirs(std::slice::from_ref(&args.dir)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("objectos: {e}");
            return Ok(ExitCode::from(EXIT_INVALID));
        }
    };
    // The plugins' metadata kinds (roles, sharing rules, ...) are checked by their own parsers.
    let schemas = compiled_plugin_schemas().await?;
    let mut files = Vec::new();
    for file in walk(&args.dir)? {
        let name = file.display().to_string();
        if PluginSchema::kind_of(&schemas, &name).is_some() {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| anyhow::anyhow!("{name}: cannot read: {e}"))?;
            files.push((name, text));
        }
    }
    audit_plugin_kinds(&mut report, &files, &schemas);
    audit_translations(&mut report, &args.dir);
    if args.json {
        let json = serde_json::json!({
            "diagnostics": report.diagnostics,
            "filesChecked": report.files_checked,
            "objects": report.objects,
            "errors": report.error_count(),
            "warnings": report.warning_count(),
        });
        outln!("{}", serde_json::to_string_pretty(&json)?)?;
    } else {
        for d in &report.diagnostics {
            outln!("{d}")?;
        }
        outln!(
            "validate: {} file(s), {} object(s): {} error(s), {} warning(s)",
            report.files_checked,
            report.objects,
            report.error_count(),
            report.warning_count()
        )?;
    }
    Ok(if report.error_count() > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `objectos jobs list|retry|dead-letters`: works on the job table directly, without starting
/// the server; a running server's workers pick retried and replayed jobs up at their next poll.
#[cfg(feature = "plugin-jobs")]
async fn jobs(cli: &Cli, args: &cli::JobsArgs, cwd: &Path) -> anyhow::Result<ExitCode> {
    use objectos_kernel::contracts::{JobError, JobFilter, JobInfo, JobStatus};
    let config = match load_config(cli, cwd, cli.global.layer()) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let admin = objectos_jobs::JobsAdmin::connect(&config.database_url).await?;
    let line = |j: &JobInfo| {
        format!(
            "{}  {:<9}  {}  queue={}  attempts={}/{}{}",
            j.id,
            j.status.as_str(),
            j.handler,
            j.queue,
            j.attempts,
            j.max_attempts,
            j.error
                .as_deref()
                .map(|e| format!("  error={e}"))
                .unwrap_or_default()
        )
    };
    // A refused retry or replay is the operator's mistake (exit 1 with the reason), not a crash.
    let refused = |e: objectos_jobs::JobsError| -> anyhow::Result<ExitCode> {
        match e {
            objectos_jobs::JobsError::Job(
                err @ (JobError::InvalidState { .. } | JobError::NotFound(_)),
            ) => {
                eprintln!("objectos jobs: {err}");
                Ok(ExitCode::from(1))
            }
            other => Err(other.into()),
        }
    };
    match &args.command {
        cli::JobsCommand::List {
            status,
            queue,
            limit,
            json,
        } => {
            let status = match status.as_deref() {
                None => None,
                Some(s) => match JobStatus::parse(s) {
                    Some(s) => Some(s),
                    None => {
                        eprintln!(
                            "objectos jobs list: --status `{s}` is not a state; expected one of {}",
                            JobStatus::ALL.map(JobStatus::as_str).join(", ")
                        );
                        return Ok(ExitCode::from(EXIT_INVALID));
                    }
                },
            };
            let page = admin
                .list(&JobFilter {
                    status,
                    queue: queue.clone(),
                    limit: *limit,
                    ..JobFilter::default()
                })
                .await?;
            if *json {
                outln!("{}", serde_json::to_string_pretty(&page)?)?;
            } else {
                for j in &page.items {
                    outln!("{}", line(j))?;
                }
                outln!("jobs: {} shown of {}", page.items.len(), page.total)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        cli::JobsCommand::Retry { id } => match admin.retry(id).await {
            Ok(j) => {
                outln!("{}", line(&j))?;
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => refused(e),
        },
        cli::JobsCommand::DeadLetters { replay, limit } => {
            if let Some(id) = replay {
                return match admin.replay(id).await {
                    Ok(j) => {
                        outln!("{}", line(&j))?;
                        Ok(ExitCode::SUCCESS)
                    }
                    Err(e) => refused(e),
                };
            }
            let page = admin
                .list(&JobFilter {
                    status: Some(JobStatus::Dead),
                    limit: *limit,
                    ..JobFilter::default()
                })
                .await?;
            for j in &page.items {
                outln!("{}", line(j))?;
            }
            outln!("dead letters: {} shown of {}", page.items.len(), page.total)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `objectos audit verify|export`: works on the database directly, without starting the server.
#[cfg(feature = "plugin-audit")]
async fn audit(cli: &Cli, args: &cli::AuditArgs, cwd: &Path) -> anyhow::Result<ExitCode> {
    let config = match load_config(cli, cwd, cli.global.layer()) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let store = objectos_audit::AuditStore::connect(&config.database_url).await?;
    match &args.command {
        cli::AuditCommand::Verify { tenant } => {
            let report = store.verify(tenant.as_deref()).await?;
            for b in &report.broken {
                let tenant = if b.tenant.is_empty() {
                    "(none)"
                } else {
                    &b.tenant
                };
                outln!(
                    "BROKEN tenant {tenant} at seq {} (event {}): {}",
                    b.seq,
                    b.event_id.as_deref().unwrap_or("-"),
                    b.reason
                )?;
            }
            outln!(
                "audit verify: {} chain(s), {} event(s): {}",
                report.tenants,
                report.events,
                if report.ok() { "ok" } else { "BROKEN" }
            )?;
            Ok(if report.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        cli::AuditCommand::Export(e) => {
            let parse = |param: &str, v: &Option<String>| {
                v.as_deref()
                    .map(|raw| objectos_audit::routes::parse_time(param, raw))
                    .transpose()
            };
            let filter = objectos_audit::EventFilter {
                event_type: e.event_type.clone(),
                actor: e.actor.clone(),
                object: e.object.clone(),
                record_id: e.record_id.clone(),
                from: parse("from", &e.from)?,
                to: parse("to", &e.to)?,
                tenant: e.tenant.clone(),
                ..objectos_audit::EventFilter::default()
            };
            let events = store.export(&filter).await?;
            let text = match e.format.as_str() {
                "csv" => objectos_audit::store::to_csv(&events),
                _ => serde_json::to_string_pretty(&events)? + "\n",
            };
            match &e.out {
                Some(path) => {
                    std::fs::write(path, text).map_err(|err| {
                        anyhow::anyhow!("{}: cannot write: {err}", path.display())
                    })?;
                    eprintln!(
                        "audit export: {} event(s) written to {}",
                        events.len(),
                        path.display()
                    );
                }
                None => output::write(format_args!("{text}"))?,
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `objectos user create`: creates an account directly in the database (for scripts); the
/// password is read from the first line of stdin so it never appears in the process list.
#[cfg(feature = "plugin-auth")]
async fn user(cli: &Cli, args: &cli::UserArgs, cwd: &Path) -> anyhow::Result<ExitCode> {
    let cli::UserCommand::Create(create) = &args.command;
    let config = match load_config(cli, cwd, create.common.layer(&cli.global)) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    if !create.password_stdin {
        anyhow::bail!("user create: pass --password-stdin and write the password to stdin");
    }
    let mut password = String::new();
    std::io::stdin().read_line(&mut password)?;
    let password = password.trim_end_matches(['\r', '\n']);
    let engine = DataEngine::open(data_config_with_plugins(&config, cwd).await?).await?;
    let service = objectos_auth::AuthService::open(
        engine,
        objectos_auth::AuthConfig::default(),
        Arc::new(objectos_kernel::SystemClock),
        Arc::new(objectos_auth::LoggingMailer::new()),
        None,
    )
    .await?;
    match service
        .create_account(
            &create.email,
            password,
            create.name.as_deref(),
            create.admin,
            false,
        )
        .await
    {
        Ok((id, _org)) => {
            outln!(
                "Created user {id} ({}){}",
                create.email.trim().to_lowercase(),
                if create.admin {
                    " as administrator"
                } else {
                    ""
                }
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("objectos: user create: {}", e.public_message());
            Ok(ExitCode::from(1))
        }
    }
}

#[cfg(all(test, feature = "plugin-permissions"))]
mod tests {
    use objectos_spec::security::SharingModel;

    use super::*;

    #[test]
    fn permissions_section_reaches_the_plugin_settings() {
        let defaults = authz_config(&ServerConfig::default()).unwrap();
        assert_eq!(defaults.default_sharing, SharingModel::PublicReadWrite);
        assert_eq!(defaults.guest_set, "guest");
        // With the auth plugin compiled in, anonymous callers are always checked.
        let auth = cfg!(feature = "plugin-auth");
        assert_eq!(defaults.anonymous_unrestricted, !auth);

        let file = config::parse_file(
            "objectos.yml",
            "permissions:\n  defaultSharing: private\n  guestSet: visitor\n",
            Path::new("/"),
        )
        .unwrap();
        let resolved = config::resolve(
            file.layer,
            config::Layer::default(),
            config::Layer::default(),
        );
        let set = authz_config(&resolved).unwrap();
        assert_eq!(set.default_sharing, SharingModel::Private);
        assert_eq!(set.guest_set, "visitor");
        // Naming a guest set turns unchecked anonymous access off in builds without auth too.
        assert!(!set.anonymous_unrestricted);
    }

    #[test]
    fn every_section_belongs_to_a_compiled_plugin_and_no_core_key() {
        let ids: Vec<&str> = compiled_manifests().iter().map(|m| m.id).collect();
        let mut names = std::collections::HashSet::new();
        for section in config_sections() {
            assert!(ids.contains(&section.plugin), "{}", section.plugin);
            assert!(
                !config::CORE_KEYS.contains(&section.name),
                "{}",
                section.name
            );
            assert!(names.insert(section.name), "{} twice", section.name);
        }
    }
}

#[cfg(test)]
mod command_tests {
    use super::*;

    #[test]
    fn sqlite_file_names_the_file_of_a_sqlite_url() {
        let file = |url| sqlite_file(url).map(|p| p.display().to_string());
        assert_eq!(
            file("sqlite://./objectos.db?mode=rwc").as_deref(),
            Some("./objectos.db")
        );
        assert_eq!(
            file("sqlite:///var/lib/o.db").as_deref(),
            Some("/var/lib/o.db")
        );
        assert_eq!(file("sqlite:o.db").as_deref(), Some("o.db"));
        assert_eq!(file("sqlite::memory:"), None);
        assert_eq!(file("sqlite://shared?mode=memory&cache=shared"), None);
        assert_eq!(file("postgres://app:pw@db/app"), None);
    }

    #[test]
    fn the_data_folder_is_the_sqlite_files_folder() {
        let dir = |url: &str| {
            let config = ServerConfig {
                database_url: url.to_owned(),
                ..ServerConfig::default()
            };
            data_dir(&config, Path::new("/work"))
        };
        assert_eq!(
            dir("sqlite:///var/lib/o.db?mode=rwc"),
            Some(PathBuf::from("/var/lib"))
        );
        assert_eq!(dir("sqlite:o.db"), Some(PathBuf::from("/work")));
        assert_eq!(dir("sqlite://data/o.db"), Some(PathBuf::from("/work/data")));
        assert_eq!(dir("sqlite::memory:"), None);
        assert_eq!(dir("postgres://db/app"), None);
    }

    #[test]
    fn banner_links_use_loopback_for_a_wildcard_address_and_hide_the_password() {
        let config = ServerConfig {
            database_url: "postgres://app:s3cret@db.internal/app".to_owned(),
            ..ServerConfig::default()
        };
        let addr: std::net::SocketAddr = "0.0.0.0:3000".parse().unwrap();
        let text = banner(addr, &config, true);
        assert!(
            text.starts_with("ObjectOS listening on http://0.0.0.0:3000\n"),
            "{text}"
        );
        assert!(text.contains("http://127.0.0.1:3000/api/v1/docs"), "{text}");
        assert!(
            text.contains("postgres://app:***@db.internal/app"),
            "{text}"
        );
        assert!(!text.contains("s3cret"), "{text}");
        assert!(text.contains("sign-up/email"), "{text}");
        assert!(!banner(addr, &config, false).contains("sign-up"));
        assert!(text.ends_with("\n\n"), "{text}");
    }
}
