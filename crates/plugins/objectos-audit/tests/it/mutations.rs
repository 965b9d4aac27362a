//! Mutations: events with diffs in the same transaction, rollback, system actor, field history,
//! redaction.

use objectos_audit::{EventFilter, REDACTED};
use objectos_data::OpContext;
use objectos_spec::query::QueryAst;
use serde_json::{Value, json};

use crate::support::{Harness, all_events, rec, user_cx};

async fn mutations_scenario(h: &Harness) {
    let e = &h.engine;
    let alice = user_cx("alice");
    let created = e
        .create(
            &alice,
            "contact",
            rec(json!({"name": "Ann", "email": "ann@x.io", "pin": "1234", "api_token": "tok-1", "score": 3})),
        )
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    e.update(
        &alice,
        "contact",
        &id,
        rec(json!({"email": "ann@y.io", "score": 4, "pin": "9999"})),
        None,
    )
    .await
    .unwrap();
    // The system principal's writes are audited as such, with the reason.
    let sys = OpContext::system("nightly import");
    e.update(&sys, "contact", &id, rec(json!({"name": "Anne"})), None)
        .await
        .unwrap();
    e.delete(&alice, "contact", &id).await.unwrap();

    let events = all_events(h).await;
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        ["data.create", "data.update", "data.update", "data.delete"]
    );
    let c = &events[0];
    assert_eq!(c.actor.kind, "user");
    assert_eq!(c.actor.id.as_deref(), Some("alice"));
    assert_eq!(c.object.as_deref(), Some("contact"));
    assert_eq!(c.record_id.as_deref(), Some(id.as_str()));
    assert_eq!(c.request_id.as_deref(), Some("req-alice"));
    assert_eq!(c.seq, 1);
    let fields: Vec<&str> = c.changes.iter().map(|c| c.field.as_str()).collect();
    assert_eq!(
        fields,
        ["name", "email", "pin", "api_token", "score"],
        "{:?}",
        c.changes
    );
    // Secrets: a password-typed field and a field named like a token are masked, still listed.
    let pin = c.changes.iter().find(|c| c.field == "pin").unwrap();
    assert_eq!(pin.new_value, json!(REDACTED));
    let tok = c.changes.iter().find(|c| c.field == "api_token").unwrap();
    assert_eq!(tok.new_value, json!(REDACTED));
    // No secret value anywhere in the stored changes. Only the change values are searched, as
    // JSON strings: ids and hashes elsewhere in an event are random hex and sometimes hold the
    // digits of a secret by chance.
    let values: Vec<String> = events
        .iter()
        .flat_map(|e| &e.changes)
        .flat_map(|c| [c.old_value.to_string(), c.new_value.to_string()])
        .collect();
    for secret in ["1234", "9999", "tok-1"] {
        assert!(
            !values.iter().any(|v| v.contains(secret)),
            "{secret} in {values:?}"
        );
    }

    let u = &events[1];
    let diff: Vec<(String, Value, Value)> = u
        .changes
        .iter()
        .map(|c| (c.field.clone(), c.old_value.clone(), c.new_value.clone()))
        .collect();
    assert_eq!(
        diff,
        vec![
            ("email".into(), json!("ann@x.io"), json!("ann@y.io")),
            ("pin".into(), json!(REDACTED), json!(REDACTED)),
            ("score".into(), json!(3), json!(4)),
        ]
    );
    let s = &events[2];
    assert_eq!(s.actor.kind, "system");
    assert_eq!(s.actor.reason.as_deref(), Some("nightly import"));
    assert_eq!(s.actor.id, None);
    let d = &events[3];
    assert_eq!(d.operation.as_deref(), Some("delete"));
    assert_eq!(d.record_id.as_deref(), Some(id.as_str()));
    assert!(
        d.changes
            .iter()
            .any(|c| c.field == "name" && c.old_value == json!("Anne") && c.new_value.is_null())
    );

    // Field history (contact has enable.trackHistory): one row per field for the values the
    // record was created with (old value null), per changed field of each update, and per value
    // it had when deleted (new value null).
    let hist = h
        .get_json(
            &format!("/api/v1/audit/history/contact/{id}"),
            crate::support::ADMIN,
        )
        .await;
    let rows = hist["history"].as_array().unwrap();
    let of_event = |ev: &objectos_audit::AuditEvent| -> Vec<(String, Value, Value, String)> {
        let mut got: Vec<(String, Value, Value, String)> = rows
            .iter()
            .filter(|r| r["eventId"] == json!(ev.id))
            .map(|r| {
                (
                    r["field"].as_str().unwrap().to_owned(),
                    r["oldValue"].clone(),
                    r["newValue"].clone(),
                    r["actorType"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        got.sort_by(|a, b| a.0.cmp(&b.0));
        got
    };
    let user = |f: &str, old: Value, new: Value| (f.to_owned(), old, new, "user".to_owned());
    let null = Value::Null;
    assert_eq!(
        of_event(&events[0]),
        vec![
            user("api_token", null.clone(), json!(REDACTED)),
            user("email", null.clone(), json!("ann@x.io")),
            user("name", null.clone(), json!("Ann")),
            user("pin", null.clone(), json!(REDACTED)),
            user("score", null.clone(), json!(3)),
        ]
    );
    assert_eq!(
        of_event(&events[1]),
        vec![
            user("email", json!("ann@x.io"), json!("ann@y.io")),
            user("pin", json!(REDACTED), json!(REDACTED)),
            user("score", json!(3), json!(4)),
        ]
    );
    assert_eq!(
        of_event(&events[2]),
        vec![(
            "name".to_owned(),
            json!("Ann"),
            json!("Anne"),
            "system".to_owned()
        )]
    );
    assert_eq!(
        of_event(&events[3]),
        vec![
            user("api_token", json!(REDACTED), null.clone()),
            user("email", json!("ann@y.io"), null.clone()),
            user("name", json!("Anne"), null.clone()),
            user("pin", json!(REDACTED), null.clone()),
            user("score", json!(4), null.clone()),
        ]
    );
    assert_eq!(rows.len(), 5 + 3 + 1 + 5);
    // Newest first: the delete's rows lead.
    assert_eq!(rows[0]["eventId"].as_str().unwrap(), events[3].id);

    // task has no trackHistory: events, but no history rows.
    let t = e
        .create(&alice, "task", rec(json!({"title": "a"})))
        .await
        .unwrap();
    let tid = t["id"].as_str().unwrap();
    e.update(&alice, "task", tid, rec(json!({"title": "b"})), None)
        .await
        .unwrap();
    let hist = h
        .get_json(
            &format!("/api/v1/audit/history/task/{tid}"),
            crate::support::ADMIN,
        )
        .await;
    assert_eq!(hist["history"], json!([]));

    // A hook failing after the audit hook rolls back the change and its audit row.
    let before = all_events(h).await.len();
    let err = e
        .create(&alice, "contact", rec(json!({"name": "FAIL"})))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "PERMISSION_DENIED");
    assert_eq!(all_events(h).await.len(), before);
    let found = e
        .find(&alice, "contact", QueryAst::default())
        .await
        .unwrap();
    assert!(found.records.iter().all(|r| r["name"] != json!("FAIL")));
    // The chain is still intact afterwards and the next write continues it.
    e.create(&alice, "contact", rec(json!({"name": "ok"})))
        .await
        .unwrap();
    let report = h.store.verify(None).await.unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.events as usize, before + 1);

    // Tenants get separate chains.
    let t1 = user_cx("bob").with_tenant("t1");
    e.create(&t1, "task", rec(json!({"title": "x"})))
        .await
        .unwrap();
    let page = h
        .store
        .events(&EventFilter {
            tenant: Some("t1".into()),
            limit: 10,
            ..EventFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(page.events.len(), 1);
    assert_eq!(page.events[0].seq, 1);
    assert_eq!(page.events[0].tenant_id.as_deref(), Some("t1"));
    assert!(h.store.verify(None).await.unwrap().ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutations_sqlite() {
    let h = Harness::sqlite().await;
    mutations_scenario(&h).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(objectos_pg),
    ignore = "needs PostgreSQL: set OBJECTOS_TEST_POSTGRES_URL"
)]
async fn mutations_postgres() {
    if let Some(h) = Harness::postgres().await {
        mutations_scenario(&h).await;
        h.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_writes_carry_ip_user_agent_and_request_id() {
    let h = Harness::sqlite().await;
    let (s, body) = h
        .http(
            "POST",
            "/api/v1/data/task",
            &[("x-test-user", "carol"), ("x-request-id", "rid-42")],
            Some(json!({"title": "via http"})),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let ev = all_events(&h).await.pop().unwrap();
    assert_eq!(ev.actor.id.as_deref(), Some("carol"));
    assert_eq!(ev.actor.ip_address.as_deref(), Some("127.0.0.1"));
    assert_eq!(ev.actor.user_agent.as_deref(), Some("objectos-testkit/1.0"));
    assert_eq!(ev.request_id.as_deref(), Some("rid-42"));
    h.stop().await;
}

/// A delete the engine runs because the parent was deleted (deleteBehavior: cascade) is audited
/// under the parent's tenant and names the parent in `details.cascadeOf`.
async fn cascade_scenario(h: &Harness) {
    let e = &h.engine;
    let cx = user_cx("dora").with_tenant("t9");
    let task = e
        .create(&cx, "task", rec(json!({"title": "parent"})))
        .await
        .unwrap();
    let tid = task["id"].as_str().unwrap().to_owned();
    let sub = e
        .create(&cx, "subtask", rec(json!({"title": "child", "task": tid})))
        .await
        .unwrap();
    e.delete(&cx, "task", &tid).await.unwrap();
    let page = h
        .store
        .events(&EventFilter {
            tenant: Some("t9".into()),
            limit: 10,
            ..EventFilter::default()
        })
        .await
        .unwrap();
    let child = page
        .events
        .iter()
        .find(|ev| ev.event_type == "data.delete" && ev.object.as_deref() == Some("subtask"))
        .unwrap();
    assert_eq!(child.record_id.as_deref(), sub["id"].as_str());
    assert_eq!(child.actor.id.as_deref(), Some("dora"));
    assert_eq!(
        child.details,
        json!({"cascadeOf": {"object": "task", "recordId": tid}})
    );
    let parent = page
        .events
        .iter()
        .find(|ev| ev.event_type == "data.delete" && ev.object.as_deref() == Some("task"))
        .unwrap();
    assert_eq!(parent.details, Value::Null);
    assert!(h.store.verify(Some("t9")).await.unwrap().ok());
}

/// A write a subscriber makes in reaction to an event (`OpContext::caused_by`) shows in the
/// trail which event caused it and which request it goes back to; a request's own write does
/// not repeat its request id there. The chain still verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_up_writes_show_causation() {
    let h = Harness::sqlite().await;
    let e = &h.engine;
    let cx = user_cx("erin")
        .with_tenant("t7")
        .with_request_id("req-7")
        .with_correlation_id("req-7");
    let task = e
        .create(&cx, "task", rec(json!({"title": "first"})))
        .await
        .unwrap();
    let tid = task["id"].as_str().unwrap().to_owned();
    let cause = objectos_spec::Event {
        id: "ev-1".into(),
        name: "data.task.created".into(),
        payload: Value::Null,
        metadata: objectos_spec::EventMetadata {
            tenant_id: Some("t7".into()),
            request_id: Some("req-7".into()),
            correlation_id: Some("req-7".into()),
            ..objectos_spec::EventMetadata::default()
        },
    };
    let follow = OpContext::caused_by(&cause, objectos_data::Principal::system("automation"));
    e.update(&follow, "task", &tid, rec(json!({"title": "second"})), None)
        .await
        .unwrap();
    let page = h
        .store
        .events(&EventFilter {
            tenant: Some("t7".into()),
            limit: 10,
            ..EventFilter::default()
        })
        .await
        .unwrap();
    let find = |t: &str| {
        page.events
            .iter()
            .find(|ev| ev.event_type == t)
            .unwrap()
            .details
            .clone()
    };
    assert_eq!(find("data.create"), Value::Null);
    assert_eq!(
        find("data.update"),
        json!({"correlationId": "req-7", "causationId": "ev-1"})
    );
    assert!(h.store.verify(Some("t7")).await.unwrap().ok());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cascades_are_marked_sqlite() {
    let h = Harness::sqlite().await;
    cascade_scenario(&h).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(objectos_pg),
    ignore = "needs PostgreSQL: set OBJECTOS_TEST_POSTGRES_URL"
)]
async fn cascades_are_marked_postgres() {
    if let Some(h) = Harness::postgres().await {
        cascade_scenario(&h).await;
        h.stop().await;
    }
}
