//! Roll-ups (summary fields) are computed per reader: the child object's read interceptors
//! narrow the aggregate (as they narrow a list of the children), a refusal hides the value
//! (`null`), other organizations' children never count, and the same holds for get, find,
//! expand and the record an update returns.

use std::sync::Arc;

use async_trait::async_trait;
use objectos_data::{DataError, HookContext, Interceptor, OpContext, Operation, Result};
use objectos_spec::query::{Filter, QueryAst};
use serde_json::{Value, json};

use crate::{CRM, for_each_backend, rec, user_cx};

/// Stands in for the permissions plugin on `contact`: user `u1` sees only active contacts, user
/// `u2` may not read contacts at all, system work sees everything.
struct ContactRules;

#[async_trait]
impl Interceptor for ContactRules {
    fn name(&self) -> &str {
        "contact-rules"
    }
    fn applies_to(&self, object: &str, op: Operation) -> bool {
        object == "contact" && !op.is_write()
    }
    async fn before(&self, hook: &mut HookContext<'_>) -> Result<()> {
        match hook.cx.principal.user_id() {
            Some("u2") => Err(DataError::Forbidden {
                object: "contact".into(),
                message: "You do not have permission to read contact records".into(),
            }),
            Some(_) => {
                if let Some(q) = hook.query.as_deref_mut() {
                    q.filter = std::mem::take(&mut q.filter).and(Filter::eq("status", "active"));
                }
                Ok(())
            }
            None => Ok(()),
        }
    }
}

fn as_user(id: &str) -> OpContext {
    let mut cx = user_cx();
    if let objectos_data::Principal::User { id: uid, .. } = &mut cx.principal {
        *uid = id.to_owned();
    }
    cx
}

fn rollups(r: &objectos_data::Record) -> (Value, Value) {
    (r["contact_count"].clone(), r["contact_total"].clone())
}

#[tokio::test]
async fn rollups_count_only_the_children_the_reader_may_see() {
    for_each_backend(CRM, |e| async move {
        let u1 = as_user("u1");
        let sys = OpContext::system("seed").with_tenant("org1");
        let acme = e
            .create(&sys, "account", rec(json!({"name": "Acme"})))
            .await
            .unwrap();
        let id = acme["id"].as_str().unwrap().to_owned();
        for (status, amount) in [("active", 10), ("active", 20), ("closed", 4000)] {
            e.create(
                &sys,
                "contact",
                rec(json!({"name": "c", "status": status, "amount": amount, "account": id})),
            )
            .await
            .unwrap();
        }
        // Another organization's child naming the same parent id never counts.
        e.create(
            &OpContext::system("other").with_tenant("org2"),
            "contact",
            rec(json!({"name": "x", "status": "active", "amount": 900000, "account": id})),
        )
        .await
        .unwrap();
        e.add_interceptor(Arc::new(ContactRules));

        // System work (no narrowing) sees every child of its organization.
        let all = e
            .get(&sys, "account", &id, QueryAst::default())
            .await
            .unwrap();
        assert_eq!(rollups(&all), (json!(3), json!(4030)));
        // u1 sees the active ones only, through every read path.
        let got = e
            .get(&u1, "account", &id, QueryAst::default())
            .await
            .unwrap();
        assert_eq!(rollups(&got), (json!(2), json!(30)));
        let found = e.find(&u1, "account", QueryAst::default()).await.unwrap();
        assert_eq!(rollups(&found.records[0]), (json!(2), json!(30)));
        let contact = e
            .find(
                &sys,
                "contact",
                QueryAst {
                    filter: Filter::eq("status", "active"),
                    limit: Some(1),
                    ..QueryAst::default()
                },
            )
            .await
            .unwrap();
        let cid = contact.records[0]["id"].as_str().unwrap().to_owned();
        let mut expand = QueryAst::default();
        expand.expand.insert("account".into(), QueryAst::default());
        let c = e.get(&u1, "contact", &cid, expand.clone()).await.unwrap();
        assert_eq!(
            rollups(c["account"].as_object().unwrap()),
            (json!(2), json!(30))
        );
        let updated = e
            .update(&u1, "account", &id, rec(json!({"name": "Acme 2"})), None)
            .await
            .unwrap();
        assert_eq!(rollups(&updated), (json!(2), json!(30)));

        // u2 may not read contacts: the roll-ups say nothing, not even "none".
        let u2 = as_user("u2");
        let got = e
            .get(&u2, "account", &id, QueryAst::default())
            .await
            .unwrap();
        assert_eq!(rollups(&got), (Value::Null, Value::Null));
        let found = e.find(&u2, "account", QueryAst::default()).await.unwrap();
        assert_eq!(rollups(&found.records[0]), (Value::Null, Value::Null));
        let updated = e
            .update(&u2, "account", &id, rec(json!({"name": "Acme 3"})), None)
            .await
            .unwrap();
        assert_eq!(rollups(&updated), (Value::Null, Value::Null));
    })
    .await;
}

const ALL_SCOPE: &[(&str, &str)] = &[
    (
        "account.object.yml",
        r#"
name: account
fields:
  name: { type: text }
  visible_total: { type: summary, summaryOperations: { object: contact, field: amount, function: sum } }
  all_total: { type: summary, summaryOperations: { object: contact, field: amount, function: sum, scope: all } }
"#,
    ),
    (
        "contact.object.yml",
        r#"
name: contact
fields:
  name: { type: text }
  status: { type: text }
  amount: { type: number }
  account: { type: lookup, reference: account }
"#,
    ),
];

#[tokio::test]
async fn scope_all_opts_a_rollup_into_every_child_of_the_organization() {
    for_each_backend(ALL_SCOPE, |e| async move {
        let sys = OpContext::system("seed").with_tenant("org1");
        let acme = e
            .create(&sys, "account", rec(json!({"name": "Acme"})))
            .await
            .unwrap();
        let id = acme["id"].as_str().unwrap().to_owned();
        for (status, amount) in [("active", 5), ("closed", 70)] {
            e.create(
                &sys,
                "contact",
                rec(json!({"name": "c", "status": status, "amount": amount, "account": id})),
            )
            .await
            .unwrap();
        }
        e.create(
            &OpContext::system("other").with_tenant("org2"),
            "contact",
            rec(json!({"amount": 900000, "account": id})),
        )
        .await
        .unwrap();
        e.add_interceptor(Arc::new(ContactRules));
        let got = e
            .get(&as_user("u1"), "account", &id, QueryAst::default())
            .await
            .unwrap();
        assert_eq!(got["visible_total"], json!(5));
        // Still within the organization.
        assert_eq!(got["all_total"], json!(75));
        let got = e
            .get(&as_user("u2"), "account", &id, QueryAst::default())
            .await
            .unwrap();
        assert_eq!(
            (&got["visible_total"], &got["all_total"]),
            (&Value::Null, &json!(75))
        );
    })
    .await;
}
