//! Every field type gets a column, accepts a value and reads it back, on both databases.

use objectos_data::DataEngine;
use objectos_spec::object::{
    Field, FieldType, ObjectSchema, SelectOption, SummaryFunction, SummaryOperations,
};
use objectos_spec::query::QueryAst;
use serde_json::{Value, json};

use crate::{pg_drop, pg_schema, rec, user_cx};

fn all_types() -> ObjectSchema {
    let mut o = ObjectSchema::new("every");
    for t in FieldType::ALL {
        let mut f = Field::new(format!("f_{}", t.as_str()), *t);
        match t {
            FieldType::Lookup | FieldType::MasterDetail | FieldType::Tree => {
                f.reference = Some("every".into())
            }
            FieldType::User => f.reference = Some("every".into()),
            FieldType::Formula => f.expression = Some("1 + 1".into()),
            FieldType::Summary => {
                f.summary_operations = Some(SummaryOperations {
                    object: "every".into(),
                    field: None,
                    function: SummaryFunction::Count,
                    scope: Default::default(),
                })
            }
            FieldType::Select
            | FieldType::Radio
            | FieldType::Multiselect
            | FieldType::Checkboxes => {
                f.options = vec![SelectOption {
                    label: "X".into(),
                    value: "x".into(),
                    color: None,
                    default: false,
                }];
            }
            _ => {}
        }
        o = o.with_field(f.name.clone(), f);
    }
    o
}

fn sample(t: FieldType) -> Option<Value> {
    Some(match t {
        FieldType::Formula | FieldType::Summary | FieldType::Autonumber => return None,
        FieldType::Number
        | FieldType::Currency
        | FieldType::Percent
        | FieldType::Slider
        | FieldType::Progress => json!(12.5),
        FieldType::Rating => json!(4),
        FieldType::Date => json!("2026-01-31"),
        FieldType::Datetime => json!("2026-01-31T09:30:00.000Z"),
        FieldType::Time => json!("09:30:00"),
        FieldType::Boolean | FieldType::Toggle => json!(true),
        FieldType::Select | FieldType::Radio => json!("x"),
        FieldType::Multiselect | FieldType::Checkboxes | FieldType::Tags => json!(["x"]),
        FieldType::Email => json!("a@example.com"),
        FieldType::Url => json!("https://example.com"),
        FieldType::Phone => json!("+1 555 0100"),
        FieldType::Location
        | FieldType::Address
        | FieldType::Json
        | FieldType::Composite
        | FieldType::Record
        | FieldType::Object => json!({"a": 1}),
        FieldType::Repeater => json!([{"a": 1}]),
        FieldType::Vector => json!([0.5, 1.5]),
        FieldType::Lookup | FieldType::MasterDetail | FieldType::Tree | FieldType::User => {
            return None;
        }
        _ => json!("text value"),
    })
}

async fn check(engine: DataEngine) {
    let plan = engine.plan_migration().await.unwrap();
    assert!(plan.is_empty(), "{plan}");
    let mut data = serde_json::Map::new();
    for t in FieldType::ALL {
        if let Some(v) = sample(*t) {
            data.insert(format!("f_{}", t.as_str()), v);
        }
    }
    let created = engine
        .create(&user_cx(), "every", data.clone())
        .await
        .unwrap_or_else(|e| panic!("create: {e} {:?}", e.field_errors()));
    let got = engine
        .get(
            &user_cx(),
            "every",
            created["id"].as_str().unwrap(),
            QueryAst::default(),
        )
        .await
        .unwrap();
    for (k, v) in &data {
        assert_eq!(&got[k], v, "field {k}");
    }
    assert_eq!(got["f_formula"], json!(2));
    assert_eq!(got["f_summary"], json!(0));
    assert_eq!(got["f_autonumber"], json!("1"));
    let child = engine
        .create(
            &user_cx(),
            "every",
            rec(json!({"f_lookup": created["id"], "f_master_detail": created["id"]})),
        )
        .await
        .unwrap();
    assert_eq!(child["f_lookup"], created["id"]);
}

#[tokio::test]
async fn every_field_type_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("all.db").display());
    check(
        DataEngine::open_with_objects(&url, vec![all_types()])
            .await
            .unwrap(),
    )
    .await;
    if let Some(base) = std::env::var("OBJECTOS_TEST_POSTGRES_URL")
        .ok()
        .filter(|s| !s.is_empty())
    {
        let (url, schema) = pg_schema(&base).await;
        let engine = DataEngine::open_with_objects(&url, vec![all_types()])
            .await
            .unwrap();
        check(engine.clone()).await;
        engine.connection().clone().close().await.ok();
        pg_drop(&base, &schema).await;
    } else {
        eprintln!("PostgreSQL skipped: set OBJECTOS_TEST_POSTGRES_URL");
    }
}
