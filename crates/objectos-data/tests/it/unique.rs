//! `unique` validation rules: `scope` (fields or a condition), `caseSensitive: false`, `events`,
//! checked in the write transaction within the tenant.

use objectos_data::{DataEngine, OpContext};
use objectos_spec::query::{Filter, QueryAst};
use serde_json::{Value, json};

use crate::{for_each_backend, rec, user_cx};

const FILES: &[(&str, &str)] = &[
    (
        "account.object.yml",
        "name: account\nfields:\n  name: { type: text }\n",
    ),
    (
        "member.object.yml",
        r#"
name: member
fields:
  name: { type: text }
  email: { type: text }
  account: { type: lookup, reference: account }
  active: { type: boolean, defaultValue: true }
  code: { type: text }
  badge: { type: text }
validations:
  - name: email_per_account
    type: unique
    fields: [email]
    scope: account
    caseSensitive: false
    message: This email is already used in this account
  - name: active_code
    type: unique
    fields: [code]
    scope: "active = true"
    message: Only one active member may hold this code
  - name: badge_on_insert
    type: unique
    fields: [badge]
    events: [insert]
    message: Badge already issued
"#,
    ),
];

async fn create(e: &DataEngine, cx: &OpContext, v: Value) -> Result<String, (String, u16, Value)> {
    match e.create(cx, "member", rec(v)).await {
        Ok(r) => Ok(r["id"].as_str().unwrap().to_owned()),
        Err(err) => Err((
            err.code().to_owned(),
            err.http_status(),
            serde_json::to_value(err.field_errors()).unwrap(),
        )),
    }
}

async fn update(e: &DataEngine, id: &str, v: Value) -> Result<(), String> {
    e.update(&user_cx(), "member", id, rec(v), None)
        .await
        .map(|_| ())
        .map_err(|err| err.code().to_owned())
}

#[tokio::test]
async fn unique_rule_scope_and_case() {
    for_each_backend(FILES, |e| async move {
        let cx = user_cx();
        let a1 = e
            .create(&cx, "account", rec(json!({"name": "A1"})))
            .await
            .unwrap();
        let a2 = e
            .create(&cx, "account", rec(json!({"name": "A2"})))
            .await
            .unwrap();
        let (a1, a2) = (a1["id"].clone(), a2["id"].clone());

        create(&e, &cx, json!({"email": "Ann@X.io", "account": a1}))
            .await
            .unwrap();
        // Same email in other letter case, same account: refused, naming the field.
        let (code, status, fields) = create(&e, &cx, json!({"email": "ann@x.IO", "account": a1}))
            .await
            .unwrap_err();
        assert_eq!((code.as_str(), status), ("DUPLICATE_VALUE", 409));
        assert_eq!(fields[0]["field"], "email");
        assert_eq!(fields[0]["code"], "duplicate_value");
        assert_eq!(
            fields[0]["message"],
            "This email is already used in this account"
        );
        // Another account, or none: its own scope.
        let other = create(&e, &cx, json!({"email": "ann@x.io", "account": a2}))
            .await
            .unwrap();
        create(&e, &cx, json!({"email": "ann@x.io"})).await.unwrap();
        // Records without an account share the `null` scope.
        assert_eq!(
            create(&e, &cx, json!({"email": "ANN@x.io"}))
                .await
                .unwrap_err()
                .0,
            "DUPLICATE_VALUE"
        );
        // Moving a record into a scope that holds its email is refused; itself is no conflict.
        assert_eq!(
            update(&e, &other, json!({"account": a1}))
                .await
                .unwrap_err(),
            "DUPLICATE_VALUE"
        );
        update(&e, &other, json!({"email": "ann@x.io", "name": "x"}))
            .await
            .unwrap();
        // Another organization has its own emails.
        let org2 = OpContext {
            tenant: Some("org2".into()),
            ..user_cx()
        };
        create(&e, &org2, json!({"email": "ann@x.io"}))
            .await
            .unwrap();
        // Nothing of the refused writes was stored.
        let n = e.count(&cx, "member", Filter::True).await.unwrap();
        assert_eq!(n, 3);
    })
    .await;
}

#[tokio::test]
async fn unique_rule_condition_scope_and_events() {
    for_each_backend(FILES, |e| async move {
        let cx = user_cx();
        let first = create(&e, &cx, json!({"code": "K"})).await.unwrap();
        // Inactive records are out of the rule's scope: neither checked nor counted.
        let second = create(&e, &cx, json!({"code": "K", "active": false}))
            .await
            .unwrap();
        assert_eq!(
            create(&e, &cx, json!({"code": "K"})).await.unwrap_err().0,
            "DUPLICATE_VALUE"
        );
        // Activating the second one while the first is active conflicts...
        assert_eq!(
            update(&e, &second, json!({"active": true}))
                .await
                .unwrap_err(),
            "DUPLICATE_VALUE"
        );
        // ... and is fine once the first left the scope.
        update(&e, &first, json!({"active": false})).await.unwrap();
        update(&e, &second, json!({"active": true})).await.unwrap();

        // `events: [insert]`: an update may produce the combination, an insert may not.
        create(&e, &cx, json!({"badge": "B1"})).await.unwrap();
        let b2 = create(&e, &cx, json!({"badge": "B2"})).await.unwrap();
        assert_eq!(
            create(&e, &cx, json!({"badge": "B1"})).await.unwrap_err().0,
            "DUPLICATE_VALUE"
        );
        update(&e, &b2, json!({"badge": "B1"})).await.unwrap();
        let all = e.find(&cx, "member", QueryAst::default()).await.unwrap();
        assert_eq!(all.total, Some(4));
    })
    .await;
}

/// An empty unique field is no value: any number of records may leave it empty (stored as NULL,
/// which the unique index does not compare), while a real value still collides.
#[tokio::test]
async fn empty_unique_values_do_not_collide() {
    for_each_backend(crate::CRM, |e| async move {
        let cx = user_cx();
        for name in ["A", "B"] {
            let r = e
                .create(&cx, "account", rec(json!({"name": name, "code": ""})))
                .await
                .unwrap();
            assert_eq!(r["code"], Value::Null, "{r:?}");
        }
        e.create(&cx, "account", rec(json!({"name": "C", "code": "X1"})))
            .await
            .unwrap();
        let dup = e
            .create(&cx, "account", rec(json!({"name": "D", "code": "X1"})))
            .await;
        assert!(matches!(
            dup,
            Err(objectos_data::DataError::Duplicate { .. })
        ));
        // Clearing a value with "" on update also stores NULL.
        let c = e
            .create(&cx, "account", rec(json!({"name": "E", "code": "X2"})))
            .await
            .unwrap();
        let id = c["id"].as_str().unwrap();
        let u = e
            .update(&cx, "account", id, rec(json!({"code": ""})), None)
            .await
            .unwrap();
        assert_eq!(u["code"], Value::Null);
    })
    .await;
}
