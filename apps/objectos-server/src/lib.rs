//! The objectos binary's library: CLI, configuration, logging, the plugin selection, and the
//! `serve`, `migrate` and `validate` commands.
//!
//! This is the only crate that names plugin crates; each optional plugin sits behind a
//! `plugin-<name>` Cargo feature (see `Cargo.toml`).

pub mod cli;
pub mod config;
pub mod logging;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use objectos_data::{DataConfig, DataEngine, DataPlugin};
use objectos_http::{HttpConfig, HttpPlugin};
use objectos_kernel::Kernel;
use objectos_spec::PluginManifest;
use objectos_spec::audit::{AuditReport, Auditor};
use objectos_spec::settings::ConfigSection;

use crate::cli::{Cli, Command, ConfigCommand, MigrateArgs, ServeArgs, ValidateArgs};
use crate::config::{ServerConfig, redact_url};

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
        Command::Validate(args) => Ok(validate(args)),
        Command::Config(args) => match args.command {
            ConfigCommand::Schema => {
                let schema = config::schema(&config_sections());
                println!("{}", serde_json::to_string_pretty(&schema)?);
                Ok(ExitCode::SUCCESS)
            }
        },
        #[cfg(feature = "plugin-audit")]
        Command::Audit(args) => audit(&cli, args, &cwd).await,
        #[cfg(feature = "plugin-auth")]
        Command::User(args) => user(&cli, args, &cwd).await,
    }
}

/// Loads file < env < flags, printing file warnings (unknown keys) to stderr.
fn load_config(cli: &Cli, cwd: &Path, flags: config::Layer) -> Result<ServerConfig, ExitCode> {
    let file = config::load_file(cli.config.as_deref(), cwd, &config_sections()).map_err(|e| {
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
    }
    Ok(auditor.finish())
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
    }
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

async fn serve(cli: &Cli, args: &ServeArgs, cwd: &Path) -> anyhow::Result<ExitCode> {
    let config = match load_config(cli, cwd, args.layer()) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    if let Some(format) = args.print_config {
        match config.render(&config_sections(), format) {
            Ok(text) => {
                print!("{text}");
                return Ok(ExitCode::SUCCESS);
            }
            Err(e) => {
                eprintln!("{e}");
                return Ok(ExitCode::from(EXIT_INVALID));
            }
        }
    }
    logging::init(&config);
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
    let kernel = Kernel::builder()
        .mode(config.mode)
        .version(env!("CARGO_PKG_VERSION"))
        .cwd(cwd.display().to_string())
        .plugin({
            let mut data = DataPlugin::new(data_config(&config));
            data.limits = config.data.clone();
            data
        })
        .plugin(http);
    #[cfg(feature = "plugin-permissions")]
    let kernel = kernel.plugin(objectos_permissions::PermissionsPlugin::new(
        config.metadata_dirs.clone(),
        authz_config(&config)?,
    ));
    #[cfg(feature = "plugin-audit")]
    let kernel = kernel.plugin(objectos_audit::AuditPlugin::default());
    #[cfg(feature = "plugin-auth")]
    let kernel = kernel.plugin(objectos_auth::AuthPlugin::default());
    // Each plugin section of objectos.yml (checked against its type when the file was read)
    // becomes the kernel configuration of the plugin that declared it.
    let mut kernel = kernel;
    for section in config_sections() {
        if let Some(value) = config.plugins.get(section.name) {
            kernel = kernel.config(section.plugin, value.clone());
        }
    }
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
    match control.local_addr() {
        Some(addr) => println!("ObjectOS listening on http://{addr}"),
        None => println!("ObjectOS started (no HTTP listener)"),
    }
    kernel.run_until_signal().await?;
    Ok(ExitCode::SUCCESS)
}

async fn migrate(cli: &Cli, args: &MigrateArgs, cwd: &Path) -> anyhow::Result<ExitCode> {
    let flags: config::Layer = args.common.layer();
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
    let engine = DataEngine::open(DataConfig {
        auto_migrate: false,
        ..data_config(&config)
    })
    .await?;
    let plan = engine.plan_migration().await?;
    if args.dry_run {
        println!("-- migration plan for {}", redact_url(&config.database_url));
        println!("{plan}");
        return Ok(ExitCode::SUCCESS);
    }
    println!("Migrating {}", redact_url(&config.database_url));
    let report = engine.migrate(&|step| println!("  {step}")).await?;
    println!(
        "Done: {} step(s) applied, {} manual step(s) skipped, {} object(s) recorded",
        report.applied, report.skipped_manual, report.objects_recorded
    );
    Ok(ExitCode::SUCCESS)
}

fn validate(args: &ValidateArgs) -> ExitCode {
    let report = match audit_dirs(std::slice::from_ref(&args.dir)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("objectos: {e}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    if args.json {
        let json = serde_json::json!({
            "diagnostics": report.diagnostics,
            "filesChecked": report.files_checked,
            "objects": report.objects,
            "errors": report.error_count(),
            "warnings": report.warning_count(),
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&json).unwrap_or_default()
        );
        return if report.error_count() > 0 {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        };
    }
    for d in &report.diagnostics {
        println!("{d}");
    }
    println!(
        "validate: {} file(s), {} object(s): {} error(s), {} warning(s)",
        report.files_checked,
        report.objects,
        report.error_count(),
        report.warning_count()
    );
    if report.error_count() > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// `objectos audit verify|export`: works on the database directly, without starting the server.
#[cfg(feature = "plugin-audit")]
async fn audit(cli: &Cli, args: &cli::AuditArgs, cwd: &Path) -> anyhow::Result<ExitCode> {
    let config = match load_config(cli, cwd, args.common.layer()) {
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
                println!(
                    "BROKEN tenant {tenant} at seq {} (event {}): {}",
                    b.seq,
                    b.event_id.as_deref().unwrap_or("-"),
                    b.reason
                );
            }
            println!(
                "audit verify: {} chain(s), {} event(s): {}",
                report.tenants,
                report.events,
                if report.ok() { "ok" } else { "BROKEN" }
            );
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
                None => print!("{text}"),
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
    let config = match load_config(cli, cwd, create.common.layer()) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    if !create.password_stdin {
        anyhow::bail!("user create: pass --password-stdin and write the password to stdin");
    }
    let mut password = String::new();
    std::io::stdin().read_line(&mut password)?;
    let password = password.trim_end_matches(['\r', '\n']);
    let engine = DataEngine::open(data_config(&config)).await?;
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
            println!(
                "Created user {id} ({}){}",
                create.email.trim().to_lowercase(),
                if create.admin {
                    " as administrator"
                } else {
                    ""
                }
            );
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
