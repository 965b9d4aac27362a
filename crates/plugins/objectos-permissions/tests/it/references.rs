//! Lookup visibility on write: a lookup or master-detail value that names a record the caller
//! cannot see (sharing, RLS, no read access, another organization) is refused exactly like an
//! id that does not exist.

use objectos_data::{DataEngine, DataError, OpContext, Record};
use objectos_spec::query::QueryAst;
use serde_json::json;

use crate::{SECURITY, admin, each_backend_with, id_of, rec, sys_a, user};

const EXTRA: &[(&str, &str)] = &[
    (
        "reminder.object.yml",
        r#"
name: reminder
fields:
  name: { type: text, required: true }
  opportunity: { type: lookup, reference: opportunity }
  account: { type: lookup, reference: account, label: Customer }
  rep: { type: user, label: Rep }
"#,
    ),
    (
        "reminder.permission.yml",
        r#"
name: sales_rep
objects:
  reminder: { allowRead: true, allowCreate: true, allowEdit: true }
"#,
    ),
    (
        "reminder_only.permission.yml",
        r#"
name: reminder_only
objects:
  reminder: { allowRead: true, allowCreate: true, allowEdit: true }
"#,
    ),
];

fn files() -> Vec<(&'static str, &'static str)> {
    SECURITY.iter().chain(EXTRA).copied().collect()
}

/// The error of a write, with the refusal checked to be the documented one.
fn refusal(r: Result<Record, DataError>) -> String {
    let e = r.expect_err("the write should be refused");
    assert_eq!(e.http_status(), 400, "{e}");
    assert_eq!(e.code(), "VALIDATION_FAILED");
    assert_eq!(e.field_errors()[0].code, "invalid_reference");
    format!("{e:?}")
}

async fn create(e: &DataEngine, cx: &OpContext, object: &str, v: serde_json::Value) -> Record {
    e.create(cx, object, rec(v)).await.unwrap()
}

#[tokio::test]
async fn links_to_records_the_caller_cannot_see_are_refused_like_missing_ones() {
    each_backend_with(&files(), |env| async move {
        let e = &env.engine;
        let u1 = user("u1", &["sales_rep"]);
        let u2 = user("u2", &["sales_rep"]);
        let a1 = id_of(&create(e, &u1, "account", json!({"name": "A1"})).await);
        let a2 = id_of(&create(e, &u2, "account", json!({"name": "A2"})).await);
        let b = id_of(
            &create(
                e,
                &OpContext::system("seed").with_tenant("org_b"),
                "account",
                json!({"name": "B"}),
            )
            .await,
        );
        let opp = |account: &str| json!({"name": "O", "stage": "open", "account": account});
        // Sharing (u1's private account), another organization and a missing id: one answer.
        let missing = refusal(e.create(&u2, "opportunity", rec(opp("no-such-id"))).await);
        assert_eq!(
            refusal(e.create(&u2, "opportunity", rec(opp(&a1))).await),
            missing
        );
        assert_eq!(
            refusal(e.create(&u2, "opportunity", rec(opp(&b))).await),
            missing
        );
        // An expanded record sent back as the value is the same link.
        let r = e
            .create(
                &u2,
                "opportunity",
                rec(json!({"name": "O", "account": {"id": a1, "name": "A1"}})),
            )
            .await;
        assert_eq!(refusal(r), missing);
        // Master-detail too (notes follow their account).
        let note_missing = refusal(
            e.create(&u2, "note", rec(json!({"body": "n", "account": "nope"})))
                .await,
        );
        let note_hidden = refusal(
            e.create(&u2, "note", rec(json!({"body": "n", "account": a1})))
                .await,
        );
        assert_eq!(note_hidden, note_missing);
        // A visible record links fine.
        let o2 = create(e, &u2, "opportunity", opp(&a2)).await;
        // Update: a new link to a hidden record is refused the same way...
        let r = e
            .update(
                &u2,
                "opportunity",
                &id_of(&o2),
                rec(json!({"account": a1})),
                None,
            )
            .await;
        assert_eq!(refusal(r), missing);
        // ...while a link the record already has (made by system work) may be sent back.
        e.update(
            &sys_a(),
            "opportunity",
            &id_of(&o2),
            rec(json!({"account": a1})),
            None,
        )
        .await
        .unwrap();
        let echoed = e
            .update(
                &u2,
                "opportunity",
                &id_of(&o2),
                rec(json!({"account": a1, "name": "O renamed"})),
                None,
            )
            .await
            .unwrap();
        assert_eq!(echoed["account"], json!(a1));
        // Nothing was written by the refused writes.
        let all = e
            .find(&sys_a(), "opportunity", QueryAst::default())
            .await
            .unwrap();
        assert_eq!(all.records.len(), 1);
        env
    })
    .await;
}

#[tokio::test]
async fn rls_and_missing_read_access_hide_link_targets_too() {
    each_backend_with(&files(), |env| async move {
        let e = &env.engine;
        let u1 = user("u1", &["sales_rep"]);
        // u1's own opportunity, archived by system work: RLS hides archived ones from reps.
        let o = create(e, &u1, "opportunity", json!({"name": "O", "stage": "open"})).await;
        let oid = id_of(&o);
        let visible = create(
            e,
            &u1,
            "reminder",
            json!({"name": "r1", "opportunity": oid}),
        )
        .await;
        assert_eq!(visible["opportunity"], json!(oid));
        e.update(
            &sys_a(),
            "opportunity",
            &oid,
            rec(json!({"stage": "archived"})),
            None,
        )
        .await
        .unwrap();
        let missing = refusal(
            e.create(
                &u1,
                "reminder",
                rec(json!({"name": "r", "opportunity": "nope"})),
            )
            .await,
        );
        let hidden = refusal(
            e.create(
                &u1,
                "reminder",
                rec(json!({"name": "r", "opportunity": oid})),
            )
            .await,
        );
        assert_eq!(hidden, missing);
        // No read access to accounts at all: every account id is "missing"; the message uses the
        // field's label and never the id.
        let acc = id_of(&create(e, &u1, "account", json!({"name": "A"})).await);
        let only = user("u3", &["reminder_only"]);
        let missing = refusal(
            e.create(
                &only,
                "reminder",
                rec(json!({"name": "r", "account": "nope"})),
            )
            .await,
        );
        let unreadable = refusal(
            e.create(&only, "reminder", rec(json!({"name": "r", "account": acc})))
                .await,
        );
        assert_eq!(unreadable, missing);
        assert!(missing.contains("Customer must refer to an existing account record"));
        assert!(!unreadable.contains(&acc));
        env
    })
    .await;
}

#[tokio::test]
async fn administrators_link_within_their_organization_and_system_work_is_unchecked() {
    each_backend_with(&files(), |env| async move {
        let e = &env.engine;
        let a = id_of(
            &create(
                e,
                &user("u1", &["sales_rep"]),
                "account",
                json!({"name": "A"}),
            )
            .await,
        );
        // An administrator of org_a sees every record of it, private ones included.
        create(
            e,
            &admin("org_a"),
            "opportunity",
            json!({"name": "O", "account": a}),
        )
        .await;
        // A missing id is refused for administrators too (else a 400 for another
        // organization's id next to a 201 for a missing one would tell them apart).
        let missing = refusal(
            e.create(
                &admin("org_b"),
                "opportunity",
                rec(json!({"name": "O", "account": "nope"})),
            )
            .await,
        );
        let theirs = refusal(
            e.create(
                &admin("org_b"),
                "opportunity",
                rec(json!({"name": "O", "account": a})),
            )
            .await,
        );
        assert_eq!(theirs, missing);
        // System work (imports, migrations) is trusted and not checked.
        create(
            e,
            &OpContext::system("import").with_tenant("org_a"),
            "opportunity",
            json!({"name": "O", "account": "dangling"}),
        )
        .await;
        env
    })
    .await;
}

/// User fields name people of the record's organization: another organization's user and an id
/// nobody has are refused alike, for administrators too; links an update keeps are not re-checked.
#[tokio::test]
async fn user_fields_name_members_of_the_organization() {
    each_backend_with(&files(), |env| async move {
        let e = &env.engine;
        let members = crate::org::directory(&env);
        for (org, u) in [("org_a", "u1"), ("org_a", "u2"), ("org_b", "u9")] {
            members.add_member(org, u, "member");
        }
        let u1 = user("u1", &["sales_rep"]);
        let ok = create(e, &u1, "reminder", json!({"name": "R", "rep": "u2"})).await;
        assert_eq!(ok["rep"], "u2");
        let missing = refusal(
            e.create(&u1, "reminder", rec(json!({"name": "R", "rep": "nobody"})))
                .await,
        );
        let stranger = refusal(
            e.create(&u1, "reminder", rec(json!({"name": "R", "rep": "u9"})))
                .await,
        );
        assert_eq!(stranger, missing);
        assert_eq!(
            refusal(
                e.create(
                    &admin("org_a"),
                    "reminder",
                    rec(json!({"name": "R", "rep": "u9"}))
                )
                .await
            ),
            missing
        );
        // Echoing the record back (the link unchanged) passes; moving it to a stranger does not.
        let id = id_of(&ok);
        e.update(
            &u1,
            "reminder",
            &id,
            rec(json!({"name": "R2", "rep": "u2"})),
            None,
        )
        .await
        .unwrap();
        assert_eq!(
            refusal(
                e.update(&u1, "reminder", &id, rec(json!({"rep": "u9"})), None)
                    .await
            ),
            missing
        );
        env
    })
    .await;
}
