//! The configuration sections of the functions that do the platform's work outside the
//! request path: the campaign queue, the processor, the relay, customer files, the data
//! bucket, archiving and the operator CLI. Each reads its variables through a lookup
//! ([`super::env`] for the process's).

use std::time::Duration;

use secrecy::SecretString;

use super::{ConfigError, ReportGrace, Vars};

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
/// [`ImportConfig::DEFAULT_MAX_BYTES`]; `CUSTOMER_IMPORT_MAX_DECOMPRESSED_BYTES`, the most
/// a file may hold once decompressed (S3 and `offerctl import-customers`; reading stops at
/// the first byte past it), default [`ImportConfig::DEFAULT_MAX_DECOMPRESSED_BYTES`];
/// `CUSTOMER_IMPORT_PART_BYTES`, the size of the parts a larger file is imported in, each by
/// an invocation of its own (decompressed bytes, at least 1 MiB), default
/// [`ImportConfig::DEFAULT_PART_BYTES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportConfig {
    /// Largest object, in bytes.
    pub max_bytes: u64,
    /// Largest decompressed file, in bytes.
    pub max_decompressed_bytes: u64,
    /// Decompressed bytes per part.
    pub part_bytes: u64,
}

impl ImportConfig {
    /// Default largest object: 16 GiB, the decompressed limit (a file of any size is
    /// imported in parts; the one pass that plans them reads it at S3's pace).
    pub const DEFAULT_MAX_BYTES: u64 = 16 << 30;
    /// Default largest decompressed file: 16 GiB.
    pub const DEFAULT_MAX_DECOMPRESSED_BYTES: u64 = 16 << 30;
    /// Default part: 128 MiB (about 250,000 rows of 500 bytes, staged in seconds, well
    /// inside the processor's 120 s).
    pub const DEFAULT_PART_BYTES: u64 = 128 << 20;

    /// Reads the variables through `lookup`.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for anything but a positive whole number.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let vars = Vars(lookup);
        Ok(Self {
            max_bytes: vars.number(
                "CUSTOMER_IMPORT_MAX_BYTES",
                Self::DEFAULT_MAX_BYTES,
                1..=u64::MAX,
            )?,
            max_decompressed_bytes: vars.number(
                "CUSTOMER_IMPORT_MAX_DECOMPRESSED_BYTES",
                Self::DEFAULT_MAX_DECOMPRESSED_BYTES,
                1..=u64::MAX,
            )?,
            part_bytes: vars.number(
                "CUSTOMER_IMPORT_PART_BYTES",
                Self::DEFAULT_PART_BYTES,
                (1 << 20)..=u64::MAX,
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
