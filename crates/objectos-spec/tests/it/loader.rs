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
        "bad.object.yml:6: fields.owner: unknown key `lable`; did you mean `label`?",
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
        expected_fragments.len(),
        "{}",
        lines.join("\n")
    );
    assert_eq!(loaded.warning_count(), 0);
}

#[test]
fn warnings_alone_keep_the_value() {
    // `widget` is a spec key ObjectOS does not act on: a warning; `x-colour` a custom key: silent.
    let loaded = load_object(
        "w.object.yml",
        "name: w\nfields:\n  a: { type: text, widget: color, x-colour: red }\n",
        Format::Yaml,
    );
    assert_eq!(loaded.warning_count(), 1, "{:#?}", loaded.diagnostics);
    assert_eq!(loaded.error_count(), 0);
    let o = loaded.value.unwrap();
    // Both round-trip through `extra`.
    let extra = &o.field("a").unwrap().extra;
    assert_eq!(extra["x-colour"], serde_json::json!("red"));
    assert_eq!(extra["widget"], serde_json::json!("color"));
}

/// A misspelt key that changes meaning refuses the file instead of leaving the field optional.
#[test]
fn a_misspelt_key_is_an_error_with_a_hint() {
    let loaded = load_object(
        "t.object.yml",
        "name: t\nfields:\n  a: { type: text, requird: true }\n",
        Format::Yaml,
    );
    assert!(loaded.value.is_none(), "the object must not load");
    let lines: Vec<String> = loaded.diagnostics.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        ["t.object.yml:3: fields.a: unknown key `requird`; did you mean `required`?"]
    );
    // A key of the spec that ObjectOS cannot honour is refused too, not ignored.
    let loaded = load_object(
        "t.object.yml",
        "name: t\nfields:\n  a: { type: text, requiredWhen: \"b = 1\" }\n  b: { type: number }\n",
        Format::Yaml,
    );
    assert!(loaded.value.is_none());
    assert!(loaded.diagnostics[0].is_error());
}

/// Custom keys start with `x-`, anywhere: object, field, option, rule, index.
#[test]
fn custom_keys_are_accepted_everywhere() {
    let text = "\
name: t
x-team: sales
fields:
  a:
    type: select
    x-help: pick one
    options: [{ label: A, value: a, x-icon: star }]
indexes:
  - { fields: [a], x-why: lookups }
validations:
  - { name: r, type: script, condition: \"a = 'b'\", message: m, x-ticket: 42 }
";
    let loaded = load_object("t.object.yml", text, Format::Yaml);
    assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
    let o = loaded.value.unwrap();
    assert_eq!(o.extra["x-team"], serde_json::json!("sales"));
    assert_eq!(
        o.field("a").unwrap().extra["x-help"],
        serde_json::json!("pick one")
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
x-base: &base { type: text, maxLength: 10 }
fields:
  a: { <<: *base, label: A }
  b: { <<: *base, maxLength: 20 }
";
    let loaded = load_object("t.object.yml", text, Format::Yaml);
    // An anchor lives under a custom key (`x-`), which the checks let through.
    assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
    let o = loaded.value.unwrap();
    assert_eq!(o.field("a").unwrap().max_length, Some(10));
    assert_eq!(o.field("b").unwrap().max_length, Some(20));
}

/// A syntax error is the cause: it comes first, with its column, and the objects its file would
/// have defined are not reported missing by the files that refer to them.
#[test]
fn a_syntax_error_comes_first_and_hides_its_consequences() {
    use objectos_spec::audit::Auditor;
    let mut auditor = Auditor::new();
    auditor.add_file(
        "a_deal.object.yml",
        "name: a_deal\nfields:\n  account: { type: lookup, reference: z_account }\n  stage: { type: text, lable: Stage }\n",
    );
    auditor.add_file(
        "z_account.object.yml",
        "name: z_account\nfields:\n  name: { type: text\n  phone: { type: phone }\n",
    );
    auditor.add_file(
        "sales.permission.yml",
        "name: sales\nobjects:\n  z_account: { allowRead: true }\n",
    );
    let report = auditor.finish();
    let lines: Vec<String> = report.diagnostics.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "z_account.object.yml:4: YAML syntax error at column 8: an inline mapping `{...}` misses a `,` between two entries or its closing `}`; nothing else in this file was checked",
            "a_deal.object.yml:4: fields.stage: unknown key `lable`; did you mean `label`?",
        ],
    );
    // A reference to an object no file defines is still reported.
    let mut auditor = Auditor::new();
    auditor.add_file(
        "a_deal.object.yml",
        "name: a_deal\nfields:\n  account: { type: lookup, reference: nowhere }\n",
    );
    auditor.add_file("z_broken.object.yml", "name: z_broken\nfields: [\n");
    let report = auditor.finish();
    assert_eq!(report.error_count(), 2, "{:#?}", report.diagnostics);
    assert!(objectos_spec::yaml::is_unreadable(&report.diagnostics[0]));
    assert!(
        report.diagnostics[1]
            .message
            .starts_with("no object named `nowhere`")
    );
}

/// Syntax errors in words: what to change, not the parser's state.
#[test]
fn syntax_errors_say_what_to_change() {
    let cases = [
        ("a: [1, 2\n", 1, "a list opened with `[` is not closed"),
        ("a:\n\tb: 1\n", 2, "a tab is used for indentation"),
        ("a: \"x\nb: 1\n", 1, "a quoted value is not closed"),
        ("a: b: c\n", 1, "unexpected `:`"),
        ("a: 1\n---\nb: 2\n", 2, "more than one YAML document"),
        (
            "a:\n  b: 1\n c: 2\n",
            3,
            "does not line up with the keys above it",
        ),
        ("a: @x\n", 1, "put the value in quotes"),
        ("a: *nope\n", 1, "refers to no anchor"),
    ];
    for (text, line, words) in cases {
        let p = parse("t.yml", text, Format::Yaml);
        assert!(p.root.is_none(), "{text:?}");
        let d = &p.diagnostics[0];
        assert_eq!(d.line, line, "{text:?}: {}", d.message);
        assert!(d.column > 0, "{text:?}");
        assert!(
            d.message
                .starts_with(&format!("YAML syntax error at column {}: ", d.column))
                && d.message.contains(words),
            "{text:?}: {}",
            d.message
        );
        assert!(objectos_spec::yaml::is_unreadable(d));
    }
    let j = parse("t.json", "{\"a\": 1,}", Format::Json);
    assert!(
        j.diagnostics[0]
            .message
            .starts_with("JSON syntax error at column 9: expected a key in double quotes"),
        "{}",
        j.diagnostics[0].message
    );
}

/// Context files make references resolve without their own problems being reported.
#[test]
fn context_files_resolve_references_silently() {
    use objectos_spec::audit::Auditor;
    let deal = "name: deal\nfields:\n  account: { type: lookup, reference: account }\n";
    let mut alone = Auditor::new();
    alone.add_file("objects/deal.object.yml", deal);
    assert_eq!(alone.finish().error_count(), 1);
    let mut auditor = Auditor::new();
    auditor.add_file("objects/deal.object.yml", deal);
    auditor.add_context_file(
        "objects/account.object.yml",
        "name: account\nfields:\n  name: { type: text, lable: Name }\n",
    );
    let report = auditor.finish();
    assert!(report.diagnostics.is_empty(), "{:#?}", report.diagnostics);
    assert_eq!((report.files_checked, report.objects), (1, 1));
    assert_eq!(report.object_schemas.len(), 1);
}
