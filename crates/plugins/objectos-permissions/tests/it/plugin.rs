//! The plugin in a real kernel (data + permissions): metadata loading at start, the interceptor
//! contribution, `authz.*` events on the bus, refusal to start on bad security metadata, and the
//! CRM preset's example permission set.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use objectos_data::{DataConfig, DataEngine, DataHandle, DataPlugin, OpContext};
use objectos_kernel::{Kernel, SubscribeOptions};
use objectos_permissions::{
    AssignmentKind, AuthzConfig, MANIFEST, PermissionsPlugin, SecurityModel, SecuritySources,
};
use objectos_spec::Event;
use objectos_spec::query::QueryAst;
use serde_json::json;

use crate::{OBJECTS, SECURITY, rec, user, write};

fn data_plugin(meta: &std::path::Path, db: &std::path::Path) -> DataPlugin {
    DataPlugin::new(DataConfig {
        database_url: format!("sqlite://{}?mode=rwc", db.join("k.db").display()),
        metadata_dirs: vec![meta.to_path_buf()],
        include_base: false,
        max_connections: 2,
        auto_migrate: true,
        owned: Vec::new(),
    })
}

#[tokio::test]
async fn boots_in_a_kernel_and_publishes_events() {
    assert_eq!(MANIFEST.id, "com.objectos.permissions");
    assert!(MANIFEST.provides.contains(&"permissions"));
    let meta = tempfile::tempdir().unwrap();
    write(meta.path(), OBJECTS);
    write(meta.path(), SECURITY);
    let db = tempfile::tempdir().unwrap();
    let perms = PermissionsPlugin::new(AuthzConfig::default());
    let authz = perms.authz();
    let kernel = Kernel::builder()
        .plugin(data_plugin(meta.path(), db.path()))
        .plugin(perms)
        .build()
        .unwrap();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = seen.clone();
    kernel
        .bus()
        .subscribe(
            "test",
            "authz.*",
            move |e: Arc<Event>| {
                let sink = sink.clone();
                async move {
                    // The bus metadata carries the organization and the actor too.
                    sink.lock().unwrap().push(format!(
                        "{} tenant={:?} user={:?}",
                        e.name, e.metadata.tenant_id, e.metadata.user_id
                    ));
                    Ok(())
                }
            },
            SubscribeOptions::default(),
        )
        .unwrap();
    let startup = kernel.boot().await.unwrap();
    assert!(startup.all_started());
    let engine = kernel
        .registry()
        .get_named::<DataHandle>("data")
        .unwrap()
        .engine()
        .unwrap()
        .clone();
    // The interceptor is installed: a user without grants is refused.
    let err = engine
        .find(&user("u1", &[]), "account", QueryAst::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "PERMISSION_DENIED");
    engine
        .create(
            &user("u1", &["sales_rep"]),
            "account",
            rec(json!({"name": "K"})),
        )
        .await
        .unwrap();
    authz
        .assign(
            "u1",
            AssignmentKind::Role,
            "rep",
            // `user` acts within organization org_a.
            &user("root", &[]),
        )
        .await
        .unwrap();
    for _ in 0..200 {
        if !seen.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        seen.lock().unwrap().clone(),
        ["authz.role_assigned tenant=Some(\"org_a\") user=Some(\"root\")"]
    );
    // The auth plugin removes u1 from org_a: the assignments there go (they must not come back
    // should u1 rejoin), those elsewhere stay.
    authz
        .assign(
            "u1",
            AssignmentKind::Role,
            "rep",
            &OpContext::system("t").with_tenant("org_b"),
        )
        .await
        .unwrap();
    let removed = Event {
        id: "ev-1".into(),
        name: objectos_permissions::MEMBER_REMOVED.into(),
        payload: json!({"organizationId": "org_a", "targetUserId": "u1", "userId": "root"}),
        metadata: objectos_spec::EventMetadata {
            source: "com.objectos.auth".into(),
            timestamp: chrono::Utc::now(),
            ..objectos_spec::EventMetadata::default()
        },
    };
    kernel.bus().publish(removed).await.unwrap();
    for _ in 0..200 {
        if authz.assignments_of("u1", Some("org_a")).1.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(authz.assignments_of("u1", Some("org_a")).1.is_empty());
    assert_eq!(
        authz.assignments_of("u1", Some("org_b")).1,
        vec!["rep".to_owned()]
    );
    kernel.shutdown().await;
}

#[tokio::test]
async fn refuses_to_start_on_bad_security_metadata() {
    let meta = tempfile::tempdir().unwrap();
    write(meta.path(), OBJECTS);
    write(
        meta.path(),
        &[(
            "bad.permission.yml",
            "name: bad\nrowLevelSecurity:\n  - { name: p, object: account, operation: select, using: \"nope = 1\" }\n",
        )],
    );
    let db = tempfile::tempdir().unwrap();
    let kernel = Kernel::builder()
        .plugin(data_plugin(meta.path(), db.path()))
        .plugin(PermissionsPlugin::new(AuthzConfig::default()))
        .build()
        .unwrap();
    let startup = kernel.boot().await.unwrap();
    assert!(!startup.all_started());
    let failed = startup
        .plugins
        .iter()
        .find(|p| p.id == "com.objectos.permissions")
        .unwrap();
    let message = &failed.error.as_ref().unwrap().message;
    assert!(
        message.contains("field nope does not exist on account"),
        "{message}"
    );
    kernel.shutdown().await;
}

#[tokio::test]
async fn crm_preset_permissions_compile_and_apply() {
    let crm = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../presets/crm");
    let db = tempfile::tempdir().unwrap();
    let engine = DataEngine::open(DataConfig {
        database_url: format!("sqlite://{}?mode=rwc", db.path().join("crm.db").display()),
        metadata_dirs: vec![crm.clone()],
        include_base: true,
        max_connections: 2,
        auto_migrate: true,
        owned: crate::owned(),
    })
    .await
    .unwrap();
    let sources = SecuritySources::load(&[crm]).unwrap();
    assert!(
        sources
            .permission_sets
            .iter()
            .any(|s| s.name == "sales_rep")
    );
    let model = SecurityModel::compile(sources, &engine.metadata()).unwrap();
    let authz = Arc::new(objectos_permissions::Authz::new(AuthzConfig::default()));
    authz.set_model(model);
    authz.attach(engine.clone()).await.unwrap();
    engine.add_interceptor(Arc::new(objectos_permissions::PermissionInterceptor::new(
        authz.clone(),
    )));
    let rep = user("rep1", &["sales_rep"]);
    let eff = authz.effective(Some("rep1"), Some("org_a"), &[], &["sales_rep".to_owned()]);
    assert!(!eff.object("opportunity").allow_delete);
    assert!(eff.field("account", "annual_revenue").readable);
    assert!(!eff.field("account", "annual_revenue").editable);
    let acc = engine
        .create(&rep, "account", rec(json!({"name": "Acme"})))
        .await
        .unwrap();
    let opp = engine
        .create(
            &rep,
            "opportunity",
            rec(json!({"name": "Deal", "account": acc["id"]})),
        )
        .await
        .unwrap();
    let other = user("rep2", &["sales_rep"]);
    let all = objectos_spec::query::Filter::True;
    assert_eq!(
        engine
            .count(&rep, "opportunity", all.clone())
            .await
            .unwrap(),
        1
    );
    assert_eq!(engine.count(&other, "opportunity", all).await.unwrap(), 0);
    let id = opp["id"].as_str().unwrap();
    let err = engine.delete(&rep, "opportunity", id).await.unwrap_err();
    assert_eq!(err.code(), "PERMISSION_DENIED");
    let err = engine
        .update(
            &rep,
            "account",
            acc["id"].as_str().unwrap(),
            rec(json!({"annual_revenue": 5})),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "PERMISSION_DENIED");
    let err = engine
        .update(
            &other,
            "opportunity",
            id,
            rec(json!({"name": "mine now"})),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "RECORD_NOT_FOUND");
    let sys = OpContext::system("check").with_tenant("org_a");
    let still = engine
        .get(&sys, "opportunity", id, QueryAst::default())
        .await
        .unwrap();
    assert_eq!(still["name"], json!("Deal"));
}

/// The `permissions` service is the kernel's `Authorizer` contract: it answers as the
/// interceptor enforces, for callers that are not data operations (flows, realtime).
#[tokio::test]
async fn the_authorizer_contract_answers_like_the_interceptor() {
    use objectos_kernel::Authorizer;
    use objectos_kernel::contracts::{Access, Caller, Principal};
    let meta = tempfile::tempdir().unwrap();
    write(meta.path(), OBJECTS);
    write(meta.path(), SECURITY);
    let db = tempfile::tempdir().unwrap();
    let kernel = Kernel::builder()
        .plugin(data_plugin(meta.path(), db.path()))
        .plugin(PermissionsPlugin::new(AuthzConfig::default()))
        .build()
        .unwrap();
    assert!(kernel.boot().await.unwrap().all_started());
    let authorizer = kernel
        .registry()
        .get_named::<dyn Authorizer>("permissions")
        .unwrap();
    let engine = kernel
        .registry()
        .get_named::<DataHandle>("data")
        .unwrap()
        .engine()
        .unwrap()
        .clone();
    let rep_cx = user("u1", &["sales_rep"]);
    let made = engine
        .create(&rep_cx, "account", rec(json!({"name": "K"})))
        .await
        .unwrap();
    let id = made["id"].as_str().unwrap().to_owned();
    let as_caller = |cx: &OpContext| {
        let principal = match &cx.principal {
            objectos_data::Principal::User {
                id,
                roles,
                permission_sets,
                is_admin,
            } => Principal::User {
                id: id.clone(),
                roles: roles.clone(),
                permission_sets: permission_sets.clone(),
                is_admin: *is_admin,
            },
            _ => Principal::Anonymous,
        };
        Caller::new(principal, cx.tenant.clone())
    };
    let rep = as_caller(&rep_cx);
    let nobody = as_caller(&user("u2", &[]));
    assert!(
        authorizer
            .allowed(&rep, Access::Read, "account", None)
            .await
            .unwrap()
    );
    assert!(
        authorizer
            .allowed(&rep, Access::Read, "account", Some(&id))
            .await
            .unwrap()
    );
    assert!(
        !authorizer
            .allowed(&rep, Access::Read, "account", Some("missing"))
            .await
            .unwrap()
    );
    assert!(
        !authorizer
            .allowed(&nobody, Access::Read, "account", None)
            .await
            .unwrap()
    );
    assert!(
        !authorizer
            .allowed(&rep, Access::Read, "no_such_object", None)
            .await
            .unwrap()
    );
    assert!(
        authorizer
            .row_filter(&nobody, Access::Read, "account")
            .unwrap()
            .is_none()
    );
    assert!(
        authorizer
            .row_filter(&rep, Access::Read, "account")
            .unwrap()
            .is_some()
    );
    // Matches what a data operation with the same caller gets.
    let seen = engine
        .find(&rep_cx, "account", QueryAst::default())
        .await
        .unwrap();
    assert_eq!(seen.records.len(), 1);
    let fields = authorizer.field_access(&rep, "account").unwrap();
    assert!(fields.readable.iter().any(|f| f == "name"));
    assert!(
        authorizer
            .field_access(&nobody, "account")
            .unwrap()
            .readable
            .is_empty()
    );
    // A user outside any organization reaches nothing; the system reaches everything.
    let homeless = Caller::new(rep.principal.clone(), None);
    assert!(
        !authorizer
            .allowed(&homeless, Access::Read, "account", None)
            .await
            .unwrap()
    );
    let system = Caller::new(
        Principal::System {
            reason: "job".into(),
        },
        None,
    );
    assert!(
        authorizer
            .allowed(&system, Access::Delete, "account", Some(&id))
            .await
            .unwrap()
    );
    kernel.shutdown().await;
}

#[tokio::test]
async fn contributed_routes_name_their_service_and_are_in_the_openapi_document() {
    use objectos_http::{ApiState, RouteContribution, build_service};
    use salvo::test::{ResponseExt, TestClient};

    let meta = tempfile::tempdir().unwrap();
    write(meta.path(), OBJECTS);
    write(meta.path(), SECURITY);
    let db = tempfile::tempdir().unwrap();
    let kernel = Kernel::builder()
        .plugin(data_plugin(meta.path(), db.path()))
        .plugin(PermissionsPlugin::new(AuthzConfig::default()))
        .build()
        .unwrap();
    assert!(kernel.boot().await.unwrap().all_started());
    let engine: DataEngine = kernel
        .registry()
        .get_named::<DataHandle>("data")
        .unwrap()
        .engine()
        .unwrap()
        .clone();
    let routes: Vec<RouteContribution> = kernel
        .registry()
        .contributions::<RouteContribution>()
        .unwrap()
        .iter()
        .map(|c| c.value.clone())
        .collect();
    // Its own mount, then the ObjectStack client's paths under the auth mount.
    let shape: Vec<_> = routes
        .iter()
        .map(|c| (c.mount.as_str(), c.service.as_deref(), c.compat))
        .collect();
    assert_eq!(
        shape,
        vec![
            ("permissions", Some("permissions"), false),
            ("auth", Some("permissions"), true)
        ]
    );
    for c in &routes {
        assert_eq!(c.undocumented(), Vec::new(), "{c:?}");
    }
    let service = build_service(ApiState::builder(engine).build(), &routes, &[]);
    let mut res = TestClient::get("http://127.0.0.1:5800/api/v1/openapi.json")
        .send(&service)
        .await;
    let doc: serde_json::Value = res.take_json().await.unwrap();
    assert_eq!(
        objectos_http::routes::openapi::missing_operations(&doc, &routes),
        Vec::<String>::new()
    );
    let check = &doc["paths"]["/api/v1/permissions/check"]["post"];
    assert_eq!(check["tags"][0], "permissions");
    assert_eq!(check["security"].as_array().unwrap().len(), 3);
    assert!(doc["paths"]["/api/v1/auth/permissions/{object}"]["get"].is_object());
    kernel.shutdown().await;
}
