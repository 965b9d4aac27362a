//! Filters (every operator, nesting, field-to-field, dotted paths), sort, paging, cursors, select, expand, aggregations.

use objectos_data::{DataEngine, OpContext};
use objectos_spec::query::{Cursor, QueryAst};
use serde_json::{Value, json};

use crate::{CRM, for_each_backend, rec, user_cx};

async fn seed(e: &DataEngine) -> Vec<String> {
    let cx = user_cx();
    let parent = e
        .create(&cx, "account", rec(json!({"name": "Parent"})))
        .await
        .unwrap();
    let acc = e
        .create(
            &cx,
            "account",
            rec(json!({"name": "Acme Corp", "parent": parent["id"], "rating": 3})),
        )
        .await
        .unwrap();
    let rows = [
        json!({"name": "Alice Anchor", "email": "alice@example.com", "amount": 1200.5, "status": "active", "account": acc["id"], "limit_amount": 1000}),
        json!({"name": "Bob Baseline", "email": "bob@example.com", "amount": 80, "status": "new", "limit_amount": 100}),
        json!({"name": "Carol Compare", "email": "carol@example.com", "amount": 455.25, "status": "active", "limit_amount": 500}),
        json!({"name": "Dan_100%", "amount": null, "status": "closed"}),
    ];
    let mut ids = vec![];
    for r in rows {
        ids.push(
            e.create(&cx, "contact", rec(r)).await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    ids
}

fn q(v: Value) -> QueryAst {
    QueryAst::from_json(&v).unwrap_or_else(|e| panic!("bad query {v}: {e}"))
}

async fn names(e: &DataEngine, query: Value) -> Vec<String> {
    let mut query = q(query);
    if query.order_by.is_empty() {
        query.order_by = q(json!({"orderBy": [{"field": "name", "order": "asc"}]})).order_by;
    }
    let r = e.find(&user_cx(), "contact", query).await.unwrap();
    r.records
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn every_operator() {
    for_each_backend(CRM, |e| async move {
        seed(&e).await;
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (
                json!({"status": "active"}),
                vec!["Alice Anchor", "Carol Compare"],
            ),
            (json!({"status": {"$eq": "new"}}), vec!["Bob Baseline"]),
            (
                json!({"status": {"$ne": "active"}}),
                vec!["Bob Baseline", "Dan_100%"],
            ),
            (json!({"amount": {"$gt": 455.25}}), vec!["Alice Anchor"]),
            (
                json!({"amount": {"$gte": 455.25}}),
                vec!["Alice Anchor", "Carol Compare"],
            ),
            (json!({"amount": {"$lt": 455.25}}), vec!["Bob Baseline"]),
            (
                json!({"amount": {"$lte": 455.25}}),
                vec!["Bob Baseline", "Carol Compare"],
            ),
            (
                json!({"status": {"$in": ["new", "closed"]}}),
                vec!["Bob Baseline", "Dan_100%"],
            ),
            (
                json!({"status": {"$nin": ["new", "closed"]}}),
                vec!["Alice Anchor", "Carol Compare"],
            ),
            (
                json!({"amount": {"$between": [80, 500]}}),
                vec!["Bob Baseline", "Carol Compare"],
            ),
            (
                json!({"name": {"$contains": "an"}}),
                vec!["Alice Anchor", "Dan_100%"],
            ),
            (json!({"name": {"$contains": "_100%"}}), vec!["Dan_100%"]),
            (
                json!({"name": {"$notContains": "an"}}),
                vec!["Bob Baseline", "Carol Compare"],
            ),
            (json!({"name": {"$startsWith": "Bo"}}), vec!["Bob Baseline"]),
            (
                json!({"name": {"$endsWith": "compare"}}),
                vec!["Carol Compare"],
            ),
            (json!({"amount": {"$null": true}}), vec!["Dan_100%"]),
            (
                json!({"amount": {"$null": false}}),
                vec!["Alice Anchor", "Bob Baseline", "Carol Compare"],
            ),
            (json!({"email": {"$exists": false}}), vec!["Dan_100%"]),
            (
                json!({"amount": {"$gt": {"$field": "limit_amount"}}}),
                vec!["Alice Anchor"],
            ),
            (
                json!({"$or": [{"status": "new"}, {"amount": {"$gt": 1000}}]}),
                vec!["Alice Anchor", "Bob Baseline"],
            ),
            (
                json!({"$and": [{"status": "active"}, {"$not": {"amount": {"$gt": 1000}}}]}),
                vec!["Carol Compare"],
            ),
            (
                json!(["amount", ">", 100]),
                vec!["Alice Anchor", "Carol Compare"],
            ),
            (
                json!([["status", "=", "active"], "and", ["amount", "<", 1000]]),
                vec!["Carol Compare"],
            ),
            (json!({"account.name": "Acme Corp"}), vec!["Alice Anchor"]),
            (
                json!({"account.parent.name": {"$startsWith": "Par"}}),
                vec!["Alice Anchor"],
            ),
            (
                json!({"_id": {"$ne": "x"}, "status": "closed"}),
                vec!["Dan_100%"],
            ),
        ];
        for (filter, want) in cases {
            let got = names(&e, json!({"where": filter})).await;
            assert_eq!(got, want, "filter {filter}");
        }
    })
    .await;
}

#[tokio::test]
async fn sort_paging_total_and_cursor() {
    for_each_backend(CRM, |e| async move {
        seed(&e).await;
        let cx = user_cx();
        let r = e.find(&cx, "contact", q(json!({"orderBy": [{"field": "amount", "order": "desc"}], "limit": 2}))).await.unwrap();
        let got: Vec<&str> = r.records.iter().map(|r| r["name"].as_str().unwrap()).collect();
        assert_eq!(got, ["Alice Anchor", "Carol Compare"]);
        assert_eq!(r.total, Some(4));
        assert!(r.has_more);
        assert!(r.next_cursor.is_none());
        let r = e.find(&cx, "contact", q(json!({"orderBy": [{"field": "status"}, {"field": "name", "order": "desc"}], "limit": 2, "offset": 1}))).await.unwrap();
        let got: Vec<&str> = r.records.iter().map(|r| r["name"].as_str().unwrap()).collect();
        assert_eq!(got, ["Alice Anchor", "Dan_100%"]);
        assert_eq!(r.total, Some(4));

        // Keyset paging through every record, 1 per page, sorted by a nullable column.
        let mut seen = vec![];
        let mut query = q(json!({"orderBy": [{"field": "amount", "order": "desc"}], "limit": 1}));
        query.cursor = Some(Cursor::Token(String::new()));
        loop {
            let r = e.find(&cx, "contact", query.clone()).await.unwrap();
            seen.extend(r.records.iter().map(|r| r["name"].as_str().unwrap().to_owned()));
            match r.next_cursor {
                Some(c) => query.cursor = Some(Cursor::Token(c)),
                None => break,
            }
            assert!(seen.len() <= 4);
        }
        assert_eq!(seen, ["Alice Anchor", "Carol Compare", "Bob Baseline", "Dan_100%"]);
        let mut asc = q(json!({"orderBy": [{"field": "amount"}], "limit": 2}));
        asc.cursor = Some(Cursor::Token(String::new()));
        let p1 = e.find(&cx, "contact", asc.clone()).await.unwrap();
        asc.cursor = Some(Cursor::Token(p1.next_cursor.unwrap()));
        let p2 = e.find(&cx, "contact", asc).await.unwrap();
        let all: Vec<&str> = p1.records.iter().chain(&p2.records).map(|r| r["name"].as_str().unwrap()).collect();
        assert_eq!(all, ["Dan_100%", "Bob Baseline", "Carol Compare", "Alice Anchor"]);

        let err = e.find(&cx, "contact", QueryAst { cursor: Some(Cursor::Token("!!".into())), ..QueryAst::default() }).await.unwrap_err();
        assert_eq!(err.code(), "INVALID_QUERY");
    })
    .await;
}

#[tokio::test]
async fn select_and_unknown_fields_name_the_param() {
    for_each_backend(CRM, |e| async move {
        seed(&e).await;
        let cx = user_cx();
        let r = e.find(&cx, "contact", q(json!({"fields": ["name", "amount", "status"], "where": ["amount", ">", 100], "orderBy": [{"field": "name"}]}))).await.unwrap();
        assert_eq!(r.records[0], rec(json!({"name": "Alice Anchor", "amount": 1200.5, "status": "active"})));
        for (query, param) in [
            (json!({"fields": ["nope"]}), "select"),
            (json!({"where": {"nope": 1}}), "filter"),
            (json!({"orderBy": [{"field": "nope"}]}), "sort"),
            (json!({"groupBy": ["nope"], "aggregations": [{"function": "count", "alias": "n"}]}), "groupBy"),
            (json!({"aggregations": [{"function": "sum", "field": "nope", "alias": "n"}]}), "aggregations"),
            (json!({"expand": {"nope": {}}}), "expand"),
            (json!({"expand": {"name": {}}}), "expand"),
            (json!({"where": {"amount": {"$gt": "abc"}}}), "filter"),
        ] {
            let err = e.find(&cx, "contact", q(query.clone())).await.unwrap_err();
            assert_eq!(err.code(), "INVALID_QUERY", "{query}");
            assert_eq!(err.http_status(), 400);
            match &err {
                objectos_data::DataError::InvalidQuery { param: p, .. } => assert_eq!(p, param, "{query}: {err}"),
                other => panic!("{other:?}"),
            }
            assert!(err.to_string().contains("nope") || err.to_string().contains("name") || err.to_string().contains("amount"), "{err}");
        }
        let err = e.find(&cx, "nope", QueryAst::default()).await.unwrap_err();
        assert_eq!(err.code(), "OBJECT_NOT_FOUND");
    })
    .await;
}

#[tokio::test]
async fn expand_three_levels_is_batched() {
    for_each_backend(CRM, |e| async move {
        let cx = user_cx();
        let top = e.create(&cx, "account", rec(json!({"name": "Top"}))).await.unwrap();
        let acc = e.create(&cx, "account", rec(json!({"name": "Acc", "parent": top["id"]}))).await.unwrap();
        let mut invs = vec![];
        for i in 0..3 {
            invs.push(e.create(&cx, "invoice", rec(json!({"title": format!("I{i}"), "account": acc["id"]}))).await.unwrap());
        }
        for i in 0..6 {
            e.create(&cx, "invoice_line", rec(json!({"label": format!("L{i}"), "invoice": invs[i % 3]["id"]}))).await.unwrap();
        }
        let before = e.statement_count();
        let r = e
            .find(&cx, "invoice_line", q(json!({"expand": {"invoice": {"expand": {"account": {"expand": {"parent": {}}}}}}})))
            .await
            .unwrap();
        let used = e.statement_count() - before;
        assert_eq!(r.records.len(), 6);
        for line in &r.records {
            let inv = &line["invoice"];
            assert!(inv["title"].as_str().unwrap().starts_with('I'));
            assert_eq!(inv["account"]["name"], "Acc");
            assert_eq!(inv["account"]["parent"]["name"], "Top");
            assert_eq!(inv["account"]["parent"]["parent"], Value::Null);
        }
        // One page query + one IN query per level (3) + the account roll-ups (2 per account level).
        assert!(used <= 1 + 3 + 4, "expand used {used} statements");
        // Depth 4 is refused.
        let mut deep = QueryAst::default();
        deep.expand.insert("parent".into(), QueryAst::default());
        for field in ["parent", "account", "invoice"] {
            let mut up = QueryAst::default();
            up.expand.insert(field.into(), deep);
            deep = up;
        }
        let err = e.find(&cx, "invoice_line", deep).await.unwrap_err();
        assert_eq!(err.code(), "INVALID_QUERY");
        // A multi-valued lookup expands to a list of records in one query.
        let c = e.create(&cx, "contact", rec(json!({"name": "M", "related": [top["id"], acc["id"], "gone"]}))).await.unwrap();
        assert_eq!(c["related"], json!([top["id"], acc["id"], "gone"]));
        let got = e.get(&cx, "contact", c["id"].as_str().unwrap(), q(json!({"expand": {"related": {"fields": ["name"]}}}))).await.unwrap();
        assert_eq!(got["related"], json!([{"name": "Top"}, {"name": "Acc"}, "gone"]));
        let r = e.find(&cx, "contact", q(json!({"where": {"related": acc["id"]}}))).await.unwrap();
        assert_eq!(r.total, Some(1));
        // Select + expand on get.
        let got = e.get(&cx, "account", acc["id"].as_str().unwrap(), q(json!({"fields": ["name", "parent"], "expand": {"parent": {}}}))).await.unwrap();
        assert_eq!(got["parent"]["name"], "Top");
        assert_eq!(got.len(), 2);
    })
    .await;
}

#[tokio::test]
async fn aggregations_with_group_by() {
    for_each_backend(CRM, |e| async move {
        seed(&e).await;
        let cx = user_cx();
        let r = e.find(&cx, "contact", q(json!({"aggregations": [{"function": "count", "alias": "n"}]}))).await.unwrap();
        assert_eq!(r.records, vec![rec(json!({"n": 4}))]);
        assert_eq!(r.total, Some(1));
        let r = e
            .find(
                &cx,
                "contact",
                q(json!({
                    "groupBy": ["status"],
                    "aggregations": [
                        {"function": "count", "alias": "n"},
                        {"function": "sum", "field": "amount", "alias": "total"},
                        {"function": "avg", "field": "amount", "alias": "avg"},
                        {"function": "min", "field": "amount", "alias": "lo"},
                        {"function": "max", "field": "name", "alias": "last"},
                        {"function": "count_distinct", "field": "email", "alias": "emails"}
                    ],
                    "orderBy": [{"field": "status"}]
                })),
            )
            .await
            .unwrap();
        assert_eq!(r.records.len(), 3);
        assert_eq!(r.records[0], rec(json!({"n": 2, "total": 1655.75, "avg": 827.875, "lo": 455.25, "last": "Carol Compare", "emails": 2, "status": "active"})));
        assert_eq!(r.records[1]["status"], "closed");
        assert_eq!(r.records[1]["total"], Value::Null);
        let r = e
            .find(&cx, "contact", q(json!({"groupBy": ["status"], "aggregations": [{"function": "count", "alias": "n"}], "having": {"n": {"$gt": 1}}})))
            .await
            .unwrap();
        assert_eq!(r.records, vec![rec(json!({"n": 2, "status": "active"}))]);
        let r = e.find(&OpContext { tenant: Some("other".into()), ..user_cx() }, "contact", q(json!({"aggregations": [{"function": "count", "alias": "n"}]}))).await.unwrap();
        assert_eq!(r.records[0]["n"], 0);
    })
    .await;
}

#[tokio::test]
async fn search_and_json_contains() {
    for_each_backend(CRM, |e| async move {
        let cx = user_cx();
        e.create(
            &cx,
            "account",
            rec(json!({"name": "Alpha", "tags": ["a", "b"]})),
        )
        .await
        .unwrap();
        e.create(&cx, "account", rec(json!({"name": "Beta", "tags": ["c"]})))
            .await
            .unwrap();
        let r = e
            .find(
                &cx,
                "account",
                q(json!({"where": {"tags": {"$contains": "b"}}})),
            )
            .await
            .unwrap();
        assert_eq!(r.records.len(), 1);
        assert_eq!(r.records[0]["name"], "Alpha");
        let r = e
            .find(
                &cx,
                "account",
                q(json!({"where": {"tags": {"$in": ["c", "x"]}}})),
            )
            .await
            .unwrap();
        assert_eq!(r.records[0]["name"], "Beta");
        let r = e
            .find(&cx, "account", q(json!({"search": {"query": "bet"}})))
            .await
            .unwrap();
        assert_eq!(r.records.len(), 1);
        let r = e
            .find(
                &cx,
                "account",
                q(json!({"where": {"last_contact": {"$gt": "2020-01-01T00:00:00Z"}}})),
            )
            .await
            .unwrap();
        assert_eq!(r.records.len(), 0);
    })
    .await;
}
