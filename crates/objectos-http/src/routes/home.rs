//! `GET /`: a small HTML page that points a person who opened the server's address in a browser
//! at the API docs, discovery, the OpenAPI document and the probes, instead of a JSON 404.
//!
//! The page is static text plus the version and mode: no script, no external assets, and a
//! policy that allows nothing but its own inline style. When a plugin contributed a
//! [`crate::HomeRedirect`] (the admin console does), `/` redirects there instead.

use salvo::http::HeaderValue;
use salvo::http::header::CONTENT_SECURITY_POLICY;
use salvo::prelude::*;

use crate::error::HttpError;
use crate::routes::API_BASE;
use crate::state::ApiState;

/// Stricter than the server's HTML default, which leaves room for the Swagger UI's scripts:
/// this page runs none and loads nothing.
const HOME_CSP: HeaderValue = HeaderValue::from_static(
    "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
);

/// The page for a server running `version` in `mode`; only fixed text and those two strings.
pub fn page(version: &str, mode: &str) -> String {
    let version = escape(version);
    let mode = escape(mode);
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ObjectOS</title>
<style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;line-height:1.5}}code{{background:#f2f2f2;padding:0 .2rem}}</style>
</head>
<body>
<h1>ObjectOS</h1>
<p>Version {version}, {mode} mode. This server speaks the ObjectStack REST API under <code>{API_BASE}</code>.</p>
<ul>
<li><a href="{API_BASE}/docs">API docs</a>: every route, with a form to try it</li>
<li><a href="{API_BASE}/discovery">Discovery</a>: the services and routes this server offers</li>
<li><a href="{API_BASE}/openapi.json">OpenAPI document</a> (JSON)</li>
<li><a href="/health">Health</a> and <a href="/ready">readiness</a></li>
</ul>
</body>
</html>
"#
    )
}

/// Minimal HTML escaping for the two interpolated values (they come from the build and the
/// configuration, but a page must never trust that).
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `GET /`.
#[handler]
pub async fn home(depot: &mut Depot, res: &mut Response) -> Result<(), HttpError> {
    let state = ApiState::from_depot(depot)?;
    // A start page contributed by a plugin (the admin console) replaces the links.
    if let Some(location) = state.home_redirect() {
        res.render(Redirect::found(location));
        return Ok(());
    }
    let body = page(state.version(), state.mode().as_str());
    res.headers_mut().insert(CONTENT_SECURITY_POLICY, HOME_CSP);
    res.render(Text::Html(body));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolated_values_are_escaped() {
        let html = page("1.0<script>", "a\"b");
        assert!(html.contains("1.0&lt;script&gt;"), "{html}");
        assert!(html.contains("a&quot;b"), "{html}");
        assert!(!html.contains("<script>"), "{html}");
    }

    #[test]
    fn home_redirect_only_to_this_server() {
        use crate::HomeRedirect;
        assert_eq!(
            HomeRedirect::new("/console/").same_server_path(),
            Some("/console/")
        );
        for bad in [
            "//evil.example",
            "https://evil.example",
            "console",
            "/\\evil.example",
        ] {
            assert_eq!(HomeRedirect::new(bad).same_server_path(), None, "{bad}");
        }
    }
}
