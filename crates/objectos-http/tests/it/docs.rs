//! The API docs page: usable, and nothing it needs or sends leaves the server.

use salvo::http::StatusCode;

use crate::support::Harness;

/// Every `src="..."` and `href="..."` value of an HTML page.
fn links(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for (i, _) in html.match_indices(attr) {
            let rest = &html[i + attr.len()..];
            if let Some(end) = rest.find('"') {
                out.push(rest[..end].to_owned());
            }
        }
    }
    out
}

#[tokio::test]
async fn docs_page_loads_everything_from_this_server() {
    let h = Harness::new().await;
    let r = h.get("/api/v1/docs").await;
    assert!(r.status.is_redirection(), "{:?}", r.status);
    assert!(
        r.header("location").unwrap().ends_with("/api/v1/docs/"),
        "{:?}",
        r.header("location")
    );

    let page = h.get("/api/v1/docs/").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    // The policy lets the browser load and fetch from this origin only.
    let csp = page.header("content-security-policy").unwrap();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
        "img-src 'self' data:",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} missing from {csp}");
    }
    assert!(!csp.contains("http"), "no other origin is allowed: {csp}");
    // No absolute URL in the page, no inline script.
    assert!(
        !page.text.contains("http://")
            && !page.text.contains("https://")
            && !page.text.contains("//cdn")
    );
    assert!(!page.text.contains("<script>"), "{}", page.text);

    // Every file the page names is served here, with its type; the favicon is one of them.
    let found = links(&page.text);
    for expected in [
        "favicon.svg",
        "swagger-ui.css",
        "swagger-ui-bundle.js",
        "docs.js",
    ] {
        assert!(
            found.iter().any(|l| l == expected),
            "{expected} not in {found:?}"
        );
    }
    for link in &found {
        assert!(
            !link.contains(':') && !link.starts_with("//"),
            "{link} leaves the server"
        );
        let file = h.get(&format!("/api/v1/docs/{link}")).await;
        assert_eq!(file.status, StatusCode::OK, "{link}");
        let kind = file.header("content-type").unwrap();
        let expected = match link.rsplit('.').next() {
            Some("svg") => "image/svg+xml",
            Some("css") => "text/css",
            _ => "text/javascript",
        };
        assert!(kind.starts_with(expected), "{link}: {kind}");
        assert!(!file.text.is_empty(), "{link}");
    }

    // The start script reads this server's document and turns the online validator off.
    let start = h.get("/api/v1/docs/docs.js").await;
    assert!(
        start.text.contains("url: \"../openapi.json\""),
        "{}",
        start.text
    );
    assert!(start.text.contains("validatorUrl: null"), "{}", start.text);
    assert!(!start.text.contains("://"), "{}", start.text);

    // Only the files the page uses are served, nothing else of the package.
    for other in [
        "index.css",
        "oauth2-redirect.html",
        "swagger-ui.js",
        "swagger-ui-es-bundle.js",
    ] {
        let r = h.get(&format!("/api/v1/docs/{other}")).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{other}");
    }
}
