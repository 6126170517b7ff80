//! Who may code: argon2 password hashes, session cookies signed with HMAC-SHA256 (the session
//! itself is a database row, so log-out ends it for good), and CSRF tokens bound to the session.

use argon2::Argon2;
use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Shortest password `add-coder` accepts.
pub const MIN_PASSWORD_CHARS: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("the password is shorter than {MIN_PASSWORD_CHARS} characters")]
    WeakPassword,
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error("the session key must be at least 32 bytes of hex (64 hex digits)")]
    BadKey,
}

/// An argon2id hash in the PHC string format, with a random salt.
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AuthError::WeakPassword);
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

/// True when `password` matches the stored hash (a malformed hash never matches).
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// Signs and checks values with the server's key. Each use has its own purpose string, so a
/// signature made for one use (a session cookie) is worthless for another (a CSRF token).
#[derive(Clone)]
pub struct Signer {
    key: Vec<u8>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(..)")
    }
}

impl Signer {
    /// A key from hex (at least 32 bytes): sessions survive a restart of the server.
    pub fn from_hex(hex_key: &str) -> Result<Signer, AuthError> {
        let key = hex::decode(hex_key.trim()).map_err(|_| AuthError::BadKey)?;
        if key.len() < 32 {
            return Err(AuthError::BadKey);
        }
        Ok(Signer { key })
    }

    /// A fresh random key: every session ends when the server stops.
    pub fn random() -> Signer {
        let mut key = vec![0u8; 32];
        OsRng.fill_bytes(&mut key);
        Signer { key }
    }

    fn mac(&self, purpose: &str, value: &str) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(purpose.as_bytes());
        mac.update(&[0]);
        mac.update(value.as_bytes());
        mac
    }

    /// `value.signature` (value must not contain a dot).
    pub fn sign(&self, purpose: &str, value: &str) -> String {
        let tag = hex::encode(self.mac(purpose, value).finalize().into_bytes());
        format!("{value}.{tag}")
    }

    /// The value of a signed string, if the signature is right (checked in constant time).
    pub fn verify<'a>(&self, purpose: &str, signed: &'a str) -> Option<&'a str> {
        let (value, tag) = signed.rsplit_once('.')?;
        let tag = hex::decode(tag).ok()?;
        self.mac(purpose, value).verify_slice(&tag).ok()?;
        Some(value)
    }

    /// The CSRF token of a session (or of a sign-in form's nonce).
    pub fn csrf_token(&self, session: &str) -> String {
        hex::encode(self.mac("csrf", session).finalize().into_bytes())
    }

    /// True when `token` is the CSRF token of `session` (constant time).
    pub fn check_csrf(&self, session: &str, token: &str) -> bool {
        hex::decode(token).is_ok_and(|t| self.mac("csrf", session).verify_slice(&t).is_ok())
    }
}

/// A random value for a sign-in form's nonce.
pub fn random_nonce() -> String {
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_with_argon2_and_verify() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("correct horse batterx", &hash));
        assert!(!verify_password("anything", "not a hash"));
        assert!(matches!(
            hash_password("short"),
            Err(AuthError::WeakPassword)
        ));
    }

    #[test]
    fn signatures_and_csrf_tokens_are_bound_to_key_purpose_and_value() {
        let signer = Signer::random();
        let signed = signer.sign("session", "abc");
        assert_eq!(signer.verify("session", &signed), Some("abc"));
        assert_eq!(signer.verify("pre", &signed), None, "another purpose");
        assert_eq!(
            Signer::random().verify("session", &signed),
            None,
            "another key"
        );
        let forged = signed.replacen("abc", "abd", 1);
        assert_eq!(signer.verify("session", &forged), None);
        let token = signer.csrf_token("abc");
        assert!(signer.check_csrf("abc", &token));
        assert!(!signer.check_csrf("abd", &token));
        assert!(!signer.check_csrf("abc", ""));
        assert!(Signer::from_hex("00").is_err());
        assert!(Signer::from_hex(&"ab".repeat(32)).is_ok());
    }
}
