//! JSON Schema export.

use objectos_spec::schema::{json_schema, json_schemas};

#[test]
fn every_top_level_type_has_a_schema() {
    let names: Vec<&str> = json_schemas().iter().map(|(n, _)| *n).collect();
    for expected in [
        "ObjectSchema",
        "Field",
        "ObjectStackManifest",
        "Event",
        "HealthReport",
        "StartupReport",
        "KernelContext",
        "QueryAst",
        "PermissionSet",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    for (name, schema) in json_schemas() {
        assert!(schema.is_object(), "{name}");
        assert_eq!(schema["title"], serde_json::json!(name), "{name}");
    }
}

#[test]
fn object_schema_lists_field_types_and_keys() {
    let schema = json_schema("ObjectSchema").unwrap();
    let text = schema.to_string();
    for fragment in [
        "\"master_detail\"",
        "\"summaryOperations\"",
        "\"displayNameField\"",
        "\"state_machine\"",
        "\"apiMethods\"",
    ] {
        assert!(text.contains(fragment), "{fragment} missing");
    }
    let required = schema["required"].as_array().unwrap();
    assert!(required.contains(&serde_json::json!("name")));
}
