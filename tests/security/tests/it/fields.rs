//! Field-level security: `account.secret_note` and `deal.partner` are unreadable for the rep,
//! `account.revenue` is read-only; system fields can never be mass-assigned.

use serde_json::{Value, json};

use crate::support::{Backend, Reply, enc, no_leak, refused};
use crate::world::{ACME_SECRET, HIDDEN_SECRET, world};

/// The value must not be in the answer, and the field must not be a key of any record in it.
#[track_caller]
fn stripped(r: &Reply, field: &str) {
    no_leak(r, &[ACME_SECRET, HIDDEN_SECRET]);
    fn walk(v: &Value, field: &str, what: &str) {
        match v {
            Value::Object(m) => {
                assert!(!m.contains_key(field), "{what}: {field} in {v}");
                m.values().for_each(|c| walk(c, field, what));
            }
            Value::Array(items) => items.iter().for_each(|c| walk(c, field, what)),
            _ => {}
        }
    }
    walk(&r.body, field, &r.what);
}

pub(crate) async fn reads(b: &Backend) {
    let w = world(b).await;
    let api = w.srv.api;
    let label = w.srv.label;
    let rep = w.rep.t();

    // Unreadable fields are absent from get, list, query, expand, create and update answers.
    let r = api
        .get(&format!("/api/v1/data/account/{}", w.acme), rep)
        .await;
    assert_eq!(r.record()["name"], "Acme Public", "[{label}]");
    assert_eq!(r.record()["revenue"].as_f64(), Some(100.0), "[{label}]");
    stripped(&r, "secret_note");
    stripped(&api.get("/api/v1/data/account", rep).await, "secret_note");
    stripped(
        &api.post("/api/v1/data/account/query", rep, json!({})).await,
        "secret_note",
    );
    let r = api.get("/api/v1/data/deal?expand=account", rep).await;
    assert_eq!(r.records().len(), 2, "[{label}] {}", r.text);
    stripped(&r, "secret_note");
    stripped(&r, "partner");
    let r = api
        .get(&format!("/api/v1/data/deal/{}", w.rep_deal_acme), rep)
        .await;
    stripped(&r, "partner");
    let r = api
        .post("/api/v1/data/account", rep, json!({"name": "Rep Second"}))
        .await;
    assert_eq!(r.status, 201, "[{label}] {}", r.text);
    stripped(&r, "secret_note");
    let r = api
        .patch(
            &format!("/api/v1/data/account/{}", w.rep_account),
            rep,
            json!({"name": "Rep Own"}),
        )
        .await;
    assert_eq!(r.status, 200, "[{label}] {}", r.text);
    stripped(&r, "secret_note");
    let r = api
        .patch(
            &format!("/api/v1/data/deal/{}", w.rep_deal_acme),
            rep,
            json!({"amount": 101}),
        )
        .await;
    assert_eq!(r.status, 200, "[{label}] {}", r.text);
    stripped(&r, "partner");

    // Every way of naming an unreadable field in a query is refused, naming the parameter,
    // never the value.
    let acme_filter = enc(&json!({"secret_note": ACME_SECRET}).to_string());
    let get_refusals = [
        format!("/api/v1/data/account?filter={acme_filter}"),
        format!("/api/v1/data/account?secret_note={}", enc(ACME_SECRET)),
        "/api/v1/data/account?sort=secret_note".to_owned(),
        "/api/v1/data/account?sort=-secret_note".to_owned(),
        "/api/v1/data/account?select=name,secret_note".to_owned(),
        format!("/api/v1/data/account/{}?select=secret_note", w.acme),
        "/api/v1/data/deal?expand=partner".to_owned(),
        format!("/api/v1/data/deal/{}?expand=partner", w.rep_deal_acme),
        format!(
            "/api/v1/data/deal?filter={}",
            enc(&json!({"account.secret_note": HIDDEN_SECRET}).to_string())
        ),
        format!(
            "/api/v1/data/deal?filter={}",
            enc(&json!({"partner": w.hidden}).to_string())
        ),
        "/api/v1/data/deal?sort=partner".to_owned(),
    ];
    for path in &get_refusals {
        let r = api.get(path, rep).await;
        let message = refused(&r, 403, "PERMISSION_DENIED");
        no_leak(&r, &[ACME_SECRET, HIDDEN_SECRET, &w.hidden]);
        assert!(
            message.contains("not readable"),
            "[{label}] {path}: {message}"
        );
    }
    let query_refusals = [
        json!({"where": {"secret_note": {"$startsWith": "acme"}}}),
        json!({"where": {"$or": [{"name": "x"}, {"secret_note": {"$null": false}}]}}),
        json!({"orderBy": [{"field": "secret_note", "order": "asc"}]}),
        json!({"fields": ["name", "secret_note"]}),
        json!({"groupBy": ["secret_note"], "aggregations": [{"function": "count", "alias": "n"}]}),
        json!({"aggregations": [{"function": "count_distinct", "field": "secret_note", "alias": "n"}]}),
        json!({"aggregations": [{"function": "max", "field": "secret_note", "alias": "m"}]}),
        json!({"aggregations": [{"function": "count", "alias": "n",
                                 "filter": {"secret_note": ACME_SECRET}}]}),
        json!({"groupBy": ["industry"], "aggregations": [{"function": "count", "alias": "n"}],
               "having": {"secret_note": ACME_SECRET}}),
        json!({"search": {"query": "acme", "fields": ["secret_note"]}}),
    ];
    for q in &query_refusals {
        let r = api.post("/api/v1/data/account/query", rep, q.clone()).await;
        refused(&r, 403, "PERMISSION_DENIED");
        no_leak(&r, &[ACME_SECRET, HIDDEN_SECRET]);
    }
    for q in [
        json!({"expand": {"partner": {}}}),
        json!({"where": {"partner.name": "Acme Public"}}),
        json!({"expand": {"account": {"fields": ["secret_note"]}}}),
        json!({"groupBy": ["account.secret_note"], "aggregations": [{"function": "count", "alias": "n"}]}),
        json!({"orderBy": [{"field": "account.secret_note", "order": "desc"}]}),
        json!({"fields": ["name", "account.secret_note"]}),
        json!({"aggregations": [{"function": "count", "alias": "n",
                                 "filter": {"account.secret_note": ACME_SECRET}}]}),
    ] {
        let r = api.post("/api/v1/data/deal/query", rep, q.clone()).await;
        refused(&r, 403, "PERMISSION_DENIED");
    }
    // A search without fields only looks at readable ones: the secret value matches nothing.
    let r = api
        .post(
            "/api/v1/data/account/query",
            rep,
            json!({"search": {"query": ACME_SECRET}}),
        )
        .await;
    assert_eq!(r.records(), Vec::<Value>::new(), "[{label}] {}", r.text);
    // The owner (administrator) reads and filters it normally: the refusals were about the rep.
    let r = api
        .get(
            &format!("/api/v1/data/account?filter={acme_filter}"),
            w.owner.t(),
        )
        .await;
    assert_eq!(r.names(), ["Acme Public"], "[{label}]");
    w.srv.stop();
}

pub(crate) async fn writes(b: &Backend) {
    let w = world(b).await;
    let api = w.srv.api;
    let label = w.srv.label;
    let rep = w.rep.t();
    let acme = format!("/api/v1/data/account/{}", w.acme);
    let mine = format!("/api/v1/data/account/{}", w.rep_account);

    // Non-editable fields are refused on create, update and in bulk, naming the field.
    for (method, path, body) in [
        (
            "POST",
            "/api/v1/data/account".to_owned(),
            json!({"name": "n", "revenue": 5}),
        ),
        (
            "POST",
            "/api/v1/data/account".to_owned(),
            json!({"name": "n", "secret_note": "planted"}),
        ),
        ("PATCH", mine.clone(), json!({"revenue": 5})),
        ("PATCH", acme.clone(), json!({"revenue": 5})),
        ("PATCH", mine.clone(), json!({"secret_note": "planted"})),
        // An unreadable field is refused even when the guessed value is right: "unchanged"
        // would confirm the guess.
        ("PATCH", acme.clone(), json!({"secret_note": ACME_SECRET})),
        (
            "PATCH",
            format!("/api/v1/data/deal/{}", w.rep_deal_acme),
            json!({"partner": w.acme}),
        ),
    ] {
        let r = api.call(method, &path, rep, Some(body)).await;
        let message = refused(&r, 403, "PERMISSION_DENIED");
        assert!(message.contains("field"), "[{label}] {message}");
        no_leak(&r, &[ACME_SECRET, HIDDEN_SECRET]);
    }
    let r = api
        .post(
            "/api/v1/data/account/createMany",
            rep,
            json!([{"name": "bulk", "revenue": 1}]),
        )
        .await;
    refused(&r, 403, "PERMISSION_DENIED");
    for (route, body) in [
        (
            "/api/v1/data/account/batch",
            json!({"operation": "update", "records": [{"id": w.rep_account, "data": {"revenue": 1}}]}),
        ),
        (
            "/api/v1/data/account/updateMany",
            json!({"records": [{"id": w.rep_account, "data": {"secret_note": "planted"}}]}),
        ),
    ] {
        let r = api.post(route, rep, body).await;
        assert_eq!(r.status, 200, "[{label}] {route}: {}", r.text);
        assert_eq!(
            (r.body["succeeded"].clone(), r.body["failed"].clone()),
            (json!(0), json!(1)),
            "[{label}] {route}: {}",
            r.text
        );
        assert_eq!(
            r.body["results"][0]["errors"][0]["code"], "PERMISSION_DENIED",
            "[{label}] {route}: {}",
            r.text
        );
    }
    // Sending a readable, read-only value back unchanged (echoing a record) is fine.
    let r = api.patch(&mine, w.owner.t(), json!({"revenue": 50})).await;
    assert_eq!(r.status, 200, "[{label}] {}", r.text);
    let r = api
        .patch(&mine, rep, json!({"name": "Rep Own", "revenue": 50}))
        .await;
    assert_eq!(r.status, 200, "[{label}] {}", r.text);
    let r = api.patch(&mine, rep, json!({"revenue": 51})).await;
    refused(&r, 403, "PERMISSION_DENIED");

    // System fields are never taken from input: not on create, not on update.
    let forged = json!({
        "id": "forged-id-0001",
        "owner_id": w.owner.id,
        "created_by": w.owner.id,
        "updated_by": w.owner.id,
        "organization_id": "some-other-org",
        "created_at": "2001-01-01T00:00:00.000Z",
        "updated_at": "2001-01-01T00:00:00.000Z",
    });
    let mut body = forged.clone();
    body["name"] = json!("Forged");
    // They are dropped from the input (the rest of the record is written).
    let r = api.post("/api/v1/data/account", rep, body).await;
    assert_eq!(r.status, 201, "[{label}] {}", r.text);
    let id = r.record()["id"].as_str().unwrap().to_owned();
    assert_ne!(id, "forged-id-0001", "[{label}]");
    let stored = api
        .get(&format!("/api/v1/data/account/{id}"), w.owner.t())
        .await
        .record();
    assert_eq!(stored["name"], "Forged", "[{label}] {stored}");
    assert_eq!(stored["owner_id"], json!(w.rep.id), "[{label}] {stored}");
    assert_eq!(stored["created_by"], json!(w.rep.id), "[{label}] {stored}");
    assert_eq!(stored["updated_by"], json!(w.rep.id), "[{label}] {stored}");
    assert_eq!(
        stored["organization_id"],
        json!(w.org_a),
        "[{label}] {stored}"
    );
    assert_ne!(
        stored["created_at"], "2001-01-01T00:00:00.000Z",
        "[{label}]"
    );
    let before = api.get(&mine, w.owner.t()).await.record();
    let r = api.patch(&mine, rep, forged.clone()).await;
    assert_eq!(r.status, 200, "[{label}] {}", r.text);
    let after = api.get(&mine, w.owner.t()).await.record();
    for f in [
        "id",
        "owner_id",
        "created_by",
        "organization_id",
        "created_at",
    ] {
        assert_eq!(before[f], after[f], "[{label}] {f} changed: {after}");
    }
    // The record the rep could not write is unchanged.
    let r = api.get(&acme, w.owner.t()).await.record();
    assert_eq!(r["revenue"].as_f64(), Some(100.0), "[{label}]");
    assert_eq!(r["secret_note"], ACME_SECRET, "[{label}]");
    w.srv.stop();
}
