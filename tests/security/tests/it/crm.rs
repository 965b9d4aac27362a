//! Issue #5's "done means": a new operator serves the CRM preset with auth on, signs up as the
//! first user, creates a second user with the preset's restricted `sales_rep` set, and the
//! restrictions hold on every route the second user can call.

use serde_json::{Value, json};

use crate::support::{Backend, Server, crm_preset, no_leak, refused, same_as_missing};
use crate::world::id;

/// The operator's `objectos.yml`: the defaults (public sign-up closed after the first account;
/// the owner creates the others), argon2 cheapened for debug builds.
const CRM_CONFIG: &str = "\
auth:
  argon2: { memoryKib: 8192, iterations: 1, parallelism: 1 }
";

pub(crate) async fn run(b: &Backend) {
    let srv = Server::start(b, &crm_preset(), CRM_CONFIG).await;
    let api = srv.api;
    let label = srv.label;
    let r = api.get("/api/v1/auth/bootstrap-status", None).await;
    assert_eq!(r.body["hasOwner"], false, "[{label}] {}", r.text);
    let owner = srv.sign_up("founder", "Founder-Passw0rd-n04").await;
    let r = api.get("/api/v1/auth/bootstrap-status", None).await;
    assert_eq!(r.body["hasOwner"], true, "[{label}] {}", r.text);
    // Translations (issue #14): the i18n routes answer anonymous callers (declared public by
    // their plugin), while metadata itself stays closed and reads German when asked.
    let r = api.get("/api/v1/i18n/labels/account/de", None).await;
    assert_eq!(r.status, 200, "[{label}] {}", r.text);
    assert_eq!(
        r.body["data"]["labels"]["type"]["options"]["customer"], "Kunde",
        "[{label}] {}",
        r.text
    );
    assert_eq!(api.get("/api/v1/i18n/locales", None).await.status, 200);
    assert_eq!(
        api.get("/api/v1/meta/object/account", None).await.status,
        401
    );
    let bearer = format!("Bearer {}", owner.token);
    let r = api
        .send(
            "GET",
            "/api/v1/meta/object/account",
            &[
                ("authorization", &bearer),
                ("accept-language", "de-CH, en;q=0.5"),
            ],
            None,
        )
        .await;
    assert_eq!(r.status, 200, "[{label}] {}", r.text);
    assert_eq!(
        r.body["item"]["pluralLabel"], "Firmen",
        "[{label}] {}",
        r.text
    );
    // Nobody else can sign up; the owner creates the second user.
    let r = api
        .post(
            "/api/v1/auth/sign-up/email",
            None,
            json!({"email": "seller@example.com", "password": "Seller-Passw0rd-o15", "name": "seller"}),
        )
        .await;
    refused(&r, 403, "SIGN_UP_DISABLED");
    let rep = srv
        .create_user(&owner, "seller", "Seller-Passw0rd-o15")
        .await;
    // The new user is no administrator: it cannot create users or see the user list.
    let r = api
        .post(
            "/api/v1/auth/admin/create-user",
            rep.t(),
            json!({"email": "third@example.com", "password": "Third-Passw0rd-p26"}),
        )
        .await;
    refused(&r, 403, "PERMISSION_DENIED");
    refused(
        &api.get("/api/v1/auth/admin/list-users", rep.t()).await,
        403,
        "PERMISSION_DENIED",
    );
    let r = api
        .post(
            "/api/v1/permissions/assignments",
            owner.t(),
            json!({"userId": rep.id, "permissionSet": "sales_rep"}),
        )
        .await;
    assert_eq!(r.status, 200, "[{label}] {}", r.text);
    assert_eq!(r.body["permissionSets"], json!(["sales_rep"]));

    // The owner's data.
    let r = api
        .post(
            "/api/v1/data/account",
            owner.t(),
            json!({"name": "Globex", "annual_revenue": 5000000, "industry": "technology"}),
        )
        .await;
    let globex = id(&r);
    let r = api
        .post(
            "/api/v1/data/opportunity",
            owner.t(),
            json!({"name": "Founder Opp 9a1", "account": globex, "amount": 250000}),
        )
        .await;
    let owner_opp = id(&r);

    // Before the assignment mattered: a signed-in user without it gets 403, anonymous 401.
    refused(
        &api.get("/api/v1/data/account", None).await,
        401,
        "UNAUTHENTICATED",
    );

    // Accounts: readable, editable, but annual_revenue is read-only and nothing is deletable.
    let t = rep.t();
    let r = api.get("/api/v1/data/account", t).await;
    let accounts = r.records();
    assert_eq!(accounts.len(), 1, "[{label}] {}", r.text);
    assert_eq!(accounts[0]["annual_revenue"].as_f64(), Some(5_000_000.0));
    let path = format!("/api/v1/data/account/{globex}");
    let r = api.patch(&path, t, json!({"annual_revenue": 1})).await;
    let message = refused(&r, 403, "PERMISSION_DENIED");
    assert!(message.contains("annual_revenue"), "[{label}] {message}");
    let r = api.patch(&path, t, json!({"phone": "+1 555 0100"})).await;
    assert_eq!(r.status, 200, "[{label}] {}", r.text);
    refused(&api.delete(&path, t).await, 403, "PERMISSION_DENIED");

    // Opportunities: the rep's own only (row-level security), in every read.
    let r = api
        .post(
            "/api/v1/data/opportunity",
            t,
            json!({"name": "Seller Opp", "account": globex, "amount": 1000}),
        )
        .await;
    let mine = id(&r);
    assert_eq!(r.record()["owner_id"], json!(rep.id), "[{label}]");
    let r = api.get("/api/v1/data/opportunity?count=true", t).await;
    assert_eq!(r.names(), ["Seller Opp"], "[{label}]");
    assert_eq!(r.body["total"], 1, "[{label}] {}", r.text);
    no_leak(&r, &["Founder Opp 9a1"]);
    let r = api
        .post(
            "/api/v1/data/opportunity/query",
            t,
            json!({"aggregations": [{"function": "sum", "field": "amount", "alias": "s"}]}),
        )
        .await;
    assert_eq!(r.records()[0]["s"].as_f64(), Some(1000.0), "[{label}]");
    let opp = format!("/api/v1/data/opportunity/{owner_opp}");
    refused(&api.get(&opp, t).await, 404, "RECORD_NOT_FOUND");
    refused(
        &api.patch(&opp, t, json!({"amount": 1})).await,
        404,
        "RECORD_NOT_FOUND",
    );
    refused(&api.delete(&opp, t).await, 404, "RECORD_NOT_FOUND");
    // No allowDelete on opportunities: not even the rep's own.
    refused(
        &api.delete(&format!("/api/v1/data/opportunity/{mine}"), t)
            .await,
        403,
        "PERMISSION_DENIED",
    );

    // Objects sales_rep does not grant: users (and their emails), organizations, roles.
    for object in ["user", "organization", "role"] {
        let r = api.get(&format!("/api/v1/data/{object}"), t).await;
        refused(&r, 403, "PERMISSION_DENIED");
        no_leak(&r, &[&owner.email]);
    }
    // Administration: assignments and the audit log are for administrators.
    let r = api
        .post(
            "/api/v1/permissions/assignments",
            t,
            json!({"userId": rep.id, "permissionSet": "sales_rep"}),
        )
        .await;
    refused(&r, 403, "PERMISSION_DENIED");
    refused(
        &api.get("/api/v1/audit/events", t).await,
        403,
        "PERMISSION_DENIED",
    );
    // What the rep is told about itself matches what was enforced.
    let r = api.get("/api/v1/auth/permissions/effective", t).await;
    assert_eq!(r.status, 200, "[{label}] {}", r.text);
    assert_eq!(r.body["objects"]["account"]["allowDelete"], false);
    assert_eq!(r.body["objects"]["account"]["allowRead"], true);
    let r = api.get("/api/v1/auth/permissions/account", t).await;
    assert_eq!(
        r.body["fieldPermissions"]["annual_revenue"],
        json!({"readable": true, "editable": false}),
        "[{label}] {}",
        r.text
    );
    let r = api
        .post(
            "/api/v1/auth/check",
            t,
            json!({"object": "opportunity", "action": "read", "recordId": owner_opp}),
        )
        .await;
    assert_eq!(r.body["allowed"], false, "[{label}] {}", r.text);
    // Metadata stays readable to signed-in users (field names are not secrets).
    let r = api.get("/api/v1/meta/object/account", t).await;
    assert_eq!(r.status, 200, "[{label}] {}", r.text);

    // The owner still sees everything, unchanged by the refused requests.
    let r = api.get(&opp, owner.t()).await;
    assert_eq!(r.record()["amount"].as_f64(), Some(250_000.0));
    let r = api.get(&path, owner.t()).await;
    let record: Value = r.record();
    assert_eq!(record["annual_revenue"].as_f64(), Some(5_000_000.0));
    srv.stop();
}

/// The `permissions:` section of `objectos.yml` reaches the plugin: with `defaultSharing:
/// private`, the CRM's contacts (no `sharingModel` of their own) are the owner's alone, where the
/// default (`public_read_write`, the run above) shows them to every user allowed to read them.
pub(crate) async fn permissions_section(b: &Backend) {
    let mut seen = Vec::new();
    for (config, rep_sees) in [
        (CRM_CONFIG.to_owned(), true),
        (
            format!("{CRM_CONFIG}permissions:\n  defaultSharing: private\n"),
            false,
        ),
    ] {
        let srv = Server::start(b, &crm_preset(), &config).await;
        let api = srv.api;
        let label = srv.label;
        let owner = srv.sign_up("founder", "Founder-Passw0rd-n04").await;
        let rep = srv
            .create_user(&owner, "seller", "Seller-Passw0rd-o15")
            .await;
        let r = api
            .post(
                "/api/v1/permissions/assignments",
                owner.t(),
                json!({"userId": rep.id, "permissionSet": "sales_rep"}),
            )
            .await;
        assert_eq!(r.status, 200, "[{label}] {}", r.text);
        let r = api
            .post(
                "/api/v1/data/contact",
                owner.t(),
                json!({"name": "Founder Contact 6b2"}),
            )
            .await;
        let contact = id(&r);
        let r = api.get("/api/v1/data/contact?count=true", rep.t()).await;
        assert_eq!(
            r.body["total"],
            json!(u64::from(rep_sees)),
            "[{label}] {}",
            r.text
        );
        let path = format!("/api/v1/data/contact/{contact}");
        let r = api.get(&path, rep.t()).await;
        if rep_sees {
            assert_eq!(r.status, 200, "[{label}] {}", r.text);
        } else {
            let missing = "00000000-0000-0000-0000-000000000000";
            let m = api
                .get(&format!("/api/v1/data/contact/{missing}"), rep.t())
                .await;
            same_as_missing(&r, &m, &contact, missing);
            no_leak(&r, &["Founder Contact 6b2"]);
        }
        seen.push(rep_sees);
        srv.stop();
    }
    assert_eq!(seen, [true, false]);
}

/// A bad `permissions:` section stops the server before it listens, with the file, line and key.
pub(crate) fn bad_permissions_section_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("objectos.yml"),
        "permissions:\n  defaultSharing: everyone\n  guestset: guest\n",
    )
    .unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_objectos-under-test"));
    for (k, _) in std::env::vars() {
        if k.starts_with("OBJECTOS_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .current_dir(dir.path())
        .arg("serve")
        .arg(crm_preset())
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("listening"));
    for needle in [
        "objectos.yml:2: permissions.defaultSharing: unknown sharing model `everyone`",
        "objectos.yml:3: permissions.guestset: unknown key; known keys here: defaultSharing, guestSet",
    ] {
        assert!(stderr.contains(needle), "missing {needle:?} in:\n{stderr}");
    }
}
