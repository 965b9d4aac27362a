//! Selections through lookups (`account.name`, `{field, fields}`), `distinct` rows and the
//! `distinct` flag of aggregations.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use objectos_data::{DataEngine, DataError, HookContext, Interceptor, Operation, Result};
use objectos_spec::query::{Filter, QueryAst};
use serde_json::{Value, json};

use crate::{CRM, for_each_backend, rec, user_cx};

fn q(v: Value) -> QueryAst {
    QueryAst::from_json(&v).unwrap_or_else(|e| panic!("bad query {v}: {e}"))
}

/// Accounts Parent <- Acme, Beta; contacts Alice (Acme), Bob (Acme), Carol (Beta), Dan (none,
/// related to Acme and Beta). Returns the ids of Parent, Acme, Beta.
async fn seed(e: &DataEngine) -> [String; 3] {
    let cx = user_cx();
    let mk = |v: Value| rec(v);
    let parent = e
        .create(&cx, "account", mk(json!({"name": "Parent", "rating": 1})))
        .await
        .unwrap();
    let acme = e
        .create(
            &cx,
            "account",
            mk(json!({"name": "Acme", "rating": 3, "parent": parent["id"]})),
        )
        .await
        .unwrap();
    let beta = e
        .create(
            &cx,
            "account",
            mk(json!({"name": "Beta", "rating": 5, "parent": parent["id"]})),
        )
        .await
        .unwrap();
    for row in [
        json!({"name": "Alice", "status": "active", "amount": 100, "account": acme["id"]}),
        json!({"name": "Bob", "status": "new", "amount": 100, "account": acme["id"]}),
        json!({"name": "Carol", "status": "active", "amount": 50, "account": beta["id"]}),
        json!({"name": "Dan", "status": "active", "amount": 50, "related": [acme["id"], beta["id"]]}),
    ] {
        e.create(&cx, "contact", rec(row)).await.unwrap();
    }
    [parent, acme, beta].map(|r| r["id"].as_str().unwrap().to_owned())
}

async fn find(e: &DataEngine, query: Value) -> Vec<Value> {
    e.find(&user_cx(), "contact", q(query))
        .await
        .unwrap_or_else(|err| panic!("find failed: {err}"))
        .records
        .into_iter()
        .map(Value::Object)
        .collect()
}

#[tokio::test]
async fn dotted_select_answers_nested_objects_with_only_those_fields() {
    for_each_backend(CRM, |e| async move {
        seed(&e).await;
        let rows = find(
            &e,
            json!({"fields": ["name", "account.name", "account.parent.name"], "orderBy": [{"field": "name"}]}),
        )
        .await;
        assert_eq!(
            rows,
            [
                json!({"name": "Alice", "account": {"name": "Acme", "parent": {"name": "Parent"}}}),
                json!({"name": "Bob", "account": {"name": "Acme", "parent": {"name": "Parent"}}}),
                json!({"name": "Carol", "account": {"name": "Beta", "parent": {"name": "Parent"}}}),
                json!({"name": "Dan", "account": null}),
            ]
        );

        // Three lookups deep (Parent has no parent).
        let rows = find(
            &e,
            json!({"fields": ["account.parent.parent.name", "account.parent.name"], "where": {"name": "Alice"}}),
        )
        .await;
        assert_eq!(
            rows,
            [json!({"account": {"parent": {"parent": null, "name": "Parent"}}})]
        );

        // The QueryAST `{field, fields}` form, mixed with a path into the same lookup.
        let rows = find(
            &e,
            json!({"fields": ["name", {"field": "account", "fields": ["rating"]}, "account.name"],
                   "where": {"name": "Alice"}}),
        )
        .await;
        assert_eq!(
            rows,
            [json!({"name": "Alice", "account": {"rating": 3, "name": "Acme"}})]
        );

        // `{field: account}` without fields: the whole related record.
        let rows = find(
            &e,
            json!({"fields": ["name", {"field": "account"}], "where": {"name": "Alice"}}),
        )
        .await;
        assert_eq!(rows[0]["account"]["name"], "Acme");
        assert!(rows[0]["account"]["id"].is_string(), "{}", rows[0]);
        assert!(rows[0]["account"].get("contact_count").is_some());

        // Multi-valued lookups come back as arrays of nested objects.
        let rows = find(
            &e,
            json!({"fields": ["name", "related.name"], "where": {"name": "Dan"}}),
        )
        .await;
        assert_eq!(
            rows,
            [json!({"name": "Dan", "related": [{"name": "Acme"}, {"name": "Beta"}]})]
        );

        // Get by id honours the same selection; an expand of the same lookup is narrowed by it.
        let alice = find(&e, json!({"where": {"name": "Alice"}})).await;
        let id = alice[0]["id"].as_str().unwrap();
        let r = e
            .get(
                &user_cx(),
                "contact",
                id,
                q(json!({"fields": ["name", "account.parent.name"], "expand": {"account": {}}})),
            )
            .await
            .unwrap();
        assert_eq!(
            Value::Object(r),
            json!({"name": "Alice", "account": {"parent": {"name": "Parent"}}})
        );
    })
    .await;
}

#[tokio::test]
async fn dotted_select_is_batched_like_expand() {
    for_each_backend(CRM, |e| async move {
        seed(&e).await;
        for _ in 0..5 {
            let acme = find(
                &e,
                json!({"where": {"name": "Alice"}, "fields": ["account"]}),
            )
            .await;
            e.create(
                &user_cx(),
                "contact",
                rec(json!({"name": "More", "account": acme[0]["account"]})),
            )
            .await
            .unwrap();
        }
        let before = e.statement_count();
        let rows = find(
            &e,
            json!({"fields": ["name", "account.name", "account.parent.name"], "limit": 100}),
        )
        .await;
        assert_eq!(rows.len(), 9);
        // The page, one IN query for the accounts, one for their parents: no query per row, and
        // no roll-up queries for summary fields that were not selected.
        assert_eq!(e.statement_count() - before, 3);
    })
    .await;
}

#[tokio::test]
async fn bad_select_paths_are_400_naming_the_segment() {
    for_each_backend(CRM, |e| async move {
        seed(&e).await;
        let cases = [
            (
                json!({"fields": ["name", "account.nmae"]}),
                "unknown_field",
                "select: field 'nmae' does not exist on object 'account' (in 'account.nmae')",
            ),
            (
                json!({"fields": ["acount.name"]}),
                "unknown_field",
                "select: field 'acount' does not exist on object 'contact' (in 'acount.name')",
            ),
            (
                json!({"fields": ["account.parent.ratng"]}),
                "unknown_field",
                "select: field 'ratng' does not exist on object 'account' (in 'account.parent.ratng')",
            ),
            (
                json!({"fields": ["name.first"]}),
                "invalid_path",
                "select: field 'name' of object 'contact' is not a lookup, so 'name.first' cannot go through it",
            ),
            (
                json!({"fields": [{"field": "account.parent", "fields": ["parent.parent.name"]}]}),
                "invalid_path",
                "select: 'account.parent.parent.parent.name' goes through more than 3 lookups",
            ),
        ];
        for (query, code, message) in cases {
            // An empty page must not skip the check of the nested levels.
            for filter in [json!({}), json!({"name": "nobody"})] {
                let mut query = q(query.clone());
                query.filter = Filter::parse(&filter).unwrap();
                let err = e.find(&user_cx(), "contact", query).await.unwrap_err();
                match &err {
                    DataError::InvalidQuery {
                        param,
                        code: c,
                        message: m,
                        ..
                    } => {
                        assert_eq!((param.as_str(), c.as_str()), ("select", code), "{err}");
                        assert_eq!(m, message);
                    }
                    other => panic!("expected INVALID_QUERY, got {other:?}"),
                }
                assert_eq!(err.http_status(), 400);
            }
        }
    })
    .await;
}

/// Stands in for the permissions plugin on `account`: refuses a selection of `rating` (FLS on
/// the target) and hides accounts rated above 4 (row filter on the target); records what the
/// Find hook of `account` was given.
struct AccountGuard {
    seen: Arc<Mutex<Vec<Value>>>,
}

#[async_trait]
impl Interceptor for AccountGuard {
    fn name(&self) -> &str {
        "account-guard"
    }
    fn applies_to(&self, object: &str, op: Operation) -> bool {
        object == "account" && op == Operation::Find
    }
    async fn before(&self, hook: &mut HookContext<'_>) -> Result<()> {
        let Some(query) = hook.query.as_deref_mut() else {
            return Ok(());
        };
        self.seen
            .lock()
            .unwrap()
            .push(serde_json::to_value(&query.fields).unwrap());
        if query.fields.iter().any(|f| f.name() == "rating") {
            return Err(DataError::Forbidden {
                object: "account".into(),
                message: "select: field rating is not readable for you".into(),
            });
        }
        query.filter = std::mem::take(&mut query.filter).and(Filter::Condition(
            objectos_spec::query::Condition {
                field: "rating".into(),
                op: objectos_spec::query::Operator::Lte,
                value: objectos_spec::query::FilterValue::Value(json!(4)),
            },
        ));
        Ok(())
    }
}

#[tokio::test]
async fn dotted_select_runs_the_target_objects_find_hooks() {
    for_each_backend(CRM, |e| async move {
        seed(&e).await;
        let seen = Arc::new(Mutex::new(Vec::new()));
        e.add_interceptor(Arc::new(AccountGuard { seen: seen.clone() }));
        let rows = find(
            &e,
            json!({"fields": ["name", "account.name"], "where": {"name": {"$in": ["Alice", "Carol"]}}, "orderBy": [{"field": "name"}]}),
        )
        .await;
        // Beta (rating 5) is filtered out by the target's row filter: the id stays, as with expand.
        assert_eq!(rows[0], json!({"name": "Alice", "account": {"name": "Acme"}}));
        assert!(rows[1]["account"].is_string(), "{}", rows[1]);
        assert_eq!(seen.lock().unwrap()[0], json!(["name"]));

        let err = e
            .find(
                &user_cx(),
                "contact",
                q(json!({"fields": ["name", "account.rating"]})),
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), "PERMISSION_DENIED");
    })
    .await;
}

#[tokio::test]
async fn distinct_rows_over_the_selected_fields() {
    for_each_backend(CRM, |e| async move {
        let [_, acme, beta] = seed(&e).await;
        let cx = user_cx();
        let r = e
            .find(&cx, "contact", q(json!({"fields": ["status"], "distinct": true})))
            .await
            .unwrap();
        let rows: Vec<Value> = r.records.into_iter().map(Value::Object).collect();
        assert_eq!(
            rows,
            [json!({"status": "active"}), json!({"status": "new"})]
        );
        assert_eq!((r.total, r.has_more), (Some(2), false));

        // Several fields, a sort on one of them, paging with a true total.
        let r = e
            .find(
                &cx,
                "contact",
                q(json!({"fields": ["status", "amount"], "distinct": true,
                         "orderBy": [{"field": "amount", "order": "desc"}], "limit": 2})),
            )
            .await
            .unwrap();
        let rows: Vec<Value> = r.records.into_iter().map(Value::Object).collect();
        assert_eq!(
            rows,
            [
                json!({"status": "active", "amount": 100}),
                json!({"status": "new", "amount": 100})
            ]
        );
        assert_eq!((r.total, r.has_more), (Some(3), true));
        let r = e
            .find(
                &cx,
                "contact",
                q(json!({"fields": ["status", "amount"], "distinct": true,
                         "orderBy": [{"field": "amount", "order": "desc"}], "limit": 2, "offset": 2})),
            )
            .await
            .unwrap();
        assert_eq!(r.records.len(), 1);
        assert_eq!((r.total, r.has_more), (Some(3), false));

        // With a filter, and through a lookup: distinct (account) rows, then the account's name.
        let r = e
            .find(
                &cx,
                "contact",
                q(json!({"fields": ["account.name"], "distinct": true,
                         "where": {"account": {"$ne": null}}})),
            )
            .await
            .unwrap();
        let mut names: Vec<&str> = r
            .records
            .iter()
            .map(|x| x["account"]["name"].as_str().unwrap())
            .collect();
        names.sort_unstable();
        assert_eq!(names, ["Acme", "Beta"]);
        assert_eq!(r.total, Some(2));
        let _ = (acme, beta);

        // Refused: sorting by a field that is not selected, cursors, computed fields.
        for (query, param) in [
            (
                json!({"fields": ["status"], "distinct": true, "orderBy": [{"field": "name"}]}),
                "sort",
            ),
            (
                json!({"fields": ["status"], "distinct": true, "cursor": "abc"}),
                "cursor",
            ),
        ] {
            let err = e.find(&cx, "contact", q(query)).await.unwrap_err();
            assert!(
                matches!(&err, DataError::InvalidQuery { param: p, .. } if p == param),
                "{err:?}"
            );
        }
        let err = e
            .find(
                &cx,
                "account",
                q(json!({"fields": ["double_rating"], "distinct": true})),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&err, DataError::InvalidQuery { code, .. } if code == "computed_field"),
            "{err:?}"
        );
        // Without a selection, distinct changes nothing (every record has its own id).
        let r = e
            .find(&cx, "contact", q(json!({"distinct": true})))
            .await
            .unwrap();
        assert_eq!(r.total, Some(4));
    })
    .await;
}

#[tokio::test]
async fn aggregation_distinct_flag() {
    for_each_backend(CRM, |e| async move {
        seed(&e).await;
        let r = e
            .find(
                &user_cx(),
                "contact",
                q(json!({"aggregations": [
                    {"function": "count", "field": "status", "distinct": true, "alias": "statuses"},
                    {"function": "count_distinct", "field": "amount", "alias": "amounts"},
                    {"function": "sum", "field": "amount", "distinct": true, "alias": "sum_d"},
                    {"function": "sum", "field": "amount", "alias": "sum_all"},
                    {"function": "avg", "field": "amount", "distinct": true, "alias": "avg_d"},
                    {"function": "count", "alias": "n"}
                ]})),
            )
            .await
            .unwrap();
        let row = &r.records[0];
        assert_eq!(row["statuses"], json!(2));
        assert_eq!(row["amounts"], json!(2));
        assert_eq!(row["sum_d"].as_f64(), Some(150.0));
        assert_eq!(row["sum_all"].as_f64(), Some(300.0));
        assert_eq!(row["avg_d"].as_f64(), Some(75.0));
        assert_eq!(row["n"], json!(4));

        let err = e
            .find(
                &user_cx(),
                "contact",
                q(json!({"aggregations": [{"function": "count", "distinct": true, "alias": "x"}]})),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&err, DataError::InvalidQuery { param, code, .. } if param == "aggregations" && code == "invalid_aggregation"),
            "{err:?}"
        );
    })
    .await;
}
