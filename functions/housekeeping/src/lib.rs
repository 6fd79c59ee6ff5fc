//! `housekeeping`: an EventBridge schedule (`template.yaml`, daily) runs
//! [`bulk::archive::run`]: completed campaigns past their tenant's `retention_days` have
//! their deliveries exported to the data bucket, verified and deleted; the contact ledger is
//! pruned of rows no policy can count. Every step is idempotent and resumes after a kill.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use bulk::BulkError;
use bulk::archive::{HousekeepingOptions, HousekeepingReport};
use shared::config::{ArchiveConfig, ConfigError, S3Config, env};

/// What the function holds across invocations.
pub struct Housekeeper {
    /// The platform pool (every tenant's campaigns).
    pub pool: deadpool_postgres::Pool,
    /// The S3 client.
    pub s3: aws_sdk_s3::Client,
    /// Bucket and limits.
    pub options: HousekeepingOptions,
}

impl Housekeeper {
    /// The options from the environment: `DATA_BUCKET` (required),
    /// `CAMPAIGN_REPORT_GRACE_DAYS` and `HOUSEKEEPING_MAX_CAMPAIGNS`
    /// ([`shared::config::ArchiveConfig`]).
    ///
    /// # Errors
    /// [`ConfigError`] naming the variable that is missing or malformed.
    pub fn options_from_env() -> Result<HousekeepingOptions, ConfigError> {
        let bucket = S3Config::from_lookup(env).required_bucket()?.to_owned();
        let archive = ArchiveConfig::from_lookup(env)?;
        Ok(HousekeepingOptions {
            bucket,
            report_grace_days: archive.report_grace.days,
            max_campaigns: archive.max_campaigns,
            delete_batch_rows: bulk::archive::DELETE_BATCH_ROWS,
        })
    }

    /// Handles one scheduled event (its content is only logged).
    ///
    /// # Errors
    /// [`BulkError`] if listing the due campaigns or pruning failed.
    pub async fn handle(&self, event: &EventBridgeEvent) -> Result<HousekeepingReport, BulkError> {
        tracing::debug!(event.id = ?event.id, "housekeeping run");
        let report = bulk::archive::run(&self.pool, &self.s3, &self.options).await?;
        tracing::info!(?report, "housekeeping done");
        Ok(report)
    }
}
