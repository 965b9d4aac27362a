//! The permission routes and the data routes over HTTP (salvo's TestClient), signed in with the
//! testkit's session headers (`call` takes `admin`, or `id:set1,set2`).

use objectos_http::{ApiState, RouteContribution, build_service};
use objectos_permissions::{objectos_router, objectstack_router};
use objectos_testkit::Who;
use salvo::prelude::*;
use salvo::test::{ResponseExt, TestClient};
use serde_json::{Value, json};

use crate::{Env, each_backend, id_of, rec, user};

const BASE: &str = "http://127.0.0.1:5800";

/// Who `who` names: `admin`, or `id:set1,set2`, acting in organization org_a.
fn who(spec: &str) -> Who {
    let who = if spec == "admin" {
        Who::admin()
    } else {
        let (id, sets) = spec.split_once(':').unwrap_or((spec, ""));
        let sets: Vec<&str> = sets.split(',').filter(|s| !s.is_empty()).collect();
        Who::user(id).sets(&sets)
    };
    who.tenant("org_a")
}

#[handler]
async fn fake_me(res: &mut Response) {
    res.render(Json(json!({"me": true})));
}

pub(crate) fn service(env: &Env) -> Service {
    let state = ApiState::builder(env.engine.clone()).build();
    let a = env.authz.clone();
    let b = env.authz.clone();
    // A stand-in for the auth plugin's own routes at the same mount, mounted first.
    let routes = vec![
        RouteContribution::new("auth", || Router::with_path("me").get(fake_me)),
        RouteContribution::new("permissions", move || objectos_router(a.clone())),
        RouteContribution::new("auth", move || objectstack_router(b.clone())),
    ];
    build_service(state, &routes, &[objectos_testkit::session::hoop()])
}

pub(crate) async fn call(
    svc: &Service,
    method: &str,
    path: &str,
    spec: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let url = format!("{BASE}{path}");
    let mut req = match method {
        "GET" => TestClient::get(url),
        "POST" => TestClient::post(url),
        "DELETE" => TestClient::delete(url),
        _ => TestClient::patch(url),
    };
    for (name, value) in who(spec).headers() {
        let name = salvo::http::HeaderName::from_bytes(name.as_bytes()).unwrap();
        req = req.add_header(name, value, true);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let mut res = req.send(svc).await;
    let status = res.status_code.map(|s| s.as_u16()).unwrap_or(200);
    let text = res.take_string().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn permission_routes() {
    each_backend(|env| async move {
        let svc = service(&env);
        let rep = "u1:sales_rep";
        // Both plugins' routes under /api/v1/auth are reachable.
        let (s, b) = call(&svc, "GET", "/api/v1/auth/me", rep, None).await;
        assert_eq!((s, b), (200, json!({"me": true})));
        let (s, b) = call(
            &svc,
            "POST",
            "/api/v1/auth/check",
            rep,
            Some(json!({"object": "account", "action": "read"})),
        )
        .await;
        assert_eq!((s, b["allowed"].clone()), (200, json!(true)), "{b}");
        let (_, b) = call(
            &svc,
            "POST",
            "/api/v1/permissions/check",
            rep,
            Some(json!({"object": "account", "action": "delete"})),
        )
        .await;
        assert_eq!(b["allowed"], json!(false));
        let (_, b) = call(
            &svc,
            "POST",
            "/api/v1/permissions/check",
            rep,
            Some(json!({"object": "account", "action": "edit", "field": "amount"})),
        )
        .await;
        assert_eq!(b["allowed"], json!(false));
        let (s, _) = call(
            &svc,
            "POST",
            "/api/v1/permissions/check",
            rep,
            Some(json!({"object": "account", "action": "fly"})),
        )
        .await;
        assert_eq!(s, 400);
        // recordId: a record the caller cannot see is "not allowed", like a missing one.
        let other = env
            .engine
            .create(
                &user("u2", &["sales_rep"]),
                "account",
                rec(json!({"name": "B"})),
            )
            .await
            .unwrap();
        for id in [id_of(&other), "missing".to_owned()] {
            let (_, b) = call(
                &svc,
                "POST",
                "/api/v1/auth/check",
                rep,
                Some(json!({"object": "account", "action": "read", "recordId": id})),
            )
            .await;
            assert_eq!(b["allowed"], json!(false), "{b}");
        }
        let (_, b) = call(
            &svc,
            "POST",
            "/api/v1/auth/check",
            "u2:sales_rep",
            Some(json!({"object": "account", "action": "read", "recordId": id_of(&other)})),
        )
        .await;
        assert_eq!(b["allowed"], json!(true));

        let (s, b) = call(&svc, "GET", "/api/v1/auth/permissions/account", rep, None).await;
        assert_eq!(s, 200);
        assert_eq!(b["object"], json!("account"));
        assert_eq!(b["permissions"]["allowRead"], json!(true));
        assert_eq!(b["permissions"]["allowDelete"], json!(false));
        assert_eq!(
            b["fieldPermissions"]["secret"],
            json!({"readable": false, "editable": false})
        );
        assert_eq!(
            b["fieldPermissions"]["amount"],
            json!({"readable": true, "editable": false})
        );
        let (s, b) = call(&svc, "GET", "/api/v1/permissions/object/account", rep, None).await;
        assert_eq!((s, b["object"].clone()), (200, json!("account")));
        let (s, b) = call(&svc, "GET", "/api/v1/auth/permissions/nope", rep, None).await;
        assert_eq!(s, 404, "{b}");

        let (s, b) = call(&svc, "GET", "/api/v1/auth/permissions/effective", rep, None).await;
        assert_eq!(s, 200);
        assert_eq!(b["objects"]["opportunity"]["allowCreate"], json!(true));
        assert!(b["systemPermissions"].is_array());
        let (_, b) = call(&svc, "GET", "/api/v1/permissions/effective", rep, None).await;
        assert!(b["objects"]["account"].is_object());
        let (s, b) = call(&svc, "GET", "/api/v1/permissions/sets", rep, None).await;
        assert_eq!(s, 200);
        assert!(
            b["sets"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["name"] == "sales_rep")
        );
        env
    })
    .await;
}

#[tokio::test]
async fn assignment_routes_are_admin_only_and_take_effect() {
    each_backend(|env| async move {
        let svc = service(&env);
        let body = json!({"userId": "u7", "permissionSet": "sales_rep"});
        let (s, b) = call(
            &svc,
            "POST",
            "/api/v1/permissions/assignments",
            "u1:sales_rep",
            Some(body.clone()),
        )
        .await;
        assert_eq!(s, 403, "{b}");
        assert_eq!(b["code"], json!("PERMISSION_DENIED"));
        let (s, b) = call(&svc, "GET", "/api/v1/data/account", "u7", None).await;
        assert_eq!(
            (s, b["code"].clone()),
            (403, json!("PERMISSION_DENIED")),
            "{b}"
        );
        let (s, b) = call(
            &svc,
            "POST",
            "/api/v1/permissions/assignments",
            "admin",
            Some(body.clone()),
        )
        .await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["permissionSets"], json!(["sales_rep"]));
        let (s, _) = call(&svc, "GET", "/api/v1/data/account", "u7", None).await;
        assert_eq!(s, 200);
        let (s, _) = call(
            &svc,
            "POST",
            "/api/v1/permissions/assignments",
            "admin",
            Some(json!({"userId": "u7", "role": "rep"})),
        )
        .await;
        assert_eq!(s, 200);
        // Who has what: administrators only, optionally for one user.
        let (s, b) = call(
            &svc,
            "GET",
            "/api/v1/permissions/assignments",
            "u1:sales_rep",
            None,
        )
        .await;
        assert_eq!((s, b["code"].clone()), (403, json!("PERMISSION_DENIED")));
        let (s, b) = call(
            &svc,
            "GET",
            "/api/v1/permissions/assignments?userId=u7",
            "admin",
            None,
        )
        .await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(
            b["assignments"],
            json!([{"userId": "u7", "permissionSets": ["sales_rep"], "roles": ["rep"]}])
        );
        let (s, b) = call(
            &svc,
            "POST",
            "/api/v1/permissions/assignments",
            "admin",
            Some(json!({"userId": "u7", "role": "nope"})),
        )
        .await;
        assert_eq!(s, 400, "{b}");
        let (s, _) = call(
            &svc,
            "POST",
            "/api/v1/permissions/assignments",
            "admin",
            Some(json!({"userId": "u7"})),
        )
        .await;
        assert_eq!(s, 400);
        let (s, _) = call(
            &svc,
            "DELETE",
            "/api/v1/permissions/assignments",
            "admin",
            Some(body),
        )
        .await;
        assert_eq!(s, 200);
        let (s, _) = call(&svc, "GET", "/api/v1/data/account", "u7", None).await;
        assert_eq!(s, 403);
        env
    })
    .await;
}

#[tokio::test]
async fn data_routes_map_refusals() {
    each_backend(|env| async move {
        let svc = service(&env);
        let rep = "u1:sales_rep";
        let (s, b) = call(
            &svc,
            "POST",
            "/api/v1/data/account",
            rep,
            Some(json!({"name": "A", "secret": "x"})),
        )
        .await;
        assert_eq!(s, 403, "{b}");
        assert!(b["message"].as_str().unwrap().contains("secret"), "{b}");
        let (s, b) = call(
            &svc,
            "POST",
            "/api/v1/data/account",
            rep,
            Some(json!({"name": "A"})),
        )
        .await;
        assert_eq!(s, 201, "{b}");
        let id = b["id"].as_str().unwrap().to_owned();
        assert!(b["record"].get("secret").is_none(), "{b}");
        let (s, _) = call(
            &svc,
            "GET",
            &format!("/api/v1/data/account/{id}"),
            "u2:sales_rep",
            None,
        )
        .await;
        assert_eq!(s, 404);
        let (s, b) = call(&svc, "GET", "/api/v1/data/account?sort=secret", rep, None).await;
        assert_eq!(
            (s, b["code"].clone()),
            (403, json!("PERMISSION_DENIED")),
            "{b}"
        );
        let (s, b) = call(
            &svc,
            "GET",
            "/api/v1/data/account?filter=%5B%22name%22%2C%22%3D%22%2C%22x%27%20OR%201%3D1%22%5D",
            "u2:sales_rep",
            None,
        )
        .await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["records"], json!([]));
        let (s, _) = call(
            &svc,
            "DELETE",
            &format!("/api/v1/data/account/{id}"),
            rep,
            None,
        )
        .await;
        assert_eq!(s, 403);
        env
    })
    .await;
}

/// A user record per organization, for the assignment route's tenant check.
const USERS: &[(&str, &str)] = &[(
    "user.object.yml",
    "name: user\nfields:\n  name: { type: text, required: true }\n",
)];

#[tokio::test]
async fn assignments_only_reach_users_of_the_callers_organization() {
    let files: Vec<(&str, &str)> = crate::SECURITY.iter().chain(USERS).copied().collect();
    crate::each_backend_with(&files, |env| async move {
        let svc = service(&env);
        let mut ids = Vec::new();
        for tenant in ["org_a", "org_b"] {
            let mut cx = objectos_data::OpContext::system("test");
            cx.tenant = Some(tenant.into());
            let u = env
                .engine
                .create(&cx, "user", rec(json!({"name": tenant})))
                .await
                .unwrap();
            ids.push(id_of(&u));
        }
        let (mine, theirs) = (&ids[0], &ids[1]);
        // The test hoop's admin acts within org_a.
        let (s, b) = call(
            &svc,
            "POST",
            "/api/v1/permissions/assignments",
            "admin",
            Some(json!({"userId": mine, "permissionSet": "sales_rep"})),
        )
        .await;
        assert_eq!(s, 200, "{b}");
        // A user of another organization is answered like an id that does not exist.
        let mut answers = Vec::new();
        for (method, id) in [
            ("POST", theirs.as_str()),
            ("POST", "no-such-user"),
            ("DELETE", theirs.as_str()),
        ] {
            let (s, b) = call(
                &svc,
                method,
                "/api/v1/permissions/assignments",
                "admin",
                Some(json!({"userId": id, "role": "rep"})),
            )
            .await;
            assert_eq!(
                (s, b["code"].clone()),
                (404, json!("RECORD_NOT_FOUND")),
                "{b}"
            );
            answers.push(b["message"].as_str().unwrap().replace(id, "<id>"));
        }
        assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
        assert_eq!(
            env.authz.assignments_of(theirs, Some("org_a")),
            (Vec::<String>::new(), Vec::<String>::new())
        );
        assert_eq!(
            env.authz.assignments_of(mine, Some("org_a")).0,
            ["sales_rep"]
        );
        env
    })
    .await;
}

/// Over HTTP, a link to a record the caller cannot see and a link to no record at all get the
/// same status and the same body, byte for byte.
#[tokio::test]
async fn hidden_and_missing_link_targets_answer_byte_identically() {
    each_backend(|env| async move {
        let svc = service(&env);
        let hidden = env
            .engine
            .create(
                &user("u1", &["sales_rep"]),
                "account",
                rec(json!({"name": "A1"})),
            )
            .await
            .unwrap();
        let mut bodies = Vec::new();
        for id in [id_of(&hidden), "no-such-account".to_owned()] {
            let mut req = TestClient::post(format!("{BASE}/api/v1/data/opportunity"))
                .json(&json!({"name": "O", "stage": "open", "account": id}));
            for (name, value) in who("u2:sales_rep").headers() {
                let name = salvo::http::HeaderName::from_bytes(name.as_bytes()).unwrap();
                req = req.add_header(name, value, true);
            }
            let mut res = req.send(&svc).await;
            let status = res.status_code.map(|s| s.as_u16());
            bodies.push((status, res.take_string().await.unwrap()));
        }
        assert_eq!(bodies[0].0, Some(400), "{}", bodies[0].1);
        assert!(bodies[0].1.contains("invalid_reference"), "{}", bodies[0].1);
        assert_eq!(bodies[0], bodies[1]);
        env
    })
    .await;
}

/// A directory double answering `principal_for` as the auth plugin does: `boss` administers
/// org_a, `u9` is a plain member of it, everyone else is unknown there.
#[derive(Debug)]
struct Sessions;

#[objectos_kernel::async_trait]
impl objectos_kernel::Directory for Sessions {
    async fn user(
        &self,
        _id: &str,
    ) -> Result<Option<objectos_kernel::DirectoryUser>, objectos_kernel::PluginError> {
        Ok(None)
    }
    async fn organization(
        &self,
        _id: &str,
    ) -> Result<Option<objectos_kernel::Organization>, objectos_kernel::PluginError> {
        Ok(None)
    }
    async fn memberships(
        &self,
        _user_id: &str,
    ) -> Result<Vec<objectos_kernel::Membership>, objectos_kernel::PluginError> {
        Ok(Vec::new())
    }
    async fn membership(
        &self,
        _org: &str,
        _user_id: &str,
    ) -> Result<Option<objectos_kernel::Membership>, objectos_kernel::PluginError> {
        Ok(None)
    }
    async fn principal_for(
        &self,
        user_id: &str,
        org: Option<&str>,
    ) -> Result<Option<objectos_kernel::contracts::Caller>, objectos_kernel::PluginError> {
        use objectos_kernel::contracts::{Caller, Principal};
        if org != Some("org_a") {
            return Ok(None);
        }
        let principal = match user_id {
            "boss" => Principal::User {
                id: "boss".into(),
                roles: Vec::new(),
                permission_sets: Vec::new(),
                is_admin: true,
            },
            "u9" => Principal::user("u9"),
            _ => return Ok(None),
        };
        Ok(Some(Caller::new(principal, Some("org_a".to_owned()))))
    }
}

#[tokio::test]
async fn effective_permissions_of_another_user_are_for_administrators() {
    each_backend(|env| async move {
        let svc = service(&env);
        env.authz
            .assign(
                "u7",
                objectos_permissions::AssignmentKind::PermissionSet,
                "sales_rep",
                &crate::sys_a(),
            )
            .await
            .unwrap();
        let url = "/api/v1/permissions/effective?userId=u7&object=account";
        // Not an administrator: refused, even for a user it could ask about for itself.
        let (s, b) = call(&svc, "GET", url, "u1:sales_rep", None).await;
        assert_eq!(
            (s, b["code"].clone()),
            (403, json!("PERMISSION_DENIED")),
            "{b}"
        );
        let (s, b) = call(&svc, "GET", url, "admin", None).await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["userId"], json!("u7"));
        assert_eq!(b["organizationId"], json!("org_a"));
        assert_eq!(b["admin"], json!(false));
        assert_eq!(b["permissionSets"], json!(["sales_rep"]));
        assert_eq!(b["permissions"]["allowRead"], json!(true));
        assert_eq!(b["permissions"]["allowDelete"], json!(false));
        assert_eq!(
            b["fieldPermissions"]["secret"],
            json!({"readable": false, "editable": false})
        );
        assert_eq!(
            b["fieldPermissions"]["amount"],
            json!({"readable": true, "editable": false})
        );
        // account is private: u7 reads its own records only, not every record.
        assert!(b["rowFilter"].is_object(), "{b}");
        assert_ne!(b["rowFilter"], json!({}), "{b}");
        assert!(b["rowFilter"].to_string().contains("u7"), "{b}");
        // Without object: every object's permissions of that user.
        let (s, b) = call(
            &svc,
            "GET",
            "/api/v1/permissions/effective?userId=u7",
            "admin",
            None,
        )
        .await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["objects"]["account"]["allowEdit"], json!(true), "{b}");
        // A user without any set: nothing granted, no row filter.
        let (s, b) = call(
            &svc,
            "GET",
            "/api/v1/permissions/effective?userId=u8&object=account",
            "admin",
            None,
        )
        .await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["permissions"]["allowRead"], json!(false));
        assert_eq!(b["rowFilter"], Value::Null);
        // Bad input: stable codes.
        for (path, status, code) in [
            (
                "/api/v1/permissions/effective?userId=u7&object=nope",
                404,
                "OBJECT_NOT_FOUND",
            ),
            (
                "/api/v1/permissions/effective?userId=&object=account",
                400,
                "INVALID_QUERY",
            ),
            (
                "/api/v1/permissions/effective?userId=u7&object=",
                400,
                "INVALID_QUERY",
            ),
        ] {
            let (s, b) = call(&svc, "GET", path, "admin", None).await;
            assert_eq!((s, b["code"].clone()), (status, json!(code)), "{path}: {b}");
        }
        // The caller's own, on one object, with its row filter (no userId: anyone may ask).
        let (s, b) = call(
            &svc,
            "GET",
            "/api/v1/permissions/effective?object=account",
            "u1:sales_rep",
            None,
        )
        .await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["userId"], json!("u1"));
        assert!(b["rowFilter"].to_string().contains("u1"), "{b}");

        // With a directory: the user's principal is the one its session would have.
        env.authz.set_directory(std::sync::Arc::new(Sessions));
        let (s, b) = call(
            &svc,
            "GET",
            "/api/v1/permissions/effective?userId=boss&object=account",
            "admin",
            None,
        )
        .await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(
            (b["admin"].clone(), b["rowFilter"].clone()),
            (json!(true), json!({}))
        );
        assert_eq!(b["fieldPermissions"]["secret"]["readable"], json!(true));
        let (s, b) = call(
            &svc,
            "GET",
            "/api/v1/permissions/effective?userId=u9&object=account",
            "admin",
            None,
        )
        .await;
        assert_eq!((s, b["admin"].clone()), (200, json!(false)), "{b}");
        assert_eq!(b["permissions"]["allowRead"], json!(false));
        // Unknown, inactive or of another organization: one answer.
        let (s, b) = call(
            &svc,
            "GET",
            "/api/v1/permissions/effective?userId=stranger&object=account",
            "admin",
            None,
        )
        .await;
        assert_eq!(
            (s, b["code"].clone()),
            (404, json!("RECORD_NOT_FOUND")),
            "{b}"
        );
        env
    })
    .await;
}
