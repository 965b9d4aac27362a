//! NUL characters (`\u0000`): PostgreSQL refuses them in text and JSONB with a server error, so
//! the engine refuses them in every input position (record values of each string-like kind,
//! filters, search, cursors, record ids) with a 400 naming the field, on both databases alike.

use objectos_data::{DataEngine, DataError, Result};
use objectos_spec::query::{Cursor, Filter, FilterValue, Operator, QueryAst, SearchQuery};
use serde_json::{Value, json};

use crate::{CRM, for_each_backend, rec, user_cx};

/// A 400 `VALIDATION_FAILED` whose first field error is `invalid_character` on `field`.
#[track_caller]
fn refused_field<T: std::fmt::Debug>(r: Result<T>, field: &str) {
    let err = r.expect_err("a NUL character was accepted");
    assert_eq!(err.code(), "VALIDATION_FAILED", "{err}");
    assert_eq!(err.http_status(), 400);
    let f = &err.field_errors()[0];
    assert_eq!(
        (f.field.as_str(), f.code.as_str()),
        (field, "invalid_character"),
        "{err}"
    );
    assert!(f.message.contains("NUL"), "{}", f.message);
}

/// A 400 `INVALID_QUERY` with code `invalid_character` for query parameter `param`.
#[track_caller]
fn refused_query<T: std::fmt::Debug>(r: Result<T>, param: &str) {
    match r.expect_err("a NUL character was accepted") {
        DataError::InvalidQuery {
            param: p,
            code,
            message,
            ..
        } => {
            assert_eq!((p.as_str(), code.as_str()), (param, "invalid_character"));
            assert!(message.contains("NUL"), "{message}");
        }
        other => panic!("expected INVALID_QUERY, got {} {other}", other.code()),
    }
}

fn q(filter: Filter) -> QueryAst {
    QueryAst {
        filter,
        ..QueryAst::default()
    }
}

async fn names(e: &DataEngine) -> Vec<Value> {
    let all = e
        .find(&user_cx(), "account", QueryAst::default())
        .await
        .unwrap();
    all.records.iter().map(|r| r["name"].clone()).collect()
}

#[tokio::test]
async fn nul_characters_in_record_values_are_refused_naming_the_field() {
    for_each_backend(CRM, |e| async move {
        let cx = user_cx();
        let acme = e
            .create(&cx, "account", rec(json!({"name": "Acme"})))
            .await
            .unwrap();
        let id = acme["id"].as_str().unwrap().to_owned();
        // Text, select, multi-select, lookup, JSON (a nested string and a key).
        for (field, body) in [
            ("name", json!({"name": "a\u{0}b"})),
            ("kind", json!({"name": "ok", "kind": "prospect\u{0}"})),
            ("tags", json!({"name": "ok", "tags": ["a", "b\u{0}"]})),
            (
                "parent",
                json!({"name": "ok", "parent": format!("{id}\u{0}")}),
            ),
            ("meta", json!({"name": "ok", "meta": {"k": ["v\u{0}"]}})),
            ("meta", json!({"name": "ok", "meta": {"k\u{0}": 1}})),
        ] {
            refused_field(e.create(&cx, "account", rec(body.clone())).await, field);
            refused_field(e.update(&cx, "account", &id, rec(body), None).await, field);
        }
        // Email (and the lookup to the account, checked the same way).
        refused_field(
            e.create(
                &cx,
                "contact",
                rec(json!({"name": "c", "email": "a\u{0}@example.com"})),
            )
            .await,
            "email",
        );
        // Nothing was written or changed.
        assert_eq!(names(&e).await, [json!("Acme")]);
    })
    .await;
}

#[tokio::test]
async fn nul_characters_in_queries_and_ids_are_refused() {
    for_each_backend(CRM, |e| async move {
        let cx = user_cx();
        let acme = e
            .create(&cx, "account", rec(json!({"name": "Acme"})))
            .await
            .unwrap();
        let id = acme["id"].as_str().unwrap().to_owned();
        let nul = "Ac\u{0}me";
        let cond = |field: &str, op: Operator, v: Value| {
            Filter::condition(field, op, FilterValue::Value(v))
        };
        for filter in [
            Filter::eq("name", nul),
            cond("name", Operator::In, json!(["x", nul])),
            cond("name", Operator::Contains, json!(nul)),
            cond("name", Operator::StartsWith, json!(nul)),
            cond("name", Operator::Between, json!(["a", nul])),
            cond("tags", Operator::Contains, json!(nul)),
            cond("parent.name", Operator::Eq, json!(nul)),
            Filter::eq("id", format!("{id}\u{0}")),
        ] {
            refused_query(e.find(&cx, "account", q(filter.clone())).await, "filter");
            refused_query(e.count(&cx, "account", filter).await, "filter");
        }
        // An expanded lookup's own filter.
        let mut query = QueryAst::default();
        query
            .expand
            .insert("account".into(), q(Filter::eq("name", nul)));
        let c = e
            .create(&cx, "contact", rec(json!({"name": "c", "account": id})))
            .await
            .unwrap();
        refused_query(e.find(&cx, "contact", query).await, "expand");
        // Search text.
        let search = QueryAst {
            search: Some(SearchQuery {
                query: nul.into(),
                fields: vec![],
                fuzzy: false,
            }),
            ..QueryAst::default()
        };
        refused_query(e.find(&cx, "account", search).await, "search");
        // A keyset cursor's values are bound like filter values.
        let mut keyset = indexmap::IndexMap::new();
        keyset.insert("id".to_owned(), json!(nul));
        let paged = QueryAst {
            cursor: Some(Cursor::Keyset(keyset)),
            ..QueryAst::default()
        };
        match e.find(&cx, "account", paged).await.unwrap_err() {
            DataError::InvalidQuery { param, code, .. } => {
                assert_eq!(
                    (param.as_str(), code.as_str()),
                    ("cursor", "invalid_cursor")
                )
            }
            other => panic!("expected INVALID_QUERY, got {other}"),
        }
        // Record ids of get, update and delete.
        let bad = format!("{id}\u{0}");
        refused_query(e.get(&cx, "account", &bad, QueryAst::default()).await, "id");
        refused_query(
            e.update(&cx, "account", &bad, rec(json!({"name": "x"})), None)
                .await,
            "id",
        );
        refused_query(e.delete(&cx, "account", &bad).await, "id");
        // Everything is still there and unchanged.
        assert_eq!(names(&e).await, [json!("Acme")]);
        let again = e
            .get(
                &cx,
                "contact",
                c["id"].as_str().unwrap(),
                QueryAst::default(),
            )
            .await
            .unwrap();
        assert_eq!(again["account"], json!(id));
    })
    .await;
}
