//! `GET /api/v1/docs/`: the Swagger UI page for `/api/v1/openapi.json`, every byte of it from the
//! binary.
//!
//! The page and its start script are ours (`assets/docs/`); the Swagger UI files are those of
//! the swagger-ui-dist npm package that salvo-oapi embeds (`salvo_oapi::swagger_ui::serve`), so
//! no CDN is involved; the favicon is ours too, so the browser does not ask for `/favicon.ico`.
//! Nothing leaves the server: the start script turns the online validator off
//! (`validatorUrl: null`, which would otherwise send the document's URL to swagger.io), and the
//! page's Content-Security-Policy allows loading and fetching from its own origin only, so a
//! setting or asset that pointed elsewhere would be blocked by the browser, not sent.

use salvo::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use salvo::http::{HeaderValue, ResBody};
use salvo::prelude::*;

use crate::error::HttpError;

/// Own origin only. `style-src 'unsafe-inline'`: Swagger UI sets style attributes; scripts are
/// files of this server only (`docs.js` instead of an inline start script).
const DOCS_CSP: HeaderValue = HeaderValue::from_static(
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
);

/// The page: the Swagger UI stylesheet and bundle, then the start script, all relative to the
/// page so a proxy prefix is kept.
const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ObjectOS API</title>
<link rel="icon" type="image/svg+xml" href="favicon.svg">
<link rel="stylesheet" href="swagger-ui.css">
<style>body{margin:0;background:#fafafa}</style>
</head>
<body>
<div id="swagger-ui"></div>
<script src="swagger-ui-bundle.js"></script>
<script src="docs.js"></script>
</body>
</html>
"#;

const START_SCRIPT: &str = include_str!("../../assets/docs/docs.js");
const FAVICON: &str = include_str!("../../assets/docs/favicon.svg");

/// The Swagger UI files the page uses; any other name is a 404, not a file of the package.
const SWAGGER_FILES: &[&str] = &["swagger-ui.css", "swagger-ui-bundle.js"];

/// `docs` and everything under it, relative to the API base.
pub fn router() -> Router {
    Router::with_path("docs/{**rest}").get(docs)
}

/// One file of the docs page.
#[handler]
pub async fn docs(req: &mut Request, res: &mut Response) -> Result<(), HttpError> {
    let path = req.params().tail().unwrap_or_default().to_owned();
    // `/docs` is sent to `/docs/`, so the page's relative links resolve under it.
    if path.is_empty() && !req.uri().path().ends_with('/') {
        salvo::routing::redirect_to_dir_url(req.uri(), res);
        return Ok(());
    }
    match path.as_str() {
        "" | "index.html" => {
            res.headers_mut().insert(CONTENT_SECURITY_POLICY, DOCS_CSP);
            res.headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            res.render(Text::Html(PAGE));
        }
        "docs.js" => file(
            res,
            "text/javascript; charset=utf-8",
            START_SCRIPT.as_bytes(),
        ),
        "favicon.svg" => file(res, "image/svg+xml", FAVICON.as_bytes()),
        name if SWAGGER_FILES.contains(&name) => {
            let config = salvo_oapi::swagger_ui::Config::new(Vec::<String>::new());
            let found = salvo_oapi::swagger_ui::serve(name, "", "", "", &config)
                .map_err(|e| HttpError::Internal(format!("swagger ui file {name}: {e}")))?;
            let Some(found) = found else {
                return Err(HttpError::Internal(format!(
                    "swagger ui file {name} is not embedded"
                )));
            };
            let kind = if name.ends_with(".css") {
                "text/css; charset=utf-8"
            } else {
                "text/javascript; charset=utf-8"
            };
            file(res, kind, &found.bytes);
        }
        other => {
            return Err(HttpError::NotFound {
                code: "ROUTE_NOT_FOUND",
                message: format!("No file {other} in the API docs"),
            });
        }
    }
    Ok(())
}

fn file(res: &mut Response, content_type: &'static str, bytes: &[u8]) {
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    // The files change only with the binary; an hour keeps a reload cheap and an upgrade visible.
    res.headers_mut().insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    res.body(ResBody::Once(bytes.to_vec().into()));
}
