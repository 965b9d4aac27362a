//! The `auth:` section reaching the plugin as its kernel configuration: read through the
//! kernel's settings seam, so a bad key or value refuses the start (code `config`) naming each
//! path, an empty section means the defaults, and no section keeps the host's settings.

use objectos_auth::{AuthConfig, AuthHandle, AuthPlugin, PLUGIN_ID};
use objectos_data::{DataConfig, DataPlugin};
use objectos_kernel::Kernel;
use objectos_spec::{PluginStartupResult, RuntimeMode, StartupReport};
use objectos_testkit::TestDatabase;
use serde_json::{Value, json};

use crate::support::test_config;

/// Boots data + auth on a fresh SQLite file, the plugin built with `host` and given `section`
/// (`None`: no kernel configuration at all), and stops again; returns the report and what the
/// plugin ended up using (`None` when it did not start).
async fn boot(host: AuthConfig, section: Option<Value>) -> (StartupReport, Option<AuthConfig>) {
    let db = TestDatabase::sqlite_file();
    let auth = AuthPlugin::new(host);
    let handle: AuthHandle = auth.handle();
    let mut builder = Kernel::builder()
        .mode(RuntimeMode::Test)
        .plugin(DataPlugin::new(DataConfig {
            database_url: db.url.clone(),
            max_connections: 2,
            ..DataConfig::default()
        }))
        .plugin(auth);
    if let Some(section) = section {
        builder = builder.config(PLUGIN_ID, section);
    }
    let kernel = builder.build().expect("data + auth resolve");
    let report = kernel.boot().await.expect("the kernel boots");
    let effective = handle.service().map(|s| s.config().clone());
    kernel.shutdown().await;
    db.cleanup().await;
    (report, effective)
}

fn auth_result(report: &StartupReport) -> &PluginStartupResult {
    report
        .plugins
        .iter()
        .find(|p| p.id == PLUGIN_ID)
        .expect("the auth plugin is in the report")
}

/// The auth plugin's failure: its code and message.
fn refusal(report: &StartupReport) -> (String, String) {
    let auth = auth_result(report);
    assert!(!auth.success, "the auth plugin started: {report:?}");
    let error = auth.error.as_ref().expect("a failed plugin has an error");
    (error.code.clone(), error.message.clone())
}

#[tokio::test]
async fn unknown_keys_and_bad_values_refuse_the_start_naming_each_path() {
    let (report, effective) = boot(
        test_config(),
        Some(json!({
            "allowSignUpp": true,
            "lockout": { "lockMinutez": 3 },
            "resetTokenMinutes": "thirty",
            "sso": { "providers": [{ "id": "corp", "clientIdd": "x" }] }
        })),
    )
    .await;
    assert!(effective.is_none());
    let (code, message) = refusal(&report);
    assert_eq!(code, "config", "{message}");
    for path in [
        "auth.allowSignUpp",
        "auth.lockout.lockMinutez",
        "auth.resetTokenMinutes",
        "auth.sso.providers[0].clientIdd",
    ] {
        assert!(
            message.contains(path),
            "`{path}` is not named in: {message}"
        );
    }
}

#[tokio::test]
async fn failed_checks_refuse_the_start_naming_each_path() {
    let (report, effective) = boot(
        test_config(),
        Some(json!({
            "resetTokenMinutes": 0,
            "organization": { "limitPerUser": 0 },
            "emailVerification": { "url": " " }
        })),
    )
    .await;
    assert!(effective.is_none());
    let (code, message) = refusal(&report);
    assert_eq!(code, "config", "{message}");
    for path in [
        "auth.resetTokenMinutes: must be at least 1",
        "auth.organization.limitPerUser:",
        "auth.emailVerification.url: must not be empty",
    ] {
        assert!(
            message.contains(path),
            "`{path}` is not named in: {message}"
        );
    }
}

#[tokio::test]
async fn an_empty_section_means_the_defaults_and_no_section_the_host_settings() {
    // A host setting that differs from the default, so the two cases cannot agree by accident.
    let host = AuthConfig {
        allow_sign_up: true,
        reset_token_minutes: 7,
        ..test_config()
    };
    assert_ne!(host, AuthConfig::default());

    let (report, effective) = boot(host.clone(), Some(json!({}))).await;
    assert!(auth_result(&report).success, "{report:?}");
    assert_eq!(effective, Some(AuthConfig::default()));

    let (report, effective) = boot(host.clone(), None).await;
    assert!(auth_result(&report).success, "{report:?}");
    assert_eq!(effective, Some(host.clone()));

    // A section with one key: that key, the defaults for the rest (not the host's).
    let (report, effective) = boot(host, Some(json!({ "resetTokenMinutes": 9 }))).await;
    assert!(auth_result(&report).success, "{report:?}");
    assert_eq!(
        effective,
        Some(AuthConfig {
            reset_token_minutes: 9,
            ..AuthConfig::default()
        })
    );
}
