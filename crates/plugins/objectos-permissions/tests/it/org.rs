//! Assignments per (user, organization): effective permissions follow the request's tenant,
//! assigning needs membership of the caller's organization (from the directory contract, here a
//! double), and rows of the earlier per-user table move to the user's home organization.

use std::sync::{Arc, Mutex};

use objectos_data::OpContext;
use objectos_kernel::contracts::Caller;
use objectos_kernel::{
    Directory, DirectoryUser, Membership, Organization, PluginError, async_trait,
};
use objectos_permissions::{
    AssignmentKind, Authz, AuthzConfig, DirectoryMembership, PermissionsError, Subject,
};
use objectos_spec::query::QueryAst;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::json;

use crate::{
    Env, SECURITY, assert_forbidden, each_backend, each_backend_with, id_of, rec, sys_a, user,
};

/// A directory double (the kernel's `Directory` contract, which the auth plugin implements):
/// just a list of memberships.
#[derive(Debug, Default)]
pub(crate) struct MemberList(Mutex<Vec<(String, String)>>);

impl MemberList {
    pub(crate) fn add(&self, org: &str, user: &str) {
        self.0
            .lock()
            .unwrap()
            .push((org.to_owned(), user.to_owned()));
    }
}

#[async_trait]
impl Directory for MemberList {
    async fn user(&self, _id: &str) -> Result<Option<DirectoryUser>, PluginError> {
        Ok(None)
    }
    async fn organization(&self, _id: &str) -> Result<Option<Organization>, PluginError> {
        Ok(None)
    }
    async fn memberships(&self, user_id: &str) -> Result<Vec<Membership>, PluginError> {
        Ok(self
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, u)| u == user_id)
            .map(|(o, u)| Membership {
                organization_id: o.clone(),
                user_id: u.clone(),
                role: "member".to_owned(),
            })
            .collect())
    }
    async fn membership(
        &self,
        org: &str,
        user_id: &str,
    ) -> Result<Option<Membership>, PluginError> {
        Ok(self
            .memberships(user_id)
            .await?
            .into_iter()
            .find(|m| m.organization_id == org))
    }
    async fn principal_for(
        &self,
        _user_id: &str,
        _org: Option<&str>,
    ) -> Result<Option<Caller>, PluginError> {
        Ok(None)
    }
}

/// Installs a [`MemberList`] as the environment's membership source, as the plugin does with
/// the registered directory.
pub(crate) fn directory(env: &Env) -> Arc<MemberList> {
    let list = Arc::new(MemberList::default());
    env.authz
        .set_membership(Arc::new(DirectoryMembership::new(list.clone())));
    list
}

/// Runs SQL on the plugin's own assignment table (`?` placeholders).
async fn exec(env: &Env, sql: &str, values: Vec<sea_orm::Value>) {
    let conn = env.engine.connection();
    let sql = if env.engine.dialect() == objectos_data::Dialect::Postgres {
        // `?` placeholders in order -> `$n`.
        let mut out = String::new();
        let mut n = 0;
        for c in sql.chars() {
            if c == '?' {
                n += 1;
                out.push_str(&format!("${n}"));
            } else {
                out.push(c);
            }
        }
        out
    } else {
        sql.to_owned()
    };
    conn.execute_raw(Statement::from_sql_and_values(
        conn.get_database_backend(),
        sql,
        values,
    ))
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
            members.add(org, "u5");
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
        members.add("org_a", "in_a");
        members.add("org_b", "in_b");
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
        members.add("org_a", "in_b");
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

#[tokio::test]
async fn per_user_assignments_move_to_the_home_organization() {
    let files: Vec<(&str, &str)> = SECURITY.iter().chain(USERS).copied().collect();
    each_backend_with(&files, |env| async move {
        let e = &env.engine;
        let mut ids = Vec::new();
        for org in ["org_a", "org_b"] {
            let cx = OpContext::system("seed").with_tenant(org);
            let u = e.create(&cx, "user", rec(json!({"name": org}))).await.unwrap();
            ids.push(id_of(&u));
        }
        // The table as earlier versions created it, with their rows.
        exec(&env, r#"DROP TABLE "_objectos_permission_assignment""#, vec![]).await;
        exec(
            &env,
            r#"CREATE TABLE "_objectos_permission_assignment" ("user_id" VARCHAR(255) NOT NULL, "kind" VARCHAR(32) NOT NULL, "name" VARCHAR(255) NOT NULL, "created_at" VARCHAR(40) NOT NULL, PRIMARY KEY ("user_id", "kind", "name"))"#,
            vec![],
        )
        .await;
        let insert = r#"INSERT INTO "_objectos_permission_assignment" ("user_id", "kind", "name", "created_at") VALUES (?, ?, ?, '2026-01-01T00:00:00.000Z')"#;
        exec(&env, insert, vec![ids[0].clone().into(), "permission_set".into(), "sales_rep".into()]).await;
        exec(&env, insert, vec![ids[0].clone().into(), "role".into(), "rep".into()]).await;
        exec(&env, insert, vec![ids[1].clone().into(), "permission_set".into(), "manager".into()]).await;
        // A user that is not a record (any more) has no home: "no organization".
        exec(&env, insert, vec!["gone".into(), "role".into(), "rep".into()]).await;
        let again = Authz::new(AuthzConfig::default());
        again.attach(e.clone()).await.unwrap();
        assert_eq!(
            again.assignments_of(&ids[0], Some("org_a")),
            (vec!["sales_rep".to_owned()], vec!["rep".to_owned()])
        );
        assert!(again.assignments_of(&ids[0], Some("org_b")).0.is_empty());
        assert_eq!(
            again.assignments_of(&ids[1], Some("org_b")).0,
            vec!["manager".to_owned()]
        );
        assert_eq!(again.assignments_of("gone", None).1, vec!["rep".to_owned()]);
        // Attaching again finds the new shape and changes nothing.
        let third = Authz::new(AuthzConfig::default());
        third.attach(e.clone()).await.unwrap();
        assert_eq!(
            third.assignments_of(&ids[1], Some("org_b")).0,
            vec!["manager".to_owned()]
        );
        let conn = e.connection();
        let n = conn
            .query_one_raw(Statement::from_string(
                conn.get_database_backend(),
                r#"SELECT COUNT(*) FROM "_objectos_permission_assignment""#.to_owned(),
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get_by_index::<i64>(0)
            .unwrap();
        assert_eq!(n, 4);
        env
    })
    .await;
}
