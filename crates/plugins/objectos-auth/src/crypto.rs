//! Secrets: random tokens, SHA-256 digests compared in constant time, and argon2id password hashes.

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::Argon2Config;
use crate::error::{AuthError, Result};

/// `N` bytes from the operating system's CSPRNG.
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf)
        .map_err(|e| AuthError::Internal(format!("the OS random source failed: {e}")))?;
    Ok(buf)
}

/// A 256-bit random token, URL-safe base64 without padding (43 characters).
pub(crate) fn random_token() -> Result<String> {
    Ok(URL_SAFE_NO_PAD.encode(random_bytes::<32>()?))
}

/// Lowercase hex SHA-256 of a token: what the database stores instead of the token.
pub(crate) fn sha256_hex(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Constant-time string comparison (length is not secret: both sides are fixed-size digests).
pub(crate) fn ct_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// Argon2id with the configured cost.
#[derive(Clone)]
pub(crate) struct PasswordHasher {
    argon: Argon2<'static>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHasher(argon2id)")
    }
}

impl PasswordHasher {
    pub(crate) fn new(cfg: &Argon2Config) -> Result<Self> {
        let params = Params::new(cfg.memory_kib, cfg.iterations, cfg.parallelism, None)
            .map_err(|e| AuthError::Config(format!("argon2 parameters are invalid: {e}")))?;
        Ok(Self {
            argon: Argon2::new(Algorithm::Argon2id, Version::V0x13, params),
        })
    }

    /// The PHC string (`$argon2id$v=19$m=...`) of `password` with a fresh 16-byte salt.
    pub(crate) fn hash(&self, password: &str) -> Result<String> {
        let salt = random_bytes::<16>()?;
        self.argon
            .hash_password_with_salt(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| AuthError::Internal(format!("argon2 hashing failed: {e}")))
    }

    /// Whether `password` matches the stored PHC string (cost parameters come from the string).
    pub(crate) fn verify(&self, password: &str, phc: &str) -> bool {
        PasswordVerifier::<str>::verify_password(&self.argon, password.as_bytes(), phc).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_and_verifies() {
        let h = PasswordHasher::new(&Argon2Config {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        })
        .unwrap();
        let phc = h.hash("Secret-1").unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(h.verify("Secret-1", &phc));
        assert!(!h.verify("Secret-2", &phc));
        assert!(!h.verify("Secret-1", "garbage"));
        assert_eq!(random_token().unwrap().len(), 43);
        assert!(ct_eq(&sha256_hex("a"), &sha256_hex("a")));
        assert!(!ct_eq(&sha256_hex("a"), &sha256_hex("b")));
    }
}
