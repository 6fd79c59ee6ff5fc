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

/// The campaign queue: `CAMPAIGN_QUEUE_URL`, the SQS queue of campaign jobs. Required by
/// the functions that send or take jobs in AWS; unset in `offerctl serve`, which then uses
/// its in-process queue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueConfig {
    /// The queue's URL, if set.
    pub url: Option<String>,
}

impl QueueConfig {
    /// Reads `CAMPAIGN_QUEUE_URL` through `lookup` ([`env`] for the process's).
    #[must_use]
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        Self {
            url: Vars(lookup).optional("CAMPAIGN_QUEUE_URL"),
        }
    }

    /// The queue's URL, for a function that cannot run without it.
    ///
    /// # Errors
    /// [`ConfigError::Missing`] naming `CAMPAIGN_QUEUE_URL`.
    pub fn required_url(&self) -> Result<&str, ConfigError> {
        self.url
            .as_deref()
            .ok_or(ConfigError::Missing("CAMPAIGN_QUEUE_URL"))
    }
}

/// The campaign processor: `CAMPAIGN_RANGE_SIZE`, customers per range message (a larger
/// audience is split into id ranges), a positive whole number, default
/// [`ProcessorConfig::DEFAULT_RANGE_SIZE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessorConfig {
    /// Customers per range.
    pub range_size: i64,
}

impl ProcessorConfig {
    /// Customers per range unless `CAMPAIGN_RANGE_SIZE` says otherwise.
    pub const DEFAULT_RANGE_SIZE: i64 = 200_000;

    /// Reads `CAMPAIGN_RANGE_SIZE` through `lookup`.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for anything but a positive whole number.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Ok(Self {
            range_size: Vars(lookup).number(
                "CAMPAIGN_RANGE_SIZE",
                Self::DEFAULT_RANGE_SIZE,
                1..=i64::MAX,
            )?,
        })
    }
}

/// When a job counts as stale and how often it is re-driven (the relay:
/// `CAMPAIGN_STALE_AFTER_SECONDS`, `CAMPAIGN_MAX_ATTEMPTS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedrivePolicy {
    /// Time without progress after which a queued or running job is re-driven
    /// (`CAMPAIGN_STALE_AFTER_SECONDS`, default [`RedrivePolicy::DEFAULT_STALE_AFTER`]).
    pub stale_after: Duration,
    /// Attempts (the first drive included) after which a stale job becomes `failed`
    /// (`CAMPAIGN_MAX_ATTEMPTS`, default [`RedrivePolicy::DEFAULT_MAX_ATTEMPTS`]).
    pub max_attempts: i32,
}

impl Default for RedrivePolicy {
    fn default() -> Self {
        Self {
            stale_after: Self::DEFAULT_STALE_AFTER,
            max_attempts: Self::DEFAULT_MAX_ATTEMPTS,
        }
    }
}

impl RedrivePolicy {
    /// Default time without progress before a job is re-driven.
    pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(600);
    /// Default attempts before a stale job is given up.
    pub const DEFAULT_MAX_ATTEMPTS: i32 = 3;

    /// Reads `CAMPAIGN_STALE_AFTER_SECONDS` and `CAMPAIGN_MAX_ATTEMPTS` (positive whole
    /// numbers) through `lookup`.
    ///
    /// # Errors
    /// [`ConfigError`] naming the variable that is not a positive whole number.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let vars = Vars(lookup);
        Ok(Self {
            stale_after: Duration::from_secs(vars.number(
                "CAMPAIGN_STALE_AFTER_SECONDS",
                Self::DEFAULT_STALE_AFTER.as_secs(),
                1..=u64::from(u32::MAX),
            )?),
            max_attempts: vars.number(
                "CAMPAIGN_MAX_ATTEMPTS",
                Self::DEFAULT_MAX_ATTEMPTS,
                1..=i32::MAX,
            )?,
        })
    }
}

/// The relay of `offerctl serve`: its re-drive policy and `CAMPAIGN_RELAY_INTERVAL_SECONDS`
/// (1–86,400, default [`RelayConfig::DEFAULT_INTERVAL`]; on AWS the schedule in
/// `template.yaml` runs the relay).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayConfig {
    /// When a job is re-driven.
    pub redrive: RedrivePolicy,
    /// How often the relay runs.
    pub interval: Duration,
}

impl RelayConfig {
    /// Default interval between the local relay's runs.
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

    /// Reads the relay's variables through `lookup`.
    ///
    /// # Errors
    /// [`ConfigError`] naming the variable that is malformed.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let redrive = RedrivePolicy::from_lookup(&lookup)?;
        let interval = Duration::from_secs(Vars(&lookup).number(
            "CAMPAIGN_RELAY_INTERVAL_SECONDS",
            Self::DEFAULT_INTERVAL.as_secs(),
            1..=86_400,
        )?);
        Ok(Self { redrive, interval })
    }
}

/// Customer files: `CUSTOMER_IMPORT_MAX_BYTES`, the largest object the S3 import takes (a
/// larger one gets a `too_large` result before anything is read), in bytes, default
/// [`ImportConfig::DEFAULT_MAX_BYTES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportConfig {
    /// Largest object, in bytes.
    pub max_bytes: u64,
}

impl ImportConfig {
    /// Default largest object: 4 GiB.
    pub const DEFAULT_MAX_BYTES: u64 = 4 << 30;

    /// Reads `CUSTOMER_IMPORT_MAX_BYTES` through `lookup`.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for anything but a positive whole number.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Ok(Self {
            max_bytes: Vars(lookup).number(
                "CUSTOMER_IMPORT_MAX_BYTES",
                Self::DEFAULT_MAX_BYTES,
                1..=u64::MAX,
            )?,
        })
    }
}

/// The data bucket and its S3 endpoint: `DATA_BUCKET` (customer files under `imports/`,
/// archives under `archive/`), and whether `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL`
/// names an S3-compatible endpoint (an emulator), which is then addressed path-style.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct S3Config {
    /// The data bucket, if set.
    pub data_bucket: Option<String>,
    /// Whether a custom endpoint is set.
    pub custom_endpoint: bool,
}

impl S3Config {
    /// Reads the variables through `lookup`.
    #[must_use]
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let vars = Vars(lookup);
        Self {
            data_bucket: vars.optional("DATA_BUCKET"),
            custom_endpoint: ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]
                .into_iter()
                .any(|name| vars.optional(name).is_some()),
        }
    }

    /// The data bucket, for a process that cannot run without it.
    ///
    /// # Errors
    /// [`ConfigError::Missing`] naming `DATA_BUCKET`.
    pub fn required_bucket(&self) -> Result<&str, ConfigError> {
        self.data_bucket
            .as_deref()
            .ok_or(ConfigError::Missing("DATA_BUCKET"))
    }
}

/// Archiving (the `housekeeping` function, `offerctl archive run`):
/// `HOUSEKEEPING_MAX_CAMPAIGNS`, campaigns archived per run (1–10,000, default
/// [`ArchiveConfig::DEFAULT_MAX_CAMPAIGNS`]), and the report grace period (a campaign is
/// archived only once its reports can no longer arrive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveConfig {
    /// Campaigns per run.
    pub max_campaigns: i64,
    /// The report grace period.
    pub report_grace: ReportGrace,
}

impl ArchiveConfig {
    /// Default campaigns per run.
    pub const DEFAULT_MAX_CAMPAIGNS: i64 = 20;

    /// Reads the variables through `lookup`.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the variable that is malformed.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Ok(Self {
            max_campaigns: Vars(&lookup).number(
                "HOUSEKEEPING_MAX_CAMPAIGNS",
                Self::DEFAULT_MAX_CAMPAIGNS,
                1..=10_000,
            )?,
            report_grace: ReportGrace::from_lookup(&lookup)?,
        })
    }
}

/// The operator CLI's own: `SUPER_ADMIN_PASSWORD`, the password `offerctl
/// create-super-admin` sets and `offerctl demo` signs in with (otherwise prompted, or read
/// from a file).
#[derive(Debug, Clone, Default)]
pub struct OperatorConfig {
    /// The password, if set.
    pub super_admin_password: Option<SecretString>,
}

impl OperatorConfig {
    /// Reads `SUPER_ADMIN_PASSWORD` through `lookup`.
    #[must_use]
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        Self {
            super_admin_password: Vars(lookup)
                .optional("SUPER_ADMIN_PASSWORD")
                .map(SecretString::from),
        }
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
