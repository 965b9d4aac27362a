//! Server configuration: `objectos.yml` < `OBJECTOS_*` environment < command-line flags.
//!
//! The file is parsed with the spec crate's located YAML parser so every unknown key and every bad
//! value is reported with its line and dotted path. Each layer is a [`Layer`] of optional values;
//! [`resolve`] folds them in precedence order onto the defaults.
//!
//! The core keys (`listen`, `databaseUrl`, `metadataDirs`, `mode`, `http`, `log`, `data`, `cluster`) are
//! known here; every other top-level section belongs to a plugin, which declares it as a
//! [`ConfigSection`] (its settings type and JSON Schema). The caller passes the sections of the
//! plugins compiled in, so this file names no plugin: a section is checked against its type and
//! kept as JSON for the kernel configuration of its plugin. [`schema`] is the JSON Schema of the
//! whole file; [`ServerConfig::effective`] the merged configuration with secrets redacted.

use std::fmt;
use std::path::{Path, PathBuf};

use objectos_http::config::{IpCidr, parse_origin};
use objectos_spec::RuntimeMode;
use objectos_spec::diag::{Diagnostic, Severity};
use objectos_spec::settings::{
    ConfigSection, PathSegment, Secret, SettingsProblem, deserialize_all, format_path,
};
use objectos_spec::yaml::{self, Format, Located, Node};
use serde_json::{Value, json};

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
    /// Every problem of the file (syntax, unknown keys, bad values).
    #[error("{}", diagnostics.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    File { diagnostics: Vec<Diagnostic> },
    /// A bad value from the environment or a flag; `source` names the variable or flag.
    #[error("{origin}: {message}")]
    Value { origin: String, message: String },
    /// The effective configuration could not be written out.
    #[error("cannot print the configuration: {0}")]
    Print(String),
}

/// The top-level keys the server itself reads; every other one is a plugin's section.
pub const CORE_KEYS: &[&str] = &[
    "listen",
    "databaseUrl",
    "metadataDirs",
    "mode",
    "http",
    "log",
    "data",
    "cluster",
];

/// How `--print-config` writes the effective configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PrintFormat {
    /// One `dotted.key: value` line per setting (valid YAML, easy to grep).
    #[default]
    Text,
    /// The nested YAML of `objectos.yml` itself.
    Yaml,
    Json,
}

impl std::str::FromStr for PrintFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(Self::Text),
            "yaml" => Ok(Self::Yaml),
            "json" => Ok(Self::Json),
            other => Err(format!(
                "unknown format `{other}`; expected text, yaml or json"
            )),
        }
    }
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
    /// Plugin sections (`auth:`, `audit:`, `permissions:`) as written, each already checked
    /// against its plugin's type; handed to the plugin as its kernel configuration.
    pub plugins: Option<std::collections::BTreeMap<String, Value>>,
    /// The `data:` section: the data engine's write limits.
    pub data: Option<objectos_data::WriteLimits>,
    /// `cluster.nodeId`.
    pub node_id: Option<String>,
    /// `cluster.redisUrl`.
    pub redis_url: Option<Secret>,
    /// `cluster.amqpUrl`.
    pub amqp_url: Option<Secret>,
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
            data,
            node_id,
            redis_url,
            amqp_url
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
    /// Plugin sections from `objectos.yml` by section name (`auth`, `audit`, `permissions`), as
    /// written and already checked against each plugin's type.
    pub plugins: std::collections::BTreeMap<String, Value>,
    /// The `data:` section: records per bulk request, the writer hold bound, write rates.
    pub data: objectos_data::WriteLimits,
    /// `cluster.nodeId`; `None`: generated at start (host, pid and a random part).
    pub node_id: Option<String>,
    /// `cluster.redisUrl`: cache invalidations and the cross-node event bus.
    pub redis_url: Option<Secret>,
    /// `cluster.amqpUrl`: the distributed job queue.
    pub amqp_url: Option<Secret>,
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
            data: objectos_data::WriteLimits::default(),
            node_id: None,
            redis_url: None,
            amqp_url: None,
        }
    }
}

impl ServerConfig {
    /// The effective configuration in the shape of `objectos.yml`: every core key, then every
    /// section of `sections` with its defaults filled in; the database password and every
    /// secret setting are redacted.
    pub fn effective(&self, sections: &[&ConfigSection]) -> Result<Value, ConfigError> {
        let mut out = json!({
            "listen": self.listen,
            "databaseUrl": redact_url(&self.database_url),
            "metadataDirs": self.metadata_dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>(),
            "mode": self.mode.as_str(),
            "http": {
                "bodyLimit": self.body_limit,
                "cors": {"origins": self.cors_origins},
                "trustedProxies": self.trusted_proxies.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "trustedOrigins": self.trusted_origins,
                "hstsMaxAge": self.hsts_max_age,
            },
            "log": {"level": self.log_level, "format": self.log_format.to_string()},
            "data": serde_json::to_value(&self.data).map_err(|e| ConfigError::Print(e.to_string()))?,
            "cluster": self.effective_cluster(),
        });
        for section in sections {
            let raw = self.plugins.get(section.name).unwrap_or(&Value::Null);
            // Checked when the file was read; a problem now comes from the environment (a
            // secret's variable unset), reported under the section's path.
            let effective =
                (section.check)(raw).map_err(|problems| section_error(section, &problems))?;
            if let Value::Object(map) = &mut out {
                map.insert(section.name.to_owned(), effective);
            }
        }
        Ok(out)
    }

    /// [`Self::effective`] written as `format`.
    pub fn render(
        &self,
        sections: &[&ConfigSection],
        format: PrintFormat,
    ) -> Result<String, ConfigError> {
        let value = self.effective(sections)?;
        match format {
            PrintFormat::Text => {
                let mut lines = Vec::new();
                flatten("", &value, &mut lines);
                Ok(lines.into_iter().map(|l| l + "\n").collect())
            }
            PrintFormat::Yaml => {
                serde_saphyr::to_string(&value).map_err(|e| ConfigError::Print(e.to_string()))
            }
            PrintFormat::Json => serde_json::to_string_pretty(&value)
                .map(|t| t + "\n")
                .map_err(|e| ConfigError::Print(e.to_string())),
        }
    }

    /// The section `section` as its plugin's settings type (defaults when the file has none).
    pub fn settings<T: serde::de::DeserializeOwned>(
        &self,
        section: &ConfigSection,
    ) -> Result<T, ConfigError> {
        let raw = self.plugins.get(section.name).unwrap_or(&Value::Null);
        deserialize_all(raw).map_err(|problems| section_error(section, &problems))
    }
}

/// The first problem of a section as a configuration error naming its path.
fn section_error(section: &ConfigSection, problems: &[SettingsProblem]) -> ConfigError {
    match problems.first() {
        Some(p) => ConfigError::Value {
            origin: format_path(section.name, &p.path),
            message: p.message.clone(),
        },
        None => ConfigError::Value {
            origin: section.name.to_owned(),
            message: "invalid settings".to_owned(),
        },
    }
}

/// `dotted.key: value` lines of `value`; lists of scalars stay on one line as `[a, b]`.
fn flatten(prefix: &str, value: &Value, out: &mut Vec<String>) {
    let scalar = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        Value::Object(_) => out.push(format!("{prefix}: {{}}")),
        Value::Array(items) if items.iter().any(|i| i.is_object() || i.is_array()) => {
            for (i, item) in items.iter().enumerate() {
                flatten(&format!("{prefix}[{i}]"), item, out);
            }
        }
        Value::Array(items) => out.push(format!(
            "{prefix}: [{}]",
            items.iter().map(scalar).collect::<Vec<_>>().join(", ")
        )),
        other => out.push(format!("{prefix}: {}", scalar(other))),
    }
}

/// The JSON Schema (draft 2020-12) of the whole `objectos.yml`: the core keys and every section
/// of `sections`; printed by `objectos config schema`.
pub fn schema(sections: &[&ConfigSection]) -> Value {
    let mut generator = schemars::SchemaGenerator::default();
    let strings = json!({"type": "array", "items": {"type": "string"}});
    let data_defaults =
        serde_json::to_value(objectos_data::WriteLimits::default()).unwrap_or_else(|_| json!({}));
    // WriteLimits has no schema of its own; every limit is a whole number, so its properties
    // follow from its defaults and cannot drift from the type.
    let data_properties: serde_json::Map<String, Value> = data_defaults
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        json!({"type": "integer", "minimum": 0, "default": v}),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let mut properties = json!({
        "listen": {"type": "string", "default": DEFAULT_LISTEN, "description": "HOST:PORT to listen on (port 0 picks a free port) [env OBJECTOS_LISTEN, flag --listen]."},
        "databaseUrl": {"type": "string", "default": DEFAULT_DATABASE_URL, "description": "sqlite://PATH, sqlite::memory: or postgres://USER:PASS@HOST/DB [env OBJECTOS_DATABASE_URL, flag --database-url]."},
        "metadataDirs": {"description": "Metadata folders, relative to this file [env OBJECTOS_METADATA_DIRS, argument DIR].", "anyOf": [{"type": "string"}, strings]},
        "mode": {"type": "string", "enum": ["development", "production", "test"], "default": "development", "description": "Runtime mode [env OBJECTOS_MODE, flag --mode]."},
        "http": {
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "bodyLimit": {"description": "Largest request body: bytes, or a size such as 2MiB [env OBJECTOS_HTTP_BODY_LIMIT, flag --body-limit].", "anyOf": [{"type": "integer", "minimum": 1}, {"type": "string"}], "default": DEFAULT_BODY_LIMIT},
                "cors": {"type": "object", "additionalProperties": false, "properties": {"origins": {"description": "Allowed CORS origins; none: any [env OBJECTOS_CORS_ORIGINS].", "anyOf": [{"type": "string"}, strings]}}},
                "trustedProxies": {"description": "Addresses or CIDR ranges whose forwarding headers name the client [env OBJECTOS_HTTP_TRUSTED_PROXIES].", "anyOf": [{"type": "string"}, strings]},
                "trustedOrigins": {"description": "Origins whose pages may send cookie-authenticated writes [env OBJECTOS_HTTP_TRUSTED_ORIGINS].", "anyOf": [{"type": "string"}, strings]},
                "hstsMaxAge": {"description": "Seconds of Strict-Transport-Security; 0: none [env OBJECTOS_HTTP_HSTS_MAX_AGE].", "anyOf": [{"type": "integer", "minimum": 0}, {"type": "string"}], "default": 0}
            }
        },
        "log": {
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "level": {"type": "string", "default": "info", "description": "A tracing filter such as info or objectos_http=debug,info [env OBJECTOS_LOG]."},
                "format": {"type": "string", "enum": ["text", "json"], "default": "text", "description": "[env OBJECTOS_LOG_FORMAT]"}
            }
        },
        "data": {"type": "object", "additionalProperties": false, "description": "The data engine's write limits.", "properties": data_properties},
        "cluster": {
            "type": "object",
            "additionalProperties": false,
            "description": "Several nodes behind one load balancer: the services they share. Without them every service runs its embedded default.",
            "properties": {
                "nodeId": {"type": "string", "description": "This node's id, unique per running node; default: host, pid and a random part [env OBJECTOS_NODE_ID]."},
                "redisUrl": {"type": "string", "writeOnly": true, "description": "redis://[:PASS@]HOST:PORT[/DB] or rediss://: cache invalidations and the cross-node event bus [env OBJECTOS_REDIS_URL]."},
                "amqpUrl": {"type": "string", "writeOnly": true, "description": "amqp://USER:PASS@HOST:PORT/VHOST or amqps://: the distributed job queue [env OBJECTOS_AMQP_URL]."}
            }
        },
    });
    for section in sections {
        let sub = (section.schema)(&mut generator).to_value();
        if let Value::Object(map) = &mut properties {
            map.insert(section.name.to_owned(), sub);
        }
    }
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "objectos.yml",
        "description": "ObjectOS server configuration; each section other than the core keys belongs to a plugin compiled into this binary.",
        "type": "object",
        "additionalProperties": false,
        "properties": properties,
        "$defs": generator.take_definitions(true),
    })
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
        data: merged.data.unwrap_or(d.data),
        node_id: merged.node_id.or(d.node_id),
        redis_url: merged.redis_url.or(d.redis_url),
        amqp_url: merged.amqp_url.or(d.amqp_url),
    }
}

impl ServerConfig {
    /// The `cluster` section as set (an unset key is left out: the node id is generated at
    /// start, and no URL means the embedded default), URL passwords redacted.
    fn effective_cluster(&self) -> Value {
        let mut out = serde_json::Map::new();
        if let Some(id) = &self.node_id {
            out.insert("nodeId".into(), json!(id));
        }
        for (key, url) in [("redisUrl", &self.redis_url), ("amqpUrl", &self.amqp_url)] {
            if let Some(url) = url {
                out.insert(key.into(), json!(redact_url(url.expose())));
            }
        }
        Value::Object(out)
    }

    /// The kernel's view of the `cluster` section.
    pub fn cluster(&self) -> objectos_kernel::ClusterSettings {
        let mut settings = objectos_kernel::ClusterSettings::single_node();
        if let Some(id) = &self.node_id {
            settings.node_id = id.clone();
        }
        settings.redis_url = self.redis_url.clone();
        settings.amqp_url = self.amqp_url.clone();
        settings
    }
}

/// A `cluster.nodeId`: what logs, leases and event envelopes name the node by.
fn check_node_id(text: &str) -> Result<String, String> {
    let t = text.trim();
    if t.is_empty() || t.len() > 128 {
        return Err("a node id must have 1 to 128 characters".to_owned());
    }
    if !t
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
    {
        return Err(format!(
            "`{t}` is not a node id; use letters, digits, `-`, `_`, `.` and `:`"
        ));
    }
    Ok(t.to_owned())
}

/// A service URL with one of `schemes`; the message never repeats the URL (it may hold a password).
fn check_service_url(text: &str, schemes: &[&str]) -> Result<Secret, String> {
    let t = text.trim();
    let scheme = t.split_once("://").map(|(s, _)| s);
    match scheme {
        Some(s) if schemes.contains(&s) && t.len() > s.len() + 3 => Ok(Secret::new(t)),
        _ => Err(format!(
            "expected a URL starting with {}",
            schemes
                .iter()
                .map(|s| format!("{s}://"))
                .collect::<Vec<_>>()
                .join(" or ")
        )),
    }
}

const REDIS_SCHEMES: &[&str] = &["redis", "rediss"];
const AMQP_SCHEMES: &[&str] = &["amqp", "amqps"];

/// Replaces the password of a URL such as `postgres://user:secret@host/db` with `***`.
pub use objectos_kernel::cluster::redact_url;

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
    if let Some(v) = lookup("OBJECTOS_NODE_ID") {
        layer.node_id = Some(check_node_id(&v).map_err(|m| bad("OBJECTOS_NODE_ID", m))?);
    }
    if let Some(v) = lookup("OBJECTOS_REDIS_URL").filter(|v| !v.trim().is_empty()) {
        layer.redis_url =
            Some(check_service_url(&v, REDIS_SCHEMES).map_err(|m| bad("OBJECTOS_REDIS_URL", m))?);
    }
    if let Some(v) = lookup("OBJECTOS_AMQP_URL").filter(|v| !v.trim().is_empty()) {
        layer.amqp_url =
            Some(check_service_url(&v, AMQP_SCHEMES).map_err(|m| bad("OBJECTOS_AMQP_URL", m))?);
    }
    Ok(layer)
}

/// A parsed configuration file: its layer and the warnings (from the YAML parser) to print.
#[derive(Debug, Clone, Default)]
pub struct FileLayer {
    pub layer: Layer,
    pub warnings: Vec<Diagnostic>,
}

/// Reads `objectos.yml`: `explicit` (from `--config`) must exist; otherwise `./objectos.yml` is
/// used when present. `sections` are the plugin sections it may have.
pub fn load_file(
    explicit: Option<&Path>,
    cwd: &Path,
    sections: &[&ConfigSection],
) -> Result<FileLayer, ConfigError> {
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
    parse_file_with(
        &path.display().to_string(),
        &text,
        path.parent().unwrap_or(cwd),
        sections,
    )
}

/// [`parse_file_with`] the sections of the plugins compiled into this binary.
pub fn parse_file(file: &str, text: &str, base: &Path) -> Result<FileLayer, ConfigError> {
    parse_file_with(file, text, base, &crate::config_sections())
}

/// Parses the text of a configuration file whose plugin sections are `sections`. Relative
/// `metadataDirs` are resolved against `base`. Every problem is reported at once, with its line
/// and path; an unknown key anywhere is one of them.
pub fn parse_file_with(
    file: &str,
    text: &str,
    base: &Path,
    sections: &[&ConfigSection],
) -> Result<FileLayer, ConfigError> {
    let parsed = yaml::parse(file, text, Format::from_path(file));
    // The parser's warnings are printed; its errors join the walk's.
    let (mut errors, warnings): (Vec<Diagnostic>, Vec<Diagnostic>) =
        parsed.diagnostics.into_iter().partition(|d| d.is_error());
    let mut layer = Layer::default();
    let Some(root) = parsed.root else {
        return Err(ConfigError::File {
            diagnostics: errors,
        });
    };
    let mut cx = Walk {
        file,
        errors: &mut errors,
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
                    layer.trusted_proxies = cx.checked_list(value, path, parse_proxies)
                }
                "trustedOrigins" => {
                    layer.trusted_origins = cx.checked_list(value, path, parse_origins)
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
            "cluster" => cx.section(value, path, &mut |cx, key, value, path| match key {
                "nodeId" => {
                    layer.node_id = cx
                        .string(value, path)
                        .and_then(|s| cx.check(value, path, check_node_id(&s)))
                }
                "redisUrl" => {
                    layer.redis_url = cx
                        .string(value, path)
                        .and_then(|s| cx.check(value, path, check_service_url(&s, REDIS_SCHEMES)))
                }
                "amqpUrl" => {
                    layer.amqp_url = cx
                        .string(value, path)
                        .and_then(|s| cx.check(value, path, check_service_url(&s, AMQP_SCHEMES)))
                }
                _ => cx.unknown(value, path, "nodeId, redisUrl, amqpUrl"),
            }),
            "data" => {
                // Typed through serde like a plugin section: an unknown key (a typo of a limit)
                // is an error naming it and the known ones.
                match deserialize_all::<objectos_data::WriteLimits>(&value.to_json()) {
                    Ok(limits) => match limits.validate() {
                        Ok(()) => layer.data = Some(limits),
                        Err(m) => cx.error(value, path, m),
                    },
                    Err(problems) => cx.problems(value, path, &problems),
                }
            }
            _ => match sections.iter().find(|s| s.name == path) {
                Some(section) => {
                    let json = value.to_json();
                    match (section.check)(&json) {
                        Ok(_) => {
                            layer
                                .plugins
                                .get_or_insert_with(Default::default)
                                .insert(path.to_owned(), json);
                        }
                        Err(problems) => cx.problems(value, path, &problems),
                    }
                }
                None => {
                    let known: Vec<&str> = CORE_KEYS
                        .iter()
                        .copied()
                        .chain(sections.iter().map(|s| s.name))
                        .collect();
                    // At the key: a section's value starts on the next line.
                    let at = Located::new(Node::Null, key.line, key.column);
                    cx.unknown(&at, path, &known.join(", "));
                }
            },
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

/// The line and column of the deepest node of `path` under `node`: a key's own position when the
/// path ends in a key (so an unknown key points at itself), the section's when nothing matches.
fn locate(node: &Located, path: &[PathSegment]) -> (usize, usize) {
    let mut at = node;
    let mut pos = (node.line, node.column);
    for seg in path {
        match seg {
            PathSegment::Key(k) => match at.entry(k) {
                Some((key, child)) => {
                    pos = (key.line, key.column);
                    at = child;
                }
                None => break,
            },
            PathSegment::Index(i) => match at.items().and_then(|items| items.get(*i)) {
                Some(child) => {
                    pos = (child.line, child.column);
                    at = child;
                }
                None => break,
            },
        }
    }
    pos
}

/// Walk state for [`parse_file`]: collects errors with their path and line.
struct Walk<'a> {
    file: &'a str,
    errors: &'a mut Vec<Diagnostic>,
}

type SectionFn<'f> = dyn FnMut(&mut Walk<'_>, &str, &Located, &str) + 'f;

impl Walk<'_> {
    /// A list of strings checked as a whole by `parse`, whose error names the entry at fault:
    /// reported at that entry's line and `path[i]` when the value is a list.
    fn checked_list<T>(
        &mut self,
        value: &Located,
        path: &str,
        parse: impl Fn(&[String]) -> Result<T, (usize, String)>,
    ) -> Option<T> {
        let items = self.string_list(value, path)?;
        match parse(&items) {
            Ok(parsed) => Some(parsed),
            Err((i, m)) => {
                let (at, at_path) = match &value.node {
                    Node::Seq(seq) => seq.get(i).map(|item| (item, format!("{path}[{i}]"))),
                    _ => None,
                }
                .unwrap_or((value, path.to_owned()));
                self.error(at, &at_path, m);
                None
            }
        }
    }

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

    /// An unknown key is an error: a mistyped setting would otherwise leave its default (often
    /// the more open one) silently in force.
    fn unknown(&mut self, at: &Located, path: &str, known: &str) {
        self.error(at, path, format!("unknown key; known keys here: {known}"));
    }

    /// A section's problems, each at the line of the key (or list entry) its path leads to.
    fn problems(&mut self, section: &Located, name: &str, problems: &[SettingsProblem]) {
        for problem in problems {
            let (line, column) = locate(section, &problem.path);
            let d = Diagnostic {
                file: self.file.to_owned(),
                line,
                column,
                path: format_path(name, &problem.path),
                severity: Severity::Error,
                message: problem.message.clone(),
            };
            self.errors.push(d);
        }
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
mod tests;
