//! Row visibility: sharing (private accounts, a criteria rule for the `sales` role) and
//! row-level security (own deals only) hide the same rows from get, list, count, aggregates,
//! expand, lookup-path filters, the permission check route, updates and deletes.

use serde_json::{Value, json};

use crate::support::{Backend, enc, no_leak, refused, same_as_missing};
use crate::world::{HIDDEN_NAME, HIDDEN_SECRET, OWNER_DEAL, world};

const MISSING: &str = "00000000-0000-0000-0000-000000000000";

pub(crate) async fn run(b: &Backend) {
    let w = world(b).await;
    let api = w.srv.api;
    let label = w.srv.label;
    let rep = w.rep.t();
    let leaks = [HIDDEN_NAME, HIDDEN_SECRET, OWNER_DEAL];

    // get: a hidden record is a 404 exactly like a missing one.
    for (object, hidden) in [("account", &w.hidden), ("deal", &w.owner_deal)] {
        let h = api
            .get(&format!("/api/v1/data/{object}/{hidden}"), rep)
            .await;
        let m = api
            .get(&format!("/api/v1/data/{object}/{MISSING}"), rep)
            .await;
        same_as_missing(&h, &m, hidden, MISSING);
        no_leak(&h, &leaks);
        // The owner (an administrator) sees it.
        let r = api
            .get(&format!("/api/v1/data/{object}/{hidden}"), w.owner.t())
            .await;
        assert_eq!(r.status, 200, "[{label}] {}", r.text);
    }
    // The visible ones answer.
    for (object, id) in [
        ("account", &w.acme),
        ("account", &w.rep_account),
        ("deal", &w.rep_deal_acme),
    ] {
        let r = api.get(&format!("/api/v1/data/{object}/{id}"), rep).await;
        assert_eq!(r.status, 200, "[{label}] {}", r.text);
    }

    // list and count.
    let r = api.get("/api/v1/data/account?count=true", rep).await;
    assert_eq!(r.names(), ["Acme Public", "Rep Own"], "[{label}]");
    assert_eq!(r.body["total"], 2, "[{label}] {}", r.text);
    no_leak(&r, &leaks);
    let r = api.get("/api/v1/data/deal?count=true", rep).await;
    assert_eq!(r.names(), ["Rep Deal Acme", "Rep Deal Hidden"], "[{label}]");
    assert_eq!(r.body["total"], 2, "[{label}] {}", r.text);
    no_leak(&r, &leaks);
    // Asking for the hidden row by its own values finds nothing.
    for (object, filter) in [
        ("account", json!({"name": HIDDEN_NAME})),
        (
            "account",
            json!({"industry": "private", "revenue": {"$gte": 500}}),
        ),
        ("account", json!({"id": w.hidden})),
        ("deal", json!({"name": OWNER_DEAL})),
        ("deal", json!({"amount": 500})),
    ] {
        let path = format!(
            "/api/v1/data/{object}?count=true&filter={}",
            enc(&filter.to_string())
        );
        let r = api.get(&path, rep).await;
        assert_eq!(r.records(), Vec::<Value>::new(), "[{label}] {path}");
        assert_eq!(r.body["total"], 0, "[{label}] {}", r.text);
    }
    // Search does not reach it either.
    let r = api
        .post(
            "/api/v1/data/account/query",
            rep,
            json!({"search": {"query": "Hidden"}}),
        )
        .await;
    assert_eq!(r.records(), Vec::<Value>::new(), "[{label}] {}", r.text);

    // Aggregates count and sum only visible rows, grouped or not.
    let r = api
        .post(
            "/api/v1/data/account/query",
            rep,
            json!({"aggregations": [
                {"function": "count", "alias": "n"},
                {"function": "sum", "field": "revenue", "alias": "total"},
                {"function": "max", "field": "revenue", "alias": "top"}
            ]}),
        )
        .await;
    let rows = r.records();
    assert_eq!(rows.len(), 1, "[{label}] {}", r.text);
    assert_eq!(rows[0]["n"].as_f64(), Some(2.0), "[{label}] {}", r.text);
    assert_eq!(
        rows[0]["total"].as_f64(),
        Some(100.0),
        "[{label}] {}",
        r.text
    );
    assert_eq!(rows[0]["top"].as_f64(), Some(100.0), "[{label}] {}", r.text);
    let r = api
        .post(
            "/api/v1/data/account/query",
            rep,
            json!({"groupBy": ["industry"], "aggregations": [{"function": "count", "alias": "n"}]}),
        )
        .await;
    let mut groups: Vec<(String, f64)> = r
        .records()
        .iter()
        .map(|g| {
            (
                g["industry"].as_str().unwrap_or_default().to_owned(),
                g["n"].as_f64().unwrap_or(-1.0),
            )
        })
        .collect();
    groups.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        groups,
        [("private".to_owned(), 1.0), ("public".to_owned(), 1.0)],
        "[{label}] {}",
        r.text
    );
    let r = api
        .post(
            "/api/v1/data/deal/query",
            rep,
            json!({"aggregations": [{"function": "sum", "field": "amount", "alias": "s"},
                                    {"function": "count", "alias": "n"}]}),
        )
        .await;
    let rows = r.records();
    assert_eq!(rows[0]["s"].as_f64(), Some(107.0), "[{label}] {}", r.text);
    assert_eq!(rows[0]["n"].as_f64(), Some(2.0), "[{label}] {}", r.text);

    // expand: a lookup to a hidden account stays a bare id; a visible one is expanded.
    let r = api
        .get("/api/v1/data/deal?expand=account&sort=name", rep)
        .await;
    let deals = r.records();
    assert_eq!(deals.len(), 2, "[{label}] {}", r.text);
    assert_eq!(deals[0]["name"], "Rep Deal Acme");
    assert_eq!(
        deals[0]["account"]["name"], "Acme Public",
        "[{label}] {}",
        r.text
    );
    assert_eq!(deals[1]["account"], json!(w.hidden), "[{label}] {}", r.text);
    no_leak(&r, &leaks);
    let r = api
        .get(
            &format!("/api/v1/data/deal/{}?expand=account", w.rep_deal_hidden),
            rep,
        )
        .await;
    assert_eq!(
        r.record()["account"],
        json!(w.hidden),
        "[{label}] {}",
        r.text
    );
    no_leak(&r, &leaks);
    let r = api
        .post(
            "/api/v1/data/deal/query",
            rep,
            json!({"expand": {"account": {"fields": ["name", "industry", "revenue"]}}}),
        )
        .await;
    no_leak(&r, &leaks);

    // A filter through the lookup path cannot probe the hidden account's values.
    for filter in [
        json!({"account.name": HIDDEN_NAME}),
        json!({"account.revenue": 900}),
        json!({"account.industry": "private"}),
    ] {
        let r = api
            .get(
                &format!("/api/v1/data/deal?filter={}", enc(&filter.to_string())),
                rep,
            )
            .await;
        assert_eq!(
            r.records(),
            Vec::<Value>::new(),
            "[{label}] {filter}: {}",
            r.text
        );
    }
    let r = api
        .get(
            &format!(
                "/api/v1/data/deal?filter={}",
                enc(&json!({"account.name": "Acme Public"}).to_string())
            ),
            rep,
        )
        .await;
    assert_eq!(r.names(), ["Rep Deal Acme"], "[{label}]");

    // ...and neither can a per-aggregation filter: the rep's deal on the hidden account is not
    // counted as being on it.
    let r = api
        .post(
            "/api/v1/data/deal/query",
            rep,
            json!({"aggregations": [
                {"function": "count", "alias": "on_hidden", "filter": {"account.name": HIDDEN_NAME}},
                {"function": "count", "alias": "on_acme", "filter": {"account.name": "Acme Public"}}
            ]}),
        )
        .await;
    let rows = r.records();
    assert_eq!(
        rows[0]["on_hidden"].as_f64(),
        Some(0.0),
        "[{label}] {}",
        r.text
    );
    assert_eq!(
        rows[0]["on_acme"].as_f64(),
        Some(1.0),
        "[{label}] {}",
        r.text
    );

    // The check route answers "not accessible" for hidden and missing records alike.
    let mut reasons = Vec::new();
    for id in [&w.hidden, &MISSING.to_owned()] {
        let r = api
            .post(
                "/api/v1/auth/check",
                rep,
                json!({"object": "account", "action": "read", "recordId": id}),
            )
            .await;
        assert_eq!(r.body["allowed"], false, "[{label}] {}", r.text);
        reasons.push(r.body["reason"].clone());
    }
    assert_eq!(reasons[0], reasons[1], "[{label}]");

    // Writes: a hidden record answers like a missing one, and stays unchanged.
    for (object, hidden, body) in [
        ("account", &w.hidden, json!({"name": "taken over"})),
        ("deal", &w.owner_deal, json!({"amount": 1})),
    ] {
        let h = api
            .patch(
                &format!("/api/v1/data/{object}/{hidden}"),
                rep,
                body.clone(),
            )
            .await;
        let m = api
            .patch(&format!("/api/v1/data/{object}/{MISSING}"), rep, body)
            .await;
        same_as_missing(&h, &m, hidden, MISSING);
    }
    let h = api
        .delete(&format!("/api/v1/data/deal/{}", w.owner_deal), rep)
        .await;
    let m = api
        .delete(&format!("/api/v1/data/deal/{MISSING}"), rep)
        .await;
    same_as_missing(&h, &m, &w.owner_deal, MISSING);
    // Bulk updates of hidden rows change nothing either.
    let r = api
        .post(
            "/api/v1/data/deal/updateMany",
            rep,
            json!({"records": [{"id": w.owner_deal, "data": {"amount": 2}}]}),
        )
        .await;
    assert_eq!(r.body["succeeded"], 0, "[{label}] {}", r.text);
    assert_eq!(
        r.body["results"][0]["errors"][0]["code"], "RECORD_NOT_FOUND",
        "[{label}] {}",
        r.text
    );
    no_leak(&r, &leaks);
    // A deal cannot be handed to someone else either: owner_id is not taken from input.
    let r = api
        .patch(
            &format!("/api/v1/data/deal/{}", w.rep_deal_acme),
            rep,
            json!({"owner_id": w.owner.id}),
        )
        .await;
    assert_eq!(r.status, 200, "[{label}] {}", r.text);
    let owner = w.owner.t();
    let r = api
        .get(&format!("/api/v1/data/deal/{}", w.rep_deal_acme), owner)
        .await;
    assert_eq!(r.record()["owner_id"], json!(w.rep.id), "[{label}]");
    let r = api
        .get(&format!("/api/v1/data/deal/{}", w.owner_deal), owner)
        .await;
    assert_eq!(r.record()["amount"].as_f64(), Some(500.0), "[{label}]");
    let r = api
        .get(&format!("/api/v1/data/account/{}", w.hidden), owner)
        .await;
    assert_eq!(r.record()["name"], HIDDEN_NAME, "[{label}]");

    // The refusal to read another object's rows still carries a stable code.
    let r = api.get("/api/v1/data/memo?count=true", rep).await;
    refused(&r, 403, "PERMISSION_DENIED");
    w.srv.stop();
}
