//! Operational metrics of campaign processing, as CloudWatch embedded metric format (EMF)
//! records.
//!
//! On Lambda (`AWS_LAMBDA_FUNCTION_NAME` set) each [`emit`] prints one EMF JSON object as a
//! line of its own on standard output; CloudWatch Logs turns it into metrics in the
//! [`NAMESPACE`] namespace with the dimension `Service` = [`SERVICE`], no agent or API call
//! needed. The record follows the documented specification
//! (<https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>):
//!
//! ```json
//! {"_aws": {"Timestamp": 1764000000000, "CloudWatchMetrics": [{"Namespace": "OfferPlatform",
//!   "Dimensions": [["Service"]], "Metrics": [{"Name": "JobsFinished", "Unit": "Count"}]}]},
//!  "Service": "campaign-processing", "Function": "campaign-processor", "JobsFinished": 1}
//! ```
//!
//! Elsewhere (`offerctl serve`, the tests) the same figures are logged as one `tracing` event
//! per record (target `metrics`), so the local server shows them too. `template.yaml` alarms on
//! [`JOBS_FAILED`] and [`RANGES_REDRIVEN`].

use serde_json::{Map, Value, json};

/// The CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "OfferPlatform";
/// The value of the `Service` dimension.
pub const SERVICE: &str = "campaign-processing";

/// Jobs whose processing began (a plan message acted on).
pub const JOBS_STARTED: &str = "JobsStarted";
/// Jobs that reached `done`.
pub const JOBS_FINISHED: &str = "JobsFinished";
/// Jobs that became `failed` (a permanent error, or the relay gave up after its attempts).
pub const JOBS_FAILED: &str = "JobsFailed";
/// Stale jobs the relay re-drove.
pub const JOBS_REDRIVEN: &str = "JobsRedriven";
/// Range messages the relay re-sent for stale jobs (a plan counts as one).
pub const RANGES_REDRIVEN: &str = "RangesRedriven";
/// Customers selected by a finished job.
pub const ROWS_MATCHED: &str = "RowsMatched";
/// Seconds from queueing a job to its end.
pub const JOB_DURATION: &str = "JobDuration";
/// Outbox messages the relay sent to the queue.
pub const MESSAGES_RELAYED: &str = "MessagesRelayed";
/// Scheduled campaigns the scheduler started (released, now `active`).
pub const CAMPAIGNS_STARTED: &str = "CampaignsStarted";
/// Scheduled campaigns whose start failed (the alarm's metric: an audience that is not
/// complete, or an error); they stay `scheduled` and are tried again on the next run.
pub const CAMPAIGN_STARTS_FAILED: &str = "CampaignStartsFailed";
/// Campaigns the scheduler completed at their end.
pub const CAMPAIGNS_COMPLETED: &str = "CampaignsCompleted";
/// Deliveries that expired unreported at their campaign's end.
pub const DELIVERIES_EXPIRED: &str = "DeliveriesExpired";

/// Customer files the S3 import applied.
pub const IMPORTS_APPLIED: &str = "ImportsApplied";
/// Customer files the S3 import refused (bad lines, too large, out of time): the alarm's
/// metric.
pub const IMPORTS_REFUSED: &str = "ImportsRefused";
/// Customer files whose import failed for a reason not in the file (the database or S3
/// failed, or PostgreSQL refused a value) on every attempt: the `ImportsFailed` alarm's
/// metric; the result object says why.
pub const IMPORTS_FAILED: &str = "ImportsFailed";
/// Rows of the customer files applied.
pub const IMPORT_ROWS: &str = "ImportRows";
/// Seconds an S3 import took.
pub const IMPORT_DURATION: &str = "ImportDuration";
/// Campaigns whose deliveries housekeeping archived to S3 (and deleted).
pub const CAMPAIGNS_ARCHIVED: &str = "CampaignsArchived";
/// Delivery rows archived (and deleted from the database).
pub const DELIVERIES_ARCHIVED: &str = "DeliveriesArchived";
/// Archives whose stored object did not match the export (S3's checksum or size; nothing
/// was deleted):
/// the alarm's metric.
pub const ARCHIVES_UNVERIFIED: &str = "ArchivesUnverified";
/// Contact-ledger rows pruned (older than any policy window can count).
pub const CONTACTS_PRUNED: &str = "ContactsPruned";

/// A CloudWatch unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// `Count`.
    Count,
    /// `Seconds`.
    Seconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Self::Count => "Count",
            Self::Seconds => "Seconds",
        }
    }
}

/// One figure of a record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metric {
    /// One of the names above.
    pub name: &'static str,
    /// Its unit.
    pub unit: Unit,
    /// Its value.
    pub value: f64,
}

impl Metric {
    /// A count.
    pub fn count(name: &'static str, value: impl Into<f64>) -> Self {
        Self {
            name,
            unit: Unit::Count,
            value: value.into(),
        }
    }

    /// A duration in seconds.
    pub fn seconds(name: &'static str, value: f64) -> Self {
        Self {
            name,
            unit: Unit::Seconds,
            value,
        }
    }
}

/// The EMF record of `metrics`, emitted by `function` at `timestamp_ms` (milliseconds since
/// the Unix epoch).
pub fn emf_record(function: &str, metrics: &[Metric], timestamp_ms: i64) -> Value {
    let definitions: Vec<Value> = metrics
        .iter()
        .map(|m| json!({"Name": m.name, "Unit": m.unit.as_str()}))
        .collect();
    let mut record = Map::new();
    record.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["Service"]],
                "Metrics": definitions,
            }],
        }),
    );
    record.insert("Service".into(), SERVICE.into());
    record.insert("Function".into(), function.into());
    for m in metrics {
        record.insert(m.name.into(), json!(m.value));
    }
    Value::Object(record)
}

/// Emits `metrics` (nothing if empty): an EMF line on Lambda, a `tracing` event elsewhere.
pub fn emit(function: &str, metrics: &[Metric]) {
    if metrics.is_empty() {
        return;
    }
    if crate::config::on_lambda() {
        let record = emf_record(function, metrics, chrono::Utc::now().timestamp_millis());
        // One `println!` holds the stdout lock for the whole line.
        println!("{record}");
    } else {
        let figures = metrics
            .iter()
            .map(|m| format!("{}={}", m.name, m.value))
            .collect::<Vec<_>>()
            .join(" ");
        tracing::info!(target: "metrics", function, %figures, "campaign processing metrics");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_follow_the_emf_specification() {
        let record = emf_record(
            "campaign-processor",
            &[
                Metric::count(JOBS_FINISHED, 1),
                Metric::seconds(JOB_DURATION, 2.5),
            ],
            1_764_000_000_000,
        );
        assert_eq!(
            record,
            json!({
                "_aws": {"Timestamp": 1_764_000_000_000_i64, "CloudWatchMetrics": [{
                    "Namespace": "OfferPlatform", "Dimensions": [["Service"]],
                    "Metrics": [{"Name": "JobsFinished", "Unit": "Count"},
                                {"Name": "JobDuration", "Unit": "Seconds"}]}]},
                "Service": "campaign-processing", "Function": "campaign-processor",
                "JobsFinished": 1.0, "JobDuration": 2.5,
            })
        );
    }
}
