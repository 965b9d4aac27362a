//! Single sign-on end to end against a real OpenID Connect provider: the `oidc-provider` npm
//! package started from `tests/oidc/provider.mjs` on loopback. A small cookie-keeping client
//! plays the browser: it follows every redirect through the provider (whose login and consent
//! are programmatic) and lands on this server's callback, which runs in-process.
//!
//! Skipped, with a note, when `node` or `tests/oidc/node_modules` is missing, unless
//! `OBJECTOS_TEST_REQUIRE_OIDC=1` (CI) makes that a failure. Install with
//! `npm ci --prefix crates/plugins/objectos-auth/tests/oidc`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use objectos_auth::{AuthConfig, ClaimMapping, ProviderKind, Secret, SsoConfig, SsoProvider};
use openidconnect::reqwest;
use openidconnect::url::Url;
use salvo::test::TestClient;
use serde_json::{Value, json};

use crate::support::{BASE, H, PASSWORD, Reply, database_url, databases, test_config};

const CLIENT_ID: &str = "objectos-test";
const CLIENT_SECRET: &str = "objectos-test-secret-0123456789";

/// The provider process; killed when dropped.
struct OidcProvider {
    child: Child,
    issuer: String,
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl OidcProvider {
    /// Starts the provider with one client allowed to redirect to `callback/{id}` for each id;
    /// `None` (after printing why) when node or the fixture's packages are missing.
    fn start(provider_ids: &[&str]) -> Option<Self> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oidc");
        let required = std::env::var("OBJECTOS_TEST_REQUIRE_OIDC").is_ok_and(|v| v == "1");
        let node_ok = Command::new("node")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        let installed = dir
            .join("node_modules/oidc-provider/package.json")
            .is_file();
        if !node_ok || !installed {
            let why = if node_ok {
                "tests/oidc/node_modules is missing (run `npm ci --prefix crates/plugins/objectos-auth/tests/oidc`)"
            } else {
                "`node` is not installed"
            };
            assert!(!required, "OBJECTOS_TEST_REQUIRE_OIDC=1 but {why}");
            eprintln!("skipped: the OIDC end-to-end test needs a real provider; {why}");
            return None;
        }
        let mut cmd = Command::new("node");
        cmd.current_dir(&dir)
            .arg("provider.mjs")
            .args(["--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET])
            .args(["--ttl-seconds", "240"]);
        for id in provider_ids {
            cmd.args([
                "--redirect-uri",
                &format!("{BASE}/api/v1/auth/callback/{id}"),
            ]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node provider.mjs starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
            // Keep draining, so a later write by the provider never meets a closed pipe.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the provider prints its issuer within 30 s");
        let ready: Value =
            serde_json::from_str(line.trim()).expect("a JSON line from provider.mjs");
        let issuer = ready["issuer"].as_str().expect("issuer").to_owned();
        Some(Self { child, issuer })
    }

    fn oidc(&self, id: &str) -> SsoProvider {
        SsoProvider {
            id: id.into(),
            name: Some("Corporate login".into()),
            kind: Some(ProviderKind::Oidc),
            issuer: Some(self.issuer.clone()),
            client_id: CLIENT_ID.into(),
            client_secret: Some(Secret::new(CLIENT_SECRET)),
            ..SsoProvider::default()
        }
    }

    /// The same provider as a plain OAuth2 server with explicit endpoints (oidc-provider serves
    /// user info at `/me` to access tokens with the `openid` scope).
    fn oauth2(&self, id: &str) -> SsoProvider {
        SsoProvider {
            id: id.into(),
            kind: Some(ProviderKind::Oauth2),
            authorization_url: Some(format!("{}/auth", self.issuer)),
            token_url: Some(format!("{}/token", self.issuer)),
            user_info_url: Some(format!("{}/me", self.issuer)),
            client_id: CLIENT_ID.into(),
            client_secret: Some(Secret::new(CLIENT_SECRET)),
            scopes: Some(vec!["openid".into(), "email".into(), "profile".into()]),
            claims: Some(ClaimMapping::default()),
            ..SsoProvider::default()
        }
    }
}

fn sso_config(providers: Vec<SsoProvider>) -> AuthConfig {
    AuthConfig {
        sso: SsoConfig {
            base_url: Some(BASE.into()),
            trusted_origins: vec!["https://app.example.com".into()],
            providers,
            ..SsoConfig::default()
        },
        ..test_config()
    }
}

/// A cookie jar keyed by name (every cookie goes to every path: enough for one host each).
#[derive(Default, Clone)]
struct Jar(BTreeMap<String, String>);

impl Jar {
    fn store<'a>(&mut self, set_cookies: impl Iterator<Item = &'a str>) {
        for c in set_cookies {
            let first = c.split(';').next().unwrap_or("");
            let Some((name, value)) = first.split_once('=') else {
                continue;
            };
            let lower = c.to_ascii_lowercase();
            let expired = value.is_empty()
                || lower.contains("max-age=0")
                || lower.contains("expires=thu, 01 jan 1970");
            if expired {
                self.0.remove(name.trim());
            } else {
                self.0
                    .insert(name.trim().to_owned(), value.trim().to_owned());
            }
        }
    }

    fn header(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

/// A browser: one jar for this server, one for the provider.
#[derive(Clone)]
struct Browser {
    http: reqwest::Client,
    app: Jar,
    idp: Jar,
}

impl Browser {
    fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            app: Jar::default(),
            idp: Jar::default(),
        }
    }

    /// A request to this server with the browser's cookies; keeps the cookies it sets.
    async fn app(&mut self, h: &H, req: salvo::test::RequestBuilder) -> Reply {
        let req = if self.app.0.is_empty() {
            req
        } else {
            req.add_header("cookie", self.app.header(), true)
        };
        // What a browser sends with a write from our own page: cookie-authenticated writes
        // need it (the HTTP plugin's cross-site request check).
        let req = req.add_header("origin", BASE, true);
        let r = h.send(req).await;
        self.app.store(
            r.headers
                .get_all("set-cookie")
                .iter()
                .filter_map(|v| v.to_str().ok()),
        );
        r
    }

    /// `POST /sign-in/social`.
    async fn start(&mut self, h: &H, body: Value) -> Reply {
        self.app(
            h,
            TestClient::post(format!("{BASE}/api/v1/auth/sign-in/social")).json(&body),
        )
        .await
    }

    /// Follows the provider's redirects from `url` until one points back at this server, and
    /// returns that callback URL (not yet visited).
    async fn through_provider(&mut self, url: &str) -> String {
        let mut url = Url::parse(url).unwrap();
        for _ in 0..20 {
            let mut req = self.http.get(url.clone());
            if !self.idp.0.is_empty() {
                req = req.header("cookie", self.idp.header());
            }
            let res = req.send().await.unwrap();
            self.idp.store(
                res.headers()
                    .get_all("set-cookie")
                    .iter()
                    .filter_map(|v| v.to_str().ok()),
            );
            let status = res.status();
            let location = res
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let Some(location) = location.filter(|_| status.is_redirection()) else {
                let body = res.text().await.unwrap_or_default();
                panic!("the provider answered {status} at {url} without a redirect: {body}");
            };
            let next = url.join(&location).unwrap();
            if next.as_str().starts_with(BASE) {
                return next.to_string();
            }
            url = next;
        }
        panic!("more than 20 redirects at the provider");
    }

    /// `GET` the callback URL on this server.
    async fn callback(&mut self, h: &H, url: &str) -> Reply {
        self.app(h, TestClient::get(url)).await
    }

    /// The whole sign-in: start, provider, callback.
    async fn sign_in(&mut self, h: &H, body: Value) -> Reply {
        let start = self.start(h, body).await;
        let url = start.ok()["url"].as_str().unwrap().to_owned();
        let cb = self.through_provider(&url).await;
        self.callback(h, &cb).await
    }
}

fn query_param(url: &str, key: &str) -> Option<String> {
    Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

fn with_param(url: &str, key: &str, value: &str) -> String {
    let mut u = Url::parse(url).unwrap();
    let kept: Vec<(String, String)> = u
        .query_pairs()
        .filter(|(k, _)| k != key)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    u.query_pairs_mut()
        .clear()
        .extend_pairs(kept)
        .append_pair(key, value);
    u.to_string()
}

/// Runs a scenario against a fresh provider on every test database: SQLite, and PostgreSQL
/// (a schema of its own) when `OBJECTOS_TEST_POSTGRES_URL` is set. Skipped without node or the
/// provider's packages (see [`OidcProvider::start`]).
async fn on_every_database<F, Fut>(provider_ids: &[&str], scenario: F)
where
    F: Fn(OidcProvider, String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let Some(first) = OidcProvider::start(provider_ids) else {
        return;
    };
    let mut idp = Some(first);
    for db in databases("auth_sso").await {
        eprintln!("single sign-on on {}", db.label);
        let provider = match idp.take() {
            Some(p) => p,
            None => OidcProvider::start(provider_ids).expect("the provider started before"),
        };
        scenario(provider, db.url.clone()).await;
        db.cleanup().await;
    }
}

#[track_caller]
fn assert_redirect(r: &Reply, to: &str) {
    assert_eq!(r.status.as_u16(), 302, "body: {}", r.text);
    assert_eq!(r.header("location"), Some(to));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_sign_in_against_a_real_provider() {
    on_every_database(&["corp"], oidc_sign_in_against_a_real_provider_on).await;
}

async fn oidc_sign_in_against_a_real_provider_on(idp: OidcProvider, url: String) {
    let mut corp = idp.oidc("corp");
    corp.allow_sign_up = true;
    let h = H::with(sso_config(vec![corp]), url).await;
    let owner = h.owner().await;

    let list = h.get("/api/v1/auth/providers", None).await;
    assert_eq!(
        list.ok(),
        &json!([{"id": "corp", "name": "Corporate login", "type": "oidc"}])
    );

    // The start: the provider's authorization URL with PKCE (S256), state and nonce, and the
    // browser-binding cookie.
    let mut browser = Browser::new();
    let start = browser
        .start(&h, json!({"provider": "corp", "callbackURL": "/welcome"}))
        .await;
    assert_eq!(start.ok()["redirect"], true);
    let auth_url = start.body["url"].as_str().unwrap().to_owned();
    assert!(
        auth_url.starts_with(&format!("{}/auth?", idp.issuer)),
        "{auth_url}"
    );
    assert_eq!(
        query_param(&auth_url, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(
        query_param(&auth_url, "client_id").as_deref(),
        Some(CLIENT_ID)
    );
    assert_eq!(
        query_param(&auth_url, "redirect_uri").unwrap(),
        format!("{BASE}/api/v1/auth/callback/corp")
    );
    assert_eq!(
        query_param(&auth_url, "scope").as_deref(),
        Some("openid email profile")
    );
    for p in ["state", "nonce", "code_challenge"] {
        assert!(
            query_param(&auth_url, p).is_some_and(|v| v.len() >= 43),
            "{p}"
        );
    }
    let cookie = start.header("set-cookie").unwrap();
    assert!(cookie.starts_with("objectos.sso_state="), "{cookie}");
    for part in [
        "HttpOnly",
        "SameSite=Lax",
        "Path=/api/v1/auth",
        "Max-Age=600",
    ] {
        assert!(cookie.contains(part), "{cookie}");
    }

    // Through the provider and back: a session cookie and token, then the callbackURL.
    let callback_url = browser.through_provider(&auth_url).await;
    assert!(
        callback_url.starts_with(&format!("{BASE}/api/v1/auth/callback/corp?")),
        "{callback_url}"
    );
    let done = browser.callback(&h, &callback_url).await;
    assert_redirect(&done, "/welcome");
    // The used state's binding cookie is cleared along with the new session cookie.
    assert_eq!(callback_cookies(&done), (true, true));
    assert!(browser.app.get("objectos.sso_state").is_none());
    let token = done.header("set-auth-token").unwrap().to_owned();
    assert_eq!(
        browser.app.get("better-auth.session_token"),
        Some(token.as_str())
    );
    assert_eq!(done.header("cache-control"), Some("no-store"));

    // The session works (by cookie, as a browser sends it) and belongs to a new user with the
    // provider's verified email.
    let session = browser
        .app(
            &h,
            TestClient::get(format!("{BASE}/api/v1/auth/get-session")),
        )
        .await;
    let user = session.ok()["user"].clone();
    assert_eq!(user["email"], "ada@example.com");
    assert_eq!(user["name"], "Ada Lovelace");
    assert_eq!(user["emailVerified"], true);
    assert_eq!(user["role"], "user");
    assert!(session.body["session"]["activeOrganizationId"].is_string());
    let user_id = user["id"].as_str().unwrap().to_owned();
    let login = h.event("auth.login").await;
    let sso_login = h
        .events
        .all()
        .iter()
        .find(|e| e.name == "auth.login" && e.payload["reason"] == "sso")
        .cloned()
        .unwrap_or(login);
    assert_eq!(sso_login.payload["provider"], "corp");
    assert_eq!(sso_login.payload["newUser"], true);
    assert_eq!(sso_login.payload["userId"], user_id.as_str());
    // The owner sees the new member.
    let users = h.get("/api/v1/data/user", Some(&owner)).await;
    assert_eq!(users.ok()["records"].as_array().unwrap().len(), 2);

    // Replaying the callback (same state, same browser) is refused.
    browser
        .callback(&h, &callback_url)
        .await
        .error(400, "SSO_STATE_USED");

    // A second sign-in (the provider remembers the browser) lands on the same user.
    let again = browser.sign_in(&h, json!({"provider": "corp"})).await;
    assert_redirect(&again, "/");
    let token2 = again.header("set-auth-token").unwrap().to_owned();
    assert_ne!(token, token2);
    let s2 = h.get("/api/v1/auth/get-session", Some(&token2)).await;
    assert_eq!(s2.ok()["user"]["id"], user_id.as_str());
    // ... and so does a fresh browser that signs in at the provider again.
    let mut other = Browser::new();
    let third = other.sign_in(&h, json!({"provider": "corp"})).await;
    let token3 = third.header("set-auth-token").unwrap().to_owned();
    let s3 = h.get("/api/v1/auth/get-session", Some(&token3)).await;
    assert_eq!(s3.ok()["user"]["id"], user_id.as_str());

    // A tampered state is refused, and does not burn the real one.
    let start = browser.start(&h, json!({"provider": "corp"})).await;
    let cb = browser
        .through_provider(start.ok()["url"].as_str().unwrap())
        .await;
    let state = query_param(&cb, "state").unwrap();
    let mut tampered = state.clone().into_bytes();
    tampered[0] = if tampered[0] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    browser
        .callback(&h, &with_param(&cb, "state", &tampered))
        .await
        .error(400, "SSO_INVALID_STATE");
    browser
        .callback(&h, &with_param(&cb, "state", ""))
        .await
        .error(400, "SSO_INVALID_STATE");
    // The state is bound to the browser that started the sign-in: another one cannot use it.
    let mut attacker = Browser::new();
    attacker
        .callback(&h, &cb)
        .await
        .error(400, "SSO_STATE_MISMATCH");
    assert_redirect(&browser.callback(&h, &cb).await, "/");

    // A code injected into another flow fails at the provider: PKCE binds it to its own flow.
    let start_a = browser.start(&h, json!({"provider": "corp"})).await;
    let cb_a = browser
        .through_provider(start_a.ok()["url"].as_str().unwrap())
        .await;
    let start_b = browser.start(&h, json!({"provider": "corp"})).await;
    let cb_b = browser
        .through_provider(start_b.ok()["url"].as_str().unwrap())
        .await;
    let code_a = query_param(&cb_a, "code").unwrap();
    browser
        .callback(&h, &with_param(&cb_b, "code", &code_a))
        .await
        .error(400, "SSO_TOKEN_EXCHANGE_FAILED");

    // Bad redirect targets are refused before anything is stored or sent to the provider.
    for bad in [
        "https://evil.example.com/",
        "//evil.example.com/x",
        "/\\evil.example.com",
        "javascript:alert(1)",
        "http://127.0.0.1:5800.evil.com/",
    ] {
        browser
            .start(&h, json!({"provider": "corp", "callbackURL": bad}))
            .await
            .error(400, "SSO_INVALID_REDIRECT");
    }
    browser
        .start(
            &h,
            json!({"provider": "corp", "callbackURL": "/", "errorCallbackURL": "https://evil.example.com/"}),
        )
        .await
        .error(400, "SSO_INVALID_REDIRECT");
    // This server's origin and the trusted origins are fine.
    let trusted = browser
        .sign_in(
            &h,
            json!({"provider": "corp", "callbackURL": "https://app.example.com/home?x=1"}),
        )
        .await;
    assert_redirect(&trusted, "https://app.example.com/home?x=1");
    let own = browser
        .sign_in(
            &h,
            json!({"provider": "corp", "callbackURL": format!("{BASE}/app")}),
        )
        .await;
    assert_redirect(&own, &format!("{BASE}/app"));

    // An error from the provider (`prompt=none` without a provider session answers
    // `login_required`): JSON without errorCallbackURL, a redirect with it.
    for (body, expect_redirect) in [
        (json!({"provider": "corp"}), None),
        (
            json!({"provider": "corp", "errorCallbackURL": "/login?from=sso"}),
            Some("/login?from=sso&error=SSO_PROVIDER_ERROR"),
        ),
    ] {
        let mut fresh = Browser::new();
        let start = fresh.start(&h, body).await;
        let url = with_param(start.ok()["url"].as_str().unwrap(), "prompt", "none");
        let cb = fresh.through_provider(&url).await;
        assert_eq!(query_param(&cb, "error").as_deref(), Some("login_required"));
        let r = fresh.callback(&h, &cb).await;
        match expect_redirect {
            None => {
                let body = r.error(400, "SSO_PROVIDER_ERROR");
                assert!(body["message"].as_str().unwrap().contains("login_required"));
            }
            Some(to) => assert_redirect(&r, to),
        }
    }
    let failed = h
        .events
        .all()
        .iter()
        .any(|e| e.name == "auth.login_failed" && e.payload["reason"] == "sso_provider_error");
    assert!(failed, "{:?}", h.event_names());

    // An expired state is refused (the server's clock moves past stateMinutes).
    let start = browser.start(&h, json!({"provider": "corp"})).await;
    let cb = browser
        .through_provider(start.ok()["url"].as_str().unwrap())
        .await;
    h.advance_minutes(11);
    browser
        .callback(&h, &cb)
        .await
        .error(400, "SSO_INVALID_STATE");

    // A provider account without a verified email cannot create a user.
    let mut bob = Browser::new();
    let start = bob.start(&h, json!({"provider": "corp"})).await;
    let url = with_param(start.ok()["url"].as_str().unwrap(), "login_hint", "bob");
    let cb = bob.through_provider(&url).await;
    bob.callback(&h, &cb)
        .await
        .error(403, "SSO_EMAIL_NOT_VERIFIED");

    // Unknown providers, and nothing secret in any event.
    browser
        .start(&h, json!({"provider": "nope"}))
        .await
        .error(404, "SSO_UNKNOWN_PROVIDER");
    h.get("/api/v1/auth/callback/nope?state=x&code=y", None)
        .await
        .error(404, "SSO_UNKNOWN_PROVIDER");
    let text = serde_json::to_string(
        &*h.events
            .all()
            .iter()
            .map(|e| e.payload.clone())
            .collect::<Vec<_>>(),
    )
    .unwrap();
    assert!(!text.contains(CLIENT_SECRET) && !text.contains(&token) && !text.contains(&code_a));
    h.stop().await;
}

/// The session cookie a callback set, and whether it cleared the binding cookie.
fn callback_cookies(r: &Reply) -> (bool, bool) {
    let all: Vec<&str> = r
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let session = all
        .iter()
        .any(|c| c.starts_with("better-auth.session_token=") && !c.contains("Max-Age=0"));
    let cleared = all
        .iter()
        .any(|c| c.contains("objectos.sso_state=;") && c.contains("Max-Age=0"));
    (session, cleared)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth2_provider_and_the_linking_policy() {
    on_every_database(
        &["social", "corp"],
        oauth2_provider_and_the_linking_policy_on,
    )
    .await;
}

async fn oauth2_provider_and_the_linking_policy_on(idp: OidcProvider, url: String) {
    // `social`: plain OAuth2 with user info, may link by email but not create users.
    let mut social = idp.oauth2("social");
    social.link_by_email = true;
    // `corp`: OIDC, may create users but not link to existing ones.
    let mut corp = idp.oidc("corp");
    corp.allow_sign_up = true;
    let h = H::with(sso_config(vec![social, corp]), url).await;

    // No owner yet: a provider may not create the first account (it would become the owner).
    let mut browser = Browser::new();
    browser
        .sign_in(&h, json!({"provider": "corp"}))
        .await
        .error(403, "SSO_OWNER_REQUIRED");
    assert!(
        !h.get("/api/v1/auth/bootstrap-status", None).await.ok()["hasOwner"]
            .as_bool()
            .unwrap()
    );

    // No account with the provider's email, and `social` may not sign up: refused with the
    // same answer as for an existing account it may not link to (below).
    let unknown = browser.sign_in(&h, json!({"provider": "social"})).await;
    let unknown = unknown.error(403, "SSO_ACCOUNT_NOT_LINKED").clone();

    // The owner signs up by email with the address the provider verifies.
    let r = h.sign_up("ada@example.com", PASSWORD).await;
    let owner_id = r.ok()["user"]["id"].as_str().unwrap().to_owned();

    // `linkByEmail` never links to an administrator, an account with a password or TOTP: the
    // answer is the very one an unknown email gets, so it reveals nothing.
    let refused = browser.sign_in(&h, json!({"provider": "social"})).await;
    assert_eq!(refused.error(403, "SSO_ACCOUNT_NOT_LINKED"), &unknown);
    let refused = browser.sign_in(&h, json!({"provider": "corp"})).await;
    assert_eq!(refused.error(403, "SSO_ACCOUNT_NOT_LINKED"), &unknown);
    assert!(!h.event_names().iter().any(|n| n == "auth.identity_linked"));

    // The owner links `social` while signed in (`link-social`), through the OAuth2 code flow and
    // user info; the callback keeps the session and issues none.
    let mut owner = Browser::new();
    owner
        .app(
            &h,
            TestClient::post(format!("{BASE}/api/v1/auth/sign-in/email"))
                .json(&json!({"email": "ada@example.com", "password": PASSWORD})),
        )
        .await
        .ok();
    let owner_session = owner
        .app
        .get("better-auth.session_token")
        .unwrap()
        .to_owned();
    h.post(
        "/api/v1/auth/link-social",
        None,
        &json!({"provider": "social"}),
    )
    .await
    .error(401, "UNAUTHENTICATED");
    let start = owner
        .app(
            &h,
            TestClient::post(format!("{BASE}/api/v1/auth/link-social"))
                .json(&json!({"provider": "social", "callbackURL": "/settings"})),
        )
        .await;
    let auth_url = start.ok()["url"].as_str().unwrap().to_owned();
    assert_eq!(
        query_param(&auth_url, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert!(query_param(&auth_url, "nonce").is_none());
    let cb = owner.through_provider(&auth_url).await;
    // Finished in the same browser but without the session that started it: refused.
    let mut no_session = owner.clone();
    no_session.app.0.remove("better-auth.session_token");
    no_session
        .callback(&h, &cb)
        .await
        .error(400, "SSO_STATE_MISMATCH");
    let start = owner
        .app(
            &h,
            TestClient::post(format!("{BASE}/api/v1/auth/link-social"))
                .json(&json!({"provider": "social", "callbackURL": "/settings"})),
        )
        .await;
    let cb = owner
        .through_provider(start.ok()["url"].as_str().unwrap())
        .await;
    let done = owner.callback(&h, &cb).await;
    assert_redirect(&done, "/settings");
    assert!(done.header("set-auth-token").is_none());
    assert_eq!(callback_cookies(&done), (false, true));
    assert_eq!(
        owner.app.get("better-auth.session_token"),
        Some(owner_session.as_str())
    );
    let linked = h.event("auth.identity_linked").await;
    assert_eq!(linked.payload["provider"], "social");
    assert_eq!(linked.payload["via"], "link-social");
    assert_eq!(linked.payload["userId"], owner_id.as_str());

    // Once linked, the identity signs in directly (a fresh browser), and the password still works.
    let mut fresh = Browser::new();
    let again = fresh.sign_in(&h, json!({"provider": "social"})).await;
    assert_eq!(callback_cookies(&again), (true, true));
    let token2 = again.header("set-auth-token").unwrap().to_owned();
    let s = h.get("/api/v1/auth/get-session", Some(&token2)).await;
    assert_eq!(s.ok()["user"]["id"], owner_id.as_str());
    assert_eq!(s.body["user"]["role"], "admin");
    h.sign_in("ada@example.com", PASSWORD).await.ok();

    // One identity per provider and account: another subject (bob) at `social` is refused.
    let start = owner
        .app(
            &h,
            TestClient::post(format!("{BASE}/api/v1/auth/link-social"))
                .json(&json!({"provider": "social"})),
        )
        .await;
    owner.idp = Jar::default();
    let url = with_param(start.ok()["url"].as_str().unwrap(), "login_hint", "bob");
    let cb = owner.through_provider(&url).await;
    owner
        .callback(&h, &cb)
        .await
        .error(409, "SSO_PROVIDER_ALREADY_LINKED");
    assert_eq!(
        h.events
            .all()
            .iter()
            .filter(|e| e.name == "auth.identity_linked")
            .count(),
        1
    );

    // The callback also answers at better-auth's generic-OAuth path.
    let start = fresh.start(&h, json!({"provider": "social"})).await;
    let cb = fresh
        .through_provider(start.ok()["url"].as_str().unwrap())
        .await;
    let alt = cb.replace("/api/v1/auth/callback/", "/api/v1/auth/oauth2/callback/");
    assert_redirect(&fresh.callback(&h, &alt).await, "/");

    // A state started for one provider cannot finish at another.
    let start = fresh.start(&h, json!({"provider": "social"})).await;
    let cb = fresh
        .through_provider(start.ok()["url"].as_str().unwrap())
        .await;
    let wrong = cb.replace("/callback/social", "/callback/corp");
    fresh
        .callback(&h, &wrong)
        .await
        .error(400, "SSO_INVALID_STATE");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_links_only_plain_accounts_in_allowed_domains() {
    on_every_database(
        &["corp", "social", "partner"],
        email_links_only_plain_accounts_in_allowed_domains_on,
    )
    .await;
}

async fn email_links_only_plain_accounts_in_allowed_domains_on(idp: OidcProvider, url: String) {
    let mut corp = idp.oidc("corp");
    corp.allow_sign_up = true;
    corp.allowed_email_domains = Some(vec!["Example.com".into()]);
    let mut social = idp.oauth2("social");
    social.link_by_email = true;
    social.allowed_email_domains = Some(vec!["example.com".into()]);
    let mut partner = idp.oauth2("partner");
    partner.link_by_email = true;
    partner.allow_sign_up = true;
    partner.allowed_email_domains = Some(vec!["partner.example.org".into()]);
    let h = H::with(sso_config(vec![corp, social, partner]), url).await;
    h.owner().await;

    // `corp` creates ada (no password, a plain member): her domain is allowed.
    let mut browser = Browser::new();
    let r = browser.sign_in(&h, json!({"provider": "corp"})).await;
    let token = r.header("set-auth-token").unwrap().to_owned();
    let ada = h.get("/api/v1/auth/get-session", Some(&token)).await.ok()["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // `partner` admits another domain only: neither a link nor a sign-up.
    browser
        .sign_in(&h, json!({"provider": "partner"}))
        .await
        .error(403, "SSO_EMAIL_DOMAIN_NOT_ALLOWED");

    // `social` links by the verified email to ada's plain account.
    let r = browser.sign_in(&h, json!({"provider": "social"})).await;
    let token = r.header("set-auth-token").unwrap().to_owned();
    let s = h.get("/api/v1/auth/get-session", Some(&token)).await;
    assert_eq!(s.ok()["user"]["id"], ada.as_str());
    let linked = h.event("auth.identity_linked").await;
    assert_eq!(linked.payload["via"], "email");
    assert_eq!(linked.payload["userId"], ada.as_str());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_callbacks_and_forged_answers() {
    on_every_database(&["corp"], racing_callbacks_and_forged_answers_on).await;
}

async fn racing_callbacks_and_forged_answers_on(idp: OidcProvider, url: String) {
    let mut corp = idp.oidc("corp");
    corp.allow_sign_up = true;
    let mut config = sso_config(vec![corp]);
    config.cookie_secure = true;
    let h = H::with(config, url).await;
    h.owner().await;

    // With cookieSecure the binding cookie is `__Host-` (Secure, Path=/), and only that name counts.
    let mut browser = Browser::new();
    let start = browser.start(&h, json!({"provider": "corp"})).await;
    let cookie = start.header("set-cookie").unwrap().to_owned();
    assert!(cookie.starts_with("__Host-objectos.sso_state="), "{cookie}");
    for part in ["Path=/;", "Secure", "HttpOnly", "SameSite=Lax"] {
        assert!(cookie.contains(part), "{cookie}");
    }
    let binding = browser
        .app
        .get("__Host-objectos.sso_state")
        .unwrap()
        .to_owned();
    let cb = browser
        .through_provider(start.ok()["url"].as_str().unwrap())
        .await;
    // A planted cookie without the prefix (what a sibling subdomain could set) binds nothing.
    let tossed = h
        .send(TestClient::get(&cb).add_header(
            "cookie",
            format!("objectos.sso_state={binding}"),
            true,
        ))
        .await;
    tossed.error(400, "SSO_STATE_MISMATCH");

    // Four callbacks race on one state: exactly one session.
    let logins = || {
        h.events
            .all()
            .iter()
            .filter(|e| e.name == "auth.login" && e.payload["reason"] == "sso")
            .count()
    };
    let before = logins();
    let header = browser.app.header();
    let send = || h.send(TestClient::get(&cb).add_header("cookie", header.clone(), true));
    let (a, b, c, d) = tokio::join!(send(), send(), send(), send());
    let replies = [a, b, c, d];
    let won: Vec<&Reply> = replies
        .iter()
        .filter(|r| r.status.as_u16() == 302)
        .collect();
    assert_eq!(
        won.len(),
        1,
        "{:?}",
        replies.iter().map(|r| &r.text).collect::<Vec<_>>()
    );
    assert!(won[0].header("set-auth-token").is_some());
    let cleared = won[0]
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|c| {
            c.starts_with("__Host-objectos.sso_state=;")
                && c.contains("Max-Age=0")
                && c.contains("Path=/;")
        });
    assert!(cleared);
    for r in replies.iter().filter(|r| r.status.as_u16() != 302) {
        r.error(400, "SSO_STATE_USED");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(logins(), before + 1);

    // A nonce other than the flow's (the provider signs what it was sent) fails ID token
    // verification.
    let mut browser = Browser::new();
    let start = browser.start(&h, json!({"provider": "corp"})).await;
    let url = with_param(
        start.ok()["url"].as_str().unwrap(),
        "nonce",
        "forged-nonce-0123456789",
    );
    let cb = browser.through_provider(&url).await;
    let r = browser.callback(&h, &cb).await;
    let body = r.error(400, "SSO_INVALID_ID_TOKEN");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("nonce"),
        "{body}"
    );

    // An RFC 9207 `iss` naming another issuer (a mix-up) is refused before the code is redeemed.
    let start = browser.start(&h, json!({"provider": "corp"})).await;
    let cb = browser
        .through_provider(start.ok()["url"].as_str().unwrap())
        .await;
    browser
        .callback(&h, &with_param(&cb, "iss", "https://evil.example.com"))
        .await
        .error(400, "SSO_PROVIDER_ERROR");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_provider_answers_a_generic_502() {
    // Nothing listens on port 9 of loopback (discard), so discovery fails at once.
    let p = SsoProvider {
        id: "down".into(),
        kind: Some(ProviderKind::Oidc),
        issuer: Some("http://127.0.0.1:9".into()),
        client_id: CLIENT_ID.into(),
        ..SsoProvider::default()
    };
    let h = H::with(sso_config(vec![p]), database_url()).await;
    for _ in 0..2 {
        let r = h
            .post(
                "/api/v1/auth/sign-in/social",
                None,
                &json!({"provider": "down"}),
            )
            .await;
        let body = r.error(502, "SSO_PROVIDER_UNAVAILABLE");
        let msg = body["message"].as_str().unwrap();
        assert!(
            !msg.contains("127.0.0.1") && !msg.to_lowercase().contains("connect"),
            "{msg}"
        );
    }
    h.stop().await;
}

#[test]
fn sso_configuration_errors_name_the_key() {
    let bad = |sso: Value| {
        let cfg: AuthConfig = serde_json::from_value(json!({ "sso": sso })).unwrap();
        cfg.validate().unwrap_err().to_string()
    };
    let e = bad(json!({"providers": [{"id": "corp", "kind": "oidc", "clientId": "x"}]}));
    assert!(e.contains("sso.baseUrl: required"), "{e}");
    assert!(
        e.contains("sso.providers[0].issuer: required for kind `oidc`"),
        "{e}"
    );
    let e = bad(json!({
        "baseUrl": "https://crm.example.com",
        "providers": [
            {"id": "Git Hub", "kind": "oauth2", "clientId": "", "clientSecret": "a", "clientSecretEnv": "B"},
            {"id": "corp", "kind": "oidc", "issuer": "ftp://idp", "clientId": "x",
             "clientSecretEnv": "OBJECTOS_TEST_SURELY_UNSET_SECRET", "tokenUrl": "https://idp/token"}
        ]
    }));
    for part in [
        "sso.providers[0].id: `Git Hub` must be",
        "sso.providers[0].clientId: required",
        "sso.providers[0]: clientSecret and clientSecretEnv: give one, not both",
        "sso.providers[0].authorizationUrl: required for kind `oauth2`",
        "sso.providers[0].userInfoUrl: required for kind `oauth2`",
        "sso.providers[1].issuer: `ftp://idp` must be an http or https URL",
        "sso.providers[1]: clientSecretEnv: the environment variable `OBJECTOS_TEST_SURELY_UNSET_SECRET` is not set",
        "sso.providers[1].tokenUrl: not used with kind `oidc`",
    ] {
        assert!(e.contains(part), "missing {part:?} in {e}");
    }
    let e = bad(json!({"trustedOrigins": ["https://app.example.com/path"], "stateMinutes": 0}));
    assert!(
        e.contains("sso.trustedOrigins[0]: `https://app.example.com/path` must be an origin"),
        "{e}"
    );
    assert!(e.contains("sso.stateMinutes: must be at least 1"), "{e}");
    // Provider endpoints need https, except on loopback; allowedEmailDomains holds domains.
    let e = bad(json!({
        "baseUrl": "https://crm.example.com",
        "providers": [
            {"id": "a", "kind": "oidc", "issuer": "http://idp.example.com", "clientId": "x",
             "allowedEmailDomains": ["ok.example.com", "@bad", "nodot"]},
            {"id": "b", "kind": "oauth2", "clientId": "x",
             "authorizationUrl": "http://localhost:8080/auth", "tokenUrl": "http://[::1]:8080/token",
             "userInfoUrl": "http://10.0.0.1/me", "allowedEmailDomains": []},
            {"id": "c", "kind": "oidc", "issuer": "http://127.0.0.1:8080", "clientId": "x"}
        ]
    }));
    for part in [
        "sso.providers[0].issuer: `http://idp.example.com` must use https",
        "sso.providers[0].allowedEmailDomains: `@bad` is not a domain",
        "sso.providers[1].userInfoUrl: `http://10.0.0.1/me` must use https",
        "sso.providers[1].allowedEmailDomains: empty",
    ] {
        assert!(e.contains(part), "missing {part:?} in {e}");
    }
    for ok in ["authorizationUrl", "tokenUrl", "providers[2]"] {
        assert!(
            !e.contains(&format!("sso.providers[1].{ok}")) && !e.contains("sso.providers[2]"),
            "{ok}: {e}"
        );
    }
    // The secret never shows in Debug output of the configuration.
    let cfg: AuthConfig =
        serde_json::from_value(json!({"sso": {"baseUrl": "https://crm.example.com",
        "providers": [{"id": "corp", "kind": "oidc", "issuer": "https://idp.example.com",
                       "clientId": "x", "clientSecret": "hunter2-secret"}]}}))
        .unwrap();
    cfg.validate().unwrap();
    assert!(!format!("{cfg:?}").contains("hunter2-secret"));
    assert!(
        !serde_json::to_string(&cfg)
            .unwrap()
            .contains("hunter2-secret")
    );
    // A secret from the environment (PATH is set wherever tests run).
    let mut p = cfg.sso.providers[0].clone();
    p.client_secret = None;
    p.client_secret_env = Some("PATH".into());
    assert!(p.resolve_secret().unwrap().is_some());
    // Unknown keys are refused by name.
    let e = serde_json::from_value::<AuthConfig>(
        json!({"sso": {"providers": [{"id": "a", "clientSecert": "x"}]}}),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("clientSecert"), "{e}");
}
