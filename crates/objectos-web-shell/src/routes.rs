//! `GET /console/...`: the embedded files, with the app's `index.html` for every other path (the
//! app routes in the browser), long-lived caching for hashed files and a strict policy.

use salvo::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, HeaderValue, IF_NONE_MATCH,
    LOCATION,
};
use salvo::http::{ResBody, StatusCode};
use salvo::prelude::*;

use std::sync::{Arc, OnceLock};

use crate::assets::{self, Asset};

/// Only this server's own files and API: no inline script or style, no other origin, no
/// framing, no plugins. `data:` images cover the small icons CSS may inline.
pub const CONSOLE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'";

/// [`CONSOLE_CSP`] with `origins` added to `connect-src` (the origins plugins contributed as
/// `objectos_http::ConnectOrigin`, already reduced to `scheme://host[:port]`), deduplicated in
/// order so the header is the same on every node.
pub fn console_csp(origins: &[String]) -> String {
    let mut connect = vec!["'self'".to_owned()];
    for o in origins {
        if !connect.contains(o) {
            connect.push(o.clone());
        }
    }
    CONSOLE_CSP.replace(
        "connect-src 'self'",
        &format!("connect-src {}", connect.join(" ")),
    )
}

/// The policy the console's answers carry: [`CONSOLE_CSP`] until the plugin's `start` has read
/// the contributed origins (every plugin's `init` has run by then), the extended one after.
#[derive(Debug, Clone, Default)]
pub struct Policy(Arc<OnceLock<HeaderValue>>);

impl Policy {
    /// Fixes the policy to [`console_csp`] of `origins`; later calls change nothing.
    pub fn set(&self, origins: &[String]) {
        // Origins are checked to host and port characters, so the value is a valid header.
        if let Ok(v) = HeaderValue::from_str(&console_csp(origins)) {
            let _ = self.0.set(v);
        }
    }

    fn header(&self) -> HeaderValue {
        self.0
            .get()
            .cloned()
            .unwrap_or(HeaderValue::from_static(CONSOLE_CSP))
    }
}

const IMMUTABLE: HeaderValue = HeaderValue::from_static("public, max-age=31536000, immutable");
const REVALIDATE: HeaderValue = HeaderValue::from_static("no-cache");

/// The console router with the default settings, relative to its mount.
///
/// (The password reset link's router is [`reset_link_router`].)
pub fn router() -> Router {
    console_router(&crate::ConsoleConfig::default().title, Policy::default())
}

/// The console router, relative to its mount: `settings.json` (what the app reads at start:
/// the `console.title`), then the embedded files with the app shell as fallback.
pub fn console_router(title: &str, policy: Policy) -> Router {
    let settings = serde_json::json!({ "title": title }).to_string();
    let files = Serve(policy.clone());
    Router::new()
        .get(files.clone())
        .push(Router::with_path("settings.json").get(Settings(settings, policy)))
        .push(Router::with_path("{**path}").get(files))
}

/// `GET /console/settings.json`: the console's settings, revalidated on every load.
struct Settings(String, Policy);

#[async_trait]
impl Handler for Settings {
    async fn handle(
        &self,
        _req: &mut Request,
        _depot: &mut Depot,
        res: &mut Response,
        _ctrl: &mut FlowCtrl,
    ) {
        let headers = res.headers_mut();
        headers.insert(CACHE_CONTROL, REVALIDATE);
        headers.insert(CONTENT_SECURITY_POLICY, self.1.header());
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        res.body(ResBody::Once(self.0.clone().into_bytes().into()));
    }
}

/// `GET /reset-password?token=…`: the auth plugin's default reset link (`auth.resetUrl`) lands
/// on the console's reset page, with the query string kept.
pub fn reset_link_router() -> Router {
    Router::new().get(reset_link)
}

#[handler]
async fn reset_link(req: &mut Request, res: &mut Response) {
    let target = match req.uri().query() {
        Some(q) if !q.is_empty() => format!("{}/reset-password?{q}", crate::MOUNT),
        _ => format!("{}/reset-password", crate::MOUNT),
    };
    // The query came in a valid request line, so it is a valid header value; an empty
    // Location is never sent.
    if let Ok(location) = HeaderValue::from_str(&target) {
        res.status_code(StatusCode::FOUND);
        res.headers_mut().insert(LOCATION, location);
        res.headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    } else {
        res.status_code(StatusCode::BAD_REQUEST);
    }
}

/// What a request path resolves to: a file, the app shell (a client-side route), or nothing (a
/// missing bundled file, which must not be answered with HTML).
pub fn resolve(path: &str) -> Option<&'static Asset> {
    let path = path.trim_start_matches('/');
    if let Some(asset) = assets::find(path) {
        return Some(asset);
    }
    let last = path.rsplit('/').next().unwrap_or("");
    if path.starts_with("assets/") || last.contains('.') {
        return None;
    }
    assets::find("index.html")
}

/// The embedded files and the app shell, with the console's policy.
#[derive(Clone)]
struct Serve(Policy);

#[async_trait]
impl Handler for Serve {
    async fn handle(
        &self,
        req: &mut Request,
        _depot: &mut Depot,
        res: &mut Response,
        _ctrl: &mut FlowCtrl,
    ) {
        serve(req, res, self.0.header());
    }
}

fn serve(req: &mut Request, res: &mut Response, policy: HeaderValue) {
    let path = req.param::<String>("path").unwrap_or_default();
    let Some(asset) = resolve(&path) else {
        // Empty body: the server's catcher answers with its JSON error shape.
        res.status_code(StatusCode::NOT_FOUND);
        return;
    };
    let headers = res.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type()));
    headers.insert(
        CACHE_CONTROL,
        if asset.is_hashed() {
            IMMUTABLE
        } else {
            REVALIDATE
        },
    );
    headers.insert(CONTENT_SECURITY_POLICY, policy);
    headers.insert(ETAG, HeaderValue::from_static(asset.etag));
    let fresh = req
        .headers()
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == asset.etag));
    if fresh {
        res.status_code(StatusCode::NOT_MODIFIED);
        return;
    }
    res.body(ResBody::Once(asset.bytes.into()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use salvo::test::{ResponseExt, TestClient};

    fn service() -> Service {
        Service::new(Router::with_path("console").push(router()))
    }

    #[test]
    fn client_routes_get_the_app_and_missing_files_do_not() {
        let index = assets::find("index.html").unwrap();
        assert_eq!(resolve(""), Some(index));
        assert_eq!(resolve("/objects/account/new"), Some(index));
        assert_eq!(resolve("assets/missing-1234.js"), None);
        assert_eq!(resolve("favicon-nope.png"), None);
    }

    #[tokio::test]
    async fn settings_carry_the_configured_title() {
        let svc = Service::new(
            Router::with_path("console").push(console_router("Acme \"Ops\"", Policy::default())),
        );
        let mut res = TestClient::get("http://127.0.0.1/console/settings.json")
            .send(&svc)
            .await;
        assert_eq!(res.status_code, Some(StatusCode::OK));
        assert_eq!(res.headers()[CACHE_CONTROL], "no-cache");
        let body: serde_json::Value =
            serde_json::from_str(&res.take_string().await.unwrap()).unwrap();
        assert_eq!(body, serde_json::json!({ "title": "Acme \"Ops\"" }));
    }

    #[tokio::test]
    async fn the_reset_link_lands_on_the_console_page_with_its_token() {
        let svc = Service::new(Router::with_path("reset-password").push(reset_link_router()));
        let res = TestClient::get("http://127.0.0.1/reset-password?token=abc%2Fdef")
            .send(&svc)
            .await;
        assert_eq!(res.status_code, Some(StatusCode::FOUND));
        assert_eq!(
            res.headers()[LOCATION],
            "/console/reset-password?token=abc%2Fdef"
        );
        let res = TestClient::get("http://127.0.0.1/reset-password")
            .send(&svc)
            .await;
        assert_eq!(res.headers()[LOCATION], "/console/reset-password");
    }

    #[tokio::test]
    async fn headers_caching_and_fallback() {
        let svc = service();
        let mut res = TestClient::get("http://127.0.0.1/console/objects/account")
            .send(&svc)
            .await;
        assert_eq!(res.status_code, Some(StatusCode::OK));
        assert_eq!(res.headers()[CACHE_CONTROL], "no-cache");
        assert_eq!(res.headers()[CONTENT_SECURITY_POLICY], CONSOLE_CSP);
        let etag = res.headers()[ETAG].to_str().unwrap().to_owned();
        assert!(
            res.take_string()
                .await
                .unwrap()
                .contains("<div id=\"root\">")
        );

        let res = TestClient::get("http://127.0.0.1/console")
            .add_header(IF_NONE_MATCH, etag, true)
            .send(&svc)
            .await;
        assert_eq!(res.status_code, Some(StatusCode::NOT_MODIFIED));

        let js = assets::all()
            .iter()
            .find(|a| a.is_hashed() && a.path.ends_with(".js"))
            .unwrap();
        let res = TestClient::get(format!("http://127.0.0.1/console/{}", js.path))
            .send(&svc)
            .await;
        assert_eq!(res.status_code, Some(StatusCode::OK));
        assert_eq!(
            res.headers()[CACHE_CONTROL],
            "public, max-age=31536000, immutable"
        );
        assert_eq!(
            res.headers()[CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );

        let res = TestClient::get("http://127.0.0.1/console/assets/gone-0000.js")
            .send(&svc)
            .await;
        assert_eq!(res.status_code, Some(StatusCode::NOT_FOUND));
    }

    #[tokio::test]
    async fn contributed_origins_join_connect_src_and_nothing_else() {
        use objectos_http::ConnectOrigin;
        // What a storage backend handing out direct upload URLs would contribute, and junk.
        let contributed = [
            "https://S3.Example.com/bucket/key?x=1",
            "http://127.0.0.1:9000",
            "https://s3.example.com",
            "https://evil.example; script-src *",
            "javascript:alert(1)",
            "ftp://files.example.com",
        ];
        let origins: Vec<String> = contributed
            .iter()
            .filter_map(|u| ConnectOrigin::new(*u).origin())
            .collect();
        assert_eq!(
            origins,
            [
                "https://s3.example.com",
                "http://127.0.0.1:9000",
                "https://s3.example.com"
            ]
        );
        let policy = Policy::default();
        let svc = Service::new(
            Router::with_path("console").push(console_router("ObjectOS", policy.clone())),
        );
        // Before the plugin's start: the strict default.
        let res = TestClient::get("http://127.0.0.1/console/")
            .send(&svc)
            .await;
        assert_eq!(res.headers()[CONTENT_SECURITY_POLICY], CONSOLE_CSP);
        policy.set(&origins);
        let expected = CONSOLE_CSP.replace(
            "connect-src 'self'",
            "connect-src 'self' https://s3.example.com http://127.0.0.1:9000",
        );
        for path in [
            "/console/",
            "/console/admin/files",
            "/console/settings.json",
        ] {
            let res = TestClient::get(format!("http://127.0.0.1{path}"))
                .send(&svc)
                .await;
            assert_eq!(
                res.headers()[CONTENT_SECURITY_POLICY],
                expected.as_str(),
                "{path}"
            );
        }
        // Nothing else of the policy moved.
        assert_eq!(console_csp(&[]), CONSOLE_CSP);
    }
}
