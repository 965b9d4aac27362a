//! Assignments per (user, organization): effective permissions follow the request's tenant,
//! assigning needs membership of the caller's organization (from the directory contract, here
//! the testkit's `TestDirectory`); the assignment table is the plugin's declared schema, and a
//! table of the earlier per-user shape is left to the operator as a manual step.

use std::sync::Arc;

use objectos_data::store::{Sql, SqlValue, Store};
use objectos_data::{MigrationStep, OpContext};
use objectos_permissions::{
    AssignmentKind, Authz, AuthzConfig, DirectoryMembership, PLUGIN_ID, PermissionsError, Subject,
};
use objectos_spec::query::QueryAst;
use objectos_testkit::TestDirectory;
use serde_json::json;

use crate::{
    Env, SECURITY, assert_forbidden, each_backend, each_backend_with, id_of, rec, sys_a, user,
};

/// Installs the testkit's [`TestDirectory`] (the kernel's `Directory` contract, which the auth
/// plugin implements; memberships as the test adds them) as the environment's membership
/// source, as the plugin does with the registered directory.
pub(crate) fn directory(env: &Env) -> Arc<TestDirectory> {
    let directory = Arc::new(TestDirectory::default());
    env.authz
        .set_membership(Arc::new(DirectoryMembership::new(directory.clone())));
    directory
}

/// Runs SQL on the plugin's own assignment table (`?` placeholders) through the engine's writer.
async fn exec(env: &Env, sql: &str, values: Vec<SqlValue>) {
    let w = env.engine.writer();
    w.execute(Sql::with(w.dialect(), sql, values).unwrap())
        .await
        .unwrap();
}

fn in_org(cx: OpContext, org: &str) -> OpContext {
    OpContext {
        tenant: Some(org.into()),
        ..cx
    }
}

#[tokio::test]
async fn assignments_hold_in_their_organization_only() {
    each_backend(|env| async move {
        let e = &env.engine;
        let a = &env.authz;
        let members = directory(&env);
        for org in ["org_a", "org_b"] {
            members.add_member(org, "u5", "member");
        }
        // Granted in org_a only.
        a.assign("u5", AssignmentKind::PermissionSet, "sales_rep", &sys_a())
            .await
            .unwrap();
        let in_a = user("u5", &[]);
        let in_b = in_org(user("u5", &[]), "org_b");
        e.find(&in_a, "account", QueryAst::default()).await.unwrap();
        assert_forbidden(e.find(&in_b, "account", QueryAst::default()).await, "read");
        let Subject::User(eff_b) = a.subject(&in_b) else {
            panic!("a user is not bypassed")
        };
        assert!(eff_b.permission_sets.is_empty());
        assert_eq!(eff_b.tenant.as_deref(), Some("org_b"));
        // Another set in org_b: each organization sees its own.
        let b_admin = in_org(crate::admin("org_b"), "org_b");
        a.assign("u5", AssignmentKind::PermissionSet, "manager", &b_admin)
            .await
            .unwrap();
        assert_eq!(
            a.assignments_of("u5", Some("org_a")).0,
            vec!["sales_rep".to_owned()]
        );
        assert_eq!(
            a.assignments_of("u5", Some("org_b")).0,
            vec!["manager".to_owned()]
        );
        let Subject::User(eff_b) = a.subject(&in_b) else {
            panic!("a user is not bypassed")
        };
        assert!(eff_b.object("account").view_all_records);
        assert!(!eff_b.object("account").allow_create);
        // Role assignments are per organization too: the role hierarchy of org_a does not
        // reach records owned in org_b by a user who holds the role only in org_a.
        a.assign("u5", AssignmentKind::Role, "rep", &sys_a())
            .await
            .unwrap();
        assert_eq!(
            a.assignments_of("u5", Some("org_a")).1,
            vec!["rep".to_owned()]
        );
        assert!(a.assignments_of("u5", Some("org_b")).1.is_empty());
        // Unassigning in org_b leaves org_a alone; the cache follows every change.
        assert!(
            a.unassign("u5", AssignmentKind::PermissionSet, "manager", &b_admin)
                .await
                .unwrap()
        );
        assert_eq!(a.cached_entries(), 0);
        e.find(&in_a, "account", QueryAst::default()).await.unwrap();
        assert_forbidden(e.find(&in_b, "account", QueryAst::default()).await, "read");
        env
    })
    .await;
}

#[tokio::test]
async fn assigning_needs_membership_of_the_callers_organization() {
    each_backend(|env| async move {
        let a = &env.authz;
        let members = directory(&env);
        members.add_member("org_a", "in_a", "member");
        members.add_member("org_b", "in_b", "member");
        // A member of org_b only: not assignable from org_a, answered like an unknown id.
        for (who, by) in [
            ("in_b", sys_a()),
            ("nobody", sys_a()),
            ("in_a", in_org(sys_a(), "org_b")),
        ] {
            for unassign in [false, true] {
                let r = if unassign {
                    a.unassign(who, AssignmentKind::Role, "rep", &by).await
                } else {
                    a.assign(who, AssignmentKind::Role, "rep", &by).await
                };
                match r {
                    Err(PermissionsError::UnknownUser(id)) => assert_eq!(id, who),
                    other => panic!("{who}: expected UnknownUser, got {other:?}"),
                }
            }
        }
        assert!(a.published_events().is_empty());
        // Members are assignable; membership added later counts at once.
        a.assign("in_a", AssignmentKind::Role, "rep", &sys_a())
            .await
            .unwrap();
        members.add_member("org_a", "in_b", "member");
        a.assign("in_b", AssignmentKind::Role, "rep", &sys_a())
            .await
            .unwrap();
        // System work without a tenant assigns for tenant-less contexts, with no membership.
        a.assign(
            "anyone",
            AssignmentKind::Role,
            "rep",
            &OpContext::system("setup"),
        )
        .await
        .unwrap();
        assert_eq!(a.assignments_of("anyone", None).1, vec!["rep".to_owned()]);
        assert!(a.assignments_of("anyone", Some("org_a")).1.is_empty());
        // The event names the organization.
        let (_, payload) = a.published_events()[0].clone();
        assert_eq!(payload["organizationId"], json!("org_a"));
        assert_eq!(payload["tenantId"], json!("org_a"));
        env
    })
    .await;
}

/// Users as records, without an auth plugin: membership is the user record's organization.
const USERS: &[(&str, &str)] = &[(
    "user.object.yml",
    "name: user\nfields:\n  name: { type: text, required: true }\n",
)];

#[tokio::test]
async fn without_the_member_table_the_home_organization_decides() {
    let files: Vec<(&str, &str)> = SECURITY.iter().chain(USERS).copied().collect();
    each_backend_with(&files, |env| async move {
        let sys_b = OpContext::system("seed").with_tenant("org_b");
        let u = env
            .engine
            .create(&sys_b, "user", rec(json!({"name": "Bea"})))
            .await
            .unwrap();
        let id = id_of(&u);
        assert!(matches!(
            env.authz
                .assign(&id, AssignmentKind::Role, "rep", &sys_a())
                .await,
            Err(PermissionsError::UnknownUser(_))
        ));
        env.authz
            .assign(&id, AssignmentKind::Role, "rep", &sys_b)
            .await
            .unwrap();
        env
    })
    .await;
}

/// The assignment table as releases before the declared schema created it by hand.
const CREATED_BY_HAND: &str = r#"CREATE TABLE "_objectos_permission_assignment" ("user_id" VARCHAR(255) NOT NULL, "org_id" VARCHAR(255) NOT NULL DEFAULT '', "kind" VARCHAR(32) NOT NULL, "name" VARCHAR(255) NOT NULL, "created_at" VARCHAR(40) NOT NULL, PRIMARY KEY ("user_id", "org_id", "kind", "name"))"#;

/// The table of development builds before assignments were per organization (no `org_id`).
const PER_USER: &str = r#"CREATE TABLE "_objectos_permission_assignment" ("user_id" VARCHAR(255) NOT NULL, "kind" VARCHAR(32) NOT NULL, "name" VARCHAR(255) NOT NULL, "created_at" VARCHAR(40) NOT NULL, PRIMARY KEY ("user_id", "kind", "name"))"#;

/// The steps the engine's plan has for the plugin's tables.
async fn plugin_steps(env: &Env) -> Vec<MigrationStep> {
    let plan = env.engine.plan_migration().await.unwrap();
    plan.plugins
        .into_iter()
        .find(|p| p.plugin == PLUGIN_ID)
        .map(|p| p.steps)
        .unwrap_or_default()
}

#[tokio::test]
async fn the_declared_table_is_the_one_earlier_releases_created() {
    each_backend(|env| async move {
        // Created by the plan at open: nothing left to do.
        assert!(plugin_steps(&env).await.is_empty());
        // A database whose table an earlier release created by hand, with its rows, needs no
        // step either: the declaration has exactly that shape.
        exec(&env, r#"DROP TABLE "_objectos_permission_assignment""#, vec![]).await;
        exec(&env, CREATED_BY_HAND, vec![]).await;
        exec(
            &env,
            r#"INSERT INTO "_objectos_permission_assignment" ("user_id", "org_id", "kind", "name", "created_at") VALUES (?, ?, ?, ?, '2026-01-01T00:00:00.000Z')"#,
            vec!["u1".into(), "org_a".into(), "role".into(), "rep".into()],
        )
        .await;
        let steps = plugin_steps(&env).await;
        assert!(steps.is_empty(), "{steps:?}");
        let again = Authz::new(AuthzConfig::default());
        again.attach(env.engine.clone()).await.unwrap();
        assert_eq!(
            again.assignments_of("u1", Some("org_a")).1,
            vec!["rep".to_owned()]
        );
        // The plugin writes to it as to its own table: an assignment made without a tenant is
        // stored under `""`.
        env.authz
            .assign("u1", AssignmentKind::Role, "rep", &OpContext::system("setup"))
            .await
            .unwrap();
        let p = env.engine.pool();
        let count = Sql::with(
            p.dialect(),
            r#"SELECT COUNT(*) FROM "_objectos_permission_assignment" WHERE "org_id" = ?"#,
            vec!["".into()],
        )
        .unwrap();
        let n: i64 = p
            .fetch_optional(count)
            .await
            .unwrap()
            .unwrap()
            .get(0)
            .unwrap();
        assert_eq!(n, 1);
        env
    })
    .await;
}

#[tokio::test]
async fn a_per_user_table_is_a_manual_step_not_a_migration() {
    each_backend(|env| async move {
        exec(&env, r#"DROP TABLE "_objectos_permission_assignment""#, vec![]).await;
        exec(&env, PER_USER, vec![]).await;
        exec(
            &env,
            r#"INSERT INTO "_objectos_permission_assignment" ("user_id", "kind", "name", "created_at") VALUES (?, ?, ?, '2026-01-01T00:00:00.000Z')"#,
            vec!["u1".into(), "role".into(), "rep".into()],
        )
        .await;
        // `org_id` belongs to the primary key, so it cannot be added in place: the plan says
        // so and leaves the table (and its row) alone.
        let steps = plugin_steps(&env).await;
        assert!(
            steps.iter().any(|s| matches!(
                s,
                MigrationStep::Manual { object, column, message }
                    if object == "_objectos_permission_assignment"
                        && column == "org_id"
                        && message.contains("rebuild the table by hand")
            )),
            "{steps:?}"
        );
        env.engine.migrate(&|_| {}).await.unwrap();
        let p = env.engine.pool();
        let count = Sql::with(
            p.dialect(),
            r#"SELECT COUNT(*) FROM "_objectos_permission_assignment""#,
            vec![],
        )
        .unwrap();
        let n: i64 = p
            .fetch_optional(count)
            .await
            .unwrap()
            .unwrap()
            .get(0)
            .unwrap();
        assert_eq!(n, 1);
        // Attaching to it fails with the store's error instead of reading rows of another shape.
        let again = Authz::new(AuthzConfig::default());
        assert!(matches!(
            again.attach(env.engine.clone()).await,
            Err(PermissionsError::Store(_))
        ));
        env
    })
    .await;
}
