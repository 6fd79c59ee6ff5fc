//! Password hashing and policy.
//!
//! Hashes are argon2id PHC strings with the OWASP Password Storage Cheat Sheet parameters
//! (m = 19456 KiB, t = 2, p = 1). Hashing and verification run on the blocking thread pool,
//! never on the async runtime, and at most `PASSWORD_HASH_CONCURRENCY` at a time so a login
//! flood queues here instead of starving other requests. Verifying a login for an unknown
//! user does the same work against a dummy hash, so timing does not reveal which usernames
//! exist.
//!
//! Policy (NIST SP 800-63B §5.1.1.2): 12 to 128 characters, no composition rules, a short list
//! of the most common passwords refused; compared exactly as received (no trimming, no case
//! folding; any Unicode).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};

use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

use crate::error::ApiError;

/// Minimum password length in characters (Unicode scalar values).
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Maximum password length in characters.
pub const MAX_PASSWORD_CHARS: usize = 128;

/// argon2 memory cost in KiB (OWASP).
pub const ARGON2_MEMORY_KIB: u32 = 19_456;
/// argon2 iterations (OWASP).
pub const ARGON2_ITERATIONS: u32 = 2;
/// argon2 lanes (OWASP).
pub const ARGON2_PARALLELISM: u32 = 1;

const COMMON_PASSWORDS: &str = include_str!("common_passwords.txt");

fn argon2() -> Argon2<'static> {
    // The constants are valid argon2 parameters; `Params::new` only fails outside its ranges.
    let params = Params::new(
        ARGON2_MEMORY_KIB,
        ARGON2_ITERATIONS,
        ARGON2_PARALLELISM,
        None,
    )
    .unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A hash of a random, discarded password: verified against when the user does not exist.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    // 244 random bits (UUIDv4 comes from the OS generator); only the hash's timing matters.
    let random = uuid::Uuid::new_v4();
    argon2()
        .hash_password(random.as_bytes())
        .map(|h| h.to_string())
        .unwrap_or_default()
});

/// Checks a new password against the policy.
///
/// # Errors
/// A message for the client: too short, too long, too common, or equal to the username.
pub fn check_policy(password: &str, username: &str) -> Result<(), String> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(format!("must be at least {MIN_PASSWORD_CHARS} characters"));
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(format!("must be at most {MAX_PASSWORD_CHARS} characters"));
    }
    let lower = password.to_lowercase();
    if lower == username.to_lowercase() {
        return Err("must not be the username".into());
    }
    let common = COMMON_PASSWORDS
        .lines()
        .filter(|line| !line.starts_with('#'))
        .any(|line| line == lower);
    if common {
        return Err("is too common; choose a less predictable password".into());
    }
    Ok(())
}

/// Hashes and verifies passwords off the async runtime, with bounded concurrency.
#[derive(Clone, Debug)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    verifications: Arc<AtomicU64>,
}

impl PasswordHasher {
    /// A hasher allowing `concurrency` argon2 computations at once (at least one).
    pub fn new(concurrency: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            verifications: Arc::new(AtomicU64::new(0)),
        }
    }

    /// How many argon2 verifications this hasher (and its clones) has run: what the sign-in
    /// tests compare to show that unknown and known users cost the same work.
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let _permit = self.permits.acquire().await.map_err(ApiError::internal)?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(ApiError::internal)
    }

    /// Hashes `password` into an argon2id PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`).
    ///
    /// # Errors
    /// 500 if hashing fails (it does not for valid parameters).
    pub async fn hash(&self, password: SecretString) -> Result<String, ApiError> {
        self.run(move || {
            argon2()
                .hash_password(password.expose_secret().as_bytes())
                .map(|hash| hash.to_string())
        })
        .await?
        .map_err(|e| ApiError::internal(e.to_string()))
    }

    /// Verifies `password` against `phc`; with `None` (unknown user) it verifies against a
    /// dummy hash and answers `false`, doing the same work.
    ///
    /// # Errors
    /// 500 only if the blocking task cannot run.
    pub async fn verify(
        &self,
        password: SecretString,
        phc: Option<String>,
    ) -> Result<bool, ApiError> {
        self.verifications.fetch_add(1, Ordering::Relaxed);
        self.run(move || {
            let known = phc.is_some();
            let hash = phc.unwrap_or_else(|| DUMMY_HASH.clone());
            let matches = argon2()
                .verify_password(password.expose_secret().as_bytes(), hash.as_str())
                .is_ok();
            known && matches
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_counts_characters_not_bytes() {
        assert!(check_policy("short-pass1", "alice").is_err());
        assert!(check_policy("correct horse", "alice").is_ok());
        // 12 characters, 24+ bytes: accepted.
        assert!(check_policy("пароль-пароль", "alice").is_ok());
        assert!(check_policy(&"x".repeat(129), "alice").is_err());
        assert!(check_policy(&"é".repeat(128), "alice").is_ok());
    }

    #[test]
    fn policy_refuses_common_passwords_in_any_case_and_the_username() {
        assert!(check_policy("Password1234", "alice").is_err());
        assert!(check_policy("QWERTY123456", "alice").is_err());
        assert!(check_policy("alice.maker.01", "alice.maker.01").is_err());
    }

    #[tokio::test]
    async fn hashes_are_argon2id_with_owasp_parameters_and_verify_exactly() {
        let hasher = PasswordHasher::new(2);
        let hash = hasher
            .hash(SecretString::from("  Grüße aus Köln  "))
            .await
            .expect("hash");
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        let ok = |p: &str| hasher.verify(SecretString::from(p), Some(hash.clone()));
        assert!(ok("  Grüße aus Köln  ").await.expect("verify"));
        assert!(!ok("Grüße aus Köln").await.expect("verify"), "no trimming");
        assert!(
            !ok("  grüße aus köln  ").await.expect("verify"),
            "no case folding"
        );
    }

    #[test]
    fn the_dummy_hash_costs_what_a_real_hash_costs() {
        let real = argon2()
            .hash_password(b"a real password")
            .expect("hash")
            .to_string();
        let parameters = |phc: &str| {
            let hash = argon2::PasswordHash::new(phc).expect("PHC string");
            (
                hash.algorithm.to_string(),
                hash.version,
                hash.params.to_string(),
                hash.hash.map(|h| h.len()),
            )
        };
        assert_eq!(parameters(&DUMMY_HASH), parameters(&real));
    }

    #[tokio::test]
    async fn unknown_users_never_verify() {
        let hasher = PasswordHasher::new(1);
        assert!(
            !hasher
                .verify(SecretString::from("anything at all"), None)
                .await
                .expect("verify")
        );
    }
}
