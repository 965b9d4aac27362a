//! Server configuration: `objectos.yml` < `OBJECTOS_*` environment < command-line flags.
//!
//! The file is parsed with the spec crate's located YAML parser so every unknown key and every bad
//! value is reported with its line and dotted path. Each layer is a [`Layer`] of optional values;
//! [`resolve`] folds them in precedence order onto the defaults.

use std::fmt;
use std::path::{Path, PathBuf};

use objectos_http::config::{IpCidr, parse_origin};
use objectos_spec::RuntimeMode;
use objectos_spec::diag::{Diagnostic, Severity};
use objectos_spec::security::SharingModel;
use objectos_spec::yaml::{self, Format, Located, Node};

/// Name of the configuration file looked up in the working directory.
pub const CONFIG_FILE: &str = "objectos.yml";

/// Default database: a SQLite file in the working directory, created when missing.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://./objectos.db?mode=rwc";

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:3000";

/// Default request body limit (1 MiB).
pub const DEFAULT_BODY_LIMIT: u64 = 1024 * 1024;

/// Errors while assembling the configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// Every problem of the file (syntax, bad values); unknown keys are warnings and are not here.
    #[error("{}", diagnostics.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    File { diagnostics: Vec<Diagnostic> },
    /// A bad value from the environment or a flag; `source` names the variable or flag.
    #[error("{origin}: {message}")]
    Value { origin: String, message: String },
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!(
                "unknown log format `{other}`; expected `text` or `json`"
            )),
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Text => "text",
            Self::Json => "json",
        })
    }
}

/// One configuration source; `None` means "not set here".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layer {
    pub listen: Option<String>,
    pub database_url: Option<String>,
    pub metadata_dirs: Option<Vec<PathBuf>>,
    pub mode: Option<RuntimeMode>,
    pub body_limit: Option<u64>,
    pub cors_origins: Option<Vec<String>>,
    pub trusted_proxies: Option<Vec<IpCidr>>,
    pub trusted_origins: Option<Vec<String>>,
    pub hsts_max_age: Option<u64>,
    pub log_level: Option<String>,
    pub log_format: Option<LogFormat>,
    /// Plugin sections (`auth:`, `audit:`) as JSON, handed to the plugin as its kernel configuration.
    pub plugins: Option<std::collections::BTreeMap<String, serde_json::Value>>,
    /// The `permissions:` section, checked here because the server builds the plugin's settings.
    pub permissions: Option<PermissionsSettings>,
    /// The `data:` section: the data engine's write limits.
    pub data: Option<objectos_data::WriteLimits>,
}

/// The `permissions:` section of `objectos.yml`: the operator's settings of the permissions
/// plugin (`None` = the plugin's default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PermissionsSettings {
    /// `defaultSharing`: the org-wide default of objects that declare no `sharingModel`.
    pub default_sharing: Option<SharingModel>,
    /// `guestSet`: the permission set anonymous callers get.
    pub guest_set: Option<String>,
}

/// The `defaultSharing` values an operator may choose, in the spelling `*.object.yml` uses.
pub fn parse_default_sharing(text: &str) -> Result<SharingModel, String> {
    match text.trim() {
        "private" => Ok(SharingModel::Private),
        "public_read" | "read" => Ok(SharingModel::PublicRead),
        "public_read_write" | "read_write" => Ok(SharingModel::PublicReadWrite),
        // It follows an object's master_detail parent, which most objects do not have; as a default
        // it would hide every record of them, so it is only accepted on the object itself.
        "controlled_by_parent" => Err(
            "`controlled_by_parent` only makes sense on an object with a master_detail field; set it as that object's sharingModel and choose private, public_read or public_read_write here"
                .to_owned(),
        ),
        other => Err(format!(
            "unknown sharing model `{other}`; expected private, public_read or public_read_write"
        )),
    }
}

/// The snake_case name of a sharing model, as written in `objectos.yml`.
pub fn sharing_name(model: SharingModel) -> &'static str {
    match model {
        SharingModel::Private => "private",
        SharingModel::PublicRead => "public_read",
        SharingModel::PublicReadWrite => "public_read_write",
        SharingModel::ControlledByParent => "controlled_by_parent",
    }
}

/// A permission set name: what `*.permission.yml` accepts (`^[a-z_][a-z0-9_]*$`).
fn check_set_name(text: &str) -> Result<String, String> {
    let mut chars = text.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    if first_ok
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && text.len() <= 255
    {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "`{text}` is not a permission set name; expected lowercase letters, digits and underscores, starting with a letter or underscore"
        ))
    }
}

impl Layer {
    /// Values set in `over` replace the ones here.
    fn overlay(mut self, over: Layer) -> Layer {
        macro_rules! take {
            ($($f:ident),*) => { $( if over.$f.is_some() { self.$f = over.$f; } )* };
        }
        take!(
            listen,
            database_url,
            metadata_dirs,
            mode,
            body_limit,
            cors_origins,
            trusted_proxies,
            trusted_origins,
            hsts_max_age,
            log_level,
            log_format,
            plugins,
            permissions,
            data
        );
        self
    }
}

/// The resolved configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    pub listen: String,
    pub database_url: String,
    pub metadata_dirs: Vec<PathBuf>,
    pub mode: RuntimeMode,
    pub body_limit: u64,
    /// Empty means any origin (permissive, for development).
    pub cors_origins: Vec<String>,
    /// `http.trustedProxies`: peers whose forwarding headers name the client (empty: none).
    pub trusted_proxies: Vec<IpCidr>,
    /// `http.trustedOrigins`: origins (normalized) whose pages may send cookie-authenticated writes.
    pub trusted_origins: Vec<String>,
    /// `http.hstsMaxAge`: seconds of `Strict-Transport-Security` (0: none).
    pub hsts_max_age: u64,
    /// A tracing `EnvFilter` directive such as `info` or `objectos_http=debug,info`.
    pub log_level: String,
    pub log_format: LogFormat,
    /// Plugin sections from `objectos.yml` by section name (`auth`, `audit`); each plugin validates its own.
    pub plugins: std::collections::BTreeMap<String, serde_json::Value>,
    /// The `permissions:` section (already validated).
    pub permissions: PermissionsSettings,
    /// The `data:` section: records per bulk request, the writer hold bound, write rates.
    pub data: objectos_data::WriteLimits,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.to_owned(),
            database_url: DEFAULT_DATABASE_URL.to_owned(),
            metadata_dirs: Vec::new(),
            mode: RuntimeMode::Development,
            body_limit: DEFAULT_BODY_LIMIT,
            cors_origins: Vec::new(),
            trusted_proxies: Vec::new(),
            trusted_origins: Vec::new(),
            hsts_max_age: 0,
            log_level: "info".to_owned(),
            log_format: LogFormat::Text,
            plugins: std::collections::BTreeMap::new(),
            permissions: PermissionsSettings::default(),
            data: objectos_data::WriteLimits::default(),
        }
    }
}

impl ServerConfig {
    /// Human-readable summary with the database password redacted (printed by `--print-config`).
    pub fn summary(&self) -> String {
        let dirs: Vec<String> = self
            .metadata_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        format!(
            "listen: {}\ndatabaseUrl: {}\nmetadataDirs: [{}]\nmode: {}\nhttp.bodyLimit: {}\nhttp.cors.origins: [{}]\nhttp.trustedProxies: [{}]\nhttp.trustedOrigins: [{}]\nhttp.hstsMaxAge: {}\nlog.level: {}\nlog.format: {}\npermissions.defaultSharing: {}\npermissions.guestSet: {}\ndata.maxBatchRecords: {}\ndata.maxWriteMillis: {}\ndata.perOrganizationPerSecond: {}\ndata.perUserPerSecond: {}\ndata.burst: {}\n",
            self.listen,
            redact_url(&self.database_url),
            dirs.join(", "),
            self.mode.as_str(),
            self.body_limit,
            self.cors_origins.join(", "),
            self.trusted_proxies
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            self.trusted_origins.join(", "),
            self.hsts_max_age,
            self.log_level,
            self.log_format,
            self.permissions
                .default_sharing
                .map_or("(plugin default)", sharing_name),
            self.permissions
                .guest_set
                .as_deref()
                .unwrap_or("(plugin default)"),
            self.data.max_batch_records,
            self.data.max_write_millis,
            self.data.per_organization_per_second,
            self.data.per_user_per_second,
            self.data.burst,
        )
    }
}

/// Folds the layers (lowest precedence first) onto the defaults.
pub fn resolve(file: Layer, env: Layer, flags: Layer) -> ServerConfig {
    let merged = file.overlay(env).overlay(flags);
    let d = ServerConfig::default();
    ServerConfig {
        listen: merged.listen.unwrap_or(d.listen),
        database_url: merged.database_url.unwrap_or(d.database_url),
        metadata_dirs: merged.metadata_dirs.unwrap_or(d.metadata_dirs),
        mode: merged.mode.unwrap_or(d.mode),
        body_limit: merged.body_limit.unwrap_or(d.body_limit),
        cors_origins: merged.cors_origins.unwrap_or(d.cors_origins),
        trusted_proxies: merged.trusted_proxies.unwrap_or(d.trusted_proxies),
        trusted_origins: merged.trusted_origins.unwrap_or(d.trusted_origins),
        hsts_max_age: merged.hsts_max_age.unwrap_or(d.hsts_max_age),
        log_level: merged.log_level.unwrap_or(d.log_level),
        log_format: merged.log_format.unwrap_or(d.log_format),
        plugins: merged.plugins.unwrap_or(d.plugins),
        permissions: merged.permissions.unwrap_or(d.permissions),
        data: merged.data.unwrap_or(d.data),
    }
}

/// Replaces the password of a URL such as `postgres://user:secret@host/db` with `***`.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &authority[..at];
    let Some(colon) = userinfo.find(':') else {
        return url.to_owned();
    };
    format!(
        "{}://{}:***@{}{}",
        &url[..scheme_end],
        &userinfo[..colon],
        &authority[at + 1..],
        &rest[authority_end..]
    )
}

/// Parses a size: a plain number of bytes, or a number with `B`, `KB`/`KiB`, `MB`/`MiB`, `GB`/`GiB`
/// (both spellings are powers of 1024, which is what people mean for body limits).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| {
        format!("`{text}` is not a size; expected bytes such as `1048576` or `1MiB`, `512KB`")
    })?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1024,
        "m" | "mb" | "mib" => 1024 * 1024,
        "g" | "gb" | "gib" => 1024 * 1024 * 1024,
        other => {
            return Err(format!(
                "`{text}` has unknown unit `{other}`; expected B, KB, KiB, MB, MiB, GB or GiB"
            ));
        }
    };
    let size = n
        .checked_mul(mult)
        .ok_or_else(|| format!("`{text}` is too large"))?;
    if size == 0 {
        return Err(format!(
            "`{text}` is zero; the body limit must be at least 1 byte"
        ));
    }
    Ok(size)
}

/// Checks a `host:port` listen address.
pub fn check_listen(text: &str) -> Result<String, String> {
    let t = text.trim();
    let Some((host, port)) = t.rsplit_once(':') else {
        return Err(format!(
            "`{text}` is not an address; expected HOST:PORT such as `127.0.0.1:3000`"
        ));
    };
    if host.is_empty() {
        return Err(format!(
            "`{text}` has no host; expected HOST:PORT such as `0.0.0.0:3000`"
        ));
    }
    port.parse::<u16>().map_err(|_| {
        format!("`{text}` has port `{port}`, which is not a number from 0 to 65535")
    })?;
    Ok(t.to_owned())
}

/// Checks a database URL's scheme.
pub fn check_database_url(text: &str) -> Result<String, String> {
    let t = text.trim();
    if t.starts_with("sqlite:") || t.starts_with("postgres://") || t.starts_with("postgresql://") {
        Ok(t.to_owned())
    } else {
        Err(format!(
            "`{}` is not a supported database URL; expected sqlite://PATH, sqlite::memory: or postgres://USER@HOST/DB",
            redact_url(t)
        ))
    }
}

fn parse_mode(text: &str) -> Result<RuntimeMode, String> {
    match text.parse::<RuntimeMode>()? {
        mode @ (RuntimeMode::Development | RuntimeMode::Production | RuntimeMode::Test) => Ok(mode),
        other => Err(format!(
            "mode `{}` is not supported by the server; expected development, production or test",
            other.as_str()
        )),
    }
}

/// Parses trusted proxies; the error names the entry at fault (`[i]` suffix of `origin`).
/// Origins as `http.trustedOrigins` takes them; the error names the entry at fault.
fn parse_origins(items: &[String]) -> Result<Vec<String>, (usize, String)> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| parse_origin(item).map_err(|m| (i, m)))
        .collect()
}

/// `http.hstsMaxAge`: whole seconds.
fn parse_seconds(text: &str) -> Result<u64, String> {
    text.trim().parse::<u64>().map_err(|_| {
        format!("`{text}` is not a number of seconds; expected e.g. 31536000 (one year) or 0 (off)")
    })
}

fn parse_proxies(items: &[String]) -> Result<Vec<IpCidr>, (usize, String)> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| item.parse::<IpCidr>().map_err(|m| (i, m)))
        .collect()
}

/// Comma-separated list helper for environment variables.
fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Reads the `OBJECTOS_*` variables through `lookup` (the real environment in `main`, a map in tests).
pub fn env_layer(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Layer, ConfigError> {
    let bad = |var: &str, message: String| ConfigError::Value {
        origin: var.to_owned(),
        message,
    };
    let mut layer = Layer::default();
    if let Some(v) = lookup("OBJECTOS_LISTEN") {
        layer.listen = Some(check_listen(&v).map_err(|m| bad("OBJECTOS_LISTEN", m))?);
    }
    if let Some(v) = lookup("OBJECTOS_DATABASE_URL") {
        layer.database_url =
            Some(check_database_url(&v).map_err(|m| bad("OBJECTOS_DATABASE_URL", m))?);
    }
    if let Some(v) = lookup("OBJECTOS_METADATA_DIRS") {
        layer.metadata_dirs = Some(split_list(&v).into_iter().map(PathBuf::from).collect());
    }
    if let Some(v) = lookup("OBJECTOS_MODE") {
        layer.mode = Some(parse_mode(&v).map_err(|m| bad("OBJECTOS_MODE", m))?);
    }
    if let Some(v) = lookup("OBJECTOS_HTTP_BODY_LIMIT") {
        layer.body_limit = Some(parse_size(&v).map_err(|m| bad("OBJECTOS_HTTP_BODY_LIMIT", m))?);
    }
    if let Some(v) = lookup("OBJECTOS_CORS_ORIGINS") {
        layer.cors_origins = Some(split_list(&v));
    }
    if let Some(v) = lookup("OBJECTOS_HTTP_TRUSTED_PROXIES") {
        layer.trusted_proxies = Some(
            parse_proxies(&split_list(&v))
                .map_err(|(_, m)| bad("OBJECTOS_HTTP_TRUSTED_PROXIES", m))?,
        );
    }
    if let Some(v) = lookup("OBJECTOS_HTTP_TRUSTED_ORIGINS") {
        layer.trusted_origins = Some(
            parse_origins(&split_list(&v))
                .map_err(|(_, m)| bad("OBJECTOS_HTTP_TRUSTED_ORIGINS", m))?,
        );
    }
    if let Some(v) = lookup("OBJECTOS_HTTP_HSTS_MAX_AGE") {
        layer.hsts_max_age =
            Some(parse_seconds(&v).map_err(|m| bad("OBJECTOS_HTTP_HSTS_MAX_AGE", m))?);
    }
    if let Some(v) = lookup("OBJECTOS_LOG") {
        layer.log_level = Some(v);
    }
    if let Some(v) = lookup("OBJECTOS_LOG_FORMAT") {
        layer.log_format = Some(v.parse().map_err(|m| bad("OBJECTOS_LOG_FORMAT", m))?);
    }
    Ok(layer)
}

/// A parsed configuration file: its layer and the warnings (unknown keys) to print.
#[derive(Debug, Clone, Default)]
pub struct FileLayer {
    pub layer: Layer,
    pub warnings: Vec<Diagnostic>,
}

/// Reads `objectos.yml`: `explicit` (from `--config`) must exist; otherwise `./objectos.yml` is
/// used when present.
pub fn load_file(explicit: Option<&Path>, cwd: &Path) -> Result<FileLayer, ConfigError> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => {
            let p = cwd.join(CONFIG_FILE);
            if !p.exists() {
                return Ok(FileLayer::default());
            }
            p
        }
    };
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse_file(
        &path.display().to_string(),
        &text,
        path.parent().unwrap_or(cwd),
    )
}

/// Parses the text of a configuration file. Relative `metadataDirs` are resolved against `base`.
pub fn parse_file(file: &str, text: &str, base: &Path) -> Result<FileLayer, ConfigError> {
    let parsed = yaml::parse(file, text, Format::from_path(file));
    let mut errors: Vec<Diagnostic> = parsed
        .diagnostics
        .into_iter()
        .filter(|d| d.is_error())
        .collect();
    let mut warnings = Vec::new();
    let mut layer = Layer::default();
    let Some(root) = parsed.root else {
        return Err(ConfigError::File {
            diagnostics: errors,
        });
    };
    let mut cx = Walk {
        file,
        errors: &mut errors,
        warnings: &mut warnings,
    };
    let Some(entries) = root.entries() else {
        cx.error(
            &root,
            "",
            format!("expected a mapping of settings, found {}", root.kind_name()),
        );
        return Err(ConfigError::File {
            diagnostics: errors,
        });
    };
    for (key, value) in entries {
        let path = key.name.as_str();
        match path {
            "listen" => {
                layer.listen = cx
                    .string(value, path)
                    .and_then(|s| cx.check(value, path, check_listen(&s)))
            }
            "databaseUrl" => {
                layer.database_url = cx
                    .string(value, path)
                    .and_then(|s| cx.check(value, path, check_database_url(&s)))
            }
            "metadataDirs" => {
                layer.metadata_dirs = cx.string_list(value, path).map(|dirs| {
                    dirs.into_iter()
                        .map(|d| {
                            let p = PathBuf::from(d);
                            if p.is_absolute() { p } else { base.join(p) }
                        })
                        .collect()
                })
            }
            "mode" => {
                layer.mode = cx
                    .string(value, path)
                    .and_then(|s| cx.check(value, path, parse_mode(&s)))
            }
            "http" => cx.section(value, path, &mut |cx, key, value, path| match key {
                "bodyLimit" => {
                    let parsed = match &value.node {
                        Node::Number(n) => n.as_u64().ok_or_else(|| {
                            format!(
                                "`{n}` is not a size; expected a positive whole number of bytes"
                            )
                        }),
                        Node::String(s) => parse_size(s),
                        _ => Err(format!(
                            "expected a size such as 1048576 or \"1MiB\", found {}",
                            value.kind_name()
                        )),
                    };
                    layer.body_limit = cx.check(value, path, parsed);
                }
                "cors" => cx.section(value, path, &mut |cx, key, value, path| match key {
                    "origins" => layer.cors_origins = cx.string_list(value, path),
                    _ => cx.unknown(value, path, "origins"),
                }),
                "trustedProxies" => {
                    if let Some(items) = cx.string_list(value, path) {
                        match parse_proxies(&items) {
                            Ok(list) => layer.trusted_proxies = Some(list),
                            Err((i, m)) => {
                                // Point at the entry itself when the value is a list.
                                let (at, at_path) = match &value.node {
                                    Node::Seq(seq) => {
                                        seq.get(i).map(|item| (item, format!("{path}[{i}]")))
                                    }
                                    _ => None,
                                }
                                .unwrap_or((value, path.to_owned()));
                                cx.error(at, &at_path, m);
                            }
                        }
                    }
                }
                "trustedOrigins" => {
                    if let Some(items) = cx.string_list(value, path) {
                        match parse_origins(&items) {
                            Ok(list) => layer.trusted_origins = Some(list),
                            Err((i, m)) => {
                                let (at, at_path) = match &value.node {
                                    Node::Seq(seq) => {
                                        seq.get(i).map(|item| (item, format!("{path}[{i}]")))
                                    }
                                    _ => None,
                                }
                                .unwrap_or((value, path.to_owned()));
                                cx.error(at, &at_path, m);
                            }
                        }
                    }
                }
                "hstsMaxAge" => {
                    let parsed = match &value.node {
                        Node::Number(n) => n.as_u64().ok_or_else(|| {
                            format!("`{n}` is not a number of seconds; expected a whole number such as 31536000")
                        }),
                        Node::String(s) => parse_seconds(s),
                        _ => Err(format!(
                            "expected a number of seconds such as 31536000, found {}",
                            value.kind_name()
                        )),
                    };
                    layer.hsts_max_age = cx.check(value, path, parsed);
                }
                _ => cx.unknown(
                    value,
                    path,
                    "bodyLimit, cors, trustedProxies, trustedOrigins, hstsMaxAge",
                ),
            }),
            "log" => cx.section(value, path, &mut |cx, key, value, path| match key {
                "level" => layer.log_level = cx.string(value, path),
                "format" => {
                    layer.log_format = cx
                        .string(value, path)
                        .and_then(|s| cx.check(value, path, s.parse()))
                }
                _ => cx.unknown(value, path, "level, format"),
            }),
            "auth" | "audit" => {
                if value.entries().is_some() {
                    layer
                        .plugins
                        .get_or_insert_with(Default::default)
                        .insert(path.to_owned(), value.to_json());
                } else {
                    cx.error(
                        value,
                        path,
                        format!(
                            "expected a mapping of {path} settings (see the plugin's README), found {}",
                            value.kind_name()
                        ),
                    );
                }
            }
            "data" => {
                // Typed through serde: an unknown key (a typo of a limit) is an error naming it.
                match serde_json::from_value::<objectos_data::WriteLimits>(value.to_json()) {
                    Ok(limits) => match limits.validate() {
                        Ok(()) => layer.data = Some(limits),
                        Err(m) => cx.error(value, path, m),
                    },
                    // serde's message names the key and lists the known ones.
                    Err(e) => cx.error(value, path, e.to_string()),
                }
            }
            "permissions" => {
                let mut settings = PermissionsSettings::default();
                cx.section(value, path, &mut |cx, key, value, path| match key {
                    "defaultSharing" => {
                        settings.default_sharing = cx
                            .string(value, path)
                            .and_then(|s| cx.check(value, path, parse_default_sharing(&s)))
                    }
                    "guestSet" => {
                        settings.guest_set = cx
                            .string(value, path)
                            .and_then(|s| cx.check(value, path, check_set_name(&s)))
                    }
                    // Elsewhere an unknown key is a warning; here a mistyped security setting
                    // would silently leave the more open default in force, so it is an error.
                    _ => cx.error(
                        value,
                        path,
                        "unknown key; known keys here: defaultSharing, guestSet".to_owned(),
                    ),
                });
                layer.permissions = Some(settings);
            }
            _ => cx.unknown(
                value,
                path,
                "listen, databaseUrl, metadataDirs, mode, http, log, auth, audit, permissions, data",
            ),
        }
    }
    if errors.is_empty() {
        Ok(FileLayer { layer, warnings })
    } else {
        Err(ConfigError::File {
            diagnostics: errors,
        })
    }
}

/// Walk state for [`parse_file`]: collects errors and warnings with their path and line.
struct Walk<'a> {
    file: &'a str,
    errors: &'a mut Vec<Diagnostic>,
    warnings: &'a mut Vec<Diagnostic>,
}

type SectionFn<'f> = dyn FnMut(&mut Walk<'_>, &str, &Located, &str) + 'f;

impl Walk<'_> {
    fn diag(&self, at: &Located, path: &str, severity: Severity, message: String) -> Diagnostic {
        Diagnostic {
            file: self.file.to_owned(),
            line: at.line,
            column: at.column,
            path: path.to_owned(),
            severity,
            message,
        }
    }

    fn error(&mut self, at: &Located, path: &str, message: String) {
        let d = self.diag(at, path, Severity::Error, message);
        self.errors.push(d);
    }

    fn unknown(&mut self, at: &Located, path: &str, known: &str) {
        let d = self.diag(
            at,
            path,
            Severity::Warning,
            format!("unknown key; known keys here: {known}"),
        );
        self.warnings.push(d);
    }

    fn check<T>(&mut self, at: &Located, path: &str, result: Result<T, String>) -> Option<T> {
        result.map_err(|m| self.error(at, path, m)).ok()
    }

    fn string(&mut self, value: &Located, path: &str) -> Option<String> {
        match &value.node {
            Node::String(s) => Some(s.clone()),
            _ => {
                self.error(
                    value,
                    path,
                    format!("expected a string, found {}", value.kind_name()),
                );
                None
            }
        }
    }

    fn string_list(&mut self, value: &Located, path: &str) -> Option<Vec<String>> {
        match &value.node {
            Node::String(s) => Some(vec![s.clone()]),
            Node::Seq(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    out.push(self.string(item, &format!("{path}[{i}]"))?);
                }
                Some(out)
            }
            _ => {
                self.error(
                    value,
                    path,
                    format!("expected a list of strings, found {}", value.kind_name()),
                );
                None
            }
        }
    }

    fn section(&mut self, value: &Located, path: &str, each: &mut SectionFn<'_>) {
        let Some(entries) = value.entries() else {
            self.error(
                value,
                path,
                format!("expected a mapping, found {}", value.kind_name()),
            );
            return;
        };
        for (key, child) in entries {
            let child_path = format!("{path}.{}", key.name);
            each(self, &key.name, child, &child_path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://bob:s3cret@db:5432/app"),
            "postgres://bob:***@db:5432/app"
        );
        assert_eq!(redact_url("postgres://bob@db/app"), "postgres://bob@db/app");
        assert_eq!(
            redact_url("sqlite://./objectos.db?mode=rwc"),
            "sqlite://./objectos.db?mode=rwc"
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1MiB"), Ok(1024 * 1024));
        assert_eq!(parse_size("512kb"), Ok(512 * 1024));
        assert_eq!(parse_size("100"), Ok(100));
        assert!(parse_size("ten").is_err());
        assert!(parse_size("1TB").is_err());
        assert!(parse_size("0").is_err());
    }

    #[test]
    fn plugin_sections_pass_through_as_json() {
        let text = "auth:\n  lockout:\n    maxFailedAttempts: 3\n  cookieSecure: true\naudit:\n  retentionDays: 30\n";
        let f = parse_file("objectos.yml", text, Path::new("/srv")).unwrap();
        let plugins = f.layer.plugins.clone().unwrap();
        assert_eq!(
            plugins["auth"],
            serde_json::json!({"lockout": {"maxFailedAttempts": 3}, "cookieSecure": true})
        );
        assert_eq!(plugins["audit"], serde_json::json!({"retentionDays": 30}));
        let resolved = resolve(f.layer, Layer::default(), Layer::default());
        assert_eq!(resolved.plugins.len(), 2);

        let err = parse_file("objectos.yml", "auth: 5\n", Path::new("/")).unwrap_err();
        assert!(
            err.to_string()
                .contains("objectos.yml:1: auth: expected a mapping of auth settings"),
            "{err}"
        );
    }

    #[test]
    fn data_section_sets_write_limits_and_refuses_unknown_keys() {
        let text = "data:\n  maxBatchRecords: 50\n  perOrganizationPerSecond: 100\n";
        let f = parse_file("objectos.yml", text, Path::new("/srv")).unwrap();
        let resolved = resolve(f.layer, Layer::default(), Layer::default());
        assert_eq!(resolved.data.max_batch_records, 50);
        assert_eq!(resolved.data.per_organization_per_second, 100);
        assert_eq!(resolved.data.max_write_millis, 5_000);
        assert!(resolved.summary().contains("data.maxBatchRecords: 50\n"));
        for (text, says) in [
            (
                "data:\n  maxBatchRecord: 50\n",
                "unknown field `maxBatchRecord`",
            ),
            (
                "data:\n  maxBatchRecords: 0\n",
                "maxBatchRecords must be at least 1",
            ),
        ] {
            let err = parse_file("objectos.yml", text, Path::new("/")).unwrap_err();
            let err = err.to_string();
            assert!(
                err.contains("objectos.yml:2: data: ") && err.contains(says),
                "{err}"
            );
        }
        // Not set: 200 records per bulk request, no rate limit.
        let resolved = resolve(Layer::default(), Layer::default(), Layer::default());
        assert_eq!(resolved.data, objectos_data::WriteLimits::default());
    }

    #[test]
    fn permissions_section_is_checked_with_locations() {
        let text = "permissions:\n  defaultSharing: private\n  guestSet: visitor\n";
        let f = parse_file("objectos.yml", text, Path::new("/srv")).unwrap();
        let expected = PermissionsSettings {
            default_sharing: Some(SharingModel::Private),
            guest_set: Some("visitor".to_owned()),
        };
        assert_eq!(f.layer.permissions, Some(expected.clone()));
        assert!(f.warnings.is_empty(), "{:?}", f.warnings);
        let resolved = resolve(f.layer, Layer::default(), Layer::default());
        assert_eq!(resolved.permissions, expected);
        assert!(
            resolved
                .summary()
                .contains("permissions.defaultSharing: private\npermissions.guestSet: visitor\n"),
            "{}",
            resolved.summary()
        );
        // The object-level spellings are accepted too.
        let f = parse_file(
            "objectos.yml",
            "permissions:\n  defaultSharing: read\n",
            Path::new("/"),
        )
        .unwrap();
        assert_eq!(
            f.layer.permissions.unwrap().default_sharing,
            Some(SharingModel::PublicRead)
        );
        // Nothing set: the plugin's defaults.
        let resolved = resolve(Layer::default(), Layer::default(), Layer::default());
        assert_eq!(resolved.permissions, PermissionsSettings::default());
        assert!(
            resolved
                .summary()
                .contains("permissions.defaultSharing: (plugin default)"),
            "{}",
            resolved.summary()
        );

        // Every problem at once, each with its line and path; an unknown key is an error here.
        let text = "mode: test\npermissions:\n  defaultSharing: secret\n  guestSet: Guest-Set\n  defaultSharng: private\n";
        let err = parse_file("objectos.yml", text, Path::new("/"))
            .unwrap_err()
            .to_string();
        for needle in [
            "objectos.yml:3: permissions.defaultSharing: unknown sharing model `secret`; expected private, public_read or public_read_write",
            "objectos.yml:4: permissions.guestSet: `Guest-Set` is not a permission set name",
            "objectos.yml:5: permissions.defaultSharng: unknown key; known keys here: defaultSharing, guestSet",
        ] {
            assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
        }
        let err = parse_file(
            "objectos.yml",
            "permissions:\n  defaultSharing: controlled_by_parent\n",
            Path::new("/"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("objectos.yml:2: permissions.defaultSharing: `controlled_by_parent` only makes sense on an object with a master_detail field"),
            "{err}"
        );
        for text in ["permissions: private\n", "permissions:\n  guestSet: [a]\n"] {
            let err = parse_file("objectos.yml", text, Path::new("/"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("expected a"), "{text:?}: {err}");
        }
    }

    #[test]
    fn trusted_origins_and_hsts_are_checked_with_locations() {
        let text = "http:\n  trustedOrigins: [\"HTTPS://Console.Example.com/\", http://localhost:5173]\n  hstsMaxAge: 31536000\n";
        let f = parse_file("objectos.yml", text, Path::new("/")).unwrap();
        assert!(f.warnings.is_empty(), "{:?}", f.warnings);
        let resolved = resolve(f.layer, Layer::default(), Layer::default());
        assert_eq!(
            resolved.trusted_origins,
            ["https://console.example.com", "http://localhost:5173"]
        );
        assert_eq!(resolved.hsts_max_age, 31_536_000);
        assert!(resolved.summary().contains(
            "http.trustedOrigins: [https://console.example.com, http://localhost:5173]\nhttp.hstsMaxAge: 31536000\n"
        ));
        let err = parse_file(
            "objectos.yml",
            "http:\n  trustedOrigins: [https://ok.example, \"https://a.example/app\"]\n  hstsMaxAge: soon\n",
            Path::new("/"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains(
                "objectos.yml:2: http.trustedOrigins[1]: `https://a.example/app` is not an origin"
            ),
            "{err}"
        );
        assert!(
            err.contains("objectos.yml:3: http.hstsMaxAge: `soon` is not a number of seconds"),
            "{err}"
        );
        let env = env_layer(&|k| match k {
            "OBJECTOS_HTTP_TRUSTED_ORIGINS" => {
                Some("https://a.example, http://b.example:8080".into())
            }
            "OBJECTOS_HTTP_HSTS_MAX_AGE" => Some("600".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(env.trusted_origins.unwrap().len(), 2);
        assert_eq!(env.hsts_max_age, Some(600));
    }

    #[test]
    fn file_reports_unknown_keys_and_bad_values() {
        let text = "listen: 127.0.0.1:4000\nhttp:\n  bodyLimit: 2MiB\n  cors:\n    origins: [http://a]\n    extra: 1\nlistn: x\n";
        let f = parse_file("objectos.yml", text, Path::new("/srv")).unwrap();
        assert_eq!(f.layer.listen.as_deref(), Some("127.0.0.1:4000"));
        assert_eq!(f.layer.body_limit, Some(2 * 1024 * 1024));
        assert_eq!(f.layer.cors_origins, Some(vec!["http://a".to_owned()]));
        let w: Vec<String> = f.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].starts_with("objectos.yml:6: http.cors.extra: warning: unknown key"),
            "{w:?}"
        );
        assert!(
            w[1].starts_with("objectos.yml:7: listn: warning: unknown key"),
            "{w:?}"
        );

        let err =
            parse_file("objectos.yml", "listen: nope\nmode: fast\n", Path::new("/")).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("objectos.yml:1: listen: `nope` is not an address"),
            "{text}"
        );
        assert!(
            text.contains("objectos.yml:2: mode: unknown mode `fast`"),
            "{text}"
        );
    }

    #[test]
    fn trusted_proxies_are_checked_with_locations() {
        let text = "http:\n  trustedProxies: [10.0.0.0/8, \"::1\", 192.168.1.7]\n";
        let f = parse_file("objectos.yml", text, Path::new("/")).unwrap();
        assert!(f.warnings.is_empty(), "{:?}", f.warnings);
        let resolved = resolve(f.layer, Layer::default(), Layer::default());
        let shown: Vec<String> = resolved
            .trusted_proxies
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(shown, ["10.0.0.0/8", "::1/128", "192.168.1.7/32"]);
        assert!(
            resolved
                .summary()
                .contains("http.trustedProxies: [10.0.0.0/8, ::1/128, 192.168.1.7/32]\n"),
            "{}",
            resolved.summary()
        );
        // Default: none, so forwarding headers are ignored.
        let none = resolve(Layer::default(), Layer::default(), Layer::default());
        assert!(none.trusted_proxies.is_empty());
        assert!(none.summary().contains("http.trustedProxies: []\n"));
        // A single string is a one-entry list.
        let f = parse_file(
            "objectos.yml",
            "http:\n  trustedProxies: 127.0.0.1\n",
            Path::new("/"),
        )
        .unwrap();
        assert_eq!(f.layer.trusted_proxies.unwrap().len(), 1);

        // A bad entry is an error naming the key, the entry and its line.
        let text = "http:\n  trustedProxies:\n    - 10.0.0.0/8\n    - 10.0.0.0/33\n";
        let err = parse_file("objectos.yml", text, Path::new("/"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "objectos.yml:4: http.trustedProxies[1]: `10.0.0.0/33` has prefix length `33`"
            ),
            "{err}"
        );
        let err = parse_file(
            "objectos.yml",
            "http:\n  trustedProxies: proxy.lan\n",
            Path::new("/"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("objectos.yml:2: http.trustedProxies: `proxy.lan` is not an IP address or CIDR range"),
            "{err}"
        );
        let err = parse_file(
            "objectos.yml",
            "http:\n  trustedProxies: {a: 1}\n",
            Path::new("/"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("http.trustedProxies: expected a list of strings"),
            "{err}"
        );

        // The environment: comma-separated, the variable named on error.
        let env = |v: &'static str| {
            move |k: &str| (k == "OBJECTOS_HTTP_TRUSTED_PROXIES").then(|| v.to_owned())
        };
        let layer = env_layer(&env("10.0.0.1, fd00::/8")).unwrap();
        assert_eq!(layer.trusted_proxies.unwrap().len(), 2);
        let err = env_layer(&env("10.0.0.1,nope")).unwrap_err().to_string();
        assert!(
            err.starts_with("OBJECTOS_HTTP_TRUSTED_PROXIES: `nope` is not an IP address"),
            "{err}"
        );
    }

    #[test]
    fn precedence_file_env_flags() {
        let file = Layer {
            listen: Some("a:1".into()),
            database_url: Some("sqlite::memory:".into()),
            mode: Some(RuntimeMode::Test),
            ..Layer::default()
        };
        let env = Layer {
            listen: Some("b:2".into()),
            mode: Some(RuntimeMode::Production),
            ..Layer::default()
        };
        let flags = Layer {
            listen: Some("c:3".into()),
            ..Layer::default()
        };
        let c = resolve(file, env, flags);
        assert_eq!(c.listen, "c:3");
        assert_eq!(c.mode, RuntimeMode::Production);
        assert_eq!(c.database_url, "sqlite::memory:");
        assert_eq!(c.body_limit, DEFAULT_BODY_LIMIT);
    }
}
