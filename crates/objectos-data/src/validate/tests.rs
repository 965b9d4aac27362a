//! Unit tests for validation: coercion per field type, field checks, rules, formulas, autonumber.

use chrono::{NaiveDate, TimeZone, Utc};
use objectos_spec::object::{Field, FieldType, ObjectSchema};
use serde_json::{Value, json};

use super::*;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 16, 45, 10)
        .single()
        .unwrap()
}

fn rec(v: Value) -> Record {
    v.as_object().cloned().unwrap()
}

fn schema(v: Value) -> ObjectSchema {
    serde_json::from_value(v).unwrap()
}

/// The transcript's contact object.
fn contact() -> ObjectSchema {
    schema(json!({
        "name": "contact",
        "label": "Contact",
        "fields": {
            "name": { "label": "Name", "type": "text", "required": true, "maxLength": 200 },
            "email": { "label": "Email", "type": "email" },
            "amount": { "label": "Amount", "type": "currency", "precision": 12, "scale": 2 },
            "status": { "label": "Status", "type": "select", "options": [
                { "label": "New", "value": "new", "default": true },
                { "label": "Active", "value": "active" },
                { "label": "Closed", "value": "closed" }
            ] },
            "account": { "label": "Account", "type": "lookup", "reference": "account" }
        }
    }))
}

fn codes(errors: &[FieldError]) -> Vec<(&str, &str)> {
    errors
        .iter()
        .map(|e| (e.field.as_str(), e.code.as_str()))
        .collect()
}

// ---- transcript ----------------------------------------------------------------------------

#[test]
fn transcript_exchange_24_name_is_required() {
    let s = contact();
    let mut input = rec(json!({ "email": "noname@example.com" }));
    coerce(&s, &mut input).unwrap();
    apply_defaults(&s, &mut input);
    let errors = validate(&s, WriteKind::Insert, &input, None, now()).unwrap_err();
    assert_eq!(
        errors,
        vec![FieldError::new("name", "required", "Name is required").with_label("Name")]
    );
}

#[test]
fn transcript_exchange_25_bad_select_value() {
    let s = contact();
    let mut input = rec(json!({ "name": "Bad Status", "status": "bogus" }));
    let errors = coerce(&s, &mut input).unwrap_err();
    assert_eq!(
        errors,
        vec![
            FieldError::new(
                "status",
                "invalid_option",
                "Status must be one of: new, active, closed"
            )
            .with_label("Status")
            .with_constraint(json!({ "allowed": "new, active, closed" }))
            .with_options(vec!["new".into(), "active".into(), "closed".into()])
        ]
    );
}

// ---- coercion ------------------------------------------------------------------------------

fn one(kind: FieldType) -> ObjectSchema {
    ObjectSchema::new("thing").with_field("f", Field::new("f", kind))
}

fn coerce_one(kind: FieldType, v: Value) -> Result<Value, FieldError> {
    coerce_field(&one(kind), v)
}

fn coerce_field(s: &ObjectSchema, v: Value) -> Result<Value, FieldError> {
    let mut r = rec(json!({ "f": v }));
    match coerce(s, &mut r) {
        Ok(()) => Ok(r["f"].clone()),
        Err(mut e) => Err(e.remove(0)),
    }
}

fn first_err(kind: FieldType, v: Value) -> FieldError {
    let mut r = rec(json!({ "f": v }));
    coerce(&one(kind), &mut r).unwrap_err().remove(0)
}

#[test]
fn text_types_need_strings() {
    for kind in FieldType::ALL.iter().copied().filter(|k| k.is_text()) {
        let ok = match kind {
            FieldType::Email => json!("a@b.co"),
            FieldType::Url => json!("https://example.com/x"),
            FieldType::Phone => json!("+1 (555) 010-0100"),
            _ => json!("hello"),
        };
        assert_eq!(coerce_one(kind, ok.clone()).unwrap(), ok, "{kind}");
        assert_eq!(coerce_one(kind, json!("")).unwrap(), json!(""), "{kind}");
        assert_eq!(
            coerce_one(kind, Value::Null).unwrap(),
            Value::Null,
            "{kind}"
        );
        let e = first_err(kind, json!(12));
        assert_eq!(e.code, "invalid_type", "{kind}");
        assert_eq!(e.message, "F must be text but got a number");
    }
}

#[test]
fn email_url_phone_formats() {
    for bad in [
        "no-at", "a@b", "a b@c.d", "a@@b.c", "@b.co", "a@.b.co", "a@b..co",
    ] {
        let e = first_err(FieldType::Email, json!(bad));
        assert_eq!(
            (e.code.as_str(), e.message.as_str()),
            (
                "invalid_format",
                "F must be a valid email address such as name@example.com"
            ),
            "{bad}"
        );
    }
    for good in [
        "http://x.io",
        "https://example.com/a?b=c",
        "ftp://files.example.com",
        "mailto:a@b.co",
    ] {
        assert!(coerce_one(FieldType::Url, json!(good)).is_ok(), "{good}");
    }
    for bad in [
        "example.com",
        "http://",
        "http:///x",
        "https://a b",
        "1http://x",
    ] {
        assert_eq!(
            first_err(FieldType::Url, json!(bad)).code,
            "invalid_format",
            "{bad}"
        );
    }
    for good in [
        "555-0100",
        "+44 20 7946 0958",
        "(555) 010.0100 ext 12",
        "555 0100 x7",
    ] {
        assert!(coerce_one(FieldType::Phone, json!(good)).is_ok(), "{good}");
    }
    for bad in ["12", "call me", "+1 555 0100 ext", "5".repeat(25).as_str()] {
        assert_eq!(
            first_err(FieldType::Phone, json!(bad)).code,
            "invalid_format",
            "{bad}"
        );
    }
}

#[test]
fn numbers_accept_numeric_strings() {
    for kind in FieldType::ALL.iter().copied().filter(|k| k.is_numeric()) {
        assert_eq!(
            coerce_one(kind, json!(12.5)).unwrap(),
            json!(12.5),
            "{kind}"
        );
        assert_eq!(
            coerce_one(kind, json!("12.5")).unwrap(),
            json!(12.5),
            "{kind}"
        );
        assert_eq!(coerce_one(kind, json!(" 7 ")).unwrap(), json!(7), "{kind}");
        assert_eq!(coerce_one(kind, json!(3.0)).unwrap(), json!(3), "{kind}");
        for bad in [
            json!("abc"),
            json!(true),
            json!([1]),
            json!("inf"),
            json!("NaN"),
        ] {
            let e = first_err(kind, bad.clone());
            assert_eq!(e.code, "invalid_type", "{kind} {bad}");
            assert!(
                e.message.starts_with("F must be a number but got"),
                "{}",
                e.message
            );
        }
    }
}

#[test]
fn booleans() {
    for kind in [FieldType::Boolean, FieldType::Toggle] {
        assert_eq!(coerce_one(kind, json!(true)).unwrap(), json!(true));
        assert_eq!(coerce_one(kind, json!("FALSE")).unwrap(), json!(false));
        assert_eq!(coerce_one(kind, json!("True")).unwrap(), json!(true));
        assert_eq!(
            first_err(kind, json!(1)).message,
            "F must be true or false but got a number"
        );
        assert_eq!(first_err(kind, json!("yes")).code, "invalid_type");
    }
}

#[test]
fn dates_datetimes_and_times() {
    assert_eq!(
        coerce_one(FieldType::Date, json!("2026-11-23")).unwrap(),
        json!("2026-11-23")
    );
    assert_eq!(
        coerce_one(FieldType::Date, json!("2026-11-23T23:30:00-02:00")).unwrap(),
        json!("2026-11-24")
    );
    for bad in [
        json!("2026-13-01"),
        json!("23/11/2026"),
        json!(20261123),
        json!("2026-2-3"),
    ] {
        let e = first_err(FieldType::Date, bad);
        assert_eq!(
            (e.code.as_str(), e.message.as_str()),
            ("invalid_format", "F must be a date in the form YYYY-MM-DD")
        );
    }
    assert_eq!(
        coerce_one(FieldType::Datetime, json!("2026-11-23T18:45:10.709+02:00")).unwrap(),
        json!("2026-11-23T16:45:10.709Z")
    );
    assert_eq!(
        coerce_one(FieldType::Datetime, json!("2026-11-23T16:45:10Z")).unwrap(),
        json!("2026-11-23T16:45:10.000Z")
    );
    assert_eq!(
        coerce_one(FieldType::Datetime, json!("2026-11-23")).unwrap(),
        json!("2026-11-23T00:00:00.000Z")
    );
    assert_eq!(
        first_err(FieldType::Datetime, json!("yesterday")).code,
        "invalid_format"
    );
    assert_eq!(
        first_err(FieldType::Datetime, json!(1_700_000_000)).code,
        "invalid_format"
    );
    assert_eq!(
        coerce_one(FieldType::Time, json!("09:30")).unwrap(),
        json!("09:30:00")
    );
    assert_eq!(
        coerce_one(FieldType::Time, json!("23:59:59")).unwrap(),
        json!("23:59:59")
    );
    assert_eq!(
        coerce_one(FieldType::Time, json!("08:00:01.250")).unwrap(),
        json!("08:00:01.250")
    );
    for bad in ["25:00", "9.30", "noon", "12:61"] {
        let e = first_err(FieldType::Time, json!(bad));
        assert_eq!(
            e.message, "F must be a time in the form HH:MM or HH:MM:SS",
            "{bad}"
        );
    }
}

fn choice(kind: FieldType, multiple: bool) -> ObjectSchema {
    let mut f: Field = serde_json::from_value(json!({
        "type": kind.as_str(), "label": "Color", "options": ["red", "green", {"label": "Blue", "value": "blue"}]
    }))
    .unwrap();
    f.multiple = multiple;
    ObjectSchema::new("thing").with_field("f", f)
}

#[test]
fn select_and_radio_options() {
    for kind in [FieldType::Select, FieldType::Radio] {
        let s = choice(kind, false);
        assert_eq!(coerce_field(&s, json!("red")).unwrap(), json!("red"));
        let mut r = rec(json!({ "f": "pink" }));
        let e = coerce(&s, &mut r).unwrap_err().remove(0);
        assert_eq!(
            e,
            FieldError::new(
                "f",
                "invalid_option",
                "Color must be one of: red, green, blue"
            )
            .with_label("Color")
            .with_constraint(json!({ "allowed": "red, green, blue" }))
            .with_options(vec!["red".into(), "green".into(), "blue".into()])
        );
        let mut r = rec(json!({ "f": 3 }));
        assert_eq!(coerce(&s, &mut r).unwrap_err()[0].code, "invalid_type");
    }
    // A select with `multiple` takes a list.
    let s = choice(FieldType::Select, true);
    assert_eq!(coerce_field(&s, json!("red")).unwrap(), json!(["red"]));
    // Options-free selects accept any text.
    assert_eq!(
        coerce_one(FieldType::Select, json!("anything")).unwrap(),
        json!("anything")
    );
}

#[test]
fn multi_choice_lists() {
    for kind in [FieldType::Multiselect, FieldType::Checkboxes] {
        let s = choice(kind, false);
        assert_eq!(
            coerce_field(&s, json!(["red", "blue"])).unwrap(),
            json!(["red", "blue"])
        );
        assert_eq!(coerce_field(&s, json!("green")).unwrap(), json!(["green"]));
        assert_eq!(coerce_field(&s, json!([])).unwrap(), json!([]));
        let mut r = rec(json!({ "f": ["red", "pink", "grey"] }));
        let errors = coerce(&s, &mut r).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].message, "Color must be one of: red, green, blue");
        let mut r = rec(json!({ "f": ["red", null] }));
        assert_eq!(
            coerce(&s, &mut r).unwrap_err()[0].message,
            "Color cannot contain null items"
        );
    }
}

#[test]
fn references() {
    for kind in [
        FieldType::Lookup,
        FieldType::MasterDetail,
        FieldType::Tree,
        FieldType::User,
    ] {
        assert_eq!(coerce_one(kind, json!("abc123")).unwrap(), json!("abc123"));
        assert_eq!(coerce_one(kind, json!(42)).unwrap(), json!("42"));
        assert_eq!(
            coerce_one(kind, json!({ "id": "x1", "name": "Acme" })).unwrap(),
            json!("x1")
        );
        assert_eq!(
            first_err(kind, json!("")).message,
            "F must be a record id but got text"
        );
        assert_eq!(first_err(kind, json!(1.5)).code, "invalid_type");
        assert_eq!(first_err(kind, json!({ "name": "x" })).code, "invalid_type");
        assert_eq!(first_err(kind, json!(["a"])).code, "invalid_type");
    }
    let mut f = Field::new("f", FieldType::Lookup);
    f.multiple = true;
    let s = ObjectSchema::new("thing").with_field("f", f);
    assert_eq!(
        coerce_field(&s, json!(["a", 7])).unwrap(),
        json!(["a", "7"])
    );
    assert_eq!(coerce_field(&s, json!("a")).unwrap(), json!(["a"]));
}

#[test]
fn media_json_tags_vector() {
    for kind in FieldType::ALL.iter().copied().filter(|k| k.is_media()) {
        assert!(coerce_one(kind, json!("files/1.png")).is_ok());
        assert!(coerce_one(kind, json!({ "url": "x" })).is_ok());
        assert_eq!(first_err(kind, json!(1)).code, "invalid_type");
    }
    for kind in [
        FieldType::Json,
        FieldType::Object,
        FieldType::Location,
        FieldType::Address,
        FieldType::Composite,
        FieldType::Repeater,
        FieldType::Record,
    ] {
        for v in [
            json!({ "a": [1, 2] }),
            json!([1]),
            json!("x"),
            json!(3),
            json!(true),
        ] {
            assert_eq!(coerce_one(kind, v.clone()).unwrap(), v, "{kind}");
        }
    }
    assert_eq!(
        coerce_one(FieldType::Tags, json!("vip")).unwrap(),
        json!(["vip"])
    );
    assert_eq!(
        coerce_one(FieldType::Tags, json!(["a", "b"])).unwrap(),
        json!(["a", "b"])
    );
    assert_eq!(first_err(FieldType::Tags, json!([1])).code, "invalid_type");
    let mut f = Field::new("f", FieldType::Vector);
    f.vector_config = Some(objectos_spec::object::VectorConfig {
        dimensions: 3,
        distance_metric: None,
    });
    let s = ObjectSchema::new("thing").with_field("f", f);
    assert!(coerce_field(&s, json!([0.1, 0.2, 0.3])).is_ok());
    let mut r = rec(json!({ "f": [1, 2] }));
    assert_eq!(
        coerce(&s, &mut r).unwrap_err()[0].message,
        "F must have 3 dimensions but has 2"
    );
    assert_eq!(
        first_err(FieldType::Vector, json!(["a"])).code,
        "invalid_type"
    );
}

#[test]
fn computed_unknown_and_system_fields() {
    for kind in [
        FieldType::Formula,
        FieldType::Summary,
        FieldType::Autonumber,
    ] {
        let e = first_err(kind, json!(1));
        assert_eq!(
            (e.code.as_str(), e.message.as_str()),
            ("readonly", "F is computed by the server and cannot be set")
        );
        assert_eq!(first_err(kind, Value::Null).code, "readonly");
    }
    let s = contact();
    let mut r = rec(
        json!({ "name": "x", "foo": 1, "id": "abc", "created_at": "whatever", "owner_id": "u1" }),
    );
    let errors = coerce(&s, &mut r).unwrap_err();
    assert_eq!(
        errors,
        vec![FieldError::new(
            "foo",
            "unknown_field",
            "Unknown field `foo` on contact"
        )]
    );
}

#[test]
fn coercion_collects_every_problem_and_never_panics() {
    let s = contact();
    let mut r = rec(
        json!({ "name": 1, "email": "bad", "amount": "x", "status": "bogus", "account": false, "zzz": 1 }),
    );
    let errors = coerce(&s, &mut r).unwrap_err();
    assert_eq!(
        codes(&errors),
        [
            ("name", "invalid_type"),
            ("email", "invalid_format"),
            ("amount", "invalid_type"),
            ("status", "invalid_option"),
            ("account", "invalid_type"),
            ("zzz", "unknown_field")
        ]
    );
    let samples = [
        json!(null),
        json!(true),
        json!(0),
        json!(-1.5),
        json!(""),
        json!("x"),
        json!("2026-01-01"),
        json!([]),
        json!([1, "a", null]),
        json!({}),
        json!({ "id": 1 }),
    ];
    for kind in FieldType::ALL {
        for multiple in [false, true] {
            let mut f = Field::new("f", *kind);
            f.multiple = multiple;
            let s = ObjectSchema::new("t").with_field("f", f);
            for v in &samples {
                let mut r = rec(json!({ "f": v }));
                let _ = coerce(&s, &mut r);
            }
        }
    }
}

// ---- defaults ------------------------------------------------------------------------------

#[test]
fn defaults_fill_missing_fields_only() {
    let s = schema(json!({
        "name": "t",
        "fields": {
            "status": { "type": "select", "options": [{"value": "a"}, {"value": "b", "default": true}] },
            "tags": { "type": "multiselect", "options": [{"value": "x", "default": true}, {"value": "y", "default": true}, {"value": "z"}] },
            "priority": { "type": "number", "defaultValue": 3 },
            "kind": { "type": "text", "default": "plain" },
            "total": { "type": "formula", "expression": "1", "defaultValue": 9 },
            "note": { "type": "text" }
        }
    }));
    let mut r = rec(json!({ "kind": null }));
    apply_defaults(&s, &mut r);
    assert_eq!(
        Value::Object(r),
        json!({ "kind": null, "status": "b", "tags": ["x", "y"], "priority": 3 })
    );
    let mut r = rec(json!({ "status": "a" }));
    CompiledRules::compile(&s).unwrap().apply_defaults(&mut r);
    assert_eq!(r["status"], json!("a"));
    // The transcript's contact gets status `new`.
    let mut r = rec(json!({ "name": "n" }));
    apply_defaults(&contact(), &mut r);
    assert_eq!(r["status"], json!("new"));
}

// ---- field checks --------------------------------------------------------------------------

#[test]
fn required_on_insert_and_update() {
    let s = contact();
    for blank in [json!({}), json!({ "name": null }), json!({ "name": "" })] {
        let errors = validate(&s, WriteKind::Insert, &rec(blank), None, now()).unwrap_err();
        assert_eq!(errors[0].message, "Name is required");
    }
    let old = rec(json!({ "name": "Ann", "amount": 5 }));
    assert!(
        validate(
            &s,
            WriteKind::Update,
            &rec(json!({ "amount": 6 })),
            Some(&old),
            now()
        )
        .is_ok()
    );
    let errors = validate(
        &s,
        WriteKind::Update,
        &rec(json!({ "name": "" })),
        Some(&old),
        now(),
    )
    .unwrap_err();
    assert_eq!(codes(&errors), [("name", "required")]);
    // A required multiselect with an empty list and a label-less field name in words.
    let s = schema(
        json!({ "name": "t", "fields": { "first_name": { "type": "text", "required": true },
        "flag": { "type": "boolean", "required": true } } }),
    );
    let errors = validate(
        &s,
        WriteKind::Insert,
        &rec(json!({ "flag": false })),
        None,
        now(),
    )
    .unwrap_err();
    assert_eq!(
        errors,
        vec![
            FieldError::new("first_name", "required", "First Name is required")
                .with_label("First Name")
        ]
    );
}

#[test]
fn conditional_required() {
    let s = schema(json!({ "name": "t", "fields": {
        "status": { "type": "text" },
        "reason": { "type": "text", "label": "Reason", "conditionalRequired": "status = 'lost'" }
    } }));
    assert!(
        validate(
            &s,
            WriteKind::Insert,
            &rec(json!({ "status": "won" })),
            None,
            now()
        )
        .is_ok()
    );
    let errors = validate(
        &s,
        WriteKind::Insert,
        &rec(json!({ "status": "lost" })),
        None,
        now(),
    )
    .unwrap_err();
    assert_eq!(errors[0].message, "Reason is required");
    assert!(
        validate(
            &s,
            WriteKind::Insert,
            &rec(json!({ "status": "lost", "reason": "price" })),
            None,
            now()
        )
        .is_ok()
    );
    // On update the condition sees the merged record.
    let old = rec(json!({ "status": "open", "reason": null }));
    assert!(
        validate(
            &s,
            WriteKind::Update,
            &rec(json!({ "status": "lost" })),
            Some(&old),
            now()
        )
        .is_err()
    );
}

#[test]
fn ranges_lengths_precision_scale() {
    let s = schema(json!({ "name": "t", "fields": {
        "qty": { "type": "number", "label": "Qty", "min": 1, "max": 10 },
        "code": { "type": "text", "label": "Code", "minLength": 2, "maxLength": 4 },
        "price": { "type": "currency", "label": "Price", "precision": 5, "scale": 2 },
        "n": { "type": "number", "label": "N", "precision": 3 }
    } }));
    let check = |v: Value| match validate(&s, WriteKind::Insert, &rec(v), None, now()) {
        Ok(_) => Vec::new(),
        Err(e) => e.into_iter().map(|e| e.message).collect::<Vec<_>>(),
    };
    assert!(check(json!({ "qty": 5, "code": "ab", "price": 999.99, "n": 123 })).is_empty());
    assert_eq!(check(json!({ "qty": 0 })), ["Qty must be at least 1"]);
    assert_eq!(check(json!({ "qty": 11 })), ["Qty must be at most 10"]);
    assert_eq!(
        check(json!({ "code": "a" })),
        ["Code must be at least 2 characters"]
    );
    assert_eq!(
        check(json!({ "code": "abcde" })),
        ["Code must be at most 4 characters"]
    );
    assert_eq!(check(json!({ "code": "éééé" })), Vec::<String>::new());
    assert_eq!(
        check(json!({ "price": 1.005 })),
        ["Price must have at most 2 decimal places"]
    );
    assert_eq!(
        check(json!({ "price": 1000 })),
        ["Price must have at most 3 digits before the decimal point"]
    );
    assert_eq!(check(json!({ "price": -999.5 })), Vec::<String>::new());
    assert_eq!(
        check(json!({ "n": 1234 })),
        ["N must have at most 3 digits before the decimal point"]
    );
    assert_eq!(
        check(json!({ "n": 12.25 })),
        ["N must have at most 3 digits"]
    );
    assert!(check(json!({ "n": 1.25 })).is_empty());
    // Every problem is reported.
    assert_eq!(check(json!({ "qty": 0, "code": "abcdef" })).len(), 2);
    // Updates only check the values being written.
    let old = rec(json!({ "qty": 50 }));
    assert!(
        validate(
            &s,
            WriteKind::Update,
            &rec(json!({ "code": "ok" })),
            Some(&old),
            now()
        )
        .is_ok()
    );
}

// ---- rules ---------------------------------------------------------------------------------

fn with_rules(rules: Value) -> ObjectSchema {
    schema(json!({ "name": "deal", "fields": {
        "amount": { "type": "number" },
        "discount": { "type": "number" },
        "stage": { "type": "select", "options": ["new", "won", "lost"] },
        "email": { "type": "text" },
        "code": { "type": "text" },
        "meta": { "type": "json" },
        "net": { "type": "formula", "expression": "amount - BLANKVALUE(discount, 0)" }
    }, "validations": rules }))
}

fn run(
    s: &ObjectSchema,
    kind: WriteKind,
    new: Value,
    old: Option<Value>,
) -> Result<Vec<FieldError>, Vec<FieldError>> {
    let old = old.map(rec);
    let compiled = CompiledRules::compile(s).unwrap();
    compiled.validate(kind, &rec(new), old.as_ref(), now())
}

#[test]
fn script_rules_fail_when_true() {
    let s = with_rules(
        json!([{ "name": "no_negative", "type": "script", "condition": "amount < 0", "message": "Amount must be >= 0" }]),
    );
    assert_eq!(
        run(&s, WriteKind::Insert, json!({ "amount": 1 }), None).unwrap(),
        vec![]
    );
    let errors = run(&s, WriteKind::Insert, json!({ "amount": -1 }), None).unwrap_err();
    assert_eq!(
        errors,
        vec![
            FieldError::new("amount", "rule_failed", "Amount must be >= 0")
                .with_rule("no_negative")
        ]
    );
    // NULL conditions pass.
    assert!(run(&s, WriteKind::Insert, json!({}), None).is_ok());
    // A condition that cannot be evaluated fails closed with the reason.
    let s = with_rules(json!([{ "name": "r", "type": "script", "condition": "email > 1" }]));
    let e = run(&s, WriteKind::Insert, json!({ "email": "x" }), None).unwrap_err();
    assert!(
        e[0].message
            .starts_with("Validation rule `r` could not be evaluated: cannot compare"),
        "{}",
        e[0].message
    );
}

#[test]
fn rules_see_formulas_and_the_merged_record() {
    let s = with_rules(
        json!([{ "name": "positive_net", "type": "cross_field", "condition": "net <= 0",
        "fields": ["amount", "discount"], "message": "Discount too large" }]),
    );
    assert!(
        run(
            &s,
            WriteKind::Insert,
            json!({ "amount": 10, "discount": 5 }),
            None
        )
        .is_ok()
    );
    assert_eq!(
        run(
            &s,
            WriteKind::Insert,
            json!({ "amount": 10, "discount": 10 }),
            None
        )
        .unwrap_err()[0]
            .message,
        "Discount too large"
    );
    let old = json!({ "amount": 10, "discount": 1 });
    assert!(run(&s, WriteKind::Update, json!({ "discount": 12 }), Some(old)).is_err());
}

/// A rule over several fields names each, so a form can highlight them: the declared `fields` of
/// a cross_field rule, else what the condition reads, a formula replaced by its inputs, a lookup
/// path by its lookup field, system fields left out.
#[test]
fn rule_errors_name_the_fields_they_concern() {
    let fields_of = |rules: Value, input: Value| -> Vec<(String, Option<String>)> {
        run(&with_rules(rules), WriteKind::Insert, input, None)
            .unwrap_err()
            .into_iter()
            .map(|e| (e.field.clone(), e.rule().map(str::to_owned)))
            .collect()
    };
    let named = |fields: &[&str], rule: &str| -> Vec<(String, Option<String>)> {
        fields
            .iter()
            .map(|f| ((*f).to_owned(), Some(rule.to_owned())))
            .collect()
    };
    // Declared fields win over what the condition reads (`net`, a formula).
    assert_eq!(
        fields_of(
            json!([{ "name": "r", "type": "cross_field", "condition": "net <= 0", "fields": ["discount", "amount"], "message": "m" }]),
            json!({ "amount": 1, "discount": 1 })
        ),
        named(&["discount", "amount"], "r")
    );
    // Without them: the formula's inputs, each once, in reading order.
    assert_eq!(
        fields_of(
            json!([{ "name": "r", "type": "script", "condition": "AND(net <= 0, amount > 0, ISBLANK(created_at))", "message": "m" }]),
            json!({ "amount": 1, "discount": 1 })
        ),
        named(&["amount", "discount"], "r")
    );
    // A condition that reads no field is reported on the rule's name, as before.
    assert_eq!(
        fields_of(
            json!([{ "name": "always", "type": "script", "condition": "1 = 1", "message": "m" }]),
            json!({})
        ),
        named(&["always"], "always")
    );
    // Every error carries the rule's message; the wire shape gains only `rule`.
    let e = run(
        &with_rules(json!([{ "name": "r", "type": "script", "condition": "amount > discount", "message": "Amount over discount" }])),
        WriteKind::Insert,
        json!({ "amount": 2, "discount": 1 }),
        None,
    )
    .unwrap_err();
    assert_eq!(
        serde_json::to_value(&e).unwrap(),
        json!([
            { "field": "amount", "code": "rule_failed", "message": "Amount over discount", "rule": "r" },
            { "field": "discount", "code": "rule_failed", "message": "Amount over discount", "rule": "r" }
        ])
    );
}

/// Problems found before validation come first in the same answer; their fields, and the rules
/// over them, are not checked again.
#[test]
fn earlier_errors_are_reported_with_validation() {
    let mut s = contact();
    s.validations = serde_json::from_value(json!([
        { "name": "needs_contact", "type": "script", "condition": "ISBLANK(email)", "message": "Give an email" },
        { "name": "amount_positive", "type": "script", "condition": "amount < 0", "message": "Amount must be positive" }
    ]))
    .unwrap();
    let compiled = CompiledRules::compile(&s).unwrap();
    let earlier = vec![
        FieldError::new(
            "nickname",
            "unknown_field",
            "Unknown field `nickname` on contact",
        ),
        FieldError::new(
            "amount",
            "invalid_type",
            "Amount must be a number but got text",
        ),
    ];
    let input = rec(json!({ "amount": "lots", "name": "" }));
    let errors = compiled
        .validate_after(WriteKind::Insert, &input, None, now(), earlier)
        .unwrap_err();
    let got: Vec<(&str, &str)> = errors
        .iter()
        .map(|e| (e.field.as_str(), e.code.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("nickname", "unknown_field"),
            ("amount", "invalid_type"),
            ("name", "required"),
            ("email", "rule_failed"),
        ]
    );
    // Nothing earlier and nothing now: the write passes.
    let ok = rec(json!({ "name": "A", "email": "a@b.co", "amount": 1 }));
    assert!(
        compiled
            .validate_after(WriteKind::Insert, &ok, None, now(), Vec::new())
            .is_ok()
    );
    // Earlier errors alone refuse it.
    assert!(
        compiled
            .validate_after(
                WriteKind::Insert,
                &ok,
                None,
                now(),
                vec![FieldError::new("x", "unknown_field", "m")]
            )
            .is_err()
    );
}

#[test]
fn severity_active_events_and_priority() {
    let s = with_rules(json!([
        { "name": "late", "type": "script", "condition": "amount > 100", "message": "second", "priority": 200 },
        { "name": "warn", "type": "script", "condition": "amount > 100", "message": "big deal", "severity": "warning" },
        { "name": "info", "type": "script", "condition": "amount > 100", "message": "fyi", "severity": "info" },
        { "name": "off", "type": "script", "condition": "amount > 100", "message": "off", "active": false },
        { "name": "upd", "type": "script", "condition": "amount > 100", "message": "update only", "events": ["update"] },
        { "name": "early", "type": "script", "condition": "amount > 100", "message": "first", "priority": 1 }
    ]));
    let errors = run(&s, WriteKind::Insert, json!({ "amount": 500 }), None).unwrap_err();
    assert_eq!(
        errors
            .iter()
            .map(|e| e.message.as_str())
            .collect::<Vec<_>>(),
        ["first", "second"]
    );
    let errors = run(
        &s,
        WriteKind::Update,
        json!({ "amount": 500 }),
        Some(json!({})),
    )
    .unwrap_err();
    assert_eq!(
        errors
            .iter()
            .map(|e| e.message.as_str())
            .collect::<Vec<_>>(),
        ["first", "update only", "second"]
    );
    let only_warnings = with_rules(json!([
        { "name": "warn", "type": "script", "condition": "amount > 100", "message": "big deal", "severity": "warning" },
        { "name": "info", "type": "script", "condition": "amount > 100", "message": "fyi", "severity": "info" }
    ]));
    let warnings = run(
        &only_warnings,
        WriteKind::Insert,
        json!({ "amount": 500 }),
        None,
    )
    .unwrap();
    assert_eq!(
        warnings
            .iter()
            .map(|e| e.message.as_str())
            .collect::<Vec<_>>(),
        ["big deal", "fyi"]
    );
}

#[test]
fn format_rules() {
    let s = with_rules(json!([
        { "name": "code_fmt", "type": "format", "field": "code", "regex": "^[A-Z]{3}-\\d+$", "message": "Code looks like ABC-1" },
        { "name": "email_fmt", "type": "format", "field": "email", "format": "email" }
    ]));
    assert!(
        run(
            &s,
            WriteKind::Insert,
            json!({ "code": "ABC-12", "email": "a@b.co" }),
            None
        )
        .is_ok()
    );
    assert!(
        run(
            &s,
            WriteKind::Insert,
            json!({ "code": null, "email": "" }),
            None
        )
        .is_ok()
    );
    let errors = run(
        &s,
        WriteKind::Insert,
        json!({ "code": "abc", "email": "nope" }),
        None,
    )
    .unwrap_err();
    assert_eq!(
        errors,
        vec![
            FieldError::new("code", "rule_failed", "Code looks like ABC-1").with_rule("code_fmt"),
            FieldError::new("email", "rule_failed", "`email` must be a valid email")
                .with_rule("email_fmt"),
        ]
    );
    for (format, good, bad) in [
        ("url", "https://x.io", "x.io"),
        ("phone", "555-0100", "abc"),
        ("json", "{\"a\":1}", "{"),
        ("uuid", "123e4567-e89b-12d3-a456-426614174000", "123e4567"),
        ("date", "2026-01-31", "2026-02-30"),
        ("datetime", "2026-01-31T10:00:00Z", "2026-01-31 10:00"),
        ("time", "10:30", "10h30"),
        ("ipv4", "10.0.0.1", "10.0.0.256"),
        ("ipv6", "::1", "1:::"),
        ("alphanumeric", "abc123", "abc-123"),
        ("numeric", "-1.5", "1,5"),
    ] {
        let s = with_rules(
            json!([{ "name": "f", "type": "format", "field": "code", "format": format }]),
        );
        assert!(
            run(&s, WriteKind::Insert, json!({ "code": good }), None).is_ok(),
            "{format} {good}"
        );
        assert!(
            run(&s, WriteKind::Insert, json!({ "code": bad }), None).is_err(),
            "{format} {bad}"
        );
    }
}

#[test]
fn state_machine_rules() {
    let s = with_rules(
        json!([{ "name": "stage_flow", "type": "state_machine", "field": "stage",
        "transitions": { "new": ["won", "lost"], "lost": ["new"] }, "message": "" }]),
    );
    let old = || Some(json!({ "stage": "new" }));
    assert!(run(&s, WriteKind::Update, json!({ "stage": "won" }), old()).is_ok());
    assert!(run(&s, WriteKind::Update, json!({ "stage": "new" }), old()).is_ok());
    assert!(run(&s, WriteKind::Update, json!({ "amount": 1 }), old()).is_ok());
    assert!(run(&s, WriteKind::Insert, json!({ "stage": "won" }), None).is_ok());
    let e = run(
        &s,
        WriteKind::Update,
        json!({ "stage": "new" }),
        Some(json!({ "stage": "won" })),
    )
    .unwrap_err();
    assert_eq!(
        e,
        vec![
            FieldError::new(
                "stage",
                "invalid_transition",
                "`stage` cannot change from `won` to `new`; `won` is a final state"
            )
            .with_rule("stage_flow")
        ]
    );
    let e = run(
        &s,
        WriteKind::Update,
        json!({ "stage": "won" }),
        Some(json!({ "stage": "lost" })),
    )
    .unwrap_err();
    assert_eq!(
        e[0].message,
        "`stage` cannot change from `lost` to `won`; allowed next values: new"
    );
}

#[test]
fn conditional_rules() {
    let s = with_rules(
        json!([{ "name": "big_needs_email", "type": "conditional", "when": "amount > 1000",
        "then": { "type": "script", "condition": "ISBLANK(email)", "message": "Big deals need an email" },
        "otherwise": { "type": "script", "condition": "amount < 0", "message": "Small deals cannot be negative", "severity": "warning" } }]),
    );
    assert!(
        run(
            &s,
            WriteKind::Insert,
            json!({ "amount": 5000, "email": "a@b.co" }),
            None
        )
        .is_ok()
    );
    let e = run(&s, WriteKind::Insert, json!({ "amount": 5000 }), None).unwrap_err();
    assert_eq!(
        e,
        vec![
            FieldError::new("email", "rule_failed", "Big deals need an email")
                .with_rule("big_needs_email")
        ]
    );
    let w = run(&s, WriteKind::Insert, json!({ "amount": -5 }), None).unwrap();
    assert_eq!(w[0].message, "Small deals cannot be negative");
    let no_otherwise = with_rules(
        json!([{ "name": "c", "type": "conditional", "when": "amount > 1",
        "then": { "type": "script", "condition": "TRUE", "message": "m" } }]),
    );
    assert!(
        run(
            &no_otherwise,
            WriteKind::Insert,
            json!({ "amount": 0 }),
            None
        )
        .is_ok()
    );
}

#[test]
fn json_schema_rules() {
    let s = with_rules(
        json!([{ "name": "meta_shape", "type": "json_schema", "field": "meta", "message": "",
        "schema": { "type": "object", "required": ["kind"], "additionalProperties": false, "properties": {
            "kind": { "type": "string", "enum": ["a", "b"] },
            "size": { "type": "integer", "minimum": 0, "maximum": 10 },
            "name": { "type": "string", "minLength": 1, "maxLength": 3 },
            "tags": { "type": "array", "items": { "type": "string" }, "maxItems": 2 },
            "v": { "const": 1 }
        } } }]),
    );
    let check = |v: Value| {
        run(&s, WriteKind::Insert, json!({ "meta": v }), None)
            .err()
            .map(|e| e[0].message.clone())
    };
    assert_eq!(
        check(json!({ "kind": "a", "size": 3, "name": "abc", "tags": ["x"], "v": 1 })),
        None
    );
    assert_eq!(check(Value::Null), None);
    assert_eq!(
        check(json!([])).as_deref(),
        Some("`meta` must be of type object")
    );
    assert_eq!(check(json!({})).as_deref(), Some("`meta.kind` is required"));
    assert_eq!(
        check(json!({ "kind": "c" })).as_deref(),
        Some("`meta.kind` must be one of: \"a\", \"b\"")
    );
    assert_eq!(
        check(json!({ "kind": "a", "size": 1.5 })).as_deref(),
        Some("`meta.size` must be of type integer")
    );
    assert_eq!(
        check(json!({ "kind": "a", "size": 11 })).as_deref(),
        Some("`meta.size` must be at most 10")
    );
    assert_eq!(
        check(json!({ "kind": "a", "size": -1 })).as_deref(),
        Some("`meta.size` must be at least 0")
    );
    assert_eq!(
        check(json!({ "kind": "a", "name": "" })).as_deref(),
        Some("`meta.name` must be at least 1 characters long")
    );
    assert_eq!(
        check(json!({ "kind": "a", "name": "abcd" })).as_deref(),
        Some("`meta.name` must be at most 3 characters long")
    );
    assert_eq!(
        check(json!({ "kind": "a", "tags": [1] })).as_deref(),
        Some("`meta.tags[0]` must be of type string")
    );
    assert_eq!(
        check(json!({ "kind": "a", "tags": ["a", "b", "c"] })).as_deref(),
        Some("`meta.tags` must have at most 2 items")
    );
    assert_eq!(
        check(json!({ "kind": "a", "v": 2 })).as_deref(),
        Some("`meta.v` must be 1")
    );
    assert_eq!(
        check(json!({ "kind": "a", "extra": 1 })).as_deref(),
        Some("`meta.extra` is not allowed")
    );
}

#[test]
fn unique_async_and_custom_rules() {
    let s = with_rules(json!([
        { "name": "uniq", "type": "unique", "fields": ["email", "code"], "caseSensitive": false },
        { "name": "remote", "type": "async", "field": "email", "validatorUrl": "https://x.io" },
        { "name": "handler", "type": "custom", "handler": "check_it" }
    ]));
    let warnings = run(
        &s,
        WriteKind::Insert,
        json!({ "email": "a@b.co", "code": "X" }),
        None,
    )
    .unwrap();
    assert_eq!(
        codes(&warnings),
        [("remote", "rule_skipped"), ("handler", "rule_skipped")]
    );
    assert_eq!(
        warnings[0].message,
        "Validation rule `remote` (async) is not run by this server"
    );
    let checks = unique_checks(&s, &rec(json!({ "email": "a@b.co", "code": "X" })));
    assert_eq!(
        checks,
        vec![UniqueCheck {
            fields: vec!["email".into(), "code".into()],
            values: vec![json!("a@b.co"), json!("X")],
            message: "The combination of Email, Code must be unique".into(),
            rule: Some("uniq".into()),
            case_sensitive: false,
            scope: None,
            scope_fields: vec![],
            scope_values: vec![],
            scope_condition: None,
            events: vec![RuleEvent::Insert, RuleEvent::Update],
        }]
    );
    assert!(unique_checks(&s, &rec(json!({ "email": "a@b.co" }))).is_empty());
}

#[test]
fn unique_rule_scopes() {
    let s = with_rules(json!([
        { "name": "per_stage", "type": "unique", "fields": ["code"], "scope": "stage" },
        { "name": "per_both", "type": "unique", "fields": ["email"], "scope": "stage, amount" },
        { "name": "open_only", "type": "unique", "fields": ["code"], "scope": "stage = 'new' AND net > 0" }
    ]));
    let checks = unique_checks(
        &s,
        &rec(json!({ "code": "X", "email": "e", "stage": "new", "amount": 5 })),
    );
    assert_eq!(checks.len(), 3);
    assert_eq!(
        (&checks[0].scope_fields, &checks[0].scope_values),
        (&vec!["stage".to_owned()], &vec![json!("new")])
    );
    assert_eq!(checks[1].scope_fields, ["stage", "amount"]);
    assert_eq!(checks[1].scope_values, [json!("new"), json!(5)]);
    // The condition reads a formula (net = amount - discount), computed for the check.
    let cond = checks[2].scope_condition.as_ref().unwrap();
    assert_eq!(cond.source(), "stage = 'new' AND net > 0");
    assert!(cond.admits(&rec(json!({ "stage": "new", "net": 1 })), now()));
    assert!(!cond.admits(&rec(json!({ "stage": "won", "net": 1 })), now()));
    // Out of scope: the record meets no condition, so the rule has nothing to check.
    let checks = unique_checks(
        &s,
        &rec(json!({ "code": "X", "stage": "won", "amount": 5 })),
    );
    assert_eq!(
        checks
            .iter()
            .map(|c| c.rule.as_deref().unwrap())
            .collect::<Vec<_>>(),
        ["per_stage"]
    );
    // A null scope value still checks (null matches null).
    let checks = unique_checks(&s, &rec(json!({ "code": "X" })));
    assert_eq!(checks[0].scope_values, [Value::Null]);

    let bad = with_rules(json!([
        { "name": "ghost_scope", "type": "unique", "fields": ["code"], "scope": "ghost = 1" },
        { "name": "broken_scope", "type": "unique", "fields": ["code"], "scope": "stage = " }
    ]));
    let errors = CompiledRules::compile(&bad).unwrap_err();
    assert_eq!(
        errors[0],
        "validation rule `ghost_scope` (unique): scope refers to unknown field `ghost`"
    );
    assert!(
        errors[1].starts_with(
            "validation rule `broken_scope` (unique): scope `stage = ` is neither a list of field names nor a condition that parses"
        ),
        "{}",
        errors[1]
    );
}

#[test]
fn unique_fields() {
    let s = schema(json!({ "name": "t", "fields": {
        "email": { "type": "email", "label": "Email", "unique": true },
        "code": { "type": "text", "unique": true }
    } }));
    let checks = unique_checks(&s, &rec(json!({ "email": "a@b.co", "code": "" })));
    assert_eq!(checks.len(), 1);
    assert_eq!(checks[0].fields, ["email"]);
    assert_eq!(checks[0].values, [json!("a@b.co")]);
    assert_eq!(checks[0].message, "Email must be unique");
    assert_eq!(checks[0].rule, None);
}

#[test]
fn compile_reports_every_metadata_problem() {
    let s = schema(json!({ "name": "t", "fields": {
        "a": { "type": "number" },
        "f1": { "type": "formula", "expression": "a +" },
        "f2": { "type": "formula" },
        "f3": { "type": "formula", "expression": "nope * 2" },
        "c": { "type": "text", "conditionalRequired": "a >" },
        "d": { "type": "text", "conditionalRequired": "ghost = 1" }
    }, "validations": [
        { "name": "bad_script", "type": "script", "condition": "(a" },
        { "name": "bad_regex", "type": "format", "field": "a", "regex": "(" },
        { "name": "bad_named", "type": "format", "field": "a", "format": "zip" },
        { "name": "no_check", "type": "format", "field": "a" },
        { "name": "ghost_field", "type": "state_machine", "field": "ghost", "transitions": {} },
        { "name": "ghost_json", "type": "json_schema", "field": "ghost", "schema": {} },
        { "name": "ghost_unique", "type": "unique", "fields": ["ghost"] },
        { "name": "bad_when", "type": "conditional", "when": "a = ", "then": { "type": "script", "condition": "TRUE" } },
        { "name": "bad_then", "type": "conditional", "when": "a = 1", "then": { "type": "script", "condition": "ghost" } }
    ] }));
    let errors = CompiledRules::compile(&s).unwrap_err();
    let expected_starts = [
        "formula field `f1`: expression does not parse: unexpected end of input at column 4",
        "formula field `f2` has no expression",
        "formula field `f3`: expression refers to unknown field `nope`",
        "field `c`: conditionalRequired `a >` does not parse",
        "field `d`: conditionalRequired refers to unknown field `ghost`",
        "validation rule `bad_script` (script): condition `(a` does not parse",
        "validation rule `bad_regex` (format): regex `(` is invalid",
        "validation rule `bad_named` (format): format `zip` is unknown",
        "validation rule `no_check` (format): needs `regex` or `format`",
        "validation rule `ghost_field` (state_machine): refers to unknown field `ghost`",
        "validation rule `ghost_json` (json_schema): refers to unknown field `ghost`",
        "validation rule `ghost_unique` (unique): refers to unknown field `ghost`",
        "validation rule `bad_when` (conditional): `when` `a = ` does not parse",
        "validation rule `bad_then` (script): condition refers to unknown field `ghost`",
    ];
    assert_eq!(errors.len(), expected_starts.len(), "{errors:#?}");
    for (e, want) in errors.iter().zip(expected_starts) {
        assert!(e.starts_with(want), "{e}\n  should start with\n{want}");
    }
    // Lenient compilation fails the broken rules closed instead of skipping them.
    let (lenient, _) = CompiledRules::compile_lenient(&s);
    let errors = lenient
        .validate(WriteKind::Insert, &rec(json!({ "a": 1 })), None, now())
        .unwrap_err();
    assert!(errors.iter().any(|e| {
        e.field == "bad_script"
            && e.message
                .starts_with("Cannot run validation rule `bad_script`")
    }));
    let mut r = rec(json!({ "a": 1 }));
    lenient.compute_formulas(&mut r, now());
    assert_eq!(
        Value::Object(r),
        json!({ "a": 1, "f1": null, "f2": null, "f3": null })
    );
}

// ---- formulas and autonumber ---------------------------------------------------------------

#[test]
fn formulas_run_in_dependency_order() {
    let s = schema(json!({ "name": "invoice", "fields": {
        "gross": { "type": "formula", "expression": "net + tax" },
        "tax": { "type": "formula", "expression": "ROUND(net * 0.2, 2)" },
        "net": { "type": "formula", "expression": "qty * price" },
        "label": { "type": "formula", "expression": "CONCAT(UPPER(name), ' #', TEXT(qty))" },
        "broken": { "type": "formula", "expression": "name * 2" },
        "due": { "type": "formula", "expression": "ADDDAYS(TODAY(), 30)" },
        "qty": { "type": "number" },
        "price": { "type": "currency" },
        "name": { "type": "text" }
    } }));
    let compiled = CompiledRules::compile(&s).unwrap();
    assert_eq!(
        compiled.formula_order(),
        ["net", "tax", "gross", "label", "broken", "due"]
    );
    assert_eq!(compiled.schema().name, "invoice");
    let mut r = rec(json!({ "qty": 3, "price": 400.1666, "name": "acme" }));
    compute_formulas(&s, &mut r, now());
    assert_eq!(r["net"], json!(1200.4998));
    assert_eq!(r["tax"], json!(240.1));
    assert_eq!(r["gross"], json!(1440.5998));
    assert_eq!(r["label"], json!("ACME #3"));
    assert_eq!(r["broken"], Value::Null);
    assert_eq!(r["due"], json!("2026-12-23"));
    let mut r = rec(json!({ "qty": 2, "price": 600.25 }));
    compiled.compute_formulas(&mut r, now());
    assert_eq!(r["net"], json!(1200.5));
}

#[test]
fn formula_cycles_are_detected_once() {
    let s = schema(json!({ "name": "t", "fields": {
        "a": { "type": "formula", "expression": "b + 1" },
        "b": { "type": "formula", "expression": "c + 1" },
        "c": { "type": "formula", "expression": "a + 1" },
        "d": { "type": "formula", "expression": "a * 2" },
        "e": { "type": "formula", "expression": "e" },
        "ok": { "type": "formula", "expression": "1 + 1" }
    } }));
    assert_eq!(
        check_formula_cycles(&s),
        [
            "formula fields form a cycle: a -> b -> c -> a",
            "formula fields form a cycle: e -> e"
        ]
    );
    assert_eq!(CompiledRules::compile(&s).unwrap_err().len(), 2);
    let mut r = Record::new();
    compute_formulas(&s, &mut r, now());
    assert_eq!(
        Value::Object(r),
        json!({ "a": null, "b": null, "c": null, "d": null, "e": null, "ok": 2 })
    );
    assert!(check_formula_cycles(&contact()).is_empty());
}

#[test]
fn autonumber_formats() {
    assert_eq!(format_autonumber("CASE-{0000}", 42), "CASE-0042");
    assert_eq!(format_autonumber("CASE-{0000}", 123_456), "CASE-123456");
    assert_eq!(format_autonumber("{0}", 7), "7");
    assert_eq!(format_autonumber("INV-", 7), "INV-7");
    assert_eq!(format_autonumber("A{00}-{YYYY}", 3), "A03-{YYYY}");
    assert_eq!(format_autonumber("{000}", -4), "-004");
    assert_eq!(format_autonumber("x{unclosed", 1), "x{unclosed1");
    let d = NaiveDate::from_ymd_opt(2026, 3, 9).unwrap();
    assert_eq!(
        format_autonumber_on("INV-{YYYY}{MM}{DD}-{00000}", 12, d),
        "INV-20260309-00012"
    );
    assert_eq!(format_autonumber_on("{YY}/{0}", 5, d), "26/5");
}

#[test]
fn write_kind_events() {
    assert_eq!(WriteKind::Insert.event(), RuleEvent::Insert);
    assert_eq!(WriteKind::Update.event(), RuleEvent::Update);
}

struct Accounts;

impl FieldResolver for Accounts {
    fn resolve(&self, record: &Record, path: &str) -> Option<Value> {
        (path == "account.name" && record.get("account") == Some(&json!("a1")))
            .then(|| json!("Acme"))
    }
}

#[test]
fn related_paths_and_resolved_formulas() {
    let s = schema(json!({ "name": "contact", "fields": {
        "account": { "type": "lookup", "reference": "account" },
        "owner": { "type": "lookup", "reference": "user" },
        "title": { "type": "formula", "expression": "CONCAT(account.name, ' / ', account.name)" },
        "note": { "type": "text", "conditionalRequired": "owner.active = TRUE" }
    }, "validations": [
        { "name": "c", "type": "conditional", "when": "account.tier > 1",
          "then": { "type": "script", "condition": "ISBLANK(owner.email)" } }
    ] }));
    let compiled = CompiledRules::compile(&s).unwrap();
    assert_eq!(
        compiled.related_paths(),
        [
            "account.name",
            "owner.active",
            "account.tier",
            "owner.email"
        ]
    );
    let mut r = rec(json!({ "account": "a1" }));
    compiled.compute_formulas_with(&mut r, now(), Some(&Accounts));
    assert_eq!(r["title"], json!("Acme / Acme"));
    // Expanded lookups work without a resolver.
    let mut r = rec(json!({ "account": { "id": "a1", "name": "Beta" } }));
    compiled.compute_formulas(&mut r, now());
    assert_eq!(r["title"], json!("Beta / Beta"));
}
