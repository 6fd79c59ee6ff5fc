//! API keys of delivery providers (the delivery-status webhook authenticates with these, not
//! with JWTs), and Standard Webhooks signing secrets.
//!
//! A key reads `omk_<id>_<secret>`: `id` is the key's public UUID (simple form), naming its
//! row; `secret` is 32 random bytes, base64url. Only the SHA-256 of the whole key is stored —
//! a fast hash is enough for a high-entropy random secret — and it is compared in constant
//! time. A signing secret reads `whsec_<base64 of 32 random bytes>`, the Standard Webhooks
//! format.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

/// Prefix of every API key.
pub const KEY_PREFIX: &str = "omk_";
/// Prefix of every signing secret (Standard Webhooks).
pub const SIGNING_SECRET_PREFIX: &str = "whsec_";

fn random_bytes() -> Result<[u8; 32], getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(bytes)
}

/// A newly generated key: its id, the plain key (shown once) and the hash to store.
#[derive(Debug)]
pub struct NewApiKey {
    /// Public id.
    pub id: Uuid,
    /// The key to hand out, once.
    pub key: SecretString,
    /// SHA-256 of the key, stored.
    pub hash: [u8; 32],
}

/// Generates a key from the operating system's random source.
///
/// # Errors
/// If the OS has no randomness to give.
pub fn generate() -> Result<NewApiKey, getrandom::Error> {
    let id = Uuid::new_v4();
    let key = format!(
        "{KEY_PREFIX}{}_{}",
        id.simple(),
        URL_SAFE_NO_PAD.encode(random_bytes()?)
    );
    Ok(NewApiKey {
        id,
        hash: hash(&key),
        key: SecretString::from(key),
    })
}

/// Generates a Standard Webhooks signing secret (`whsec_…`).
///
/// # Errors
/// If the OS has no randomness to give.
pub fn generate_signing_secret() -> Result<SecretString, getrandom::Error> {
    Ok(SecretString::from(format!(
        "{SIGNING_SECRET_PREFIX}{}",
        STANDARD.encode(random_bytes()?)
    )))
}

/// SHA-256 of a key.
pub fn hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The id a presented key names, if it has the key's shape.
pub fn key_id(presented: &SecretString) -> Option<Uuid> {
    let rest = presented.expose_secret().strip_prefix(KEY_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    if secret.is_empty() {
        return None;
    }
    Uuid::try_parse(id).ok()
}

/// Whether `presented` hashes to `stored`, compared in constant time.
pub fn matches(presented: &SecretString, stored: &[u8]) -> bool {
    hash(presented.expose_secret()).ct_eq(stored).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_names_its_id_and_matches_only_its_hash() {
        let new = generate().expect("random");
        assert!(new.key.expose_secret().starts_with("omk_"));
        assert_eq!(key_id(&new.key), Some(new.id));
        assert!(matches(&new.key, &new.hash));
        let mut other = new.key.expose_secret().to_owned();
        other.push('x');
        assert!(!matches(&SecretString::from(other), &new.hash));
        assert!(!matches(&new.key, &[0u8; 32]));
        assert!(!matches(&new.key, &new.hash[..31]));
        for bad in [
            "",
            "omk_",
            "omk_nothex_secret",
            "key",
            &format!("omk_{}_", new.id.simple()),
        ] {
            assert_eq!(key_id(&SecretString::from(bad.to_owned())), None, "{bad}");
        }
    }

    #[test]
    fn signing_secrets_are_standard_webhooks_secrets() {
        let secret = generate_signing_secret().expect("random");
        let webhook = standardwebhooks::Webhook::new(secret.expose_secret()).expect("valid secret");
        let signature = webhook.sign("msg_1", 1_700_000_000, b"[]").expect("sign");
        assert!(signature.starts_with("v1,"));
    }
}
