//! Runtime configuration, read once from the environment at start-up.
//!
//! Variables (docs/operations.md, "Configuration"): `DATABASE_URL` (required), `DATABASE_PLATFORM_URL`
//! (required by the API: another login role, in `offers_platform`), `DATABASE_POOL_SIZE`
//! (default 2, the Lambda sizing), `JWT_SECRET` (required, at least 32 bytes), `JWT_ISSUER`,
//! `JWT_AUDIENCE`, `ACCESS_TOKEN_TTL_SECONDS` (default 900), `PASSWORD_HASH_CONCURRENCY`
//! (default 2: how many argon2 computations may run at once per process) and
//! `TRUSTED_PROXY_HEADER` (unset: the client address is API Gateway's `sourceIp` on Lambda,
//! the socket's peer locally; set, e.g. `X-Forwarded-For`, when `offerctl serve` runs behind
//! a proxy that writes it: the right-most address of that header is used).

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

mod sections;

pub use sections::{
    ArchiveConfig, ImportConfig, OperatorConfig, ProcessorConfig, QueueConfig, RedrivePolicy,
    RelayConfig, S3Config,
};

/// Minimum length of `JWT_SECRET` in bytes: the HS256 key must be at least as long as the
/// hash output (RFC 7518 §3.2).
pub const MIN_JWT_SECRET_BYTES: usize = 32;

/// Default `JWT_ISSUER`.
pub const DEFAULT_JWT_ISSUER: &str = "offer-management-platform";
/// Default `JWT_AUDIENCE`.
pub const DEFAULT_JWT_AUDIENCE: &str = "offer-management-api";

/// Why the configuration could not be read. The message names the variable, never its value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A required variable is not set (or is empty).
    #[error("environment variable {0} is required but not set")]
    Missing(&'static str),
    /// A variable is set but its value is unusable.
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid {
        /// The variable's name.
        name: &'static str,
        /// What is wrong with it (never the value itself: it may be a secret).
        reason: String,
    },
}

/// Database connection settings.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// `DATABASE_URL`: a PostgreSQL connection URL (`postgres://user:pass@host:port/db`), of
    /// a login role in `offers_api` (row-level security applies to it).
    pub url: SecretString,
    /// `DATABASE_PLATFORM_URL`: the URL of the platform scope's connections (paths that span
    /// tenants), a second login role, member of `offers_platform` (migration V014). Required by
    /// [`Config`] (the API), where it must name another role than `DATABASE_URL`. Unset in a
    /// [`DatabaseConfig`] alone (the processor, the relay, the webhook, `offerctl`'s commands):
    /// the platform pool connects as `DATABASE_URL`'s role, which then sees every tenant only
    /// if it is itself in `offers_platform` (the tables' owner is, for `offerctl`).
    pub platform_url: Option<SecretString>,
    /// `DATABASE_POOL_SIZE`: maximum connections per process (1–2 per Lambda instance).
    pub pool_size: usize,
    /// `DATABASE_CA_FILE`: PEM file of extra CA certificates trusted for `sslmode=require`
    /// (e.g. the Amazon RDS bundle for direct RDS connections; RDS Proxy's certificates chain
    /// to public roots, which are always trusted).
    pub ca_file: Option<std::path::PathBuf>,
}

/// Access-token settings.
#[derive(Debug, Clone)]
pub struct JwtConfig {
    /// `JWT_SECRET`: the HS256 signing key, at least [`MIN_JWT_SECRET_BYTES`] bytes.
    pub secret: SecretString,
    /// `JWT_ISSUER`: the `iss` claim written and required.
    pub issuer: String,
    /// `JWT_AUDIENCE`: the `aud` claim written and required.
    pub audience: String,
    /// `ACCESS_TOKEN_TTL_SECONDS`: lifetime of an access token.
    pub ttl: Duration,
}

/// Everything a function needs to serve requests.
#[derive(Debug, Clone)]
pub struct Config {
    /// Database settings.
    pub database: DatabaseConfig,
    /// Token settings.
    pub jwt: JwtConfig,
    /// `PASSWORD_HASH_CONCURRENCY`: bound on concurrent argon2 computations, so a login flood
    /// cannot starve the rest of the API.
    pub password_hash_concurrency: usize,
    /// `TRUSTED_PROXY_HEADER`: the request header a trusted reverse proxy writes the client's
    /// address into (its right-most entry is used); `None` outside such a proxy.
    pub trusted_proxy_header: Option<axum::http::HeaderName>,
    /// `CAMPAIGN_REPORT_GRACE_DAYS`: see [`ReportGrace`].
    pub report_grace: ReportGrace,
    /// `CAMPAIGN_RELEASE_BATCH`: see [`ReleaseBatch`].
    pub release_batch: ReleaseBatch,
}

/// Most deliveries one release transaction judges (`CAMPAIGN_RELEASE_BATCH`, a whole number
/// from 1 to 100,000,000, default [`ReleaseBatch::DEFAULT_DELIVERIES`]). The release of a
/// campaign that selected at most this many customers (`matched_count`) runs inside the
/// request (or scheduler run) that asks for it; a larger one becomes a release job of
/// `ceil(matched / deliveries)` customer-id ranges on the campaign queue (`shared::db::campaigns::releases`), each released in its own
/// transaction by the campaign processor.
///
/// The default is measured: a release judged about 10,000 deliveries a second at
/// 1,000,000 customers and 6,600 at 10,000,000 on the benchmark machine
/// (docs/performance.md), so 100,000 takes 10 to 15 s there, inside API Gateway's 30 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReleaseBatch {
    /// Deliveries.
    pub deliveries: i64,
}

impl Default for ReleaseBatch {
    fn default() -> Self {
        Self {
            deliveries: Self::DEFAULT_DELIVERIES,
        }
    }
}

impl ReleaseBatch {
    /// The default batch, in deliveries.
    pub const DEFAULT_DELIVERIES: i64 = 100_000;

    /// Reads `CAMPAIGN_RELEASE_BATCH` through `lookup` ([`env`] for the process's).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for anything but a whole number from 1 to 100,000,000.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let deliveries = Vars(lookup).number(
            "CAMPAIGN_RELEASE_BATCH",
            Self::DEFAULT_DELIVERIES,
            1..=100_000_000,
        )?;
        Ok(Self { deliveries })
    }
}

/// How long after a campaign's end (`ends_at`) delivery reports dated inside it are still
/// accepted (`CAMPAIGN_REPORT_GRACE_DAYS`, whole days from 0 to 365, default
/// [`ReportGrace::DEFAULT_DAYS`]), so late provider callbacks are not lost; later ones are
/// answered `invalid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportGrace {
    /// Days.
    pub days: i32,
}

impl Default for ReportGrace {
    fn default() -> Self {
        Self {
            days: Self::DEFAULT_DAYS,
        }
    }
}

impl ReportGrace {
    /// The default grace period, in days.
    pub const DEFAULT_DAYS: i32 = 7;

    /// Reads `CAMPAIGN_REPORT_GRACE_DAYS`.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for anything but a whole number from 0 to 365.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(env)
    }

    /// As [`ReportGrace::from_env`], reading variables through `lookup`.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for anything but a whole number from 0 to 365.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let days =
            Vars(lookup).number("CAMPAIGN_REPORT_GRACE_DAYS", Self::DEFAULT_DAYS, 0..=365)?;
        Ok(Self { days })
    }
}

/// Reads variables through `lookup`, so tests can configure without touching the process
/// environment (`std::env::set_var` is `unsafe` in edition 2024).
struct Vars<F>(F);

impl<F: Fn(&str) -> Option<String>> Vars<F> {
    fn optional(&self, name: &'static str) -> Option<String> {
        (self.0)(name).filter(|v| !v.trim().is_empty())
    }

    fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.optional(name).ok_or(ConfigError::Missing(name))
    }

    fn number<T>(
        &self,
        name: &'static str,
        default: T,
        range: std::ops::RangeInclusive<T>,
    ) -> Result<T, ConfigError>
    where
        T: std::str::FromStr + PartialOrd + std::fmt::Display,
    {
        let Some(raw) = self.optional(name) else {
            return Ok(default);
        };
        let value: T = raw.trim().parse().map_err(|_| ConfigError::Invalid {
            name,
            reason: "not a whole number".into(),
        })?;
        if !range.contains(&value) {
            return Err(ConfigError::Invalid {
                name,
                reason: format!("must be between {} and {}", range.start(), range.end()),
            });
        }
        Ok(value)
    }
}

impl DatabaseConfig {
    /// Reads `DATABASE_URL`, `DATABASE_PLATFORM_URL`, `DATABASE_POOL_SIZE` and
    /// `DATABASE_CA_FILE` from the process environment.
    ///
    /// # Errors
    /// [`ConfigError`] naming the variable that is missing or malformed.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(env)
    }

    /// As [`DatabaseConfig::from_env`], reading variables through `lookup`.
    ///
    /// # Errors
    /// [`ConfigError`] naming the variable that is missing or malformed.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Self::read(&Vars(lookup))
    }

    fn read<F: Fn(&str) -> Option<String>>(vars: &Vars<F>) -> Result<Self, ConfigError> {
        let url = vars.required("DATABASE_URL")?;
        let platform_url = vars.optional("DATABASE_PLATFORM_URL");
        for (name, value) in [
            ("DATABASE_URL", Some(&url)),
            ("DATABASE_PLATFORM_URL", platform_url.as_ref()),
        ] {
            if value.is_some_and(|v| v.parse::<tokio_postgres::Config>().is_err()) {
                return Err(ConfigError::Invalid {
                    name,
                    reason: "not a PostgreSQL connection URL".into(),
                });
            }
        }
        Ok(Self {
            url: SecretString::from(url),
            platform_url: platform_url.map(SecretString::from),
            pool_size: vars.number("DATABASE_POOL_SIZE", 2usize, 1..=100)?,
            ca_file: vars
                .optional("DATABASE_CA_FILE")
                .filter(|p| !p.trim().is_empty())
                .map(std::path::PathBuf::from),
        })
    }
}

impl Config {
    /// Reads the whole configuration from the process environment.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first variable that is missing or malformed.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(env)
    }

    /// As [`Config::from_env`], reading variables through `lookup`.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first variable that is missing or malformed.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let vars = Vars(lookup);
        let database = DatabaseConfig::read(&vars)?;
        let secret = SecretString::from(vars.required("JWT_SECRET")?);
        if secret.expose_secret().len() < MIN_JWT_SECRET_BYTES {
            return Err(ConfigError::Invalid {
                name: "JWT_SECRET",
                reason: format!("must be at least {MIN_JWT_SECRET_BYTES} bytes"),
            });
        }
        let jwt = JwtConfig {
            secret,
            issuer: vars
                .optional("JWT_ISSUER")
                .unwrap_or_else(|| DEFAULT_JWT_ISSUER.into()),
            audience: vars
                .optional("JWT_AUDIENCE")
                .unwrap_or_else(|| DEFAULT_JWT_AUDIENCE.into()),
            ttl: Duration::from_secs(vars.number(
                "ACCESS_TOKEN_TTL_SECONDS",
                900u64,
                60..=86_400,
            )?),
        };
        // The tenant routes' second wall is a role their connections do not hold: the
        // platform scope must come from another login role.
        let Some(platform_url) = &database.platform_url else {
            return Err(ConfigError::Missing("DATABASE_PLATFORM_URL"));
        };
        let user = |url: &SecretString| {
            url.expose_secret()
                .parse::<tokio_postgres::Config>()
                .ok()
                .and_then(|c| c.get_user().map(str::to_owned))
        };
        if user(platform_url) == user(&database.url) {
            return Err(ConfigError::Invalid {
                name: "DATABASE_PLATFORM_URL",
                reason: "must log in as another role than DATABASE_URL (a member of \
                         offers_platform; tenant routes must not hold it)"
                    .into(),
            });
        }
        Ok(Self {
            database,
            jwt,
            password_hash_concurrency: vars.number("PASSWORD_HASH_CONCURRENCY", 2usize, 1..=64)?,
            trusted_proxy_header: vars
                .optional("TRUSTED_PROXY_HEADER")
                .map(|name| {
                    axum::http::HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| {
                        ConfigError::Invalid {
                            name: "TRUSTED_PROXY_HEADER",
                            reason: "not an HTTP header name".into(),
                        }
                    })
                })
                .transpose()?,
            report_grace: ReportGrace::from_lookup(&vars.0)?,
            release_batch: ReleaseBatch::from_lookup(&vars.0)?,
        })
    }
}

/// The process environment, the one place it is read: every section below takes its
/// variables through this lookup (or a test's own).
#[must_use]
pub fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Whether this process runs in AWS Lambda (`AWS_LAMBDA_FUNCTION_NAME`, set by the Lambda
/// runtime): logs as JSON and metrics as EMF records there, readable lines elsewhere.
#[must_use]
pub fn on_lambda() -> bool {
    env("AWS_LAMBDA_FUNCTION_NAME").is_some()
}

impl DatabaseConfig {
    /// The tables' owner's connection (`offerctl migrate`, the `migrate` function):
    /// `DATABASE_OWNER_URL` when set, else `DATABASE_URL` (the `migrate` function's is the
    /// owner); never a platform URL (a migration is the owner's work).
    ///
    /// # Errors
    /// [`ConfigError`] naming the variable that is missing or malformed.
    pub fn owner_from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let vars = Vars(lookup);
        let owner = vars.optional("DATABASE_OWNER_URL");
        if owner
            .as_ref()
            .is_some_and(|url| url.parse::<tokio_postgres::Config>().is_err())
        {
            return Err(ConfigError::Invalid {
                name: "DATABASE_OWNER_URL",
                reason: "not a PostgreSQL connection URL".into(),
            });
        }
        Self::read(&Vars(|name: &str| match name {
            "DATABASE_URL" => owner.clone().or_else(|| vars.optional("DATABASE_URL")),
            "DATABASE_PLATFORM_URL" => None,
            _ => (vars.0)(name),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    const URL: (&str, &str) = ("DATABASE_URL", "postgres://u@localhost/db");
    const PLATFORM: (&str, &str) = ("DATABASE_PLATFORM_URL", "postgres://p@localhost/db");
    const KEY: (&str, &str) = ("JWT_SECRET", "0123456789abcdef0123456789abcdef");

    #[test]
    fn defaults_apply_when_only_required_variables_are_set() {
        let config = Config::from_lookup(lookup(&[URL, PLATFORM, KEY])).expect("valid");
        assert_eq!(config.database.pool_size, 2);
        assert_eq!(config.jwt.ttl, Duration::from_secs(900));
        assert_eq!(config.jwt.issuer, DEFAULT_JWT_ISSUER);
        assert_eq!(config.jwt.audience, DEFAULT_JWT_AUDIENCE);
    }

    #[test]
    fn missing_variables_are_named() {
        assert_eq!(
            Config::from_lookup(lookup(&[KEY])).expect_err("must be refused"),
            ConfigError::Missing("DATABASE_URL")
        );
        assert_eq!(
            Config::from_lookup(lookup(&[URL])).expect_err("must be refused"),
            ConfigError::Missing("JWT_SECRET")
        );
        assert_eq!(
            Config::from_lookup(lookup(&[URL, KEY])).expect_err("must be refused"),
            ConfigError::Missing("DATABASE_PLATFORM_URL")
        );
    }

    #[test]
    fn the_platform_scope_must_be_another_role() {
        let same = (
            "DATABASE_PLATFORM_URL",
            "postgres://u:s3cr3t-pw@localhost/db",
        );
        let err = Config::from_lookup(lookup(&[URL, same, KEY])).expect_err("must be refused");
        assert!(matches!(
            err,
            ConfigError::Invalid {
                name: "DATABASE_PLATFORM_URL",
                ..
            }
        ));
        assert!(
            !err.to_string().contains("s3cr3t"),
            "no secret in the message"
        );
    }

    #[test]
    fn short_jwt_secret_is_refused_without_echoing_it() {
        let err = Config::from_lookup(lookup(&[URL, ("JWT_SECRET", "short-secret")]))
            .expect_err("must be refused");
        let message = err.to_string();
        assert!(message.contains("JWT_SECRET") && message.contains("32 bytes"));
        assert!(!message.contains("short-secret"));
    }

    #[test]
    fn malformed_numbers_and_urls_are_named() {
        let err = Config::from_lookup(lookup(&[URL, KEY, ("DATABASE_POOL_SIZE", "many")]));
        assert!(matches!(
            err,
            Err(ConfigError::Invalid {
                name: "DATABASE_POOL_SIZE",
                ..
            })
        ));
        let err = Config::from_lookup(lookup(&[URL, KEY, ("ACCESS_TOKEN_TTL_SECONDS", "5")]));
        assert!(matches!(
            err,
            Err(ConfigError::Invalid {
                name: "ACCESS_TOKEN_TTL_SECONDS",
                ..
            })
        ));
        let err = Config::from_lookup(lookup(&[("DATABASE_URL", "not a url at all://"), KEY]));
        assert!(matches!(
            err,
            Err(ConfigError::Invalid {
                name: "DATABASE_URL",
                ..
            })
        ));
    }
}
