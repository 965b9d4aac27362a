//! Single sign-on through OpenID Connect and OAuth2 providers.
//!
//! `POST /sign-in/social` starts an authorization code flow with PKCE (S256), a random `state`
//! and (OIDC) a `nonce`, all kept server-side in `_objectos_auth_sso_state` for `stateMinutes` and
//! usable once, and bound to the starting browser by the `objectos.sso_state` cookie (so a
//! callback link cannot sign a victim into the attacker's account). `GET /callback/{provider}`
//! redeems the code; for `oidc` providers the ID token is verified by the `openidconnect` crate
//! (signature with the discovered JWKS, issuer, audience, nonce, expiry, `at_hash`), for `oauth2`
//! providers the user-info endpoint is read with the access token. The identity
//! (provider, subject) maps to a user through `_objectos_auth_identity`; unknown identities
//! create a user (`allowSignUp`) or link to the user with the same verified email
//! (`linkByEmail`), and the result is the same session as an email sign-in.
//!
//! Codes, tokens, verifiers and secrets are never logged; messages from the provider are
//! shortened to printable text before they reach a client.
//!
//! The parts: `config` (the providers, ready at start), `discovery` (OIDC metadata and keys),
//! `exchange` (the conversation with a provider), `callback` (the flow's state and the
//! callback) and `link` (which account an identity signs in to).

mod callback;
mod config;
mod discovery;
mod exchange;
mod link;

pub use callback::{CallbackParams, SocialRedirect, SocialSignIn, SsoFailure, SsoSignedIn};
pub(crate) use config::Sso;

/// What a client is told when a provider cannot be reached; the cause is only logged.
const UNREACHABLE: &str = "it could not be reached; try again later";

/// Who the provider says signed in.
#[derive(Debug, Clone)]
struct ExternalIdentity {
    subject: String,
    email: Option<String>,
    email_verified: bool,
    name: Option<String>,
}

/// Provider-supplied text, reduced to printable ASCII and shortened.
fn sanitize(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(200)
        .collect()
}

/// An error and its sources on one line (the first lines of a network error name the cause).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(src) = cur {
        out.push_str(": ");
        out.push_str(&src.to_string());
        cur = src.source();
    }
    sanitize(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_text_is_sanitised() {
        assert_eq!(
            sanitize("access_denied\r\n<script>"),
            "access_denied<script>"
        );
        assert_eq!(sanitize(&"x".repeat(500)).len(), 200);
    }
}
