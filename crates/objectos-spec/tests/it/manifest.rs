//! Manifests: files through `load_manifest`, compiled-in ones through `validate_manifest`.

use objectos_spec::manifest::PluginDependency;
use objectos_spec::{Format, PackageType, PluginManifest, load_manifest, validate_manifest};

use crate::read;

#[test]
fn valid_manifest_file_loads() {
    let loaded = load_manifest("manifest.yml", &read("valid/manifest.yml"), Format::Yaml);
    assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
    let m = loaded.value.unwrap();
    assert_eq!(m.id, "com.acme.crm");
    assert_eq!(m.kind, PackageType::App);
    assert_eq!(m.dependencies["com.objectos.platform"], "^0.1");
    assert!(m.configuration.unwrap().properties["api_key"].secret);
}

#[test]
fn static_manifests_use_the_same_rules() {
    const GOOD: PluginManifest = PluginManifest {
        dependencies: &[PluginDependency {
            id: "com.objectos.kernel",
            version: "^0.1",
            optional: false,
        }],
        provides: &["audit-log"],
        requires: &["data"],
        permissions: &["data.read", "events.subscribe"],
        subscribes: &["data.**"],
        objects: &["objects/*.object.yml"],
        ..PluginManifest::new("com.objectos.audit", "Audit log", "0.1.0")
    };
    assert_eq!(validate_manifest(&GOOD), vec![]);
    // The spec form of a valid static manifest passes the file checks too.
    let json = serde_json::to_string(&GOOD.to_spec()).unwrap();
    let loaded = load_manifest("manifest.json", &json, Format::Json);
    assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);

    const BAD: PluginManifest = PluginManifest {
        dependencies: &[PluginDependency {
            id: "com.objectos.audit",
            version: "1",
            optional: false,
        }],
        requires: &["datta"],
        ..PluginManifest::new("com.objectos.audit", "Audit log", "v1")
    };
    let text: Vec<String> = validate_manifest(&BAD)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        text,
        [
            "<manifest com.objectos.audit>:0: version: version `v1` is not a semantic version (unexpected character 'v' while parsing major version number); expected MAJOR.MINOR.PATCH such as `1.0.0`",
            "<manifest com.objectos.audit>:0: dependencies.com.objectos.audit: a plugin cannot depend on itself",
            "<manifest com.objectos.audit>:0: requires[0]: unknown service `datta`; did you mean `data`? expected one of `data`, `metadata`, `auth`, `cache`, `queue`, `job`, `i18n`, `file-storage`, `search`, `realtime`, `notification`, `workflow`, `automation`, `graphql`, `analytics`, `ai`, `ui`, `http.server`, `audit-log`, `permissions`, `metrics` or `telemetry`",
        ]
    );
}
