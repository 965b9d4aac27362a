//! The command line: `objectos serve|migrate|validate|config|new|audit|user|jobs`, parsed with clap derive.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{self, Layer};

/// ObjectOS: a metadata-driven business runtime; serves a REST API for the objects described in YAML.
#[derive(Debug, Parser)]
#[command(
    name = "objectos",
    version,
    long_about = None,
    // A bare `objectos` shows the command list rather than a one-line usage error.
    arg_required_else_help = true,
    after_help = "Start with `objectos serve DIR` (DIR: a folder of *.object.yml files, e.g. presets/crm); `objectos help COMMAND` explains each command."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// The options every command accepts, before or after the subcommand's name
/// (`objectos --database-url URL audit verify` and `objectos audit verify --database-url URL`
/// are the same): clap's `global` copies them onto every subcommand, nested ones included.
/// Commands that never open the database (`validate`, `config schema`) accept and ignore them.
#[derive(Debug, Clone, Default, Args)]
pub struct GlobalArgs {
    /// Configuration file (default: ./objectos.yml when present).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Database URL: sqlite://PATH, sqlite::memory: or postgres://USER:PASS@HOST/DB [env: OBJECTOS_DATABASE_URL].
    #[arg(long, global = true, value_name = "URL", value_parser = config::check_database_url)]
    pub database_url: Option<String>,

    /// Runtime mode: development, production or test [env: OBJECTOS_MODE].
    #[arg(long, global = true, value_name = "MODE", value_parser = ["development", "production", "test"])]
    pub mode: Option<String>,

    /// Log format on stderr: text or json (one JSON object a line, with the request id) [env: OBJECTOS_LOG_FORMAT].
    #[arg(long, global = true, value_name = "FORMAT", value_parser = ["text", "json"])]
    pub log_format: Option<String>,
}

// NOTE: the first line of each variant's doc comment is its line in `objectos --help`; keep
// each to one line.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the REST API for the metadata in DIR (default 127.0.0.1:3000, SQLite ./objectos.db).
    Serve(ServeArgs),
    /// Bring the database schema up to date with the metadata (additive only; --dry-run plans).
    Migrate(MigrateArgs),
    /// Check the metadata in DIR against the spec (same output as `cargo xtask spec-audit`).
    Validate(ValidateArgs),
    /// Configuration tools: `config schema` prints the JSON Schema of `objectos.yml`.
    Config(ConfigArgs),
    /// Scaffolding: `new plugin NAME [--dir ROOT]` writes a plugin crate under crates/plugins/.
    New(crate::scaffold::NewArgs),
    /// Audit trail tools: `audit verify` checks the hash chains, `audit export` writes events.
    #[cfg(feature = "plugin-audit")]
    Audit(AuditArgs),
    /// User accounts: `user create --email E --password-stdin [--admin]`.
    #[cfg(feature = "plugin-auth")]
    User(UserArgs),
    /// Background jobs: `jobs list`, `jobs retry ID`, `jobs dead-letters [--replay ID]`.
    #[cfg(feature = "plugin-jobs")]
    Jobs(JobsArgs),
    /// Translations: `i18n extract [DIR] [--locale L]` prints a bundle skeleton of every
    /// translatable string of the metadata folder.
    #[cfg(feature = "plugin-i18n")]
    I18n(I18nArgs),
}

/// The metadata folder of the commands that open the database.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Folder with *.object.yml files (default: metadataDirs from the config, else none).
    #[arg(value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Address to listen on, HOST:PORT (port 0 picks a free port) [env: OBJECTOS_LISTEN].
    #[arg(long, value_name = "ADDR:PORT", value_parser = config::check_listen)]
    pub listen: Option<String>,

    /// Largest request body, e.g. 1048576 or 2MiB [env: OBJECTOS_HTTP_BODY_LIMIT].
    #[arg(long, value_name = "SIZE", value_parser = config::parse_size)]
    pub body_limit: Option<u64>,

    /// Print the effective configuration (file < env < flags, every plugin section with its
    /// defaults, secrets and the database password redacted) and exit; FORMAT is text (one
    /// `dotted.key: value` line each, the default), yaml or json.
    #[arg(
        long,
        value_name = "FORMAT",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "text",
        value_parser = clap::builder::ValueParser::new(|s: &str| s.parse::<config::PrintFormat>())
    )]
    pub print_config: Option<config::PrintFormat>,

    /// Development: reload the metadata folders when a file changes. A valid edit swaps every
    /// object and plugin metadata item at once (with the additive schema sync); an edit with
    /// errors keeps the running metadata and logs every problem with its file and line.
    #[arg(long)]
    pub watch: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub command: ConfigCommand,
}

#[derive(Debug, Clone, Copy, Subcommand)]
pub enum ConfigCommand {
    /// Print the JSON Schema of the whole `objectos.yml` (core keys and the section of every
    /// plugin compiled in) as JSON.
    Schema,
}

#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Print the plan's SQL without changing the database.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ValidateArgs {
    /// Folder (or file) to check.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,

    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

impl GlobalArgs {
    /// The global flags as the highest-precedence configuration layer.
    pub fn layer(&self) -> Layer {
        Layer {
            database_url: self.database_url.clone(),
            mode: self.mode.as_deref().and_then(|m| m.parse().ok()),
            log_format: self.log_format.as_deref().and_then(|f| f.parse().ok()),
            ..Layer::default()
        }
    }
}

impl CommonArgs {
    /// The global flags and DIR as the highest-precedence configuration layer.
    pub fn layer(&self, global: &GlobalArgs) -> Layer {
        Layer {
            metadata_dirs: self.dir.clone().map(|d| vec![d]),
            ..global.layer()
        }
    }
}

impl ServeArgs {
    pub fn layer(&self, global: &GlobalArgs) -> Layer {
        Layer {
            listen: self.listen.clone(),
            body_limit: self.body_limit,
            ..self.common.layer(global)
        }
    }
}

#[cfg(feature = "plugin-i18n")]
#[derive(Debug, Clone, Args)]
pub struct I18nArgs {
    #[command(subcommand)]
    pub command: I18nCommand,
}

#[cfg(feature = "plugin-i18n")]
#[derive(Debug, Clone, Subcommand)]
pub enum I18nCommand {
    /// Print a `*.translation.yml` skeleton for LOCALE of every translatable string of the
    /// objects in DIR (labels, help texts, option labels, rule messages); strings the folder's
    /// bundles already translate keep their translation.
    Extract {
        /// The metadata folder.
        #[arg(value_name = "DIR", default_value = ".")]
        dir: PathBuf,
        /// The locale to write the skeleton for.
        #[arg(long, value_name = "L", default_value = "de")]
        locale: String,
    },
}

#[cfg(feature = "plugin-jobs")]
#[derive(Debug, Clone, Args)]
pub struct JobsArgs {
    #[command(subcommand)]
    pub command: JobsCommand,
}

#[cfg(feature = "plugin-jobs")]
#[derive(Debug, Clone, Subcommand)]
pub enum JobsCommand {
    /// Jobs, newest first, one per line (id, status, handler, queue, attempts, error).
    List {
        /// Only jobs in this state (scheduled, pending, running, completed, failed, cancelled, dead).
        #[arg(long)]
        status: Option<String>,
        /// Only this queue.
        #[arg(long)]
        queue: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Print JSON instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Run a failed, dead or cancelled job again with fresh attempts.
    Retry {
        #[arg(value_name = "ID")]
        id: String,
    },
    /// Dead jobs (attempts used up or failed fatally); `--replay ID` runs one again.
    DeadLetters {
        #[arg(long, value_name = "ID")]
        replay: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

#[cfg(feature = "plugin-audit")]
#[derive(Debug, Clone, Args)]
pub struct AuditArgs {
    // No DIR: the audit trail lives in the database alone, so a metadata folder would be
    // accepted and silently ignored.
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[cfg(feature = "plugin-audit")]
#[derive(Debug, Clone, Subcommand)]
pub enum AuditCommand {
    /// Walk every tenant's hash chain and report the first broken link (exit code 1 when broken).
    Verify {
        /// Only this tenant's chain ("" for events without a tenant).
        #[arg(long, value_name = "TENANT")]
        tenant: Option<String>,
    },
    /// Write audit events (newest first) as JSON or CSV.
    Export(AuditExportArgs),
}

#[cfg(feature = "plugin-audit")]
#[derive(Debug, Clone, Args)]
pub struct AuditExportArgs {
    /// Output format.
    #[arg(long, default_value = "json", value_parser = ["json", "csv"])]
    pub format: String,
    /// Write to this file instead of stdout.
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
    /// Only this event type (`auth.*` selects a family).
    #[arg(long)]
    pub event_type: Option<String>,
    /// Only this actor id.
    #[arg(long)]
    pub actor: Option<String>,
    /// Only this object.
    #[arg(long)]
    pub object: Option<String>,
    /// Only this record id.
    #[arg(long)]
    pub record_id: Option<String>,
    /// From this time (RFC 3339 or YYYY-MM-DD, inclusive).
    #[arg(long)]
    pub from: Option<String>,
    /// Up to this time (exclusive).
    #[arg(long)]
    pub to: Option<String>,
    /// Only this tenant.
    #[arg(long)]
    pub tenant: Option<String>,
}

#[cfg(feature = "plugin-auth")]
#[derive(Debug, Clone, Args)]
pub struct UserArgs {
    #[command(subcommand)]
    pub command: UserCommand,
}

#[cfg(feature = "plugin-auth")]
#[derive(Debug, Clone, Subcommand)]
pub enum UserCommand {
    /// Create an account (the first one becomes the owner of the default organization).
    Create(UserCreateArgs),
}

#[cfg(feature = "plugin-auth")]
#[derive(Debug, Clone, Args)]
pub struct UserCreateArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Sign-in email.
    #[arg(long)]
    pub email: String,
    /// Display name (default: the part of the email before `@`).
    #[arg(long)]
    pub name: Option<String>,
    /// Make the user an administrator.
    #[arg(long)]
    pub admin: bool,
    /// Read the password from the first line of stdin (required: never pass it as an argument).
    #[arg(long)]
    pub password_stdin: bool,
}
