//! `InitContext::settings` and `settings_or`: a plugin's typed `objectos.yml` section, the
//! host's settings when none is given, and every problem of a bad one named by its path.

use std::sync::Arc;

use objectos_kernel::{Kernel, PluginError};
use objectos_spec::settings::{ConfigSection, PathSegment, PluginSettings, SettingsProblem};
use parking_lot::Mutex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::support::{Log, Man, TestPlugin};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
struct Sample {
    max_items: u32,
    backend: Backend,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
struct Backend {
    url: String,
}

impl Default for Sample {
    fn default() -> Self {
        Self {
            max_items: 10,
            backend: Backend::default(),
        }
    }
}

impl PluginSettings for Sample {
    fn problems(&self) -> Vec<SettingsProblem> {
        if (1..=1000).contains(&self.max_items) {
            Vec::new()
        } else {
            vec![SettingsProblem::at("maxItems", "must be from 1 to 1000")]
        }
    }
}

const SECTION: ConfigSection = ConfigSection::of::<Sample>("sample", "sample");

/// Runs `init` of a plugin configured with `config` (none: not given) that reads its settings
/// with `settings_or(.., host)`, and returns what it got.
async fn read(config: Option<Value>, host: Sample) -> Result<Sample, PluginError> {
    let slot: Arc<Mutex<Option<Result<Sample, PluginError>>>> = Arc::default();
    let seen = slot.clone();
    let plugin =
        TestPlugin::new(Man::new("sample", "1.0.0").build(), &Log::default()).on_init(move |cx| {
            *seen.lock() = Some(cx.settings_or(&SECTION, host.clone()));
            Ok(())
        });
    let mut builder = Kernel::builder().plugin(plugin);
    if let Some(config) = config {
        builder = builder.config("sample", config);
    }
    let kernel = builder.build().unwrap();
    assert!(kernel.initialise().await.unwrap().is_empty());
    let got = slot.lock().take();
    got.unwrap()
}

fn problems(e: &PluginError) -> (&str, &[SettingsProblem]) {
    match e {
        PluginError::Settings {
            plugin,
            section,
            problems,
        } => {
            assert_eq!(plugin, "sample");
            (section.as_str(), problems.as_slice())
        }
        other => panic!("not a settings error: {other}"),
    }
}

#[tokio::test]
async fn a_good_section_is_read_and_a_missing_one_keeps_the_hosts_settings() {
    let host = Sample {
        max_items: 7,
        ..Sample::default()
    };
    let got = read(
        Some(json!({"maxItems": 500, "backend": {"url": "x"}})),
        host.clone(),
    )
    .await
    .unwrap();
    assert_eq!(got.max_items, 500);
    assert_eq!(got.backend.url, "x");
    // `null` is "not given": the host's settings, not the type's defaults.
    assert_eq!(read(None, host.clone()).await.unwrap(), host);
    // A section given empty is the type's defaults.
    assert_eq!(
        read(Some(json!({})), host).await.unwrap(),
        Sample::default()
    );
}

#[tokio::test]
async fn every_unknown_key_and_bad_value_is_named_by_its_path() {
    let err = read(
        Some(json!({"maxItem": 5, "backend": {"url": 3, "port": 1}})),
        Sample::default(),
    )
    .await
    .unwrap_err();
    let (section, found) = problems(&err);
    assert_eq!(section, "sample");
    let paths: Vec<&[PathSegment]> = found.iter().map(|p| p.path.as_slice()).collect();
    assert_eq!(
        paths,
        [
            &[PathSegment::Key("maxItem".into())][..],
            &[
                PathSegment::Key("backend".into()),
                PathSegment::Key("url".into())
            ],
            &[
                PathSegment::Key("backend".into()),
                PathSegment::Key("port".into())
            ],
        ]
    );
    assert_eq!(err.code(), "config");
    let text = err.to_string();
    assert!(
        text.starts_with(
            "plugin `sample` configuration is invalid: sample.maxItem: unknown key; known keys here: maxItems, backend; sample.backend.url: invalid type"
        ),
        "{text}"
    );
    assert!(
        text.ends_with("; sample.backend.port: unknown key; known keys here: url"),
        "{text}"
    );
}

#[tokio::test]
async fn the_settings_checks_run_on_the_section_and_on_the_hosts_settings() {
    let err = read(Some(json!({"maxItems": 0})), Sample::default())
        .await
        .unwrap_err();
    assert_eq!(
        problems(&err).1,
        [SettingsProblem::at("maxItems", "must be from 1 to 1000")]
    );
    assert_eq!(
        err.to_string(),
        "plugin `sample` configuration is invalid: sample.maxItems: must be from 1 to 1000"
    );
    // A host that built the plugin with bad settings is told too.
    let host = Sample {
        max_items: 5000,
        ..Sample::default()
    };
    let err = read(None, host).await.unwrap_err();
    assert_eq!(problems(&err).1.len(), 1);
}

#[tokio::test]
async fn a_refused_section_fails_the_plugin_with_a_config_error() {
    let plugin = TestPlugin::new(Man::new("sample", "1.0.0").build(), &Log::default())
        .on_init(|cx| cx.settings::<Sample>(&SECTION).map(|_| ()));
    let kernel = Kernel::builder()
        .config("sample", json!({"maxItems": "many"}))
        .plugin(plugin)
        .build()
        .unwrap();
    let report = kernel.boot().await.unwrap();
    let failed = report.plugins.iter().find(|p| p.id == "sample").unwrap();
    assert!(!failed.success);
    let error = failed.error.as_ref().unwrap();
    assert_eq!(
        (error.name.as_str(), error.code.as_str()),
        ("ConfigError", "config")
    );
    assert!(
        error
            .message
            .starts_with("plugin `sample` configuration is invalid: sample.maxItems: invalid type"),
        "{}",
        error.message
    );
    kernel.shutdown().await;
}
