//! Interceptors (order, RLS filter injection, rollback on error) and the transactional outbox.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use objectos_data::{
    DataError, EventSink, HookContext, Interceptor, OpContext, Operation, Principal, Result,
};
use objectos_spec::Event;
use objectos_spec::event::data::{RecordCreated, RecordUpdated};
use objectos_spec::query::{Filter, QueryAst};
use serde_json::json;

use crate::{CRM, for_each_backend, rec, user_cx};

struct Recorder {
    name: &'static str,
    order: i32,
    log: Arc<Mutex<Vec<String>>>,
}

#[async_trait]
impl Interceptor for Recorder {
    fn name(&self) -> &str {
        self.name
    }
    fn order(&self) -> i32 {
        self.order
    }
    async fn before(&self, hook: &mut HookContext<'_>) -> Result<()> {
        self.log.lock().unwrap().push(format!(
            "before {} {} {}",
            self.name,
            hook.operation.as_str(),
            hook.object.name
        ));
        if let Some(input) = hook.input.as_deref_mut()
            && self.name == "upper"
            && let Some(n) = input
                .get("name")
                .and_then(|v| v.as_str())
                .map(str::to_uppercase)
        {
            input.insert("name".into(), json!(n));
        }
        Ok(())
    }
    async fn after(&self, hook: &mut HookContext<'_>) -> Result<()> {
        self.log
            .lock()
            .unwrap()
            .push(format!("after {} {}", self.name, hook.operation.as_str()));
        if let Some(r) = hook.result.as_deref()
            && r.get("name").and_then(|v| v.as_str()) == Some("BOOM")
        {
            return Err(DataError::Forbidden {
                object: hook.object.name.clone(),
                message: "boom refused".into(),
            });
        }
        Ok(())
    }
}

/// Row-level security: only active contacts are visible.
struct OnlyActive;

#[async_trait]
impl Interceptor for OnlyActive {
    fn name(&self) -> &str {
        "rls"
    }
    fn applies_to(&self, object: &str, _op: Operation) -> bool {
        object == "contact"
    }
    async fn before(&self, hook: &mut HookContext<'_>) -> Result<()> {
        if let Some(q) = hook.query.as_deref_mut() {
            q.filter = std::mem::take(&mut q.filter).and(Filter::eq("status", "active"));
        }
        Ok(())
    }
}

#[tokio::test]
async fn interceptors_run_in_order_and_errors_roll_back() {
    for_each_backend(CRM, |e| async move {
        let log = Arc::new(Mutex::new(vec![]));
        e.add_interceptor(Arc::new(Recorder {
            name: "second",
            order: 10,
            log: log.clone(),
        }));
        e.add_interceptor(Arc::new(Recorder {
            name: "upper",
            order: -5,
            log: log.clone(),
        }));
        let cx = user_cx();
        let a = e
            .create(&cx, "account", rec(json!({"name": "quiet"})))
            .await
            .unwrap();
        assert_eq!(a["name"], "QUIET");
        assert_eq!(
            log.lock().unwrap().clone(),
            [
                "before upper create account",
                "before second create account",
                "after upper create",
                "after second create"
            ]
        );
        let err = e
            .create(&cx, "account", rec(json!({"name": "boom"})))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "PERMISSION_DENIED");
        let all = e.find(&cx, "account", QueryAst::default()).await.unwrap();
        assert_eq!(all.total, Some(1), "the failed create was rolled back");
    })
    .await;
}

#[tokio::test]
async fn rls_filter_applies_to_find_get_update_delete() {
    for_each_backend(CRM, |e| async move {
        let cx = user_cx();
        let active = e
            .create(
                &cx,
                "contact",
                rec(json!({"name": "A", "status": "active"})),
            )
            .await
            .unwrap();
        let hidden = e
            .create(&cx, "contact", rec(json!({"name": "H", "status": "new"})))
            .await
            .unwrap();
        e.add_interceptor(Arc::new(OnlyActive));
        let r = e.find(&cx, "contact", QueryAst::default()).await.unwrap();
        assert_eq!(r.total, Some(1));
        assert_eq!(r.records[0]["id"], active["id"]);
        let hid = hidden["id"].as_str().unwrap();
        assert_eq!(
            e.get(&cx, "contact", hid, QueryAst::default())
                .await
                .unwrap_err()
                .code(),
            "RECORD_NOT_FOUND"
        );
        assert_eq!(
            e.update(&cx, "contact", hid, rec(json!({"name": "x"})), None)
                .await
                .unwrap_err()
                .code(),
            "RECORD_NOT_FOUND"
        );
        assert_eq!(
            e.delete(&cx, "contact", hid).await.unwrap_err().code(),
            "RECORD_NOT_FOUND"
        );
        e.update(
            &cx,
            "contact",
            active["id"].as_str().unwrap(),
            rec(json!({"name": "A2"})),
            None,
        )
        .await
        .unwrap();
    })
    .await;
}

#[derive(Default)]
pub(crate) struct Collect(pub(crate) Mutex<Vec<Event>>);

#[async_trait]
impl EventSink for Collect {
    async fn publish(&self, event: Event) -> std::result::Result<(), String> {
        self.0.lock().unwrap().push(event);
        Ok(())
    }
}

/// The update event names exactly the fields whose value changed, and every event carries the
/// request's ids; a subscriber's follow-up write (`OpContext::caused_by`) keeps the correlation
/// and names the event as its cause, so automation can stop loops and audit can show why.
#[tokio::test]
async fn record_events_name_changed_fields_and_carry_correlation_and_causation() {
    for_each_backend(CRM, |e| async move {
        let cx = user_cx()
            .with_request_id("req-1")
            .with_correlation_id("req-1");
        let a = e
            .create(&cx, "account", rec(json!({"name": "A", "code": "x"})))
            .await
            .unwrap();
        let id = a["id"].as_str().unwrap().to_owned();
        e.update(
            &cx,
            "account",
            &id,
            rec(json!({"name": "B", "code": "x"})),
            None,
        )
        .await
        .unwrap();
        let sink = Collect::default();
        assert_eq!(e.dispatch_pending(&sink).await.unwrap(), 2);
        let events = sink.0.lock().unwrap().clone();
        let created: RecordCreated = serde_json::from_value(events[0].payload.clone()).unwrap();
        assert_eq!(created.record["name"], "A");
        assert_eq!(created.about.request_id.as_deref(), Some("req-1"));
        let updated = &events[1];
        assert_eq!(updated.name, "data.account.updated");
        let p: RecordUpdated = serde_json::from_value(updated.payload.clone()).unwrap();
        assert_eq!(p.changed_fields, ["name"]);
        assert_eq!(
            (p.about.object.as_str(), p.about.record_id.as_str()),
            ("account", id.as_str())
        );
        assert_eq!(p.previous["name"], "A");
        assert_eq!(p.record["name"], "B");
        let m = &updated.metadata;
        assert_eq!(m.request_id.as_deref(), Some("req-1"));
        assert_eq!(m.correlation_id.as_deref(), Some("req-1"));
        assert_eq!(m.causation_id, None);
        assert_eq!(m.user_id.as_deref(), Some("u1"));
        assert_eq!(m.tenant_id.as_deref(), Some("org1"));

        // A subscriber reacting to the update writes as the system, caused by it.
        let follow = OpContext::caused_by(updated, Principal::system("automation"));
        e.update(&follow, "account", &id, rec(json!({"code": "y"})), None)
            .await
            .unwrap();
        // Writing the same value again changes nothing: no field is named.
        e.update(&follow, "account", &id, rec(json!({"code": "y"})), None)
            .await
            .unwrap();
        sink.0.lock().unwrap().clear();
        assert_eq!(e.dispatch_pending(&sink).await.unwrap(), 2);
        let events = sink.0.lock().unwrap().clone();
        let m = &events[0].metadata;
        assert_eq!(m.correlation_id.as_deref(), Some("req-1"));
        assert_eq!(m.causation_id.as_deref(), Some(updated.id.as_str()));
        assert_eq!(m.request_id, None);
        assert_eq!(m.tenant_id.as_deref(), Some("org1"));
        assert_eq!(events[0].payload["changedFields"], json!(["code"]));
        assert_eq!(events[1].payload["changedFields"], json!([]));
    })
    .await;
}

#[tokio::test]
async fn outbox_rows_are_written_in_tx_and_dispatched_after_commit() {
    for_each_backend(CRM, |e| async move {
        let cx = user_cx();
        let a = e
            .create(&cx, "account", rec(json!({"name": "Evt"})))
            .await
            .unwrap();
        let id = a["id"].as_str().unwrap().to_owned();
        e.update(&cx, "account", &id, rec(json!({"name": "Evt2"})), None)
            .await
            .unwrap();
        // A failed write leaves no outbox row.
        assert!(
            e.create(&cx, "account", rec(json!({"nope": 1})))
                .await
                .is_err()
        );
        let batch = objectos_data::BatchRequest {
            operation: objectos_data::BatchOperation::Create,
            records: vec![
                objectos_data::BatchItem {
                    data: rec(json!({"name": "ok"})),
                    ..Default::default()
                },
                objectos_data::BatchItem {
                    data: rec(json!({"bad": 1})),
                    ..Default::default()
                },
            ],
            ids: vec![],
            options: Default::default(),
        };
        assert!(!e.batch(&cx, "account", batch).await.unwrap().success);
        e.delete(&cx, "account", &id).await.unwrap();

        let sink = Collect::default();
        assert_eq!(e.dispatch_pending(&sink).await.unwrap(), 3);
        let events = sink.0.lock().unwrap().clone();
        let names: Vec<&str> = events.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "data.account.created",
                "data.account.updated",
                "data.account.deleted"
            ]
        );
        assert_eq!(events[0].payload["object"], "account");
        assert_eq!(events[0].payload["recordId"], id.as_str());
        assert_eq!(events[0].payload["record"]["name"], "Evt");
        assert_eq!(events[0].payload["userId"], "u1");
        assert_eq!(events[0].payload["tenantId"], "org1");
        assert_eq!(events[1].payload["previous"]["name"], "Evt");
        assert_eq!(events[1].payload["changedFields"], json!(["name"]));
        assert_eq!(events[2].payload["previous"]["name"], "Evt2");
        assert_eq!(events[0].metadata.user_id.as_deref(), Some("u1"));
        // Delivered rows are not delivered again.
        assert_eq!(e.dispatch_pending(&sink).await.unwrap(), 0);

        // The background dispatcher delivers after commit.
        let sink = Arc::new(Collect::default());
        let handle = e.start_dispatcher(sink.clone());
        e.create(&cx, "account", rec(json!({"name": "Live"})))
            .await
            .unwrap();
        for _ in 0..100 {
            if !sink.0.lock().unwrap().is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        handle.stop().await;
        assert_eq!(sink.0.lock().unwrap().len(), 1);
    })
    .await;
}

/// Publishes `ok` events, then fails every later one.
struct FailAfter {
    ok: usize,
    seen: Mutex<Vec<Event>>,
}

#[async_trait]
impl EventSink for FailAfter {
    async fn publish(&self, event: Event) -> std::result::Result<(), String> {
        let mut seen = self.seen.lock().unwrap();
        if seen.len() >= self.ok {
            return Err("sink is down".into());
        }
        seen.push(event);
        Ok(())
    }
}

#[tokio::test]
async fn outbox_batches_mark_only_the_published_prefix() {
    for_each_backend(CRM, |e| async move {
        let cx = user_cx();
        for name in ["A", "B", "C"] {
            e.create(&cx, "contact", rec(json!({"name": name})))
                .await
                .unwrap();
        }
        // The sink fails on the second event: one row is marked, two stay pending, in order.
        let failing = FailAfter {
            ok: 1,
            seen: Mutex::new(Vec::new()),
        };
        assert_eq!(e.dispatch_pending(&failing).await.unwrap(), 1);
        let sink = Collect::default();
        assert_eq!(e.dispatch_pending(&sink).await.unwrap(), 2);
        let names: Vec<String> = sink
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|ev| ev.payload["record"]["name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(names, ["B", "C"]);

        // More rows than one batch (256) go out over several batches, each marked exactly:
        // 300 = 256 + 44 (an id list padded to 64 placeholders).
        // (Two bulk creates: one request writes at most 200 records.)
        for half in [0..150, 150..300] {
            let many: Vec<_> = half
                .map(|i| rec(json!({"name": format!("M{i}")})))
                .collect();
            e.create_many(&cx, "contact", many).await.unwrap();
        }
        let sink = Collect::default();
        assert_eq!(e.dispatch_pending(&sink).await.unwrap(), 300);
        let events = sink.0.lock().unwrap().clone();
        assert_eq!(events[0].payload["record"]["name"], "M0");
        assert_eq!(events[299].payload["record"]["name"], "M299");
        assert_eq!(e.dispatch_pending(&sink).await.unwrap(), 0);
    })
    .await;
}

/// Records what update and delete hooks are handed as `previous`.
struct SeesPrevious {
    log: Arc<Mutex<Vec<String>>>,
}

#[async_trait]
impl Interceptor for SeesPrevious {
    fn name(&self) -> &str {
        "sees-previous"
    }
    fn applies_to(&self, object: &str, op: Operation) -> bool {
        object == "contact" && matches!(op, Operation::Update | Operation::Delete)
    }
    async fn before(&self, hook: &mut HookContext<'_>) -> Result<()> {
        let previous = hook
            .previous
            .expect("before-hooks of update/delete get previous");
        let input = hook
            .input
            .as_deref()
            .and_then(|i| i.get("name"))
            .and_then(|v| v.as_str())
            .unwrap_or("-");
        assert!(
            hook.in_write_transaction(),
            "previous is read inside the write transaction"
        );
        self.log.lock().unwrap().push(format!(
            "before {} {} -> {input}",
            hook.operation.as_str(),
            previous["name"].as_str().unwrap()
        ));
        Ok(())
    }
    async fn after(&self, hook: &mut HookContext<'_>) -> Result<()> {
        let previous = hook
            .previous
            .expect("after-hooks of update/delete get previous");
        self.log.lock().unwrap().push(format!(
            "after {} {}",
            hook.operation.as_str(),
            previous["name"].as_str().unwrap()
        ));
        Ok(())
    }
}

#[tokio::test]
async fn update_and_delete_hooks_see_the_previous_record() {
    for_each_backend(CRM, |e| async move {
        let log = Arc::new(Mutex::new(vec![]));
        e.add_interceptor(Arc::new(SeesPrevious { log: log.clone() }));
        let cx = user_cx();
        let c = e
            .create(&cx, "contact", rec(json!({"name": "old"})))
            .await
            .unwrap();
        let id = c["id"].as_str().unwrap();
        e.update(&cx, "contact", id, rec(json!({"name": "new"})), None)
            .await
            .unwrap();
        e.delete(&cx, "contact", id).await.unwrap();
        assert_eq!(
            log.lock().unwrap().clone(),
            [
                "before update old -> new",
                "after update old",
                "before delete new -> -",
                "after delete new"
            ]
        );
    })
    .await;
}
