//! `GET /console/...`: the embedded files, with the app's `index.html` for every other path (the
//! app routes in the browser), long-lived caching for hashed files and a strict policy.

use salvo::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, HeaderValue, IF_NONE_MATCH,
};
use salvo::http::{ResBody, StatusCode};
use salvo::prelude::*;

use crate::assets::{self, Asset};

/// Only this server's own files and API: no inline script or style, no other origin, no
/// framing, no plugins. `data:` images cover the small icons CSS may inline.
pub const CONSOLE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'";

const IMMUTABLE: HeaderValue = HeaderValue::from_static("public, max-age=31536000, immutable");
const REVALIDATE: HeaderValue = HeaderValue::from_static("no-cache");

/// The console router, relative to its mount.
pub fn router() -> Router {
    Router::new()
        .get(serve)
        .push(Router::with_path("{**path}").get(serve))
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

#[handler]
async fn serve(req: &mut Request, res: &mut Response) {
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
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONSOLE_CSP),
    );
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
}
