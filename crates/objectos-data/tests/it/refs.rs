//! `deleteBehavior` on multi-valued lookups (`multiple: true`, stored as arrays of ids).

use objectos_data::{DataEngine, OpContext};
use objectos_spec::query::QueryAst;
use serde_json::{Value, json};

use crate::{for_each_backend, rec, user_cx};

const FILES: &[(&str, &str)] = &[
    (
        "account.object.yml",
        "name: account\nfields:\n  name: { type: text }\n",
    ),
    (
        "tagging.object.yml",
        "name: tagging\nfields:\n  name: { type: text }\n  accounts: { type: lookup, reference: account, multiple: true }\n",
    ),
    (
        "blocker.object.yml",
        "name: blocker\nfields:\n  name: { type: text }\n  accounts: { type: lookup, reference: account, multiple: true, deleteBehavior: restrict }\n",
    ),
    (
        "follower.object.yml",
        "name: follower\nfields:\n  name: { type: text }\n  accounts: { type: lookup, reference: account, multiple: true, deleteBehavior: cascade }\n",
    ),
];

async fn make(e: &DataEngine, cx: &OpContext, object: &str, v: Value) -> String {
    e.create(cx, object, rec(v)).await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn field(e: &DataEngine, cx: &OpContext, object: &str, id: &str) -> Option<Value> {
    match e.get(cx, object, id, QueryAst::default()).await {
        Ok(r) => Some(r["accounts"].clone()),
        Err(err) => {
            assert_eq!(err.code(), "RECORD_NOT_FOUND");
            None
        }
    }
}

#[tokio::test]
async fn multi_valued_references_restrict_cascade_set_null() {
    for_each_backend(FILES, |e| async move {
        let cx = user_cx();
        let a = make(&e, &cx, "account", json!({"name": "A"})).await;
        let b = make(&e, &cx, "account", json!({"name": "B"})).await;
        let t_ab = make(&e, &cx, "tagging", json!({"accounts": [a, b]})).await;
        let t_a = make(&e, &cx, "tagging", json!({"accounts": [a]})).await;
        let f_ab = make(&e, &cx, "follower", json!({"accounts": [a, b]})).await;
        let f_b = make(&e, &cx, "follower", json!({"accounts": [b]})).await;
        let k_b = make(&e, &cx, "blocker", json!({"accounts": [b]})).await;
        // Another organization's record holding A's id is not this delete's business.
        let org2 = OpContext {
            tenant: Some("org2".into()),
            ..user_cx()
        };
        let t_other = make(&e, &org2, "tagging", json!({"accounts": [a]})).await;

        // restrict: refused, naming the referencing object; nothing changed.
        let err = e.delete(&cx, "account", &b).await.unwrap_err();
        assert_eq!((err.code(), err.http_status()), ("DELETE_RESTRICTED", 409));
        assert!(err.public_message().contains("blocker"), "{err}");
        assert_eq!(field(&e, &cx, "tagging", &t_ab).await, Some(json!([a, b])));
        assert!(field(&e, &cx, "follower", &f_ab).await.is_some());

        // set_null removes the id (an emptied array becomes null); cascade deletes.
        e.delete(&cx, "account", &a).await.unwrap();
        assert_eq!(field(&e, &cx, "tagging", &t_ab).await, Some(json!([b])));
        assert_eq!(field(&e, &cx, "tagging", &t_a).await, Some(Value::Null));
        assert_eq!(field(&e, &cx, "follower", &f_ab).await, None);
        assert_eq!(field(&e, &cx, "follower", &f_b).await, Some(json!([b])));
        assert_eq!(
            field(&e, &org2, "tagging", &t_other).await,
            Some(json!([a]))
        );

        e.delete(&cx, "blocker", &k_b).await.unwrap();
        e.delete(&cx, "account", &b).await.unwrap();
        assert_eq!(field(&e, &cx, "tagging", &t_ab).await, Some(Value::Null));
        assert_eq!(field(&e, &cx, "follower", &f_b).await, None);
    })
    .await;
}
