//! `housekeeping`: an EventBridge schedule (`template.yaml`, daily) runs
//! [`bulk::archive::run`]: completed campaigns past their tenant's `retention_days` have
//! their deliveries exported to the data bucket, verified and deleted; the contact ledger is
//! pruned of rows no policy can count. Every step is idempotent and resumes after a kill.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use bulk::BulkError;
use bulk::archive::{HousekeepingOptions, HousekeepingReport};

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
    /// `CAMPAIGN_REPORT_GRACE_DAYS`, `HOUSEKEEPING_MAX_CAMPAIGNS` (default
    /// [`bulk::archive::DEFAULT_MAX_CAMPAIGNS`]).
    ///
    /// # Errors
    /// A message naming the variable that is missing or malformed.
    pub fn options_from_env() -> Result<HousekeepingOptions, String> {
        let bucket = std::env::var("DATA_BUCKET")
            .map_err(|_| "DATA_BUCKET must name the data bucket".to_owned())?;
        let grace = shared::config::ReportGrace::from_env().map_err(|e| e.to_string())?;
        let max_campaigns = shared::config::number_from_env(
            "HOUSEKEEPING_MAX_CAMPAIGNS",
            bulk::archive::DEFAULT_MAX_CAMPAIGNS,
            1..=10_000,
        )
        .map_err(|e| e.to_string())?;
        Ok(HousekeepingOptions {
            bucket,
            report_grace_days: grace.days,
            max_campaigns,
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
