//! `load_object` through the public API: values, every problem at once, positions and conversions.

use objectos_spec::object::{DeleteBehavior, RuleKind, Storage, SummaryFunction};
use objectos_spec::yaml::{Format, Node, parse};
use objectos_spec::{FieldType, load_object};

use crate::read;

#[test]
fn loads_a_valid_object_with_its_fields_in_order() {
    let text = read("valid/invoice.object.yml");
    let loaded = load_object("invoice.object.yml", &text, Format::Yaml);
    assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
    let o = loaded.value.unwrap();
    assert_eq!(o.name, "invoice");
    let names: Vec<&str> = o.iter_fields().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "number",
            "account",
            "status",
            "issued_on",
            "due_on",
            "total",
            "tax",
            "notes",
            "attachments",
            "approved_by"
        ]
    );
    let account = o.field("account").unwrap();
    assert_eq!(account.kind, FieldType::MasterDetail);
    assert_eq!(account.delete_behavior(), DeleteBehavior::Cascade);
    assert_eq!(account.reference_target("invoice"), Some("account"));
    let total = o.field("total").unwrap();
    assert_eq!(total.storage(), None);
    assert_eq!(
        total.summary_operations.as_ref().unwrap().function,
        SummaryFunction::Sum
    );
    assert_eq!(
        o.field("attachments").unwrap().storage(),
        Some(Storage::Json)
    );
    assert_eq!(
        o.field("status").unwrap().default_option().unwrap().value,
        "draft"
    );
    assert_eq!(o.table_name(), "invoice");
    assert_eq!(o.datasource_name(), "default");
    assert_eq!(o.validations.len(), 3);
    assert!(matches!(
        o.validations[1].rule,
        RuleKind::StateMachine { .. }
    ));
    match &o.validations[2].rule {
        RuleKind::Conditional { then, .. } => assert_eq!(then.rule.type_name(), "script"),
        other => panic!("expected a conditional rule, got {other:?}"),
    }
    assert_eq!(o.validations[2].priority, 50);
    assert_eq!(o.validations[0].priority, 100);
    let refs: Vec<(&str, &str)> = o.references().map(|(f, t)| (f.name.as_str(), t)).collect();
    assert_eq!(refs, [("account", "account"), ("approved_by", "user")]);
}

#[test]
fn objectos_spellings_are_accepted() {
    let loaded = load_object(
        "o.object.yaml",
        &read("valid/opportunity.object.yaml"),
        Format::Yaml,
    );
    assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
    let o = loaded.value.unwrap();
    assert_eq!(o.plural_label.as_deref(), Some("Opportunities"));
    assert_eq!(
        o.field("account").unwrap().reference.as_deref(),
        Some("account")
    );
    assert_eq!(
        o.field("stage").unwrap().default_value,
        Some(serde_json::json!("prospecting"))
    );
    assert_eq!(o.field("metadata").unwrap().storage(), Some(Storage::Json));
    assert_eq!(o.field("next_step").unwrap().max_length, Some(1000));
    assert!(o.enable.track_history);
}

#[test]
fn a_file_with_several_problems_reports_them_all() {
    let text = "\
name: Bad Object
fields:
  id: { type: text }
  price: { type: money, min: 5, max: 1 }
  status: { type: select }
  owner: { type: lookup, lable: Owner }
validations:
  - { name: r1, type: script, message: m }
  - { name: r1, type: nope, message: m }
";
    let loaded = load_object("bad.object.yml", text, Format::Yaml);
    assert!(loaded.value.is_none());
    let lines: Vec<String> = loaded.diagnostics.iter().map(ToString::to_string).collect();
    let expected_fragments = [
        "bad.object.yml:1: name: object name `Bad Object` is invalid",
        "bad.object.yml:3: fields.id: `id` is a system field",
        "bad.object.yml:4: fields.price.type: unknown field type `money`; did you mean `number`?",
        "bad.object.yml:4: fields.price.min: `min` (5) is greater than `max` (1)",
        "bad.object.yml:5: fields.status: a `select` field needs `options`",
        "bad.object.yml:6: fields.owner: warning: unknown key `lable`; did you mean `label`?",
        "bad.object.yml:6: fields.owner: a `lookup` field needs `reference`",
        "bad.object.yml:8: validations[0]: missing required key `condition`",
        "bad.object.yml:9: validations[1].type: unknown validation rule type `nope`",
        "bad.object.yml:9: validations[1].name: duplicate validation rule name `r1`",
    ];
    for fragment in expected_fragments {
        assert!(
            lines.iter().any(|l| l.starts_with(fragment)),
            "missing `{fragment}` in:\n{}",
            lines.join("\n")
        );
    }
    assert_eq!(
        loaded.error_count(),
        expected_fragments.len() - 1,
        "{}",
        lines.join("\n")
    );
    assert_eq!(loaded.warning_count(), 1);
}

#[test]
fn warnings_alone_keep_the_value() {
    let loaded = load_object(
        "w.object.yml",
        "name: w\nfields:\n  a: { type: text, colour: red }\n",
        Format::Yaml,
    );
    assert_eq!(loaded.warning_count(), 1);
    let o = loaded.value.unwrap();
    // Unknown keys round-trip through `extra`.
    assert_eq!(
        o.field("a").unwrap().extra["colour"],
        serde_json::json!("red")
    );
}

#[test]
fn json_objects_load_with_lines() {
    let loaded = load_object(
        "p.object.json",
        &read("valid/product.object.json"),
        Format::Json,
    );
    assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
    assert_eq!(
        loaded
            .value
            .unwrap()
            .field("embedding")
            .unwrap()
            .vector_config
            .as_ref()
            .unwrap()
            .dimensions,
        384
    );
    let bad = load_object(
        "p.object.json",
        "{\n  \"name\": \"p\",\n  \"fields\": {\n    \"a\": {\"type\": \"txt\"}\n  }\n}",
        Format::Json,
    );
    assert_eq!(bad.diagnostics[0].line, 4);
    assert_eq!(bad.diagnostics[0].path, "fields.a.type");
}

#[test]
fn located_tree_converts_to_json() {
    let parsed = parse(
        "t.yml",
        "a: 1\nb: [true, ~, 2.5, \"x\"]\nc: {d: -3}\ne: 0x1f\n",
        Format::Yaml,
    );
    assert!(parsed.diagnostics.is_empty());
    let root = parsed.root.unwrap();
    assert_eq!(
        root.to_json(),
        serde_json::json!({"a": 1, "b": [true, null, 2.5, "x"], "c": {"d": -3}, "e": 31})
    );
    let b = root.get("b").unwrap();
    assert_eq!((b.line, b.column), (2, 4));
    assert!(matches!(b.node, Node::Seq(ref items) if items.len() == 4));
}

#[test]
fn merge_keys_and_aliases() {
    let text = "\
name: t
base: &base { type: text, maxLength: 10 }
fields:
  a: { <<: *base, label: A }
  b: { <<: *base, maxLength: 20 }
";
    let loaded = load_object("t.object.yml", text, Format::Yaml);
    // `base` is not an object key: one warning, the value still loads.
    assert_eq!(loaded.warning_count(), 1, "{:#?}", loaded.diagnostics);
    let o = loaded.value.unwrap();
    assert_eq!(o.field("a").unwrap().max_length, Some(10));
    assert_eq!(o.field("b").unwrap().max_length, Some(20));
}
