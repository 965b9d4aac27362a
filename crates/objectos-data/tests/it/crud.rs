//! Create, get, update, delete, batches, concurrency, uniqueness, delete behaviours, autonumber, roll-ups.

use objectos_data::{
    BatchItem, BatchOperation, BatchOptions, BatchRequest, DataEngine, DataError, OpContext,
};
use objectos_spec::query::QueryAst;
use serde_json::json;

use crate::{CRM, for_each_backend, rec, user_cx};

#[tokio::test]
async fn create_get_update_delete_round_trip() {
    for_each_backend(CRM, |e| async move {
        let cx = user_cx();
        let a = e
            .create(&cx, "account", rec(json!({
                "name": "Acme", "revenue": 1200.5, "employees": 80, "founded": "2001-02-03",
                "last_contact": "2026-01-02T03:04:05Z", "opens_at": "09:30", "tags": ["a", "c"],
                "meta": {"k": [1, 2]}, "id": "ignored", "created_by": "evil", "organization_id": "evil"
            })))
            .await
            .unwrap();
        let id = a["id"].as_str().unwrap().to_owned();
        assert_ne!(id, "ignored");
        assert_eq!(id.len(), 20);
        assert_eq!(a["created_by"], "u1");
        assert_eq!(a["owner_id"], "u1");
        assert_eq!(a["organization_id"], "org1");
        assert_eq!(a["revenue"], json!(1200.5));
        assert_eq!(a["employees"], json!(80));
        assert_eq!(a["founded"], "2001-02-03");
        assert_eq!(a["last_contact"], "2026-01-02T03:04:05.000Z");
        assert_eq!(a["opens_at"], "09:30:00");
        assert_eq!(a["tags"], json!(["a", "c"]));
        assert_eq!(a["meta"], json!({"k": [1, 2]}));
        assert_eq!(a["kind"], "prospect");
        assert_eq!(a["is_active"], true);
        assert_eq!(a["number"], "ACC-0001");
        assert_eq!(a["contact_count"], 0);
        assert!(a["created_at"].as_str().unwrap().ends_with('Z'));
        let keys: Vec<&String> = a.keys().take(3).collect();
        assert_eq!(keys, ["id", "created_at", "updated_at"]);

        let got = e.get(&cx, "account", &id, QueryAst::default()).await.unwrap();
        assert_eq!(got, a);

        let v1 = DataEngine::version_of(&got).unwrap();
        let upd = e.update(&cx, "account", &id, rec(json!({"name": "Acme 2", "updated_at": "1999-01-01T00:00:00Z"})), Some(&v1)).await.unwrap();
        assert_eq!(upd["name"], "Acme 2");
        assert_eq!(upd["created_at"], a["created_at"]);
        let v2 = DataEngine::version_of(&upd).unwrap();
        assert_ne!(v1, v2);
        let err = e.update(&cx, "account", &id, rec(json!({"name": "stale"})), Some(&v1)).await.unwrap_err();
        assert!(matches!(err, DataError::ConcurrentModification { .. }), "{err:?}");
        assert_eq!(err.http_status(), 412);
        e.update(&cx, "account", &id, rec(json!({"name": "fresh"})), Some(&format!("W/\"{v2}\""))).await.unwrap();

        e.delete(&cx, "account", &id).await.unwrap();
        let err = e.get(&cx, "account", &id, QueryAst::default()).await.unwrap_err();
        assert_eq!(err.code(), "RECORD_NOT_FOUND");
        assert_eq!(err.to_string(), format!("Record {id} not found in account"));
        let err = e.delete(&cx, "account", &id).await.unwrap_err();
        assert_eq!(err.code(), "RECORD_NOT_FOUND");
    })
    .await;
}

#[tokio::test]
async fn bad_input_has_exact_codes() {
    for_each_backend(CRM, |e| async move {
        let cx = user_cx();
        let err = e
            .create(&cx, "nope", rec(json!({"name": "x"})))
            .await
            .unwrap_err();
        assert_eq!((err.code(), err.http_status()), ("OBJECT_NOT_FOUND", 404));
        let err = e
            .create(&cx, "account", rec(json!({"name": "x", "bogus": 1})))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "VALIDATION_FAILED");
        assert_eq!(err.field_errors()[0].code, "unknown_field");
        let err = e
            .create(&cx, "account", rec(json!({"name": "x", "revenue": "lots"})))
            .await
            .unwrap_err();
        assert_eq!(err.field_errors()[0].code, "invalid_type");
        assert_eq!(err.field_errors()[0].field, "revenue");
        let err = e
            .create(&cx, "account", rec(json!({"name": "x", "founded": 5})))
            .await
            .unwrap_err();
        assert_eq!(err.field_errors()[0].field, "founded");
        let err = e
            .create(&cx, "account", rec(json!({"revenue": 1})))
            .await
            .unwrap_err();
        assert_eq!(err.field_errors()[0].code, "required");
        let err = e
            .create(&cx, "account", rec(json!({"name": "x", "kind": "alien"})))
            .await
            .unwrap_err();
        assert_eq!(err.field_errors()[0].code, "invalid_option");
        let err = e
            .update(&cx, "account", "missing", rec(json!({"name": "y"})), None)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "RECORD_NOT_FOUND");
    })
    .await;
}

#[tokio::test]
async fn tenant_isolation() {
    for_each_backend(CRM, |e| async move {
        let a = e
            .create(&user_cx(), "account", rec(json!({"name": "Mine"})))
            .await
            .unwrap();
        let other = OpContext {
            tenant: Some("org2".into()),
            ..user_cx()
        };
        let id = a["id"].as_str().unwrap();
        assert_eq!(
            e.get(&other, "account", id, QueryAst::default())
                .await
                .unwrap_err()
                .code(),
            "RECORD_NOT_FOUND"
        );
        assert_eq!(
            e.find(&other, "account", QueryAst::default())
                .await
                .unwrap()
                .total,
            Some(0)
        );
    })
    .await;
}

#[tokio::test]
async fn unique_violation_is_duplicate() {
    for_each_backend(CRM, |e| async move {
        let cx = user_cx();
        e.create(&cx, "account", rec(json!({"name": "A", "code": "X1"})))
            .await
            .unwrap();
        let err = e
            .create(&cx, "account", rec(json!({"name": "B", "code": "X1"})))
            .await
            .unwrap_err();
        assert_eq!((err.code(), err.http_status()), ("DUPLICATE_VALUE", 409));
        assert_eq!(err.field_errors()[0].field, "code");
        let b = e
            .create(&cx, "account", rec(json!({"name": "B", "code": "X2"})))
            .await
            .unwrap();
        let err = e
            .update(
                &cx,
                "account",
                b["id"].as_str().unwrap(),
                rec(json!({"code": "X1"})),
                None,
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), "DUPLICATE_VALUE");
        // Updating a record to its own value is fine.
        e.update(
            &cx,
            "account",
            b["id"].as_str().unwrap(),
            rec(json!({"code": "X2"})),
            None,
        )
        .await
        .unwrap();
    })
    .await;
}

#[tokio::test]
async fn create_many_is_atomic_and_autonumbers_count_up() {
    for_each_backend(CRM, |e| async move {
        let cx = user_cx();
        let made = e
            .create_many(
                &cx,
                "account",
                vec![rec(json!({"name": "A"})), rec(json!({"name": "B"}))],
            )
            .await
            .unwrap();
        assert_eq!(made[0]["number"], "ACC-0001");
        assert_eq!(made[1]["number"], "ACC-0002");
        let err = e
            .create_many(
                &cx,
                "account",
                vec![rec(json!({"name": "C"})), rec(json!({"bad": 1}))],
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), "VALIDATION_FAILED");
        assert_eq!(
            e.find(&cx, "account", QueryAst::default())
                .await
                .unwrap()
                .total,
            Some(2)
        );
        let c = e
            .create(&cx, "account", rec(json!({"name": "C"})))
            .await
            .unwrap();
        assert_eq!(
            c["number"], "ACC-0003",
            "the rolled-back counter value is not reused"
        );
    })
    .await;
}

fn creates(items: Vec<serde_json::Value>, options: BatchOptions) -> BatchRequest {
    BatchRequest {
        operation: BatchOperation::Create,
        records: items
            .into_iter()
            .map(|d| BatchItem {
                data: rec(d),
                ..BatchItem::default()
            })
            .collect(),
        ids: vec![],
        options,
    }
}

#[tokio::test]
async fn batch_atomic_rolls_back_and_continue_on_error_reports_items() {
    for_each_backend(CRM, |e| async move {
        let cx = user_cx();
        let r = e
            .batch(
                &cx,
                "account",
                creates(
                    vec![
                        json!({"name": "A"}),
                        json!({"nope": 1}),
                        json!({"name": "C"}),
                    ],
                    BatchOptions::default(),
                ),
            )
            .await
            .unwrap();
        assert!(!r.success);
        assert_eq!((r.total, r.succeeded, r.failed), (3, 0, 3));
        assert_eq!(r.results[1].errors[0].code, "VALIDATION_FAILED");
        assert_eq!(
            e.find(&cx, "account", QueryAst::default())
                .await
                .unwrap()
                .total,
            Some(0)
        );

        let opts = BatchOptions {
            atomic: false,
            continue_on_error: true,
            ..BatchOptions::default()
        };
        let r = e
            .batch(
                &cx,
                "account",
                creates(
                    vec![
                        json!({"name": "A"}),
                        json!({"nope": 1}),
                        json!({"name": "C"}),
                    ],
                    opts,
                ),
            )
            .await
            .unwrap();
        assert_eq!((r.succeeded, r.failed), (2, 1));
        assert!(r.results[0].success && !r.results[1].success && r.results[2].success);
        assert_eq!(
            e.find(&cx, "account", QueryAst::default())
                .await
                .unwrap()
                .total,
            Some(2)
        );

        let ids: Vec<String> = r
            .results
            .iter()
            .filter_map(|x| x.id.clone())
            .filter(|_| true)
            .collect();
        let ok_ids: Vec<String> = r
            .results
            .iter()
            .filter(|x| x.success)
            .filter_map(|x| x.id.clone())
            .collect();
        assert_eq!(ok_ids.len(), 2);
        let _ = ids;
        let upd = BatchRequest {
            operation: BatchOperation::Update,
            records: ok_ids
                .iter()
                .map(|id| BatchItem {
                    id: Some(id.clone()),
                    data: rec(json!({"rating": 5})),
                    external_id: None,
                })
                .collect(),
            ids: vec![],
            options: BatchOptions::default(),
        };
        let r = e.update_many(&cx, "account", upd).await.unwrap();
        assert!(r.success, "{r:?}");
        assert_eq!(r.results[0].data.as_ref().unwrap()["rating"], 5);
        let del = BatchRequest {
            operation: BatchOperation::Delete,
            records: vec![],
            ids: ok_ids.clone(),
            options: BatchOptions::default(),
        };
        let r = e.delete_many(&cx, "account", del).await.unwrap();
        assert_eq!(r.succeeded, 2);
        assert_eq!(
            e.find(&cx, "account", QueryAst::default())
                .await
                .unwrap()
                .total,
            Some(0)
        );

        let up = BatchRequest {
            operation: BatchOperation::Upsert,
            records: vec![BatchItem {
                id: Some("fresh".into()),
                data: rec(json!({"name": "U"})),
                external_id: None,
            }],
            ids: vec![],
            options: BatchOptions::default(),
        };
        let r = e.batch(&cx, "account", up).await.unwrap();
        assert!(r.success);
        let uid = r.results[0].id.clone().unwrap();
        let up2 = BatchRequest {
            operation: BatchOperation::Upsert,
            records: vec![BatchItem {
                id: Some(uid.clone()),
                data: rec(json!({"name": "U2"})),
                external_id: None,
            }],
            ids: vec![],
            options: BatchOptions::default(),
        };
        let r = e.batch(&cx, "account", up2).await.unwrap();
        assert_eq!(r.results[0].data.as_ref().unwrap()["name"], "U2");
        assert_eq!(
            e.find(&cx, "account", QueryAst::default())
                .await
                .unwrap()
                .total,
            Some(1)
        );
    })
    .await;
}

#[tokio::test]
async fn delete_behaviours_cascade_set_null_restrict() {
    for_each_backend(CRM, |e| async move {
        let cx = user_cx();
        let acc = e
            .create(&cx, "account", rec(json!({"name": "P"})))
            .await
            .unwrap();
        let aid = acc["id"].as_str().unwrap().to_owned();
        let c = e
            .create(
                &cx,
                "contact",
                rec(json!({"name": "C", "account": aid, "amount": 10})),
            )
            .await
            .unwrap();
        let inv = e
            .create(&cx, "invoice", rec(json!({"title": "I", "account": aid})))
            .await
            .unwrap();
        let line = e
            .create(
                &cx,
                "invoice_line",
                rec(json!({"label": "L", "invoice": inv["id"]})),
            )
            .await
            .unwrap();
        let con = e
            .create(&cx, "contract", rec(json!({"title": "K", "account": aid})))
            .await
            .unwrap();

        let err = e.delete(&cx, "account", &aid).await.unwrap_err();
        assert_eq!((err.code(), err.http_status()), ("DELETE_RESTRICTED", 409));
        assert!(err.to_string().contains("contract"), "{err}");
        // Nothing changed.
        e.get(
            &cx,
            "invoice_line",
            line["id"].as_str().unwrap(),
            QueryAst::default(),
        )
        .await
        .unwrap();

        e.delete(&cx, "contract", con["id"].as_str().unwrap())
            .await
            .unwrap();
        e.delete(&cx, "account", &aid).await.unwrap();
        assert_eq!(
            e.get(
                &cx,
                "invoice",
                inv["id"].as_str().unwrap(),
                QueryAst::default()
            )
            .await
            .unwrap_err()
            .code(),
            "RECORD_NOT_FOUND"
        );
        assert_eq!(
            e.get(
                &cx,
                "invoice_line",
                line["id"].as_str().unwrap(),
                QueryAst::default()
            )
            .await
            .unwrap_err()
            .code(),
            "RECORD_NOT_FOUND"
        );
        let c2 = e
            .get(
                &cx,
                "contact",
                c["id"].as_str().unwrap(),
                QueryAst::default(),
            )
            .await
            .unwrap();
        assert_eq!(c2["account"], serde_json::Value::Null);
    })
    .await;
}

#[tokio::test]
async fn rollups_are_computed_on_read() {
    for_each_backend(CRM, |e| async move {
        let cx = user_cx();
        let a = e
            .create(&cx, "account", rec(json!({"name": "R"})))
            .await
            .unwrap();
        let b = e
            .create(&cx, "account", rec(json!({"name": "S"})))
            .await
            .unwrap();
        for amt in [10.5, 20.0] {
            e.create(
                &cx,
                "contact",
                rec(json!({"name": "c", "account": a["id"], "amount": amt})),
            )
            .await
            .unwrap();
        }
        let f = e
            .create(&cx, "account", rec(json!({"name": "F", "rating": 2.5})))
            .await
            .unwrap();
        assert_eq!(f["double_rating"], json!(5), "formula computed on read");
        let f = e
            .update(
                &cx,
                "account",
                f["id"].as_str().unwrap(),
                rec(json!({"rating": 4, "double_rating": 99})),
                None,
            )
            .await
            .unwrap();
        assert_eq!(
            f["double_rating"],
            json!(8),
            "formula input is ignored and recomputed"
        );
        let got = e
            .get(
                &cx,
                "account",
                a["id"].as_str().unwrap(),
                QueryAst::default(),
            )
            .await
            .unwrap();
        assert_eq!(got["contact_count"], 2);
        assert_eq!(got["contact_total"], json!(30.5));
        let list = e.find(&cx, "account", QueryAst::default()).await.unwrap();
        let s = list.records.iter().find(|r| r["id"] == b["id"]).unwrap();
        assert_eq!(s["contact_count"], 0);
    })
    .await;
}
