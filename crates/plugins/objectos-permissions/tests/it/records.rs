//! Record-level answers that must not reveal what the caller cannot see: the check route with a
//! `recordId` outside the caller's organization or of no record, and roll-ups (summary fields)
//! over children hidden by sharing, row-level security, field-level security or a missing
//! object permission.

use objectos_data::OpContext;
use objectos_spec::query::QueryAst;
use serde_json::{Value, json};

use crate::http::{call, service};
use crate::{SECURITY, admin, each_backend, each_backend_with, id_of, rec, sys_a, user};

const MISSING: &str = "00000000-0000-0000-0000-000000000000";

#[tokio::test]
async fn check_answers_false_for_other_organizations_and_missing_records() {
    each_backend(|env| async move {
        let svc = service(&env);
        let mine = env
            .engine
            .create(&sys_a(), "account", rec(json!({"name": "A"})))
            .await
            .unwrap();
        let theirs = env
            .engine
            .create(
                &OpContext::system("seed").with_tenant("org_b"),
                "account",
                rec(json!({"name": "B"})),
            )
            .await
            .unwrap();
        for path in ["/api/v1/permissions/check", "/api/v1/auth/check"] {
            for action in ["read", "edit", "delete"] {
                let ask = |id: String| {
                    let svc = &svc;
                    async move {
                        let (s, b) = call(
                            svc,
                            "POST",
                            path,
                            "admin",
                            Some(json!({"object": "account", "action": action, "recordId": id})),
                        )
                        .await;
                        assert_eq!(s, 200, "{b}");
                        b
                    }
                };
                // An administrator of org_a: its own record yes, org_b's and a made-up id no,
                // answered alike.
                assert_eq!(ask(id_of(&mine)).await["allowed"], json!(true));
                let other = ask(id_of(&theirs)).await;
                assert_eq!(other["allowed"], json!(false), "{path} {action}");
                assert_eq!(other, ask(MISSING.to_owned()).await, "{path} {action}");
            }
            // A restricted user: the same answers.
            let (_, a) = call(
                &svc,
                "POST",
                path,
                "u1:sales_rep",
                Some(json!({"object": "account", "action": "read", "recordId": id_of(&theirs)})),
            )
            .await;
            let (_, b) = call(
                &svc,
                "POST",
                path,
                "u1:sales_rep",
                Some(json!({"object": "account", "action": "read", "recordId": MISSING})),
            )
            .await;
            assert_eq!(a["allowed"], json!(false));
            assert_eq!(a, b);
        }
        env
    })
    .await;
}

const ROLLUP_FILES: &[(&str, &str)] = &[
    (
        "account.object.yml",
        r#"
name: account
sharingModel: private
fields:
  name: { type: text, required: true, searchable: true }
  industry: { type: text }
  amount: { type: number }
  secret: { type: text, searchable: true }
  opp_total: { type: summary, summaryOperations: { object: opportunity, field: amount, function: sum } }
  opp_count: { type: summary, summaryOperations: { object: opportunity, field: id, function: count } }
"#,
    ),
    (
        "limited.permission.yml",
        r#"
name: limited
objects:
  account: { allowRead: true, viewAllRecords: true }
  opportunity: { allowRead: true, viewAllRecords: true }
fields:
  opportunity.amount: { readable: false, editable: false }
"#,
    ),
    (
        "accounts_only.permission.yml",
        r#"
name: accounts_only
objects:
  account: { allowRead: true, viewAllRecords: true }
"#,
    ),
];

fn rollups(r: &objectos_data::Record) -> (Value, Value) {
    (r["opp_total"].clone(), r["opp_count"].clone())
}

#[tokio::test]
async fn rollups_follow_the_readers_sharing_rls_and_field_rules() {
    let files: Vec<(&str, &str)> = SECURITY.iter().chain(ROLLUP_FILES).copied().collect();
    each_backend_with(&files, |env| async move {
        let e = &env.engine;
        let u1 = user("u1", &["sales_rep"]);
        let acct = e
            .create(&u1, "account", rec(json!({"name": "A"})))
            .await
            .unwrap();
        let id = id_of(&acct);
        // u1's own deal; one nobody shares with u1 (private sharing); an archived one u1's row
        // rule hides; and one in another organization naming the same account id.
        e.create(
            &u1,
            "opportunity",
            rec(json!({"name": "mine", "stage": "open", "amount": 10, "account": id})),
        )
        .await
        .unwrap();
        for (stage, amount) in [("open", 1000), ("archived", 500)] {
            e.create(
                &sys_a(),
                "opportunity",
                rec(json!({"name": "x", "stage": stage, "amount": amount, "account": id})),
            )
            .await
            .unwrap();
        }
        e.create(
            &OpContext::system("seed").with_tenant("org_b"),
            "opportunity",
            rec(json!({"name": "b", "amount": 77777, "account": id})),
        )
        .await
        .unwrap();

        let get = |cx: OpContext| {
            let id = id.clone();
            async move {
                e.get(&cx, "account", &id, QueryAst::default())
                    .await
                    .unwrap()
            }
        };
        // An administrator: every child of the organization, none of org_b's.
        assert_eq!(rollups(&get(admin("org_a")).await), (json!(1510), json!(3)));
        // u1: the deal it owns only.
        assert_eq!(rollups(&get(u1.clone()).await), (json!(10), json!(1)));
        let list = e.find(&u1, "account", QueryAst::default()).await.unwrap();
        assert_eq!(rollups(&list.records[0]), (json!(10), json!(1)));
        // A reader who may not read `amount` gets no total, but may count.
        let limited = get(user("u5", &["limited"])).await;
        assert_eq!(limited["opp_total"], Value::Null);
        assert!(limited["opp_count"].is_number(), "{limited:?}");
        // A reader who may not read opportunities at all learns nothing from either.
        let blind = get(user("u6", &["accounts_only"])).await;
        assert_eq!(rollups(&blind), (Value::Null, Value::Null));
        env
    })
    .await;
}
