//! Integration tests of the permissions plugin on a real engine (SQLite, and PostgreSQL when
//! OBJECTOS_TEST_POSTGRES_URL is set), driving it with operation contexts of different principals.

// Test helpers outside `#[test]` functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cascade;
mod cluster;
mod http;
mod org;
mod plugin;
mod records;
mod references;
mod services;

use std::path::Path;
use std::sync::Arc;

use objectos_data::{
    BatchItem, BatchOperation, BatchRequest, DataConfig, DataEngine, DataError, OpContext,
    PluginSchema, Record,
};
use objectos_permissions::{
    AssignmentKind, Authz, AuthzConfig, PLUGIN_ID, PermissionInterceptor, PermissionsError,
    SecurityModel, SecuritySources,
};
use objectos_spec::query::{
    AggregateFunction, Aggregation, FieldSelection, Filter, QueryAst, SearchQuery, SortNode,
    SortOrder,
};
use objectos_testkit::{TestDatabase, Who};
use serde_json::{Value, json};

pub(crate) const OBJECTS: &[(&str, &str)] = &[
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
"#,
    ),
    (
        "opportunity.object.yml",
        r#"
name: opportunity
sharingModel: private
fields:
  name: { type: text, required: true }
  stage: { type: text }
  amount: { type: number }
  account: { type: lookup, reference: account }
"#,
    ),
    (
        "note.object.yml",
        r#"
name: note
sharingModel: controlled_by_parent
fields:
  body: { type: text }
  account: { type: master_detail, reference: account }
"#,
    ),
    (
        "ticket.object.yml",
        r#"
name: ticket
sharingModel: public_read
fields:
  title: { type: text }
"#,
    ),
];

pub(crate) const SECURITY: &[(&str, &str)] = &[
    (
        "sales_rep.permission.yml",
        r#"
name: sales_rep
objects:
  account: { allowRead: true, allowCreate: true, allowEdit: true }
  opportunity: { allowRead: true, allowCreate: true, allowEdit: true }
  note: { allowRead: true, allowCreate: true }
  ticket: { allowRead: true, allowCreate: true, allowEdit: true }
fields:
  account.amount: { readable: true, editable: false }
  account.secret: { readable: false, editable: false }
rowLevelSecurity:
  - name: opp_not_archived
    object: opportunity
    operation: select
    using: "stage != 'archived' OR stage IS NULL"
  - name: opp_insert_check
    object: opportunity
    operation: insert
    check: "stage != 'archived' AND owner_id = current_user.id"
"#,
    ),
    (
        "manager.permission.yml",
        r#"
name: manager
objects:
  account: { allowRead: true, allowEdit: true, allowDelete: true, viewAllRecords: true }
  opportunity: { allowRead: true, allowEdit: true, allowDelete: true }
"#,
    ),
    (
        "ticket.permission.yml",
        r#"
name: ticket_profile
objectName: ticket
profiles:
  support:
    allowRead: true
    allowCreate: true
    viewFilters: { owner_id: '{{ userId }}' }
"#,
    ),
    ("ceo.role.yml", "name: ceo\n"),
    ("vp_sales.role.yml", "name: vp_sales\nparent: ceo\n"),
    ("rep.role.yml", "name: rep\nparent: vp_sales\n"),
    (
        "public_accounts.sharing.yml",
        r#"
type: criteria
name: public_accounts
object: account
accessLevel: read
sharedWith: { type: role_and_subordinates, value: vp_sales }
condition: "industry = 'public'"
"#,
    ),
    (
        "u2_to_u3.sharing.yml",
        r#"
type: owner
name: u2_to_u3
object: opportunity
accessLevel: edit
ownedBy: { type: user, value: u2 }
sharedWith: { type: user, value: u3 }
"#,
    ),
];

/// A restricted user with permission sets, in organization org_a.
pub(crate) fn user(id: &str, sets: &[&str]) -> OpContext {
    Who::user(id).sets(sets).tenant("org_a").op_context()
}

fn sys() -> OpContext {
    OpContext::system("test")
}

/// System work within organization org_a, where the tests' users act (assignments are per
/// organization).
fn sys_a() -> OpContext {
    sys().with_tenant("org_a")
}

fn admin(tenant: &str) -> OpContext {
    objectos_testkit::admin_cx(tenant)
}

pub(crate) use objectos_testkit::rec;

pub(crate) fn id_of(r: &Record) -> String {
    r["id"].as_str().unwrap().to_owned()
}

pub(crate) struct Env {
    pub(crate) engine: DataEngine,
    pub(crate) authz: Arc<Authz>,
    _dir: tempfile::TempDir,
}

/// The plugin's storage as the data plugin hands it to the engine (the tests open the engine
/// themselves, without a kernel collecting the contribution).
pub(crate) fn owned() -> Vec<PluginSchema> {
    vec![objectos_permissions::schema().owned_by(PLUGIN_ID)]
}

pub(crate) fn write(dir: &Path, files: &[(&str, &str)]) {
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
}

async fn open(url: String, security: &[(&str, &str)]) -> Env {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), OBJECTS);
    write(dir.path(), security);
    let engine = DataEngine::open(DataConfig {
        database_url: url,
        metadata_dirs: vec![dir.path().to_path_buf()],
        include_base: false,
        max_connections: 4,
        auto_migrate: true,
        owned: owned(),
    })
    .await
    .unwrap();
    let authz = Arc::new(Authz::new(AuthzConfig::default()));
    let sources = SecuritySources::load(&[dir.path().to_path_buf()]).unwrap();
    authz.set_model(SecurityModel::compile(sources, &engine.metadata()).unwrap());
    authz.attach(engine.clone()).await.unwrap();
    engine.add_interceptor(Arc::new(PermissionInterceptor::new(authz.clone())));
    Env {
        engine,
        authz,
        _dir: dir,
    }
}

/// Runs `f` on SQLite and, when OBJECTOS_TEST_POSTGRES_URL is set, on PostgreSQL.
pub(crate) async fn each_backend<F, Fut>(f: F)
where
    F: Fn(Env) -> Fut,
    Fut: std::future::Future<Output = Env>,
{
    each_backend_with(SECURITY, f).await;
}

/// [`each_backend`] with other security (or extra object) files than [`SECURITY`].
pub(crate) async fn each_backend_with<F, Fut>(files: &[(&str, &str)], f: F)
where
    F: Fn(Env) -> Fut,
    Fut: std::future::Future<Output = Env>,
{
    for db in TestDatabase::all("perm").await {
        // The engine and its connections go before the schema is dropped.
        drop(f(open(db.url.clone(), files).await).await);
        db.cleanup().await;
    }
}

fn assert_forbidden<T: std::fmt::Debug>(r: Result<T, DataError>, needle: &str) {
    match r {
        Err(e @ DataError::Forbidden { .. }) => {
            assert_eq!(e.code(), "PERMISSION_DENIED");
            assert_eq!(e.http_status(), 403);
            assert!(
                e.to_string().contains(needle),
                "{e} should mention {needle}"
            );
        }
        other => panic!("expected PERMISSION_DENIED mentioning {needle}, got {other:?}"),
    }
}

fn assert_not_found<T: std::fmt::Debug>(r: Result<T, DataError>) {
    match r {
        Err(DataError::RecordNotFound { .. }) => {}
        other => panic!("expected RECORD_NOT_FOUND, got {other:?}"),
    }
}

fn assert_invalid<T: std::fmt::Debug>(r: Result<T, DataError>) {
    match r {
        Err(e) => assert_eq!(e.http_status(), 400, "{e}"),
        Ok(v) => panic!("expected a 400, got {v:?}"),
    }
}

async fn names(engine: &DataEngine, cx: &OpContext, object: &str) -> Vec<String> {
    let mut out: Vec<String> = engine
        .find(cx, object, QueryAst::default())
        .await
        .unwrap()
        .records
        .iter()
        .map(|r| {
            r.get("name")
                .or_else(|| r.get("title"))
                .or_else(|| r.get("body"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn object_permissions_refuse_each_operation() {
    each_backend(|env| async move {
        let e = &env.engine;
        let sys = OpContext::system("seed").with_tenant("org_a");
        let acc = e
            .create(&sys, "account", rec(json!({"name": "Seed"})))
            .await
            .unwrap();
        let id = id_of(&acc);
        let nobody = user("nobody", &[]);
        assert_forbidden(
            e.find(&nobody, "account", QueryAst::default()).await,
            "read",
        );
        assert_forbidden(
            e.get(&nobody, "account", &id, QueryAst::default()).await,
            "read",
        );
        assert_forbidden(e.count(&nobody, "account", Filter::True).await, "read");
        let agg = QueryAst {
            aggregations: vec![Aggregation {
                function: AggregateFunction::Count,
                field: None,
                alias: "n".into(),
                distinct: false,
                filter: None,
            }],
            ..QueryAst::default()
        };
        assert_forbidden(e.find(&nobody, "account", agg).await, "read");
        assert_forbidden(
            e.create(&nobody, "account", rec(json!({"name": "x"})))
                .await,
            "create",
        );
        // Without read access the record is invisible, so update answers like a missing id.
        assert_not_found(
            e.update(&nobody, "account", &id, rec(json!({"name": "y"})), None)
                .await,
        );
        // sales_rep has no delete on account, even for its own record.
        let rep = user("u1", &["sales_rep"]);
        let own = e
            .create(&rep, "account", rec(json!({"name": "Mine"})))
            .await
            .unwrap();
        assert_forbidden(e.delete(&rep, "account", &id_of(&own)).await, "delete");
        // A record the user cannot see answers like a missing one, not with a 403.
        assert_not_found(e.delete(&rep, "account", &id).await);
        assert_not_found(e.delete(&rep, "account", "missing").await);
        assert_not_found(e.delete(&nobody, "account", "missing").await);
        assert_not_found(e.delete(&nobody, "account", &id).await);
        // Batches go through the same hooks.
        let batch = e
            .batch(
                &nobody,
                "account",
                BatchRequest {
                    operation: BatchOperation::Create,
                    records: vec![BatchItem {
                        data: rec(json!({"name": "b"})),
                        ..BatchItem::default()
                    }],
                    ids: vec![],
                    options: Default::default(),
                },
            )
            .await;
        match batch {
            Ok(r) => assert!(!r.success && r.failed == 1, "{r:?}"),
            Err(e) => assert_eq!(e.http_status(), 403),
        }
        assert_eq!(e.count(&sys, "account", Filter::True).await.unwrap(), 2);
        env
    })
    .await;
}

#[tokio::test]
async fn private_records_are_hidden_everywhere() {
    each_backend(|env| async move {
        let e = &env.engine;
        let u1 = user("u1", &["sales_rep"]);
        let u2 = user("u2", &["sales_rep"]);
        let a1 = e
            .create(&u1, "account", rec(json!({"name": "A1", "industry": "x"})))
            .await
            .unwrap();
        let a1id = id_of(&a1);
        // u2 may not link to the account they cannot see (see lookups_to_hidden_records_are_refused);
        // the link is made by system work, as data imported before the rules were.
        let o2 = e
            .create(
                &u2,
                "opportunity",
                rec(json!({"name": "O2", "stage": "open"})),
            )
            .await
            .unwrap();
        let o2 = e
            .update(
                &sys_a(),
                "opportunity",
                &id_of(&o2),
                rec(json!({"account": a1id})),
                None,
            )
            .await
            .unwrap();
        // get: a hidden record is a 404 like a missing one.
        assert_not_found(e.get(&u2, "account", &a1id, QueryAst::default()).await);
        assert_not_found(e.get(&u2, "account", "missing", QueryAst::default()).await);
        assert_eq!(names(e, &u2, "account").await, Vec::<String>::new());
        assert_eq!(e.count(&u2, "account", Filter::True).await.unwrap(), 0);
        let agg = QueryAst {
            aggregations: vec![Aggregation {
                function: AggregateFunction::Count,
                field: None,
                alias: "n".into(),
                distinct: false,
                filter: None,
            }],
            ..QueryAst::default()
        };
        let rows = e.find(&u2, "account", agg).await.unwrap().records;
        assert_eq!(rows[0]["n"], json!(0));
        // expand: the hidden account stays an id.
        let mut q = QueryAst::default();
        q.expand.insert("account".into(), QueryAst::default());
        let got = e.get(&u2, "opportunity", &id_of(&o2), q).await.unwrap();
        assert_eq!(got["account"], json!(a1id));
        // Lookup paths cannot probe the hidden account through the visible opportunity.
        let probe = |name: &str| QueryAst {
            filter: Filter::eq("account.name", name),
            ..QueryAst::default()
        };
        assert!(
            e.find(&u2, "opportunity", probe("A1"))
                .await
                .unwrap()
                .records
                .is_empty()
        );
        assert_eq!(
            e.count(&u2, "opportunity", Filter::eq("account.name", "A1"))
                .await
                .unwrap(),
            0
        );
        let neg = QueryAst {
            filter: Filter::eq("account.name", "A1").negate(),
            ..QueryAst::default()
        };
        assert_eq!(
            e.find(&u2, "opportunity", neg).await.unwrap().records.len(),
            1
        );
        let sys_a = OpContext::system("probe").with_tenant("org_a");
        assert_eq!(
            e.find(&sys_a, "opportunity", probe("A1"))
                .await
                .unwrap()
                .records
                .len(),
            1
        );
        // update/delete of a hidden record: 404, nothing changed.
        assert_not_found(
            e.update(&u2, "account", &a1id, rec(json!({"name": "hacked"})), None)
                .await,
        );
        let sys = OpContext::system("check").with_tenant("org_a");
        let still = e
            .get(&sys, "account", &a1id, QueryAst::default())
            .await
            .unwrap();
        assert_eq!(still["name"], json!("A1"));
        // RLS: archived opportunities are hidden even from their owner.
        let arch = e
            .update(
                &sys,
                "opportunity",
                &id_of(&o2),
                rec(json!({"stage": "archived"})),
                None,
            )
            .await
            .unwrap();
        assert_not_found(
            e.get(&u2, "opportunity", &id_of(&arch), QueryAst::default())
                .await,
        );
        assert_eq!(e.count(&u2, "opportunity", Filter::True).await.unwrap(), 0);
        // public_read: everyone with read sees every ticket, but edits only their own.
        let t = e
            .create(&u1, "ticket", rec(json!({"title": "T1"})))
            .await
            .unwrap();
        assert_eq!(names(e, &u2, "ticket").await, vec!["T1"]);
        assert_not_found(
            e.update(&u2, "ticket", &id_of(&t), rec(json!({"title": "x"})), None)
                .await,
        );
        // controlled_by_parent: notes follow their account.
        e.create(&u1, "note", rec(json!({"body": "N1", "account": a1id})))
            .await
            .unwrap();
        assert_eq!(names(e, &u1, "note").await, vec!["N1"]);
        assert_eq!(names(e, &u2, "note").await, Vec::<String>::new());
        env
    })
    .await;
}

#[tokio::test]
async fn rls_check_refuses_writes_and_rolls_back() {
    each_backend(|env| async move {
        let e = &env.engine;
        let u1 = user("u1", &["sales_rep"]);
        assert_forbidden(
            e.create(&u1, "opportunity", rec(json!({"name": "X", "stage": "archived"})))
                .await,
            "row-level security",
        );
        let sys = OpContext::system("check").with_tenant("org_a");
        assert_eq!(e.count(&sys, "opportunity", Filter::True).await.unwrap(), 0);
        // System fields can never be mass-assigned: the owner is the creator.
        let o = e
            .create(
                &u1,
                "opportunity",
                rec(json!({"name": "Y", "stage": "open", "owner_id": "u9", "organization_id": "org_b"})),
            )
            .await
            .unwrap();
        assert_eq!(o["owner_id"], json!("u1"));
        assert_eq!(o["organization_id"], json!("org_a"));
        env
    })
    .await;
}

#[tokio::test]
async fn sharing_rules_and_role_hierarchy_grant_access() {
    each_backend(|env| async move {
        let e = &env.engine;
        let a = &env.authz;
        a.assign("u1", AssignmentKind::Role, "rep", &sys_a())
            .await
            .unwrap();
        a.assign("u2", AssignmentKind::Role, "rep", &sys_a())
            .await
            .unwrap();
        a.assign("boss", AssignmentKind::Role, "vp_sales", &sys_a())
            .await
            .unwrap();
        let u1 = user("u1", &["sales_rep"]);
        let u2 = user("u2", &["sales_rep"]);
        let u3 = user("u3", &["sales_rep"]);
        let boss = user("boss", &["sales_rep"]);
        e.create(
            &u1,
            "account",
            rec(json!({"name": "Pub", "industry": "public"})),
        )
        .await
        .unwrap();
        e.create(
            &u1,
            "account",
            rec(json!({"name": "Priv", "industry": "x"})),
        )
        .await
        .unwrap();
        // Criteria rule shared with vp_sales and subordinates: rep u2 sees the public one only.
        assert_eq!(names(e, &u2, "account").await, vec!["Pub"]);
        // u3 has no role: the rule does not reach them.
        assert_eq!(names(e, &u3, "account").await, Vec::<String>::new());
        // The hierarchy: boss (vp_sales) sees what reps own.
        assert_eq!(names(e, &boss, "account").await, vec!["Priv", "Pub"]);
        // Owner rule: u2's opportunities are shared with u3 for edit.
        let o = e
            .create(
                &u2,
                "opportunity",
                rec(json!({"name": "Deal", "stage": "open"})),
            )
            .await
            .unwrap();
        assert_eq!(names(e, &u3, "opportunity").await, vec!["Deal"]);
        let upd = e
            .update(
                &u3,
                "opportunity",
                &id_of(&o),
                rec(json!({"amount": 5})),
                None,
            )
            .await
            .unwrap();
        assert_eq!(upd["amount"].as_f64(), Some(5.0));
        assert_eq!(names(e, &u1, "opportunity").await, Vec::<String>::new());
        // viewAllRecords bypasses sharing (but not object permissions).
        let mgr = user("m", &["manager"]);
        assert_eq!(names(e, &mgr, "account").await, vec!["Priv", "Pub"]);
        env
    })
    .await;
}

#[tokio::test]
async fn field_level_security_strips_and_refuses() {
    each_backend(|env| async move {
        let e = &env.engine;
        let sys = OpContext::system("seed").with_tenant("org_a");
        let u1 = user("u1", &["sales_rep"]);
        let mut acc = rec(json!({"name": "A", "amount": 10, "secret": "s3cr3t"}));
        // Seed as system but owned by u1: create as system, then read as u1 through sharing.
        acc.insert("industry".into(), json!("public"));
        let a = e.create(&sys, "account", acc).await.unwrap();
        let id = id_of(&a);
        env.authz
            .assign("u1", AssignmentKind::Role, "rep", &sys)
            .await
            .unwrap();
        let got = e
            .get(&u1, "account", &id, QueryAst::default())
            .await
            .unwrap();
        assert!(!got.contains_key("secret"), "{got:?}");
        assert_eq!(got["amount"].as_f64(), Some(10.0));
        let list = e.find(&u1, "account", QueryAst::default()).await.unwrap();
        assert!(list.records.iter().all(|r| !r.contains_key("secret")));
        // Expanded records are stripped too.
        let o = e
            .create(
                &u1,
                "opportunity",
                rec(json!({"name": "O", "stage": "open", "account": id})),
            )
            .await
            .unwrap();
        let mut q = QueryAst::default();
        q.expand.insert("account".into(), QueryAst::default());
        let got = e
            .get(&u1, "opportunity", &id_of(&o), q.clone())
            .await
            .unwrap();
        assert_eq!(got["account"]["name"], json!("A"));
        assert!(got["account"].get("secret").is_none(), "{got:?}");
        let list = e.find(&u1, "opportunity", q).await.unwrap();
        assert!(list.records[0]["account"].get("secret").is_none());
        // Refusals by parameter.
        let by_filter = QueryAst {
            filter: Filter::eq("secret", "s3cr3t"),
            ..QueryAst::default()
        };
        assert_forbidden(e.find(&u1, "account", by_filter).await, "filter");
        // A search without fields never matches on the unreadable searchable field.
        let search = |text: &str| QueryAst {
            search: Some(SearchQuery {
                query: text.into(),
                fields: vec![],
                fuzzy: false,
            }),
            ..QueryAst::default()
        };
        assert!(
            e.find(&u1, "account", search("s3cr3t"))
                .await
                .unwrap()
                .records
                .is_empty()
        );
        assert_eq!(
            e.find(&u1, "account", search("A"))
                .await
                .unwrap()
                .records
                .len(),
            1
        );
        assert_eq!(
            e.find(&sys, "account", search("s3cr3t"))
                .await
                .unwrap()
                .records
                .len(),
            1
        );
        let explicit = QueryAst {
            search: Some(SearchQuery {
                query: "s".into(),
                fields: vec!["secret".into()],
                fuzzy: false,
            }),
            ..QueryAst::default()
        };
        assert_forbidden(e.find(&u1, "account", explicit).await, "search");
        let through_lookup = QueryAst {
            filter: Filter::eq("account.secret", "s3cr3t"),
            ..QueryAst::default()
        };
        assert_forbidden(e.find(&u1, "opportunity", through_lookup).await, "filter");
        let by_sort = QueryAst {
            order_by: vec![SortNode::new("secret", SortOrder::Asc)],
            ..QueryAst::default()
        };
        assert_forbidden(e.find(&u1, "account", by_sort).await, "sort");
        let by_select = QueryAst {
            fields: vec![FieldSelection::Field("secret".into())],
            ..QueryAst::default()
        };
        assert_forbidden(e.find(&u1, "account", by_select.clone()).await, "select");
        assert_forbidden(e.get(&u1, "account", &id, by_select).await, "select");
        let by_group = QueryAst {
            group_by: vec!["secret".into()],
            aggregations: vec![Aggregation {
                function: AggregateFunction::Count,
                field: None,
                alias: "n".into(),
                distinct: false,
                filter: None,
            }],
            ..QueryAst::default()
        };
        assert_forbidden(e.find(&u1, "account", by_group).await, "groupBy");
        let by_agg = QueryAst {
            aggregations: vec![Aggregation {
                function: AggregateFunction::CountDistinct,
                field: Some("secret".into()),
                alias: "n".into(),
                distinct: false,
                filter: None,
            }],
            ..QueryAst::default()
        };
        assert_forbidden(e.find(&u1, "account", by_agg).await, "aggregations");
        assert_forbidden(
            e.count(&u1, "account", Filter::eq("secret", "s3cr3t"))
                .await,
            "filter",
        );
        let mut nested = QueryAst::default();
        nested.expand.insert(
            "account".into(),
            QueryAst {
                fields: vec![FieldSelection::Field("secret".into())],
                ..QueryAst::default()
            },
        );
        assert_forbidden(e.find(&u1, "opportunity", nested).await, "select");
        // Writing a non-editable field is refused, naming it; echoing it unchanged is fine.
        let mine = e
            .create(&u1, "account", rec(json!({"name": "Mine"})))
            .await
            .unwrap();
        assert_forbidden(
            e.update(
                &u1,
                "account",
                &id_of(&mine),
                rec(json!({"amount": 99})),
                None,
            )
            .await,
            "amount",
        );
        assert_forbidden(
            e.create(&u1, "account", rec(json!({"name": "B", "amount": 5})))
                .await,
            "amount",
        );
        let echoed = e
            .update(
                &u1,
                "account",
                &id_of(&mine),
                rec(json!({"name": "Mine2", "amount": null})),
                None,
            )
            .await
            .unwrap();
        assert_eq!(echoed["name"], json!("Mine2"));
        // An unreadable field cannot be probed by "echoing" a guessed value.
        assert_forbidden(
            e.update(
                &u1,
                "account",
                &id_of(&mine),
                rec(json!({"secret": null})),
                None,
            )
            .await,
            "secret",
        );
        env
    })
    .await;
}

#[tokio::test]
async fn tenants_are_isolated_even_with_the_id() {
    each_backend(|env| async move {
        let e = &env.engine;
        let a_admin = admin("org_a");
        let b_admin = admin("org_b");
        let acc = e
            .create(&a_admin, "account", rec(json!({"name": "A only"})))
            .await
            .unwrap();
        let id = id_of(&acc);
        // An administrator of B cannot link to A's account: refused like a missing id.
        let linked = e
            .create(
                &b_admin,
                "opportunity",
                rec(json!({"name": "B opp", "account": id})),
            )
            .await
            .unwrap_err();
        let missing = e
            .create(
                &b_admin,
                "opportunity",
                rec(json!({"name": "B opp", "account": "no-such-account"})),
            )
            .await
            .unwrap_err();
        assert_eq!(linked.http_status(), 400);
        assert_eq!(format!("{linked:?}"), format!("{missing:?}"));
        // A link made by system work (data from before) still reveals nothing through expand.
        let opp = e
            .create(
                &OpContext::system("import").with_tenant("org_b"),
                "opportunity",
                rec(json!({"name": "B opp", "account": id})),
            )
            .await
            .unwrap();
        assert_not_found(e.get(&b_admin, "account", &id, QueryAst::default()).await);
        assert_eq!(names(e, &b_admin, "account").await, Vec::<String>::new());
        assert_eq!(e.count(&b_admin, "account", Filter::True).await.unwrap(), 0);
        let agg = QueryAst {
            aggregations: vec![Aggregation {
                function: AggregateFunction::Count,
                field: None,
                alias: "n".into(),
                distinct: false,
                filter: None,
            }],
            ..QueryAst::default()
        };
        assert_eq!(
            e.find(&b_admin, "account", agg).await.unwrap().records[0]["n"],
            json!(0)
        );
        let mut q = QueryAst::default();
        q.expand.insert("account".into(), QueryAst::default());
        let got = e
            .get(&b_admin, "opportunity", &id_of(&opp), q)
            .await
            .unwrap();
        assert_eq!(got["account"], json!(id));
        assert_not_found(
            e.update(&b_admin, "account", &id, rec(json!({"name": "x"})), None)
                .await,
        );
        assert_not_found(e.delete(&b_admin, "account", &id).await);
        let still = e
            .get(&a_admin, "account", &id, QueryAst::default())
            .await
            .unwrap();
        assert_eq!(still["name"], json!("A only"));
        // Batches across tenants change nothing either.
        let batch = e
            .delete_many(
                &b_admin,
                "account",
                BatchRequest {
                    operation: BatchOperation::Delete,
                    records: vec![],
                    ids: vec![id.clone()],
                    options: Default::default(),
                },
            )
            .await;
        match batch {
            Ok(r) => assert!(!r.success && r.succeeded == 0, "{r:?}"),
            Err(e) => assert_eq!(e.http_status(), 404),
        }
        let still = e
            .get(&a_admin, "account", &id, QueryAst::default())
            .await
            .unwrap();
        assert_eq!(still["name"], json!("A only"));
        // A plain user of tenant B with full grants sees nothing of tenant A either.
        let mut b_user = user("u1", &["manager"]);
        b_user.tenant = Some("org_b".into());
        assert_not_found(e.get(&b_user, "account", &id, QueryAst::default()).await);
        env
    })
    .await;
}

#[tokio::test]
async fn admins_and_system_bypass() {
    each_backend(|env| async move {
        let e = &env.engine;
        let u1 = user("u1", &["sales_rep"]);
        let a = e
            .create(&u1, "account", rec(json!({"name": "A"})))
            .await
            .unwrap();
        let adm = admin("org_a");
        let got = e
            .get(&adm, "account", &id_of(&a), QueryAst::default())
            .await
            .unwrap();
        assert!(got.contains_key("secret"));
        e.update(
            &adm,
            "account",
            &id_of(&a),
            rec(json!({"amount": 3, "secret": "k"})),
            None,
        )
        .await
        .unwrap();
        e.delete(
            &OpContext::system("cleanup").with_tenant("org_a"),
            "account",
            &id_of(&a),
        )
        .await
        .unwrap();
        env
    })
    .await;
}

#[tokio::test]
async fn assignments_invalidate_the_cache_and_publish_events() {
    each_backend(|env| async move {
        let e = &env.engine;
        let a = &env.authz;
        let u = user("u7", &[]);
        assert_forbidden(e.find(&u, "account", QueryAst::default()).await, "read");
        assert!(a.cached_entries() > 0);
        assert!(
            a.assign(
                "u7",
                AssignmentKind::PermissionSet,
                "sales_rep",
                &admin("org_a").with_request_id("req-1")
            )
            .await
            .unwrap()
        );
        assert_eq!(a.cached_entries(), 0);
        e.find(&u, "account", QueryAst::default()).await.unwrap();
        // Idempotent.
        assert!(
            !a.assign("u7", AssignmentKind::PermissionSet, "sales_rep", &sys_a())
                .await
                .unwrap()
        );
        a.assign("u7", AssignmentKind::Role, "rep", &sys_a())
            .await
            .unwrap();
        assert!(
            a.unassign("u7", AssignmentKind::PermissionSet, "sales_rep", &sys_a())
                .await
                .unwrap()
        );
        assert_forbidden(e.find(&u, "account", QueryAst::default()).await, "read");
        a.unassign("u7", AssignmentKind::Role, "rep", &sys_a())
            .await
            .unwrap();
        // A permission set named like a role is that role's grant.
        let names: Vec<String> = a.published_events().into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            vec![
                "authz.permission_granted",
                "authz.role_assigned",
                "authz.permission_revoked",
                "authz.role_removed"
            ]
        );
        // `userId` is the user concerned; the actor, organization and request are there for the
        // audit trail, which files the event under `tenantId` and attributes it to `actorId`.
        assert_eq!(
            a.published_events()[0].1,
            json!({"userId": "u7", "permissionSet": "sales_rep", "by": "root",
                   "actorId": "root", "actorType": "user", "targetId": "u7",
                   "tenantId": "org_a", "organizationId": "org_a", "requestId": "req-1"})
        );
        assert_eq!(
            a.published_events()[1].1,
            json!({"userId": "u7", "role": "rep", "by": null, "actorId": null,
                   "actorType": "system", "targetId": "u7", "tenantId": "org_a",
                   "organizationId": "org_a", "requestId": null})
        );
        // Reloading the security metadata swaps the model and drops cached decisions.
        e.find(&user("u9", &["manager"]), "ticket", QueryAst::default())
            .await
            .unwrap_err();
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), SECURITY);
        write(
            dir.path(),
            &[(
                "extra.permission.yml",
                "name: manager\nobjects: { ticket: { allowRead: true } }\n",
            )],
        );
        a.reload(&[dir.path().to_path_buf()]).unwrap();
        assert_eq!(a.cached_entries(), 0);
        e.find(&user("u9", &["manager"]), "ticket", QueryAst::default())
            .await
            .unwrap();
        write(dir.path(), &[("broken.role.yml", "name: Bad Role\n")]);
        assert!(a.reload(&[dir.path().to_path_buf()]).is_err());
        e.find(&user("u9", &["manager"]), "ticket", QueryAst::default())
            .await
            .unwrap();
        // Unknown names are refused.
        assert!(matches!(
            a.assign("u7", AssignmentKind::PermissionSet, "nope", &sys())
                .await,
            Err(PermissionsError::InvalidAssignment(_))
        ));
        assert!(matches!(
            a.assign("u7", AssignmentKind::Role, "nope", &sys()).await,
            Err(PermissionsError::InvalidAssignment(_))
        ));
        // Assignments survive a restart (they are stored).
        let again = Authz::new(AuthzConfig::default());
        again.set_model(
            SecurityModel::compile(
                SecuritySources {
                    permission_sets: vec![],
                    roles: vec![],
                    sharing_rules: vec![],
                },
                &e.metadata(),
            )
            .unwrap(),
        );
        a.assign("u8", AssignmentKind::PermissionSet, "manager", &sys_a())
            .await
            .unwrap();
        again.attach(e.clone()).await.unwrap();
        assert_eq!(again.assignments_of("u8", Some("org_a")).0, vec!["manager"]);
        assert!(again.assignments_of("u8", Some("org_b")).0.is_empty());
        env
    })
    .await;
}

#[tokio::test]
async fn objectos_profile_view_filters_act_as_rls() {
    each_backend(|env| async move {
        let e = &env.engine;
        let sys = OpContext::system("seed").with_tenant("org_a");
        e.create(&sys, "ticket", rec(json!({"title": "other"})))
            .await
            .unwrap();
        let s = user("s1", &["support"]);
        let mine = e
            .create(&s, "ticket", rec(json!({"title": "mine"})))
            .await
            .unwrap();
        assert_eq!(names(e, &s, "ticket").await, vec!["mine"]);
        // The profile has no edit.
        assert_forbidden(
            e.update(
                &s,
                "ticket",
                &id_of(&mine),
                rec(json!({"title": "y"})),
                None,
            )
            .await,
            "edit",
        );
        env
    })
    .await;
}

#[tokio::test]
async fn injection_attempts_fail_and_change_nothing() {
    each_backend(|env| async move {
        let e = &env.engine;
        let u1 = user("u1", &["sales_rep"]);
        let u2 = user("u2", &["sales_rep"]);
        e.create(&u1, "account", rec(json!({"name": "A"})))
            .await
            .unwrap();
        for value in ["' OR 1=1 --", "A' OR 'x'='x", "\") OR 1=1 --"] {
            let q = QueryAst {
                filter: Filter::eq("name", value),
                ..QueryAst::default()
            };
            assert!(e.find(&u2, "account", q).await.unwrap().records.is_empty());
        }
        let bad_field = QueryAst {
            filter: Filter::eq("name\" = name OR 1=1 --", "x"),
            ..QueryAst::default()
        };
        assert_invalid(e.find(&u2, "account", bad_field).await);
        let bad_sort = QueryAst {
            order_by: vec![SortNode::new("name; DROP TABLE account", SortOrder::Asc)],
            ..QueryAst::default()
        };
        assert_invalid(e.find(&u2, "account", bad_sort).await);
        let bad_select = QueryAst {
            fields: vec![FieldSelection::Field("(SELECT secret FROM account)".into())],
            ..QueryAst::default()
        };
        assert_invalid(e.find(&u2, "account", bad_select).await);
        let mut bad_expand = QueryAst::default();
        bad_expand
            .expand
            .insert("account OR 1=1".into(), QueryAst::default());
        assert_invalid(e.find(&u2, "opportunity", bad_expand).await);
        let sys = OpContext::system("check").with_tenant("org_a");
        assert_eq!(e.count(&sys, "account", Filter::True).await.unwrap(), 1);
        assert_eq!(names(e, &u2, "account").await, Vec::<String>::new());
        env
    })
    .await;
}

#[tokio::test]
async fn bad_security_metadata_is_reported_with_file_and_path() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), OBJECTS);
    write(
        dir.path(),
        &[
            (
                "bad.permission.yml",
                r#"
name: bad
objects:
  account: { allowRead: true }
  ghost: { allowRead: true }
fields:
  account.nope: { readable: false }
rowLevelSecurity:
  - { name: p1, object: account, operation: select, using: "owner_id = current_user.password" }
  - { name: p2, object: account, operation: select, using: "unknown_field = 1" }
  - { name: p3, object: account, operation: select, using: "name = 'x' ; DROP TABLE account" }
"#,
            ),
            ("a.role.yml", "name: a\nparent: b\n"),
            ("b.role.yml", "name: b\nparent: a\n"),
        ],
    );
    let tmp = tempfile::tempdir().unwrap();
    let engine = DataEngine::open(DataConfig {
        database_url: format!("sqlite://{}?mode=rwc", tmp.path().join("t.db").display()),
        metadata_dirs: vec![dir.path().to_path_buf()],
        include_base: false,
        max_connections: 2,
        auto_migrate: true,
        owned: Vec::new(),
    })
    .await
    .unwrap();
    let sources = SecuritySources::load(&[dir.path().to_path_buf()]).unwrap();
    let err = SecurityModel::compile(sources, &engine.metadata()).unwrap_err();
    let text = err.to_string();
    for needle in [
        "objects.ghost",
        "fields.account.nope",
        "rowLevelSecurity[0].using",
        "current_user.password",
        "rowLevelSecurity[1].using: field unknown_field",
        "rowLevelSecurity[2].using",
        "cycle",
    ] {
        assert!(text.contains(needle), "{needle} missing in:\n{text}");
    }
    // Structural problems carry the file name.
    std::fs::write(
        dir.path().join("worse.permission.yml"),
        "name: Bad Name\nobjects: { account: { allowEdit: true } }\n",
    )
    .unwrap();
    let err = SecuritySources::load(&[dir.path().to_path_buf()]).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("worse.permission.yml"), "{text}");
    assert!(text.contains("objects.account.allowEdit"), "{text}");
}
