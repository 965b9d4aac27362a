//! Public routes declared by plugins: every contributed operation marked
//! [`crate::RouteSecurity::Public`] is reachable without credentials. The server marks a
//! request to such an operation with [`PublicRoute`] in the depot before any contributed hoop
//! runs, so an authentication hoop can let it through without knowing the plugin.

use salvo::http::Method;
use salvo::prelude::*;

use crate::contribution::{RouteContribution, RouteSecurity};

/// In the depot when the request is for a public operation of a contributed route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicRoute;

/// Whether the request was marked [`PublicRoute`].
pub fn is_public_route(depot: &Depot) -> bool {
    depot.get_typed::<PublicRoute>().is_ok()
}

/// One segment of a public operation's path template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// Matches this text exactly.
    Literal(String),
    /// `{param}`: any one non-empty segment.
    Param,
    /// `{*rest}` or `{**rest}`: whatever follows, including nothing.
    Rest,
}

/// One public operation: method and path segments.
#[derive(Debug, Clone)]
struct Pattern {
    method: Method,
    segments: Vec<Segment>,
}

/// The most path segments a request is compared with: deeper paths match no public operation
/// unless a `{**rest}` template reaches them, which [`Pattern::matches`] handles by the count.
const MAX_SEGMENTS: usize = 16;

impl Pattern {
    fn new(method: Method, template: &str) -> Self {
        let segments = template
            .trim_matches('/')
            .split('/')
            .map(|seg| {
                if seg.starts_with("{*") {
                    Segment::Rest
                } else if seg.starts_with('{') && seg.ends_with('}') {
                    Segment::Param
                } else {
                    Segment::Literal(seg.to_owned())
                }
            })
            .collect();
        Self { method, segments }
    }

    /// The leading literal segments, joined by `/`: every path the pattern matches starts with
    /// them, followed by `/` or nothing.
    fn head(&self) -> String {
        self.segments
            .iter()
            .map_while(|seg| match seg {
                Segment::Literal(text) => Some(text.as_str()),
                Segment::Param | Segment::Rest => None,
            })
            .collect::<Vec<_>>()
            .join("/")
    }

    /// `parts` is the request path split once per request (every pattern is checked against
    /// the same split: splitting again per pattern was most of this hoop's cost on every
    /// request), `more` whether the path had segments beyond them.
    fn matches(&self, method: &Method, parts: &[&str], more: bool) -> bool {
        let method_ok =
            self.method == *method || (self.method == Method::GET && *method == Method::HEAD);
        if !method_ok {
            return false;
        }
        let mut parts = parts.iter();
        for seg in &self.segments {
            let ok = match (seg, parts.next()) {
                (Segment::Rest, _) => return true,
                (_, None) => false,
                (Segment::Literal(text), Some(part)) => !part.is_empty() && *part == text.as_str(),
                (Segment::Param, Some(part)) => !part.is_empty(),
            };
            if !ok {
                return false;
            }
        }
        parts.next().is_none() && !more
    }
}

/// The hoop that marks requests for public contributed operations.
#[derive(Debug, Clone, Default)]
pub struct MarkPublic {
    patterns: Vec<Pattern>,
    /// The distinct literal heads of the patterns (`api/v1/i18n` of `/api/v1/i18n/labels/{object}`):
    /// a path under none of them is not public, found without splitting it (most requests).
    heads: Vec<String>,
}

impl MarkPublic {
    /// The public operations of `contributions`.
    pub fn new(contributions: &[RouteContribution]) -> Self {
        let mut patterns = Vec::new();
        for c in contributions {
            let mount = c.absolute_mount();
            for o in c
                .operations
                .iter()
                .filter(|o| o.security == RouteSecurity::Public)
            {
                let rel = o.path.trim_matches('/');
                let full = if rel.is_empty() {
                    mount.clone()
                } else {
                    format!("{mount}/{rel}")
                };
                patterns.push(Pattern::new(o.method.clone(), &full));
            }
        }
        let mut heads: Vec<String> = patterns.iter().map(Pattern::head).collect();
        heads.sort();
        heads.dedup();
        Self { patterns, heads }
    }

    /// Whether `method path` is a public operation.
    pub fn is_public(&self, method: &Method, path: &str) -> bool {
        if self.patterns.is_empty() {
            return false;
        }
        let trimmed = path.trim_matches('/');
        if !self.heads.iter().any(|head| is_under(trimmed, head)) {
            return false;
        }
        let mut parts = [""; MAX_SEGMENTS];
        let mut len = 0;
        let mut split = trimmed.split('/');
        for (slot, part) in parts.iter_mut().zip(split.by_ref()) {
            *slot = part;
            len += 1;
        }
        let more = split.next().is_some();
        self.patterns
            .iter()
            .any(|p| p.matches(method, &parts[..len], more))
    }
}

/// Whether `path` (trimmed of `/`) is `head` or lies below it.
fn is_under(path: &str, head: &str) -> bool {
    head.is_empty()
        || path
            .strip_prefix(head)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

#[async_trait]
impl Handler for MarkPublic {
    async fn handle(
        &self,
        req: &mut Request,
        depot: &mut Depot,
        _res: &mut Response,
        _ctrl: &mut FlowCtrl,
    ) {
        if self.is_public(req.method(), req.uri().path()) {
            depot.insert_typed(PublicRoute);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RouteOperation;

    #[test]
    fn public_operations_match_by_method_and_template() {
        let c = RouteContribution::new("i18n", Router::new).operations(vec![
            RouteOperation::get("locales", "l").public(),
            RouteOperation::get("labels/{object}/{locale}", "x").public(),
            RouteOperation::post("secret", "s"),
        ]);
        let m = MarkPublic::new(&[c]);
        assert!(m.is_public(&Method::GET, "/api/v1/i18n/locales"));
        assert!(m.is_public(&Method::HEAD, "/api/v1/i18n/locales/"));
        assert!(m.is_public(&Method::GET, "/api/v1/i18n/labels/account/de"));
        assert!(!m.is_public(&Method::GET, "/api/v1/i18n/labels/account"));
        assert!(!m.is_public(&Method::GET, "/api/v1/i18n/labels/account/de/x"));
        assert!(!m.is_public(&Method::POST, "/api/v1/i18n/locales"));
        assert!(!m.is_public(&Method::POST, "/api/v1/i18n/secret"));
        assert!(!m.is_public(&Method::GET, "/api/v1/data/account"));
        assert!(!m.is_public(&Method::GET, "/api/v1/i18n//locales"));
        // A head is matched on a segment boundary, not as a string prefix.
        assert!(!m.is_public(&Method::GET, "/api/v1/i18nx/locales"));
        assert!(!m.is_public(&Method::GET, "/api/v1/i18n"));
    }

    #[test]
    fn rest_templates_reach_any_depth_and_deep_paths_match_nothing_else() {
        let c = RouteContribution::new("storage", Router::new).operations(vec![
            RouteOperation::get("public/{**rest}", "p").public(),
            RouteOperation::get("a/b/c/d/e/f/g/h/i/j/k/l/m", "deep").public(),
        ]);
        let m = MarkPublic::new(&[c]);
        assert!(m.is_public(&Method::GET, "/api/v1/storage/public"));
        let deep = format!("/api/v1/storage/public/{}", ["x"; 40].join("/"));
        assert!(m.is_public(&Method::GET, &deep));
        assert!(m.is_public(&Method::GET, "/api/v1/storage/a/b/c/d/e/f/g/h/i/j/k/l/m"));
        assert!(!m.is_public(&Method::GET, "/api/v1/storage/a/b/c/d/e/f/g/h/i/j/k/l/m/n"));
        assert!(!m.is_public(&Method::GET, "/api/v1/storage/private/x"));
    }
}
