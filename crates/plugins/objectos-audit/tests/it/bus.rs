//! Auth, authz and security events from the bus land in the chained table, redacted.

use std::time::Duration;

use objectos_audit::{EventFilter, REDACTED};
use objectos_spec::Event;
use objectos_spec::event::EventMetadata;
use serde_json::{Value, json};

use crate::support::Harness;

fn event(name: &str, payload: Value) -> Event {
    Event {
        id: uuid::Uuid::now_v7().to_string(),
        name: name.into(),
        payload,
        metadata: EventMetadata {
            source: objectos_testkit::TEST_PLUGIN_ID.into(),
            timestamp: chrono::Utc::now(),
            ..EventMetadata::default()
        },
    }
}

async fn wait_for(h: &Harness, n: usize) -> Vec<objectos_audit::AuditEvent> {
    for _ in 0..200 {
        let page = h
            .store
            .events(&EventFilter {
                event_type: Some("auth.*".into()),
                limit: 100,
                ..EventFilter::default()
            })
            .await
            .unwrap();
        if page.events.len() >= n {
            return page.events;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("bus events did not reach the audit table");
}

async fn bus_scenario(h: &Harness) {
    let base = json!({"userId": "u1", "email": "u1@x.io", "tenantId": "acme", "ip": "10.0.0.7",
        "userAgent": "Firefox", "requestId": "r-1"});
    h.publisher
        .publish(event("auth.login", base.clone()))
        .await
        .unwrap();
    let mut failed = base.clone();
    failed["reason"] = json!("bad password");
    failed["password"] = json!("hunter2");
    failed["userId"] = Value::Null;
    h.publisher
        .publish(event("auth.login_failed", failed))
        .await
        .unwrap();
    h.publisher
        .publish(event(
            "authz.role_assigned",
            json!({"userId": "admin", "tenantId": "acme", "role": "sales", "targetId": "u1"}),
        ))
        .await
        .unwrap();
    h.publisher
        .publish(event(
            "security.api_key_created",
            json!({"userId": "u1", "tenantId": "acme", "apiKey": "sk-live-secret"}),
        ))
        .await
        .unwrap();
    let events = wait_for(h, 2).await;
    let ok = events
        .iter()
        .find(|e| e.event_type == "auth.login")
        .unwrap();
    assert_eq!(ok.actor.kind, "user");
    assert_eq!(ok.actor.id.as_deref(), Some("u1"));
    assert_eq!(ok.actor.ip_address.as_deref(), Some("10.0.0.7"));
    assert_eq!(ok.actor.user_agent.as_deref(), Some("Firefox"));
    assert_eq!(ok.tenant_id.as_deref(), Some("acme"));
    assert_eq!(ok.request_id.as_deref(), Some("r-1"));
    assert_eq!(ok.result, "success");
    let bad = events
        .iter()
        .find(|e| e.event_type == "auth.login_failed")
        .unwrap();
    assert_eq!(bad.result, "failure");
    assert_eq!(bad.severity, "warning");
    assert_eq!(bad.actor.kind, "anonymous");
    assert_eq!(bad.description.as_deref(), Some("bad password"));
    assert_eq!(bad.details["password"], json!(REDACTED));
    assert_eq!(bad.details["email"], json!("u1@x.io"));
    // Wait for the other two families as well.
    for _ in 0..200 {
        let all = h.store.export(&EventFilter::default()).await.unwrap();
        if all.len() >= 4 {
            let key = all
                .iter()
                .find(|e| e.event_type == "security.api_key_created")
                .unwrap();
            assert_eq!(key.details["apiKey"], json!(REDACTED));
            let role = all
                .iter()
                .find(|e| e.event_type == "authz.role_assigned")
                .unwrap();
            assert_eq!(role.record_id.as_deref(), Some("u1"));
            assert!(!serde_json::to_string(&all).unwrap().contains("hunter2"));
            let v = h.store.verify(Some("acme")).await.unwrap();
            assert!(v.ok(), "{v:?}");
            assert_eq!(v.events, 4);
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("authz/security events did not reach the audit table");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bus_events_sqlite() {
    let h = Harness::sqlite().await;
    bus_scenario(&h).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(objectos_pg),
    ignore = "needs PostgreSQL: set OBJECTOS_TEST_POSTGRES_URL"
)]
async fn bus_events_postgres() {
    if let Some(h) = Harness::postgres().await {
        bus_scenario(&h).await;
        h.stop().await;
    }
}

/// Bus appends (own transactions) interleaved with engine writes (audit in the data transaction):
/// every write succeeds and the chain of the shared tenant never forks.
async fn concurrency_scenario(h: &Harness) {
    let mut tasks = Vec::new();
    for i in 0..20 {
        let engine = h.engine.clone();
        tasks.push(tokio::spawn(async move {
            let cx = crate::support::user_cx("w").with_tenant("acme");
            engine
                .create(
                    &cx,
                    "task",
                    crate::support::rec(json!({"title": format!("t{i}")})),
                )
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }));
        let publisher = h.publisher.clone();
        tasks.push(tokio::spawn(async move {
            publisher
                .publish(event(
                    "auth.login",
                    json!({"userId": format!("u{i}"), "tenantId": "acme"}),
                ))
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }));
    }
    // Writes that roll back after the audit hook ran (the cached chain head ran ahead of the
    // database) interleave with the rest: the next appends must notice and re-read the head.
    let mut refused = Vec::new();
    for _ in 0..5 {
        let engine = h.engine.clone();
        refused.push(tokio::spawn(async move {
            let cx = crate::support::user_cx("w").with_tenant("acme");
            engine
                .create(&cx, "contact", crate::support::rec(json!({"name": "FAIL"})))
                .await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    for t in refused {
        assert!(t.await.unwrap().is_err());
    }
    for _ in 0..400 {
        let v = h.store.verify(Some("acme")).await.unwrap();
        if v.events >= 40 {
            assert!(v.ok(), "{v:?}");
            assert_eq!(v.events, 40);
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("not every event was recorded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_sqlite() {
    let h = Harness::sqlite().await;
    concurrency_scenario(&h).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(objectos_pg),
    ignore = "needs PostgreSQL: set OBJECTOS_TEST_POSTGRES_URL"
)]
async fn concurrent_appends_postgres() {
    if let Some(h) = Harness::postgres().await {
        concurrency_scenario(&h).await;
        h.stop().await;
    }
}

/// Permission assignments are made per organization: their events name it (`organizationId`,
/// and `tenantId` when the caller had one), and the audit event is filed under it.
#[test]
fn assignment_events_are_filed_under_their_organization() {
    let redactor = objectos_audit::Redactor::new(&[]);
    let ev = objectos_audit::recorder::event_from_bus(
        &redactor,
        &event(
            "authz.permission_granted",
            json!({"userId": "u1", "permissionSet": "sales_rep", "actorId": "admin",
                   "actorType": "user", "targetId": "u1", "organizationId": "org9"}),
        ),
    );
    assert_eq!(ev.tenant_id.as_deref(), Some("org9"));
    assert_eq!(ev.actor.id.as_deref(), Some("admin"));
    assert_eq!(ev.record_id.as_deref(), Some("u1"));
    assert_eq!(ev.details["organizationId"], json!("org9"));
    assert_eq!(ev.details["permissionSet"], json!("sales_rep"));
}
