//! Validation errors a form can use: one answer with every field error of a write, and rule
//! failures on the fields they concern.

use objectos_data::DataError;
use serde_json::json;

use crate::{for_each_backend, rec, user_cx};

const EVENT: &[(&str, &str)] = &[(
    "event.object.yml",
    r#"
name: event
fields:
  title: { type: text, required: true, maxLength: 20 }
  starts: { type: date }
  ends: { type: date }
  seats: { type: number }
  booked: { type: number }
  free: { type: formula, expression: "seats - booked" }
validations:
  - { name: ends_after_start, type: cross_field, condition: "ends < starts", fields: [starts, ends], message: "The end is before the start" }
  - { name: not_overbooked, type: script, condition: "free < 0", message: "More seats booked than there are" }
"#,
)];

/// `(field, code, rule)` of every field error.
fn fields(err: &DataError) -> Vec<(String, String, Option<String>)> {
    err.field_errors()
        .iter()
        .map(|e| (e.field.clone(), e.code.clone(), e.rule().map(str::to_owned)))
        .collect()
}

fn row(field: &str, code: &str, rule: Option<&str>) -> (String, String, Option<String>) {
    (field.to_owned(), code.to_owned(), rule.map(str::to_owned))
}

#[tokio::test]
async fn every_mistake_of_a_write_comes_back_at_once() {
    for_each_backend(EVENT, |e| async move {
        let cx = user_cx();
        // An unknown field, a value of the wrong type, a missing required field and a failed rule.
        let err = e
            .create(
                &cx,
                "event",
                rec(json!({ "venue": "hall", "seats": "many", "starts": "2026-05-02", "ends": "2026-05-01" })),
            )
            .await
            .unwrap_err();
        assert_eq!((err.code(), err.http_status()), ("VALIDATION_FAILED", 400));
        assert_eq!(
            fields(&err),
            [
                row("venue", "unknown_field", None),
                row("seats", "invalid_type", None),
                row("title", "required", None),
                row("starts", "rule_failed", Some("ends_after_start")),
                row("ends", "rule_failed", Some("ends_after_start")),
            ]
        );
        // The rule reading `seats` (through the formula) is not run on an unreadable value.
        assert!(!fields(&err).iter().any(|(_, _, r)| r.as_deref() == Some("not_overbooked")));
        // The top-level message is the first problem's.
        assert_eq!(err.to_string(), err.field_errors()[0].message);

        // A script rule names the fields its condition reads, through the formula.
        let err = e
            .create(&cx, "event", rec(json!({ "title": "Launch", "seats": 10, "booked": 12 })))
            .await
            .unwrap_err();
        assert_eq!(
            fields(&err),
            [
                row("seats", "rule_failed", Some("not_overbooked")),
                row("booked", "rule_failed", Some("not_overbooked")),
            ]
        );
        assert_eq!(err.field_errors()[0].message, "More seats booked than there are");

        // An update whose input is refused lists every mistake the input alone shows, before
        // the stored record is read (so the answer does not depend on whether the caller may
        // see it): the unknown field and the value too long, not the rule over stored values.
        let ok = e
            .create(&cx, "event", rec(json!({ "title": "Launch", "seats": 10, "booked": 2 })))
            .await
            .unwrap();
        let id = ok["id"].as_str().unwrap();
        let err = e
            .update(
                &cx,
                "event",
                id,
                rec(json!({ "colour": "red", "title": "A title far longer than twenty", "booked": 11 })),
                None,
            )
            .await
            .unwrap_err();
        assert_eq!(
            fields(&err),
            [row("colour", "unknown_field", None), row("title", "too_long", None)]
        );
        // Without the unknown field, the same update reaches the rule over the stored seats.
        let err = e
            .update(
                &cx,
                "event",
                id,
                rec(json!({ "title": "A title far longer than twenty", "booked": 11 })),
                None,
            )
            .await
            .unwrap_err();
        assert_eq!(
            fields(&err),
            [
                row("title", "too_long", None),
                row("seats", "rule_failed", Some("not_overbooked")),
                row("booked", "rule_failed", Some("not_overbooked")),
            ]
        );
        // Nothing of the refused update was written.
        let stored = e
            .get(&cx, "event", id, objectos_spec::query::QueryAst::default())
            .await
            .unwrap();
        assert_eq!(stored["booked"], json!(2));
    })
    .await;
}
