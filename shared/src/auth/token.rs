//! Access tokens: JWT (RFC 7519) signed with HS256 (RFC 7518 §3.2), the algorithm pinned.
//!
//! Claims: `sub` (username), `iss`, `aud`, `iat`, `exp`, all required and checked with at
//! most [`LEEWAY_SECS`] of clock leeway; a token whose lifetime (`exp - iat`) exceeds the
//! configured TTL plus the leeway, whose `nbf` (when present) or `iat`/`iat_ms` lies in the
//! future, or whose `iat_ms` disagrees with `iat`, is refused — so a token forged or minted
//! with a far-future issue time cannot outlive a password reset; `iat_ms`, the issue time in milliseconds, compared
//! with `users.tokens_valid_after` (`iat` alone has one-second resolution, which would let a
//! token issued in the same second as a password change survive it); `is_super_admin` and
//! `tenants` (`{tenant_name: [roles]}`) for clients to read. The server never trusts the two
//! last: every request re-reads the user (see [`crate::auth::Principal`]).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use crate::config::JwtConfig;
use crate::error::ApiError;

/// Clock leeway, in seconds, allowed on `exp` and `iat`.
pub const LEEWAY_SECS: u64 = 10;

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Subject: the username.
    pub sub: String,
    /// Issuer (`JWT_ISSUER`).
    pub iss: String,
    /// Audience (`JWT_AUDIENCE`).
    pub aud: String,
    /// Issued at, seconds since the Unix epoch.
    pub iat: i64,
    /// Expires at, seconds since the Unix epoch.
    pub exp: i64,
    /// Issued at, milliseconds since the Unix epoch.
    pub iat_ms: i64,
    /// Whether the user was a super admin when the token was issued (informational).
    pub is_super_admin: bool,
    /// The user's roles per tenant when the token was issued (informational).
    pub tenants: BTreeMap<String, Vec<String>>,
}

/// [`Claims`] with the optional `nbf` (not before, RFC 7519 §4.1.5): tokens of this server
/// carry none, but one that does is checked.
#[derive(Deserialize)]
struct Timed {
    #[serde(flatten)]
    claims: Claims,
    nbf: Option<i64>,
}

/// A freshly issued token, as `POST /auth/token` answers it (RFC 6749 §5.1).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct IssuedToken {
    /// The JWT.
    pub access_token: String,
    /// Always `bearer` (RFC 6750).
    pub token_type: &'static str,
    /// Lifetime in seconds.
    pub expires_in: u64,
}

/// Why a presented token was refused. Never shown in detail to clients.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Signature, algorithm, format or a registered claim is wrong.
    #[error("invalid token: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
    /// `iat` or `iat_ms` lies in the future beyond the leeway, or the two disagree.
    #[error("token issued in the future")]
    IssuedInFuture,
    /// `nbf` lies in the future beyond the leeway.
    #[error("token not yet valid")]
    NotYetValid,
    /// `exp - iat` exceeds the configured lifetime plus the leeway.
    #[error("token lifetime exceeds the configured TTL")]
    LifetimeTooLong,
}

/// Signing and verification keys with a pinned validation policy, built once at start-up.
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
    ttl: Duration,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl TokenKeys {
    /// Keys and policy from the configuration (the secret's length is checked by
    /// [`crate::config::Config::from_env`]).
    pub fn new(config: &JwtConfig) -> Self {
        let secret = config.secret.expose_secret().as_bytes();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        validation.validate_nbf = false;
        validation.validate_aud = true;
        validation.set_audience(&[&config.audience]);
        validation.set_issuer(&[&config.issuer]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            ttl: config.ttl,
        }
    }

    /// Token lifetime.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Issues a token for `sub` at `now`.
    ///
    /// # Errors
    /// 500 if signing fails.
    pub fn issue(
        &self,
        sub: &str,
        is_super_admin: bool,
        tenants: BTreeMap<String, Vec<String>>,
        now: DateTime<Utc>,
    ) -> Result<IssuedToken, ApiError> {
        let ttl_secs = self.ttl.as_secs();
        let claims = Claims {
            sub: sub.to_owned(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat: now.timestamp(),
            exp: now.timestamp() + i64::try_from(ttl_secs).unwrap_or(i64::MAX / 2),
            iat_ms: now.timestamp_millis(),
            is_super_admin,
            tenants,
        };
        let access_token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
                .map_err(ApiError::internal)?;
        Ok(IssuedToken {
            access_token,
            token_type: "bearer",
            expires_in: ttl_secs,
        })
    }

    /// Verifies signature, algorithm and registered claims; that `iat`, `iat_ms` and `nbf`
    /// (when present) are not in the future beyond the leeway relative to `now`; that
    /// `iat_ms` falls within `iat`'s second; and that `exp - iat` is at most the configured
    /// TTL plus the leeway.
    ///
    /// # Errors
    /// [`TokenError`] for any invalid token.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Claims, TokenError> {
        let data = jsonwebtoken::decode::<Timed>(token, &self.decoding, &self.validation)?;
        let Timed { claims, nbf } = data.claims;
        let leeway = i64::try_from(LEEWAY_SECS).unwrap_or(0);
        let latest = now.timestamp().saturating_add(leeway);
        if claims.iat > latest
            || claims.iat_ms > latest.saturating_mul(1000)
            || claims.iat_ms.div_euclid(1000) != claims.iat
        {
            return Err(TokenError::IssuedInFuture);
        }
        if nbf.is_some_and(|nbf| nbf > latest) {
            return Err(TokenError::NotYetValid);
        }
        let max_lifetime = i64::try_from(self.ttl.as_secs())
            .unwrap_or(i64::MAX / 2)
            .saturating_add(leeway);
        if claims.exp.saturating_sub(claims.iat) > max_lifetime {
            return Err(TokenError::LifetimeTooLong);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use secrecy::SecretString;
    use serde_json::json;

    const SECRET: &str = "test-secret-test-secret-test-secret!";

    fn keys() -> TokenKeys {
        TokenKeys::new(&JwtConfig {
            secret: SecretString::from(SECRET),
            issuer: "iss-a".into(),
            audience: "aud-a".into(),
            ttl: Duration::from_secs(900),
        })
    }

    fn sign(header: Header, claims: serde_json::Value, secret: &str) -> String {
        jsonwebtoken::encode(
            &header,
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .expect("sign")
    }

    fn claims(now: DateTime<Utc>) -> serde_json::Value {
        json!({
            "sub": "alice", "iss": "iss-a", "aud": "aud-a",
            "iat": now.timestamp(), "exp": now.timestamp() + 900, "iat_ms": now.timestamp_millis(),
            "is_super_admin": false, "tenants": {}
        })
    }

    #[test]
    fn issued_tokens_verify_and_carry_the_claims() {
        let now = Utc::now();
        let tenants = BTreeMap::from([("credit_card".to_string(), vec!["approver".to_string()])]);
        let issued = keys()
            .issue("alice", true, tenants.clone(), now)
            .expect("issue");
        assert_eq!(issued.token_type, "bearer");
        assert_eq!(issued.expires_in, 900);
        let claims = keys().verify(&issued.access_token, now).expect("valid");
        assert_eq!(claims.sub, "alice");
        assert_eq!(claims.exp - claims.iat, 900);
        assert!(claims.is_super_admin);
        assert_eq!(claims.tenants, tenants);
    }

    #[test]
    fn forged_and_stale_tokens_are_rejected() {
        let now = Utc::now();
        let good = claims(now);
        let with = |key: &str, value: serde_json::Value| {
            let mut c = good.clone();
            c[key] = value;
            c
        };
        let without = |key: &str| {
            let mut c = good.clone();
            c.as_object_mut().expect("object").remove(key);
            c
        };
        let hs256 = || Header::new(Algorithm::HS256);
        let cases: Vec<(&str, String)> = vec![
            (
                "another algorithm",
                sign(Header::new(Algorithm::HS512), good.clone(), SECRET),
            ),
            (
                "wrong key",
                sign(hs256(), good.clone(), "another-secret-another-secret-xx"),
            ),
            (
                "expired",
                sign(hs256(), with("exp", json!(now.timestamp() - 60)), SECRET),
            ),
            (
                "wrong issuer",
                sign(hs256(), with("iss", json!("iss-b")), SECRET),
            ),
            (
                "wrong audience",
                sign(hs256(), with("aud", json!("aud-b")), SECRET),
            ),
            ("no audience", sign(hs256(), without("aud"), SECRET)),
            ("no exp", sign(hs256(), without("exp"), SECRET)),
            ("no iat", sign(hs256(), without("iat"), SECRET)),
            ("no sub", sign(hs256(), without("sub"), SECRET)),
            (
                "issued in the future",
                sign(hs256(), with("iat", json!(now.timestamp() + 120)), SECRET),
            ),
            (
                "iat_ms a century ahead",
                sign(
                    hs256(),
                    with(
                        "iat_ms",
                        json!(now.timestamp_millis() + 100 * 365 * 86_400_000),
                    ),
                    SECRET,
                ),
            ),
            (
                "iat_ms disagreeing with iat",
                sign(
                    hs256(),
                    with("iat_ms", json!(now.timestamp_millis() - 60_000)),
                    SECRET,
                ),
            ),
            (
                "not valid before a minute from now",
                sign(hs256(), with("nbf", json!(now.timestamp() + 60)), SECRET),
            ),
            (
                "lifetime of a year",
                sign(
                    hs256(),
                    with("exp", json!(now.timestamp() + 365 * 86_400)),
                    SECRET,
                ),
            ),
        ];
        for (case, token) in cases {
            assert!(keys().verify(&token, now).is_err(), "{case} was accepted");
        }
    }

    #[test]
    fn tokens_at_the_limits_are_accepted() {
        let now = Utc::now();
        let mut at_limits = claims(now);
        at_limits["exp"] = json!(now.timestamp() + 900 + 10);
        at_limits["nbf"] = json!(now.timestamp() + 5);
        let token = sign(Header::new(Algorithm::HS256), at_limits, SECRET);
        assert!(keys().verify(&token, now).is_ok());
    }

    #[test]
    fn unsigned_and_tampered_tokens_are_rejected() {
        let now = Utc::now();
        let token = keys()
            .issue("alice", false, BTreeMap::new(), now)
            .expect("issue")
            .access_token;
        let parts: Vec<&str> = token.split('.').collect();
        let b64 = |v: &serde_json::Value| {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let none_header = b64(&json!({"alg": "none", "typ": "JWT"}));
        let mut elevated = claims(now);
        elevated["is_super_admin"] = json!(true);
        let alg_none = format!("{none_header}.{}.", parts[1]);
        let tampered = format!("{}.{}.{}", parts[0], b64(&elevated), parts[2]);
        assert!(keys().verify(&alg_none, now).is_err(), "alg none accepted");
        assert!(
            keys().verify(&tampered, now).is_err(),
            "tampered payload accepted"
        );
    }
}
