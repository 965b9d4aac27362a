//! Tests of the server configuration: sections and their checks with line and path, secrets
//! redacted in what is printed, the JSON Schema, and the precedence of file, environment and flags.

use objectos_spec::settings::{PluginSettings, Secret};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::*;

/// The `objectos.yml` lines of the effective configuration, as `--print-config` prints them.
fn printed(config: &ServerConfig) -> String {
    config
        .render(&crate::config_sections(), PrintFormat::Text)
        .unwrap()
}

/// A plugin section of its own, so the generic mechanism is tested in every feature set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
struct MailSettings {
    host: String,
    port: u16,
    password: Option<Secret>,
    retry: Retry,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
struct Retry {
    attempts: u32,
}

impl Default for MailSettings {
    fn default() -> Self {
        Self {
            host: "localhost".into(),
            port: 25,
            password: None,
            retry: Retry::default(),
        }
    }
}

impl PluginSettings for MailSettings {
    fn problems(&self) -> Vec<SettingsProblem> {
        if self.retry.attempts > 10 {
            vec![SettingsProblem::at("retry.attempts", "at most 10")]
        } else {
            Vec::new()
        }
    }
}

const MAIL: ConfigSection = ConfigSection::of::<MailSettings>("mail", "com.example.mail");

fn parse_mail(text: &str) -> Result<FileLayer, String> {
    parse_file_with("objectos.yml", text, Path::new("/"), &[&MAIL]).map_err(|e| e.to_string())
}

#[test]
fn unknown_section_is_an_error_naming_the_known_ones() {
    let err = parse_mail(
        "listen: 127.0.0.1:1
mial:
  host: x
",
    )
    .unwrap_err();
    assert_eq!(
        err,
        "objectos.yml:2: mial: unknown key; known keys here: listen, databaseUrl, metadataDirs, mode, http, log, data, cluster, mail"
    );
}

#[test]
fn plugin_section_problems_have_line_and_path() {
    let text =
        "mail:\n  host: smtp.example\n  prot: 587\n  retry:\n    attempts: 3\n    backof: 2\n";
    let err = parse_mail(text).unwrap_err();
    assert!(
        err.contains(
            "objectos.yml:3: mail.prot: unknown key; known keys here: host, port, password, retry"
        ),
        "{err}"
    );
    assert!(
        err.contains("objectos.yml:6: mail.retry.backof: unknown key; known keys here: attempts"),
        "{err}"
    );
    // A type error, and a plugin's own check, at the key's line.
    let err = parse_mail("mail:\n  port: many\n").unwrap_err();
    assert!(
        err.starts_with("objectos.yml:2: mail.port: invalid type: string \"many\", expected u16"),
        "{err}"
    );
    let err = parse_mail("mail:\n  retry:\n    attempts: 11\n").unwrap_err();
    assert_eq!(err, "objectos.yml:3: mail.retry.attempts: at most 10");
    let err = parse_mail("mail: 5\n").unwrap_err();
    assert!(
        err.starts_with("objectos.yml:1: mail: invalid type"),
        "{err}"
    );
}

#[test]
fn effective_configuration_redacts_secrets() {
    let f = parse_mail("mail:\n  password: hunter2\n  port: 587\n").unwrap();
    // The plugin gets the section as written, secret included.
    assert_eq!(
        f.layer.plugins.as_ref().unwrap()["mail"]["password"],
        "hunter2"
    );
    let resolved = resolve(f.layer, Layer::default(), Layer::default());
    for format in [PrintFormat::Text, PrintFormat::Yaml, PrintFormat::Json] {
        let out = resolved.render(&[&MAIL], format).unwrap();
        assert!(!out.contains("hunter2"), "{format:?}: {out}");
        assert!(out.contains("***"), "{format:?}: {out}");
    }
    let out = resolved.render(&[&MAIL], PrintFormat::Text).unwrap();
    assert!(
        out.contains(
            "mail.host: localhost\nmail.port: 587\nmail.password: ***\nmail.retry.attempts: 0\n"
        ),
        "{out}"
    );
    let json = resolved.effective(&[&MAIL]).unwrap();
    assert_eq!(json["mail"]["password"], "***");
    assert_eq!(json["http"]["bodyLimit"], DEFAULT_BODY_LIMIT);
    let yaml = resolved.render(&[&MAIL], PrintFormat::Yaml).unwrap();
    assert!(yaml.contains("mail:\n"), "{yaml}");
    // Not in the file: the plugin's defaults.
    let none = resolve(Layer::default(), Layer::default(), Layer::default());
    assert_eq!(none.effective(&[&MAIL]).unwrap()["mail"]["port"], 25);
}

#[test]
fn schema_has_every_section() {
    let schema = schema(&[&MAIL]);
    let props = schema["properties"].as_object().unwrap();
    let keys: Vec<&str> = props.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "listen",
            "databaseUrl",
            "metadataDirs",
            "mode",
            "http",
            "log",
            "data",
            "cluster",
            "mail"
        ]
    );
    assert_eq!(schema["additionalProperties"], false);
    let text = schema.to_string();
    assert!(text.contains("\"writeOnly\":true"), "{text}");
    assert!(
        props["data"]["properties"]
            .as_object()
            .unwrap()
            .contains_key("maxBatchRecords")
    );
    // Every section compiled into this build is there too.
    let all = super::schema(&crate::config_sections());
    for section in crate::config_sections() {
        assert!(
            all["properties"].get(section.name).is_some(),
            "{}",
            section.name
        );
    }
    // The core keys the walker knows are the schema's.
    for key in CORE_KEYS {
        assert!(props.contains_key(*key), "{key}");
    }
}

#[cfg(feature = "plugin-auth")]
#[test]
fn auth_client_secret_is_redacted_and_located() {
    let text = "auth:\n  sso:\n    baseUrl: https://crm.example.com\n    providers:\n      - id: corp\n        kind: oidc\n        issuer: https://id.example.com\n        clientId: crm\n        clientSecret: s3cr3t-value\n";
    let f = parse_file("objectos.yml", text, Path::new("/")).unwrap();
    let resolved = resolve(f.layer, Layer::default(), Layer::default());
    let out = printed(&resolved);
    assert!(!out.contains("s3cr3t-value"), "{out}");
    assert!(
        out.contains("auth.sso.providers[0].clientSecret: ***\n"),
        "{out}"
    );
    let err = parse_file(
        "objectos.yml",
        "auth:\n  lockout:\n    maxFailedAttemps: 3\n",
        Path::new("/"),
    )
    .unwrap_err()
    .to_string();
    assert!(
            err.starts_with("objectos.yml:3: auth.lockout.maxFailedAttemps: unknown key; known keys here: maxFailedAttempts, lockMinutes"),
            "{err}"
        );
    // The plugin's own checks land on their key too.
    let err = parse_file(
        "objectos.yml",
        "auth:\n  resetTokenMinutes: 0\n",
        Path::new("/"),
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        "objectos.yml:2: auth.resetTokenMinutes: must be at least 1"
    );
}

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

#[cfg(all(feature = "plugin-auth", feature = "plugin-audit"))]
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
            .contains("objectos.yml:1: auth: invalid type: integer `5`"),
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
    assert!(printed(&resolved).contains("data.maxBatchRecords: 50\n"));
    for (yaml, says) in [
        (
            "data:\n  maxBatchRecord: 50\n",
            "objectos.yml:2: data.maxBatchRecord: unknown key; known keys here: maxBatchRecords, maxWriteMillis",
        ),
        (
            "data:\n  maxBatchRecords: 0\n",
            "objectos.yml:2: data: maxBatchRecords must be at least 1",
        ),
    ] {
        let err = parse_file("objectos.yml", yaml, Path::new("/")).unwrap_err();
        let err = err.to_string();
        assert!(err.contains(says), "{err}");
    }
    // Not set: 200 records per bulk request, no rate limit.
    let resolved = resolve(Layer::default(), Layer::default(), Layer::default());
    assert_eq!(resolved.data, objectos_data::WriteLimits::default());
}

#[cfg(feature = "plugin-permissions")]
#[test]
fn permissions_section_is_checked_with_locations() {
    let yaml = "permissions:\n  defaultSharing: private\n  guestSet: visitor\n";
    let f = parse_file("objectos.yml", yaml, Path::new("/srv")).unwrap();
    assert!(f.warnings.is_empty(), "{:?}", f.warnings);
    let resolved = resolve(f.layer, Layer::default(), Layer::default());
    assert!(
        printed(&resolved)
            .contains("permissions.defaultSharing: private\npermissions.guestSet: visitor\n"),
        "{}",
        printed(&resolved)
    );
    // The object-level spellings are accepted too.
    let f = parse_file(
        "objectos.yml",
        "permissions:\n  defaultSharing: read\n",
        Path::new("/"),
    )
    .unwrap();
    let resolved = resolve(f.layer, Layer::default(), Layer::default());
    assert!(printed(&resolved).contains("permissions.defaultSharing: public_read\n"));
    // Nothing set: the plugin's defaults.
    let resolved = resolve(Layer::default(), Layer::default(), Layer::default());
    assert!(
        printed(&resolved).contains(
            "permissions.defaultSharing: public_read_write\npermissions.guestSet: null\n"
        ),
        "{}",
        printed(&resolved)
    );

    // Every problem at once, each with its line and path.
    let yaml = "mode: test\npermissions:\n  defaultSharing: secret\n  guestSet: Guest-Set\n  defaultSharng: private\n";
    let err = parse_file("objectos.yml", yaml, Path::new("/"))
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
    for yaml in ["permissions: private\n", "permissions:\n  guestSet: [a]\n"] {
        let err = parse_file("objectos.yml", yaml, Path::new("/"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid type"), "{yaml:?}: {err}");
    }
}

#[test]
fn cluster_section_reaches_the_kernel_with_urls_redacted() {
    let yaml = "cluster:\n  nodeId: node-a\n  redisUrl: redis://:hunter2@cache:6379/0\n";
    let f = parse_file("objectos.yml", yaml, Path::new("/")).unwrap();
    let env = env_layer(&|k| {
        (k == "OBJECTOS_AMQP_URL").then(|| "amqp://guest:pw@mq:5672/%2f".to_owned())
    })
    .unwrap();
    let resolved = resolve(f.layer, env, Layer::default());
    let cluster = resolved.cluster();
    assert_eq!(cluster.node_id, "node-a");
    assert_eq!(
        cluster.redis_url.as_ref().map(Secret::expose),
        Some("redis://:hunter2@cache:6379/0")
    );
    assert_eq!(
        cluster.amqp_url.as_ref().map(Secret::expose),
        Some("amqp://guest:pw@mq:5672/%2f")
    );
    let out = printed(&resolved);
    assert!(
        out.contains("cluster.redisUrl: redis://:***@cache:6379/0\n"),
        "{out}"
    );
    assert!(!out.contains("hunter2") && !out.contains(":pw@"), "{out}");
    assert!(!format!("{resolved:?}").contains("hunter2"));
    // Without the section a node still gets an id of its own and no shared service.
    let single = resolve(Layer::default(), Layer::default(), Layer::default()).cluster();
    assert!(!single.node_id.is_empty() && !single.is_clustered());

    let err = parse_file(
        "objectos.yml",
        "cluster:\n  redisUrl: http://cache:6379\n  nodeId: \"a b\"\n  peers: 2\n",
        Path::new("/"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains(
            "objectos.yml:2: cluster.redisUrl: expected a URL starting with redis:// or rediss://"
        ),
        "{err}"
    );
    assert!(
        err.contains("cluster.nodeId: `a b` is not a node id"),
        "{err}"
    );
    assert!(err.contains("cluster.peers: unknown key"), "{err}");
    let err = env_layer(&|k| (k == "OBJECTOS_REDIS_URL").then(|| "cache:6379".to_owned()))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("OBJECTOS_REDIS_URL: expected a URL"),
        "{err}"
    );
}

#[test]
fn trusted_origins_and_hsts_are_checked_with_locations() {
    let yaml = "http:\n  trustedOrigins: [\"HTTPS://Console.Example.com/\", http://localhost:5173]\n  hstsMaxAge: 31536000\n";
    let f = parse_file("objectos.yml", yaml, Path::new("/")).unwrap();
    assert!(f.warnings.is_empty(), "{:?}", f.warnings);
    let resolved = resolve(f.layer, Layer::default(), Layer::default());
    assert_eq!(
        resolved.trusted_origins,
        ["https://console.example.com", "http://localhost:5173"]
    );
    assert_eq!(resolved.hsts_max_age, 31_536_000);
    assert!(printed(&resolved).contains(
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
        "OBJECTOS_HTTP_TRUSTED_ORIGINS" => Some("https://a.example, http://b.example:8080".into()),
        "OBJECTOS_HTTP_HSTS_MAX_AGE" => Some("600".into()),
        _ => None,
    })
    .unwrap();
    assert_eq!(env.trusted_origins.unwrap().len(), 2);
    assert_eq!(env.hsts_max_age, Some(600));
}

#[test]
fn file_reports_unknown_keys_and_bad_values() {
    let yaml =
        "listen: 127.0.0.1:4000\nhttp:\n  bodyLimit: 2MiB\n  cors:\n    origins: [http://a]\n";
    let f = parse_file("objectos.yml", yaml, Path::new("/srv")).unwrap();
    assert_eq!(f.layer.listen.as_deref(), Some("127.0.0.1:4000"));
    assert_eq!(f.layer.body_limit, Some(2 * 1024 * 1024));
    assert_eq!(f.layer.cors_origins, Some(vec!["http://a".to_owned()]));
    // An unknown key is an error, each at its line, all at once.
    let err = parse_file(
        "objectos.yml",
        &format!("{yaml}    extra: 1\nlistn: x\n"),
        Path::new("/srv"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("objectos.yml:6: http.cors.extra: unknown key; known keys here: origins"),
        "{err}"
    );
    assert!(
        err.contains("objectos.yml:7: listn: unknown key; known keys here: listen, databaseUrl"),
        "{err}"
    );

    let err = parse_file("objectos.yml", "listen: nope\nmode: fast\n", Path::new("/")).unwrap_err();
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
        printed(&resolved).contains("http.trustedProxies: [10.0.0.0/8, ::1/128, 192.168.1.7/32]\n"),
        "{}",
        printed(&resolved)
    );
    // Default: none, so forwarding headers are ignored.
    let none = resolve(Layer::default(), Layer::default(), Layer::default());
    assert!(none.trusted_proxies.is_empty());
    assert!(printed(&none).contains("http.trustedProxies: []\n"));
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
        err.contains(
            "objectos.yml:2: http.trustedProxies: `proxy.lan` is not an IP address or CIDR range"
        ),
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
