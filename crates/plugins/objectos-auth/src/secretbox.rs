//! Secrets encrypted at rest (TOTP seeds): AES-256-GCM with a key from the environment
//! (`secretKeyEnv`, `OBJECTOS_SECRET_KEY` by default), bound to the row it belongs to.
//!
//! A stored value is `enc:v1:` followed by URL-safe base64 of `nonce (12 bytes) || ciphertext ||
//! tag`; the row's owner (the user id) is the associated data, so a ciphertext copied onto
//! another user's row does not decrypt. Values without the prefix are legacy plaintext: they keep
//! working and are encrypted the next time they are used once a key is configured.

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};

use crate::crypto;
use crate::error::{AuthError, Result};
use crate::service::AuthService;
use crate::store::{get_s, s};

/// Marks an encrypted stored value (and its format version).
pub(crate) const ENCRYPTED_PREFIX: &str = "enc:v1:";

/// A 256-bit key. `Debug` never shows it, and nothing in this crate logs it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey([u8; 32]);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey([redacted])")
    }
}

impl SecretKey {
    /// A key from its 32 bytes (for hosts that keep the key in a vault rather than the environment).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Parses 32 bytes written as 64 hex digits or as base64 (standard or URL-safe, padded or
    /// not). The error never repeats the value.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(text).ok()
        } else {
            [&STANDARD, &URL_SAFE, &URL_SAFE_NO_PAD]
                .iter()
                .find_map(|engine| engine.decode(text).ok())
                .or_else(|| {
                    base64::engine::general_purpose::STANDARD_NO_PAD
                        .decode(text)
                        .ok()
                })
        };
        match bytes.map(<[u8; 32]>::try_from) {
            Some(Ok(key)) => Ok(Self(key)),
            Some(Err(v)) => Err(format!(
                "the key must be 32 bytes, not {} (64 hex digits or 44 base64 characters)",
                v.len()
            )),
            None => Err("the key is neither 64 hex digits nor base64 of 32 bytes".into()),
        }
    }

    /// The key in the environment variable `var`: `Ok(None)` when unset or empty, an error naming
    /// the variable (never the value) when it holds something that is not a 32-byte key.
    pub fn from_env(var: &str) -> Result<Option<Self>> {
        match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => Self::parse(&v)
                .map(Some)
                .map_err(|e| AuthError::Config(format!("secretKeyEnv: `{var}`: {e}"))),
            Ok(_) | Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(AuthError::Config(format!(
                "secretKeyEnv: `{var}` is not valid UTF-8"
            ))),
        }
    }

    fn cipher(&self) -> Result<Aes256Gcm> {
        Aes256Gcm::new_from_slice(&self.0)
            .map_err(|_| AuthError::Internal("the AES-256-GCM key has the wrong length".into()))
    }

    /// Encrypts `plain` for the row owned by `owner`.
    pub(crate) fn seal(&self, plain: &str, owner: &str) -> Result<String> {
        let nonce = crypto::random_bytes::<12>()?;
        let sealed = self
            .cipher()?
            .encrypt(
                Nonce::<U12>::from_slice(&nonce),
                Payload {
                    msg: plain.as_bytes(),
                    aad: owner.as_bytes(),
                },
            )
            .map_err(|_| AuthError::Internal("AES-256-GCM encryption failed".into()))?;
        let mut out = Vec::with_capacity(nonce.len() + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(format!("{ENCRYPTED_PREFIX}{}", URL_SAFE_NO_PAD.encode(out)))
    }

    /// Decrypts a value made by [`SecretKey::seal`] for `owner`; an error when it was made with
    /// another key, for another owner, or was altered.
    pub(crate) fn open(&self, stored: &str, owner: &str) -> Result<String> {
        let unreadable = || {
            AuthError::Internal(
                "an encrypted secret does not decrypt with the configured key (another key, or an altered row)"
                    .into(),
            )
        };
        let body = stored
            .strip_prefix(ENCRYPTED_PREFIX)
            .ok_or_else(unreadable)?;
        let raw = URL_SAFE_NO_PAD.decode(body).map_err(|_| unreadable())?;
        if raw.len() < 12 + 16 {
            return Err(unreadable());
        }
        let (nonce, sealed) = raw.split_at(12);
        let plain = self
            .cipher()?
            .decrypt(
                Nonce::<U12>::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: owner.as_bytes(),
                },
            )
            .map_err(|_| unreadable())?;
        String::from_utf8(plain).map_err(|_| unreadable())
    }
}

/// Whether a stored value is encrypted (rather than legacy plaintext).
pub(crate) fn is_sealed(stored: &str) -> bool {
    stored.starts_with(ENCRYPTED_PREFIX)
}

impl AuthService {
    /// The form a new TOTP secret is stored in: encrypted when a key is configured.
    pub(crate) fn seal_totp_secret(&self, user_id: &str, secret_b32: &str) -> Result<String> {
        match self.secret_key() {
            Some(key) => key.seal(secret_b32, user_id),
            None => Ok(secret_b32.to_owned()),
        }
    }

    /// The TOTP secret from its stored form. A legacy plaintext secret is encrypted in place
    /// once a key is configured (only if the row still holds that plaintext, so a concurrent
    /// re-enrolment is not overwritten).
    pub(crate) async fn reveal_totp_secret(&self, user_id: &str, stored: &str) -> Result<String> {
        match (self.secret_key(), is_sealed(stored)) {
            (Some(key), true) => key.open(stored, user_id),
            (None, true) => Err(AuthError::Internal(format!(
                "the TOTP secret of user {user_id} is encrypted but no key is configured (secretKeyEnv)"
            ))),
            (Some(key), false) => {
                let sealed = key.seal(stored, user_id)?;
                self.db()
                    .exec_for(
                        user_id,
                        r#"UPDATE "_objectos_auth_totp" SET "secret" = ? WHERE "user_id" = ? AND "secret" = ?"#,
                        vec![s(sealed), s(user_id), s(stored)],
                    )
                    .await?;
                tracing::info!(user_id = %user_id, "A plaintext TOTP secret was encrypted at rest.");
                Ok(stored.to_owned())
            }
            (None, false) => Ok(stored.to_owned()),
        }
    }

    /// Checked at start: encrypted secrets need the key that made them. Without a key, or with
    /// another one, every user with two-factor authentication would be locked out, so the
    /// plugin refuses to start and says which setting to fix.
    pub async fn check_secret_key(&self) -> Result<()> {
        let Some(row) = self
            .db()
            .one(
                r#"SELECT "user_id", "secret" FROM "_objectos_auth_totp" WHERE "secret" LIKE 'enc:v1:%' LIMIT 1"#,
                vec![],
            )
            .await?
        else {
            return Ok(());
        };
        let var = self.config().secret_key_env.trim().to_owned();
        let Some(key) = self.secret_key() else {
            return Err(AuthError::Config(format!(
                "secretKeyEnv: two-factor secrets in the database are encrypted, but `{var}` is not set; set it to the key they were encrypted with"
            )));
        };
        key.open(&get_s(&row, 1)?, &get_s(&row, 0)?).map_err(|_| {
            AuthError::Config(format!(
                "secretKeyEnv: the key in `{var}` does not decrypt the two-factor secrets in the database; set it to the key they were encrypted with"
            ))
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_opens_and_binds_to_the_owner() {
        let key = SecretKey::from_bytes([7; 32]);
        let sealed = key.seal("JBSWY3DPEHPK3PXP", "user-1").unwrap();
        assert!(is_sealed(&sealed));
        assert!(!sealed.contains("JBSWY3DPEHPK3PXP"));
        assert_eq!(key.open(&sealed, "user-1").unwrap(), "JBSWY3DPEHPK3PXP");
        // Fresh nonce each time.
        assert_ne!(sealed, key.seal("JBSWY3DPEHPK3PXP", "user-1").unwrap());
        // Another owner, another key, an altered value: all refused.
        assert!(key.open(&sealed, "user-2").is_err());
        assert!(
            SecretKey::from_bytes([8; 32])
                .open(&sealed, "user-1")
                .is_err()
        );
        let mut altered = sealed.clone();
        altered.pop();
        altered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert!(key.open(&altered, "user-1").is_err());
        assert!(key.open("JBSWY3DPEHPK3PXP", "user-1").is_err());
        assert!(!is_sealed("JBSWY3DPEHPK3PXP"));
    }

    #[test]
    fn parses_hex_and_base64_and_never_echoes_the_value() {
        let hex_key = "00".repeat(31) + "ff";
        assert_eq!(
            SecretKey::parse(&hex_key).unwrap(),
            SecretKey::from_bytes({
                let mut k = [0; 32];
                k[31] = 0xff;
                k
            })
        );
        let b64 = STANDARD.encode([9u8; 32]);
        assert_eq!(
            SecretKey::parse(&format!(" {b64}\n")).unwrap(),
            SecretKey::from_bytes([9; 32])
        );
        assert_eq!(
            SecretKey::parse(&URL_SAFE_NO_PAD.encode([200u8; 32])).unwrap(),
            SecretKey::from_bytes([200; 32])
        );
        let short = STANDARD.encode([1u8; 16]);
        let e = SecretKey::parse(&short).unwrap_err();
        assert!(e.contains("32 bytes") && !e.contains(&short), "{e}");
        let e = SecretKey::parse("not a key at all").unwrap_err();
        assert!(!e.contains("not a key"), "{e}");
        assert_eq!(
            format!("{:?}", SecretKey::from_bytes([3; 32])),
            "SecretKey([redacted])"
        );
    }
}
