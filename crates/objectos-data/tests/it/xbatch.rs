//! Cross-object batches (`$ref`, atomicity, interceptors) and record clones.

use std::sync::Arc;

use async_trait::async_trait;
use objectos_data::{
    CrossBatchOptions, CrossBatchRequest, DataEngine, DataError, HookContext, Interceptor,
    Operation, Result,
};
use objectos_spec::query::{Filter, QueryAst};
use serde_json::{Value, json};

use crate::{CRM, for_each_backend, rec, user_cx};

fn req(ops: Value) -> CrossBatchRequest {
    serde_json::from_value(json!({ "operations": ops })).unwrap()
}

async fn count(e: &DataEngine, object: &str) -> u64 {
    e.count(&user_cx(), object, Filter::True).await.unwrap()
}

#[tokio::test]
async fn refs_resolve_and_everything_commits_together() {
    for_each_backend(CRM, |e| async move {
        let r = e
            .cross_batch(
                &user_cx(),
                req(json!([
                    {"object": "account", "operation": "create", "data": {"name": "Acme"}},
                    {"object": "contact", "operation": "create",
                     "data": {"name": "Ann", "account": {"$ref": 0}, "related": [{"$ref": 0}]}},
                    {"object": "account", "operation": "update", "id": {"$ref": 0}, "data": {"rating": 4}},
                    {"object": "invoice", "operation": "create", "data": {"title": "I1", "account": {"$ref": 0}}},
                    {"object": "invoice", "operation": "delete", "id": {"$ref": 3}}
                ])),
            )
            .await
            .unwrap();
        assert!(r.success, "{r:?}");
        assert_eq!((r.total, r.succeeded, r.failed), (5, 5, 0));
        let account = r.results[0].id.clone().unwrap();
        let contact = r.results[1].data.as_ref().unwrap();
        assert_eq!(contact["account"], account.as_str());
        assert_eq!(contact["related"], json!([account]));
        assert_eq!(r.results[2].data.as_ref().unwrap()["rating"], 4);
        assert_eq!(r.results[4].id, r.results[3].id);
        assert_eq!(count(&e, "invoice").await, 0);
        assert_eq!(count(&e, "contact").await, 1);
    })
    .await;
}

#[tokio::test]
async fn a_failing_operation_writes_nothing_and_is_named() {
    for_each_backend(CRM, |e| async move {
        let cx = user_cx();
        let r = e
            .cross_batch(
                &cx,
                req(json!([
                    {"object": "account", "operation": "create", "data": {"name": "Acme"}},
                    {"object": "contact", "operation": "create", "data": {"name": "Ann", "account": {"$ref": 0}}},
                    {"object": "contact", "operation": "create", "data": {"email": "no-name@x.io"}}
                ])),
            )
            .await
            .unwrap();
        assert!(!r.success);
        let f = r.failure.as_ref().unwrap();
        assert_eq!((f.index, f.object.as_str()), (2, "contact"));
        assert_eq!(f.error.code(), "VALIDATION_FAILED");
        assert_eq!(r.results[0].errors[0].code, "ROLLED_BACK");
        assert_eq!((count(&e, "account").await, count(&e, "contact").await), (0, 0));

        // Checked before anything runs: unknown objects, `$ref`s to later or missing operations.
        for (ops, index, code) in [
            (
                json!([{"object": "account", "operation": "create", "data": {"name": "A"}},
                       {"object": "nope", "operation": "create", "data": {}}]),
                1,
                "OBJECT_NOT_FOUND",
            ),
            (
                json!([{"object": "account", "operation": "create", "data": {"name": "A"}},
                       {"object": "contact", "operation": "create", "data": {"name": "x", "account": {"$ref": 1}}}]),
                1,
                "INVALID_BODY",
            ),
            (
                json!([{"object": "account", "operation": "update", "id": 7, "data": {}}]),
                0,
                "INVALID_BODY",
            ),
        ] {
            let r = e.cross_batch(&cx, req(ops)).await.unwrap();
            let f = r.failure.unwrap();
            assert_eq!((f.index, f.error.code()), (index, code), "{}", f.error);
        }
        assert_eq!(count(&e, "account").await, 0);

        let many: Vec<Value> = (0..201)
            .map(|i| json!({"object": "account", "operation": "create", "data": {"name": format!("a{i}")}}))
            .collect();
        let err = e.cross_batch(&cx, req(Value::Array(many))).await.unwrap_err();
        assert_eq!(err.code(), "INVALID_BODY");
    })
    .await;
}

#[tokio::test]
async fn non_atomic_batches_commit_each_operation() {
    for_each_backend(CRM, |e| async move {
        let mut request = req(json!([
            {"object": "account", "operation": "create", "data": {}},
            {"object": "contact", "operation": "create", "data": {"name": "Ann", "account": {"$ref": 0}}},
            {"object": "account", "operation": "create", "data": {"name": "Fine"}}
        ]));
        request.options = CrossBatchOptions {
            atomic: false,
            continue_on_error: true,
            ..CrossBatchOptions::default()
        };
        let r = e.cross_batch(&user_cx(), request).await.unwrap();
        assert_eq!((r.succeeded, r.failed), (1, 2));
        assert_eq!(r.results[0].errors[0].code, "VALIDATION_FAILED");
        assert_eq!(r.results[1].errors[0].code, "INVALID_BODY");
        assert!(r.results[2].success);
        assert!(r.failure.is_none());
        assert_eq!(count(&e, "account").await, 1);
    })
    .await;
}

/// Refuses to create contracts, as a permission set without `allowCreate` would.
struct NoContracts;

#[async_trait]
impl Interceptor for NoContracts {
    fn name(&self) -> &str {
        "no-contracts"
    }
    fn applies_to(&self, object: &str, op: Operation) -> bool {
        object == "contract" && op == Operation::Create
    }
    async fn before(&self, hook: &mut HookContext<'_>) -> Result<()> {
        assert_eq!(
            hook.cx.principal.user_id(),
            Some("u1"),
            "runs as the caller"
        );
        Err(DataError::Forbidden {
            object: "contract".into(),
            message: "You do not have permission to create contract records".into(),
        })
    }
}

#[tokio::test]
async fn operations_run_through_the_interceptors_as_the_caller() {
    for_each_backend(CRM, |e| async move {
        e.add_interceptor(Arc::new(NoContracts));
        let r = e
            .cross_batch(
                &user_cx(),
                req(json!([
                    {"object": "account", "operation": "create", "data": {"name": "Acme"}},
                    {"object": "contract", "operation": "create", "data": {"title": "K", "account": {"$ref": 0}}}
                ])),
            )
            .await
            .unwrap();
        let f = r.failure.unwrap();
        assert_eq!((f.index, f.error.code()), (1, "PERMISSION_DENIED"));
        assert_eq!(count(&e, "account").await, 0);
    })
    .await;
}

#[tokio::test]
async fn clone_copies_fields_but_not_identity() {
    for_each_backend(CRM, |e| async move {
        let cx = user_cx();
        let src = e
            .create(
                &cx,
                "account",
                rec(json!({"name": "Acme", "code": "AC", "rating": 4, "tags": ["a"]})),
            )
            .await
            .unwrap();
        let id = src["id"].as_str().unwrap();
        let copy = e
            .clone_record(&cx, "account", id, rec(json!({"name": "Acme (copy)"})))
            .await
            .unwrap();
        assert_ne!(copy["id"], src["id"]);
        assert_ne!(copy["number"], src["number"], "a fresh autonumber");
        assert_eq!(copy["name"], "Acme (copy)");
        assert_eq!(copy["rating"], 4);
        assert_eq!(copy["tags"], json!(["a"]));
        assert_eq!(copy["code"], Value::Null, "unique fields are not copied");
        let err = e
            .clone_record(&cx, "account", "missing", rec(json!({})))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "RECORD_NOT_FOUND");
        let all = e.find(&cx, "account", QueryAst::default()).await.unwrap();
        assert_eq!(all.total, Some(2));
    })
    .await;
}
