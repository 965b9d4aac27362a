//! Roll-ups (summary fields) never reveal hidden children: `account.deal_total` and
//! `account.deal_count` cover only the deals the reader may see (the rep's row-level security
//! keeps the owner's deals out), `account.deal_cost` sums a field the rep may not read and
//! `account.memo_count` counts an object the rep may not read (both `null` for the rep), through
//! get, list, query, expand and the record an update returns. `account.deal_total_all` opts
//! into every deal of the organization (`scope: all`) and says so in the fixture.

use serde_json::{Value, json};

use crate::support::{Backend, Reply};
use crate::world::{create, world};

/// The roll-ups of an account, in the order of the fixture.
fn rollups(record: &Value) -> [Value; 4] {
    [
        record["deal_total"].clone(),
        record["deal_count"].clone(),
        record["deal_cost"].clone(),
        record["memo_count"].clone(),
    ]
}

#[track_caller]
fn acme_in(r: &Reply, acme: &str) -> Value {
    r.records()
        .into_iter()
        .find(|x| x["id"] == acme)
        .unwrap_or_else(|| panic!("{}: no Acme in {}", r.what, r.text))
}

pub(crate) async fn run(b: &Backend) {
    let w = world(b).await;
    let srv = &w.srv;
    let api = srv.api;
    let label = srv.label;
    let rep = w.rep.t();

    // Acme (public sector, readable by the rep) gets a large deal of the owner's, which the
    // rep's row-level security hides, costs on both deals, and a memo.
    create(
        srv,
        &w.owner,
        "deal",
        json!({"name": "Owner Deal Acme", "amount": 98765, "cost": 900, "account": w.acme}),
    )
    .await;
    let r = api
        .patch(
            &format!("/api/v1/data/deal/{}", w.rep_deal_acme),
            w.owner.t(),
            json!({"cost": 11}),
        )
        .await;
    assert_eq!(r.status, 200, "[{label}] {}", r.text);
    create(
        srv,
        &w.owner,
        "memo",
        json!({"title": "Acme internal", "account": w.acme}),
    )
    .await;

    // The owner (an administrator) sees every child.
    let r = api
        .get(&format!("/api/v1/data/account/{}", w.acme), w.owner.t())
        .await;
    let all = [json!(98865), json!(2), json!(911), json!(1)];
    assert_eq!(rollups(&r.record()), all, "[{label}] {}", r.text);
    assert_eq!(r.record()["deal_total_all"], json!(98865), "[{label}]");

    // The rep sees their own deal only; the unreadable field and object say nothing.
    let mine = [json!(100), json!(1), Value::Null, Value::Null];
    let r = api
        .get(&format!("/api/v1/data/account/{}", w.acme), rep)
        .await;
    assert_eq!(rollups(&r.record()), mine, "[{label}] get: {}", r.text);
    // The opt-in covers every deal of the organization, by design.
    assert_eq!(r.record()["deal_total_all"], json!(98865), "[{label}]");
    let r = api.get("/api/v1/data/account", rep).await;
    assert_eq!(rollups(&acme_in(&r, &w.acme)), mine, "[{label}] list");
    let r = api
        .post(
            "/api/v1/data/account/query",
            rep,
            json!({"fields": ["id", "name", "deal_total", "deal_count", "deal_cost", "memo_count"]}),
        )
        .await;
    let acme = acme_in(&r, &w.acme);
    assert_eq!(rollups(&acme), mine, "[{label}] query: {}", r.text);
    assert!(
        !r.text.contains("98765") && !r.text.contains("98865"),
        "[{label}] {}",
        r.text
    );
    // Expanded into the rep's deal.
    let r = api
        .get(
            &format!("/api/v1/data/deal/{}?expand=account", w.rep_deal_acme),
            rep,
        )
        .await;
    assert_eq!(
        rollups(&r.record()["account"]),
        mine,
        "[{label}] expand: {}",
        r.text
    );
    // The record an update answers with.
    let r = api
        .patch(
            &format!("/api/v1/data/account/{}", w.rep_account),
            rep,
            json!({"name": "Rep Own 2"}),
        )
        .await;
    assert_eq!(
        rollups(&r.record()),
        [json!(0), json!(0), Value::Null, Value::Null],
        "[{label}] update: {}",
        r.text
    );
    // A summary cannot be used to filter or aggregate its way around this either.
    let r = api
        .post(
            "/api/v1/data/account/query",
            rep,
            json!({"where": {"deal_total": {"$gt": 1000}}}),
        )
        .await;
    assert_eq!(r.status, 400, "[{label}] {}", r.text);
    w.srv.stop();
}
