//! Cascade deletes: the children's deletes carry the explicit cascade marker, stay within the
//! parent's organization, and still check the caller's delete permission on the child object;
//! a signed-in user without a tenant is refused.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use objectos_data::{
    CascadeOrigin, DataError, HookContext, Interceptor, OpContext, Operation, Principal,
};
use objectos_permissions::NO_TENANT_MESSAGE;
use objectos_spec::query::{Filter, QueryAst};
use serde_json::json;

use crate::{
    SECURITY, admin, assert_forbidden, assert_not_found, each_backend, each_backend_with, id_of,
    names, rec, sys_a, user,
};

const PROJECTS: &[(&str, &str)] = &[
    (
        "project.object.yml",
        r#"
name: project
fields:
  name: { type: text, required: true }
"#,
    ),
    (
        "task.object.yml",
        r#"
name: task
sharingModel: private
fields:
  name: { type: text, required: true }
  project: { type: master_detail, reference: project, deleteBehavior: cascade }
"#,
    ),
    (
        "milestone.object.yml",
        r#"
name: milestone
fields:
  name: { type: text, required: true }
  project: { type: lookup, reference: project, deleteBehavior: restrict }
"#,
    ),
    (
        "link.object.yml",
        r#"
name: link
fields:
  name: { type: text, required: true }
  project: { type: lookup, reference: project }
"#,
    ),
    (
        "planner.permission.yml",
        r#"
name: planner
objects:
  project: { allowRead: true, allowCreate: true, allowEdit: true, allowDelete: true }
  task: { allowRead: true, allowCreate: true, allowEdit: true, allowDelete: true }
  milestone: { allowRead: true, allowCreate: true }
  link: { allowRead: true, allowCreate: true }
"#,
    ),
    (
        "viewer.permission.yml",
        r#"
name: viewer
objects:
  project: { allowRead: true, allowCreate: true, allowEdit: true, allowDelete: true }
  task: { allowRead: true, allowCreate: true }
"#,
    ),
];

/// One delete as an interceptor saw it: object, cascade marker, tenant.
type SeenDelete = (String, Option<CascadeOrigin>, Option<String>);

/// Records which deletes ran as part of a cascade, and in which tenant.
#[derive(Debug, Default)]
struct Seen(Mutex<Vec<SeenDelete>>);

#[async_trait]
impl Interceptor for Seen {
    fn name(&self) -> &str {
        "test.seen"
    }

    fn applies_to(&self, _object: &str, op: Operation) -> bool {
        op == Operation::Delete
    }

    async fn before(&self, hook: &mut HookContext<'_>) -> objectos_data::Result<()> {
        self.0.lock().unwrap().push((
            hook.object.name.clone(),
            hook.cx.cascade_of.clone(),
            hook.cx.tenant.clone(),
        ));
        Ok(())
    }
}

fn files() -> Vec<(&'static str, &'static str)> {
    SECURITY.iter().chain(PROJECTS).copied().collect()
}

#[tokio::test]
async fn cascades_are_marked_and_stay_in_the_parents_tenant() {
    each_backend_with(&files(), |env| async move {
        let e = &env.engine;
        let seen = Arc::new(Seen::default());
        e.add_interceptor(seen.clone());
        let u1 = user("u1", &["planner"]);
        let p = e
            .create(&u1, "project", rec(json!({"name": "P"})))
            .await
            .unwrap();
        let pid = id_of(&p);
        e.create(&u1, "task", rec(json!({"name": "T1", "project": pid})))
            .await
            .unwrap();
        // Records of organization B that hold A's project id (written by system work, since a
        // user of B cannot link to it): a task, a restricting milestone, a set-null link.
        let sys_b = OpContext::system("import").with_tenant("org_b");
        for (object, name) in [("task", "T-B"), ("milestone", "M-B"), ("link", "L-B")] {
            e.create(&sys_b, object, rec(json!({"name": name, "project": pid})))
                .await
                .unwrap();
        }
        // Deleting P in A: B's restricting milestone does not block it, B's task is not
        // deleted and B's link is not nulled; A's own task goes with P.
        e.delete(&u1, "project", &pid).await.unwrap();
        assert_eq!(names(e, &sys_a(), "task").await, Vec::<String>::new());
        assert_eq!(names(e, &sys_b, "task").await, vec!["T-B"]);
        assert_eq!(names(e, &sys_b, "milestone").await, vec!["M-B"]);
        let links = e.find(&sys_b, "link", QueryAst::default()).await.unwrap();
        assert_eq!(links.records[0]["project"], json!(pid));
        // The child's delete carried the marker and the parent's tenant; the parent's did not.
        let seen = seen.0.lock().unwrap().clone();
        assert_eq!(
            seen,
            vec![
                ("project".to_owned(), None, Some("org_a".to_owned())),
                (
                    "task".to_owned(),
                    Some(CascadeOrigin {
                        object: "project".into(),
                        id: pid.clone()
                    }),
                    Some("org_a".to_owned())
                ),
            ]
        );
        // Within A, a restricting milestone still blocks.
        let p2 = e
            .create(&u1, "project", rec(json!({"name": "P2"})))
            .await
            .unwrap();
        e.create(
            &u1,
            "milestone",
            rec(json!({"name": "M-A", "project": id_of(&p2)})),
        )
        .await
        .unwrap();
        let err = e.delete(&u1, "project", &id_of(&p2)).await.unwrap_err();
        assert_eq!(err.code(), "DELETE_RESTRICTED");
        env
    })
    .await;
}

#[tokio::test]
async fn cascades_check_the_callers_delete_permission_on_the_child() {
    each_backend_with(&files(), |env| async move {
        let e = &env.engine;
        // No allowDelete on task: deleting a project with tasks is a 403 naming the child
        // object, and nothing is deleted.
        let viewer = user("v1", &["viewer"]);
        let p = e
            .create(&viewer, "project", rec(json!({"name": "P"})))
            .await
            .unwrap();
        let pid = id_of(&p);
        e.create(&viewer, "task", rec(json!({"name": "T1", "project": pid})))
            .await
            .unwrap();
        let err = e.delete(&viewer, "project", &pid).await.unwrap_err();
        assert_eq!(err.http_status(), 403);
        assert!(
            err.to_string()
                .contains("its task records are deleted with it"),
            "{err}"
        );
        assert_eq!(names(e, &sys_a(), "project").await, vec!["P"]);
        assert_eq!(names(e, &sys_a(), "task").await, vec!["T1"]);
        // Delete granted, but one task is another user's private record (sharing keeps it from
        // u1): refused with a 403 naming the object, not the hidden task's id.
        let u1 = user("u1", &["planner"]);
        let u2 = user("u2", &["planner"]);
        let q = e
            .create(&u1, "project", rec(json!({"name": "Q"})))
            .await
            .unwrap();
        let qid = id_of(&q);
        let hidden = e
            .create(&u2, "task", rec(json!({"name": "U2", "project": qid})))
            .await
            .unwrap();
        let err = e.delete(&u1, "project", &qid).await.unwrap_err();
        match &err {
            DataError::Forbidden { object, message } => {
                assert_eq!(object, "task");
                assert!(!message.contains(&id_of(&hidden)), "{message}");
                assert!(message.contains("deleteBehavior: cascade"), "{message}");
            }
            other => panic!("expected a 403, got {other:?}"),
        }
        assert_eq!(names(e, &sys_a(), "project").await, vec!["P", "Q"]);
        // An administrator of the organization cascades through everything of it.
        e.delete(&admin("org_a"), "project", &qid).await.unwrap();
        assert_not_found(
            e.get(&sys_a(), "task", &id_of(&hidden), QueryAst::default())
                .await,
        );
        env
    })
    .await;
}

/// A signed-in user without a tenant would be scoped to nothing (every organization's rows); the
/// interceptor refuses that for users and administrators alike, while system work may span
/// tenants. Cascades carry the parent's tenant, so they are not caught by it.
#[tokio::test]
async fn users_without_a_tenant_are_refused() {
    each_backend(|env| async move {
        let e = &env.engine;
        let acc = e
            .create(&sys_a(), "account", rec(json!({"name": "Seed"})))
            .await
            .unwrap();
        let id = id_of(&acc);
        let mut root = admin("org_a");
        root.tenant = None;
        let mut rep = user("rep", &["sales_rep"]);
        rep.tenant = None;
        for cx in [&root, &rep] {
            assert!(matches!(cx.principal, Principal::User { .. }));
            assert_forbidden(
                e.find(cx, "account", QueryAst::default()).await,
                NO_TENANT_MESSAGE,
            );
            assert_forbidden(
                e.get(cx, "account", &id, QueryAst::default()).await,
                NO_TENANT_MESSAGE,
            );
            assert_forbidden(
                e.count(cx, "account", Filter::True).await,
                NO_TENANT_MESSAGE,
            );
            assert_forbidden(
                e.create(cx, "account", rec(json!({"name": "Nowhere"})))
                    .await,
                NO_TENANT_MESSAGE,
            );
            assert_forbidden(
                e.update(cx, "account", &id, rec(json!({"name": "x"})), None)
                    .await,
                NO_TENANT_MESSAGE,
            );
            assert_forbidden(e.delete(cx, "account", &id).await, NO_TENANT_MESSAGE);
        }
        let across = OpContext::system("report");
        assert_eq!(names(e, &across, "account").await, vec!["Seed".to_owned()]);
        env
    })
    .await;
}
