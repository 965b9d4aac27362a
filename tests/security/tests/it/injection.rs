//! Injection attempts through filter values, field names, sort, select, expand, groupBy and the
//! path: names are refused with a 400 (they only ever come from metadata), values are bound (so
//! they match nothing), and the data is the same afterwards.

use serde_json::{Value, json};

use crate::support::{Backend, enc, refused};
use crate::world::{HIDDEN_NAME, world};

const PAYLOADS: &[&str] = &[
    "' OR '1'='1",
    "x' OR 1=1 --",
    "\" OR \"\"=\"",
    "1; DROP TABLE account; --",
    "name) OR (1=1",
    "%' OR name LIKE '%",
    "x'||(SELECT secret_note FROM account LIMIT 1)||'",
];

async fn snapshot(api: crate::support::Api, token: Option<&str>) -> Vec<Value> {
    let mut all = Vec::new();
    for object in ["account", "deal", "memo"] {
        let r = api
            .get(&format!("/api/v1/data/{object}?sort=id&top=1000"), token)
            .await;
        all.extend(r.records());
    }
    all
}

pub(crate) async fn run(b: &Backend) {
    let w = world(b).await;
    let api = w.srv.api;
    let label = w.srv.label;
    let owner = w.owner.t();
    let before = snapshot(api, owner).await;

    // Values are bound parameters: they match nothing and break nothing, in every filter form
    // and operator, for the administrator and for the restricted rep alike.
    for who in [owner, w.rep.t()] {
        for p in PAYLOADS {
            for filter in [
                json!({"name": p}),
                json!({"name": {"$in": [p, "Acme Public'"]}}),
                json!({"name": {"$contains": p}}),
                json!({"name": {"$startsWith": p}}),
                json!(["name", "=", p]),
                json!([["name", "=", p], "or", ["industry", "=", p]]),
            ] {
                let path = format!("/api/v1/data/account?filter={}", enc(&filter.to_string()));
                let r = api.get(&path, who).await;
                assert_eq!(r.records(), Vec::<Value>::new(), "[{label}] {filter}");
            }
            let r = api
                .get(&format!("/api/v1/data/account?name={}", enc(p)), who)
                .await;
            assert_eq!(r.records(), Vec::<Value>::new(), "[{label}] {p}");
            let r = api
                .post(
                    "/api/v1/data/account/query",
                    who,
                    json!({"search": {"query": p}}),
                )
                .await;
            assert_eq!(r.records(), Vec::<Value>::new(), "[{label}] search {p}");
        }
    }

    // Names never reach SQL unless they are metadata: 400 with a stable code, naming the
    // parameter.
    let evil_names = [
        "name; DROP TABLE account",
        "name\" OR 1=1 --",
        "(SELECT secret_note FROM account)",
        "name,secret_note FROM account --",
        "owner_id)) OR ((1=1",
        "nonexistent_field",
    ];
    for n in evil_names {
        let e = enc(n);
        for path in [
            format!("/api/v1/data/account?sort={e}"),
            format!("/api/v1/data/account?sort=-{e}"),
            format!("/api/v1/data/account?select={e}"),
            format!("/api/v1/data/account?select=name,{e}"),
            format!("/api/v1/data/deal?expand={e}"),
            format!(
                "/api/v1/data/account?filter={}",
                enc(&json!({ (n): "x" }).to_string())
            ),
            format!(
                "/api/v1/data/account?filter={}",
                enc(&json!([n, "=", "x"]).to_string())
            ),
            format!("/api/v1/data/account/{}?select={e}", w.acme),
        ] {
            for who in [owner, w.rep.t()] {
                let r = api.get(&path, who).await;
                refused(&r, 400, "INVALID_QUERY");
            }
        }
        for q in [
            json!({"where": {(n): 1}}),
            json!({"orderBy": [{"field": n, "order": "asc"}]}),
            json!({"fields": [n]}),
            json!({"groupBy": [n], "aggregations": [{"function": "count", "alias": "c"}]}),
            json!({"aggregations": [{"function": "sum", "field": n, "alias": "s"}]}),
            json!({"search": {"query": "a", "fields": [n]}}),
        ] {
            let r = api
                .post("/api/v1/data/account/query", owner, q.clone())
                .await;
            refused(&r, 400, "INVALID_QUERY");
        }
        let r = api
            .post(
                "/api/v1/data/deal/query",
                owner,
                json!({"expand": {(n): {}}}),
            )
            .await;
        refused(&r, 400, "INVALID_QUERY");
        // An alias is a name of the answer, not a column, but it must still be an identifier.
        if n != "nonexistent_field" {
            let r = api
                .post(
                    "/api/v1/data/account/query",
                    owner,
                    json!({"aggregations": [{"function": "count", "alias": n}]}),
                )
                .await;
            refused(&r, 400, "INVALID_QUERY");
        }
    }
    // Operators that are not operators.
    for filter in [
        json!({"name": {"$where": "1=1"}}),
        json!({"name": {"$regex": ".*"}}),
        json!({"$raw": "1=1"}),
        json!(["name", "OR 1=1", "x"]),
    ] {
        let r = api
            .get(
                &format!("/api/v1/data/account?filter={}", enc(&filter.to_string())),
                owner,
            )
            .await;
        refused(&r, 400, "INVALID_QUERY");
    }
    // Unknown fields in a record body are refused, not written as columns.
    let r = api
        .post(
            "/api/v1/data/account",
            owner,
            json!({"name": "n", "name\" = 'x'; --": "v"}),
        )
        .await;
    refused(&r, 400, "VALIDATION_FAILED");
    // Object names and ids in the path: unknown object or record.
    for path in [
        format!("/api/v1/data/{}", enc("account; DROP TABLE account")),
        format!("/api/v1/data/{}", enc("account\" --")),
    ] {
        let r = api.get(&path, owner).await;
        refused(&r, 404, "OBJECT_NOT_FOUND");
    }
    for id in ["' OR '1'='1", "1 OR 1=1", "x'; DELETE FROM account; --"] {
        let path = format!("/api/v1/data/account/{}", enc(id));
        refused(&api.get(&path, owner).await, 404, "RECORD_NOT_FOUND");
        refused(
            &api.patch(&path, owner, json!({"name": "x"})).await,
            404,
            "RECORD_NOT_FOUND",
        );
        refused(&api.delete(&path, owner).await, 404, "RECORD_NOT_FOUND");
    }

    // Nothing changed.
    let after = snapshot(api, owner).await;
    assert_eq!(before, after, "[{label}] the data changed");
    assert!(
        after.iter().any(|r| r["name"] == HIDDEN_NAME),
        "[{label}] the data is gone"
    );
    w.srv.stop();
}
