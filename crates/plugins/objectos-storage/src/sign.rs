//! Signed URL tokens: `<payload>.<mac>`, both base64url, the payload naming the file, the
//! operation and the expiry, the MAC an HMAC-SHA256 of the payload under the plugin's key. A
//! token is bound to one file and one operation (an upload token cannot download, a token for
//! one file cannot reach another) and is refused once expired.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// What a token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// `PUT` the contents of a pending file.
    Put,
    /// `GET` the contents of a ready file.
    Get,
}

/// The signed part of a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The file id.
    #[serde(rename = "f")]
    pub file: String,
    #[serde(rename = "o")]
    pub op: Op,
    /// Expiry, seconds since the Unix epoch.
    #[serde(rename = "e")]
    pub expires: i64,
}

/// Signs and checks tokens with one key.
pub struct Signer {
    /// Keyed once; cloned per token.
    keyed: HmacSha256,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(***)")
    }
}

impl Signer {
    /// A signer with `key`; `None` only for a key HMAC refuses (it takes every length, so in
    /// practice never).
    pub fn new(key: &[u8]) -> Option<Self> {
        HmacSha256::new_from_slice(key)
            .ok()
            .map(|keyed| Self { keyed })
    }

    fn mac(&self, payload: &[u8]) -> HmacSha256 {
        let mut mac = self.keyed.clone();
        mac.update(payload);
        mac
    }

    /// The token for `claims`.
    pub fn sign(&self, claims: &Claims) -> String {
        let payload = serde_json::to_vec(claims).unwrap_or_default();
        let tag = self.mac(&payload).finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    /// The claims of `token` when its MAC is right, it allows `op` and it has not expired at
    /// `now` (seconds since the epoch); `None` otherwise, without saying which check failed.
    pub fn verify(&self, token: &str, op: Op, now: i64) -> Option<Claims> {
        let (payload, tag) = token.split_once('.')?;
        let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        // `verify_slice` compares in constant time.
        self.mac(&payload).verify_slice(&tag).ok()?;
        let claims: Claims = serde_json::from_slice(&payload).ok()?;
        (claims.op == op && claims.expires > now).then_some(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_bound_to_file_operation_key_and_time() {
        let signer = Signer::new(b"0123456789abcdef0123456789abcdef").unwrap();
        let claims = Claims {
            file: "f1".into(),
            op: Op::Get,
            expires: 100,
        };
        let token = signer.sign(&claims);
        assert_eq!(signer.verify(&token, Op::Get, 99), Some(claims.clone()));
        assert_eq!(signer.verify(&token, Op::Get, 100), None, "expired");
        assert_eq!(signer.verify(&token, Op::Put, 99), None, "other operation");
        assert_eq!(
            Signer::new(b"other").unwrap().verify(&token, Op::Get, 99),
            None
        );
        // A payload naming another file with the old MAC.
        let forged = Signer::new(b"x").unwrap().sign(&Claims {
            file: "f2".into(),
            ..claims
        });
        let (payload, _) = forged.split_once('.').unwrap();
        let (_, tag) = token.split_once('.').unwrap();
        assert_eq!(
            signer.verify(&format!("{payload}.{tag}"), Op::Get, 99),
            None
        );
        assert_eq!(signer.verify("garbage", Op::Get, 0), None);
    }
}
