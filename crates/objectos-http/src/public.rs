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

/// One public operation: method and path segments (`{param}` matches one segment, `{**rest}`
/// the rest).
#[derive(Debug, Clone)]
struct Pattern {
    method: Method,
    segments: Vec<String>,
}

impl Pattern {
    fn matches(&self, method: &Method, path: &str) -> bool {
        let method_ok =
            self.method == *method || (self.method == Method::GET && *method == Method::HEAD);
        if !method_ok {
            return false;
        }
        let mut parts = path.trim_matches('/').split('/');
        for seg in &self.segments {
            if seg.starts_with("{**") || seg.starts_with("{*") {
                return true;
            }
            let Some(part) = parts.next() else {
                return false;
            };
            let param = seg.starts_with('{') && seg.ends_with('}');
            if part.is_empty() || (!param && part != seg) {
                return false;
            }
        }
        parts.next().is_none()
    }
}

/// The hoop that marks requests for public contributed operations.
#[derive(Debug, Clone, Default)]
pub struct MarkPublic {
    patterns: Vec<Pattern>,
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
                patterns.push(Pattern {
                    method: o.method.clone(),
                    segments: full
                        .trim_matches('/')
                        .split('/')
                        .map(str::to_owned)
                        .collect(),
                });
            }
        }
        Self { patterns }
    }

    /// Whether `method path` is a public operation.
    pub fn is_public(&self, method: &Method, path: &str) -> bool {
        self.patterns.iter().any(|p| p.matches(method, path))
    }
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
    }
}
