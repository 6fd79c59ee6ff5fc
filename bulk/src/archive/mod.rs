//! Housekeeping: completed campaigns' deliveries archived to S3 and deleted, restored on
//! demand, and the contact ledger pruned.
//!
//! A campaign is due when it is `completed` and ended more than its tenant's
//! `retention_days` ago (and more than the report grace period: no late report can still
//! change its rows). Its archive goes through the states of `campaign_archives`, each
//! committed before the next step begins, so a kill at any line leaves a state the next run
//! resumes from, and no row is deleted before S3 confirmed it holds the exported bytes:
//!
//! 1. **export** (no archive row): in one snapshot, copy the campaign's deliveries once
//!    into a temporary table ([`archives::stage_deliveries`]), take from it the campaign's
//!    summary and results, and stream `COPY … TO` of it (CSV with a header, every column,
//!    by customer id) through gzip into a multipart upload of
//!    `archive/<tenant>/<campaign>.csv.gz`, hashing the CSV (SHA-256) on the way and sending
//!    each part with its own SHA-256, which S3 checks on receipt ([`s3::Upload`]); write the
//!    manifest `archive/<tenant>/<campaign>.manifest.json`; then insert the archive row
//!    (`exported`, with the object's composite checksum and size, V028). A kill before the
//!    insert leaves at most an object that the next run writes again.
//! 2. **verify** (`exported`): ask S3 for the stored object's checksum and size
//!    ([`s3::stored_checksum`], a HEAD: nothing is read) and compare them with the archive
//!    row's, and check that the campaign is still `completed` (nothing can change its rows
//!    then: [`archives::still_completed`]). A match moves the row to
//!    `deleting`; a mismatch (an object written again, damaged, gone, or exported before
//!    V028) deletes the archive row (the next run exports again), deletes nothing and counts
//!    in the `ArchivesUnverified` metric. The CSV's own SHA-256 is checked end to end by
//!    [`restore`], which reads the object whole.
//! 3. **delete** (`deleting`): delete the campaign's deliveries by slices of the
//!    customer-id space of about [`DELETE_BATCH_ROWS`] rows, each a range of the primary
//!    key in its own short transaction (no long lock on the table the webhook writes) that
//!    also records the slice's high end (`deleted_through`, V023); after the last slice
//!    (every slice is visited, empty or not), mark the row `archived`. The slices cover
//!    the whole id space once, and no statement deletes a row outside them. A kill between batches resumes with the next slice; no batch walks the
//!    index entries of the slices before it. Each campaign's export, verification and
//!    deletion times are logged (`archive phases`).
//!
//! The campaign keeps its row, its audit trail, its summary (the counts taken at export
//! answer `GET …/customers/summary` from `deleting` on) and a pointer to the archive
//! (`archive` in the campaign's JSON). [`restore`] brings the rows back in one transaction
//! and removes the archive row.
//!
//! The contact ledger (`customer_contacts`) keeps a row while any contact policy could count
//! it: policies' windows are at most [`MAX_POLICY_WINDOW_DAYS`] days (the `contact_policy`
//! table's check), so [`prune_contacts`] deletes the rows of campaigns that ended longer
//! ago than that plus the report grace, and only those whose `contact_at` is itself older
//! than the longest window.

use std::io::Write;

use chrono::{DateTime, Utc};
use flate2::Compression;
use flate2::write::GzEncoder;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use shared::db::TenantTx;
use shared::db::archives::{self, ArchiveRecord, ArchiveState, NewArchive};
use shared::db::campaigns::deliveries::{self, DeliveryRows, DeliverySummary};
use shared::domain::TenantName;
use shared::metrics::{self, Metric};
use shared::queue::IdRange;
use uuid::Uuid;

use crate::BulkError;
use crate::s3::{self, Location, Upload};

mod object;
mod restore;

pub use restore::{RestoreReport, release_hold, restore};

/// Where archives go: `archive/<tenant>/<campaign>.csv.gz` and `….manifest.json`.
pub const ARCHIVE_PREFIX: &str = "archive/";
/// Delivery rows deleted per transaction once an archive is verified, about (one slice of
/// the customer-id space each). At 1,000,000 deliveries: 20 slices in 0.78 s, 50 in
/// 0.81 s, 200 in 1.09 s, one DELETE 0.60 s (docs/performance.md). A slice locks only the
/// archived campaign's own rows, which nothing else writes any more.
pub const DELETE_BATCH_ROWS: i64 = 100_000;
/// The longest rolling window a contact policy can count, in days (migration V011's
/// `contact_policy_window` check: 1–366).
pub const MAX_POLICY_WINDOW_DAYS: i32 = 366;

/// What a housekeeping run may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HousekeepingOptions {
    /// The bucket archives go to (env `DATA_BUCKET`).
    pub bucket: String,
    /// Days after a campaign's end during which reports still apply (`CAMPAIGN_REPORT_GRACE_DAYS`):
    /// nothing is archived or pruned before it passed.
    pub report_grace_days: i32,
    /// Campaigns archived per run at most.
    pub max_campaigns: i64,
    /// Delivery rows deleted per transaction once an archive is verified (default
    /// [`DELETE_BATCH_ROWS`]).
    pub delete_batch_rows: i64,
}

/// What one housekeeping run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct HousekeepingReport {
    /// Campaigns whose deliveries are now only in S3.
    pub campaigns_archived: u64,
    /// Delivery rows they had.
    pub deliveries_archived: u64,
    /// Archives whose object did not match (nothing deleted; exported again next run).
    pub archives_unverified: u64,
    /// Campaigns whose archiving failed with an error (tried again next run).
    pub archives_failed: u64,
    /// Contact-ledger rows pruned.
    pub contacts_pruned: u64,
}

/// The manifest written beside each archive (`….manifest.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The campaign.
    pub campaign_id: i32,
    /// Its tenant.
    pub tenant_name: String,
    /// The archive object, `s3://…`.
    pub object: String,
    /// Data rows (deliveries) in it.
    pub rows: i64,
    /// SHA-256 of the uncompressed CSV (header included), hexadecimal.
    pub sha256: String,
    /// The object's composite checksum as S3 reports it: the base64 SHA-256 of its upload
    /// parts' SHA-256s, `-`, the number of parts (absent in manifests written before V028).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_checksum: Option<String>,
    /// The object's size in bytes, compressed (absent before V028).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_bytes: Option<i64>,
    /// The CSV's columns, in order (the header).
    pub columns: Vec<String>,
    /// The campaign's delivery counts at export.
    pub summary: DeliverySummary,
    /// When it was exported.
    pub exported_at: DateTime<Utc>,
}

/// How one campaign's archiving ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveOutcome {
    /// Its deliveries are in S3 and gone from the database (`rows` of them).
    Archived {
        /// Delivery rows archived.
        rows: i64,
    },
    /// S3's checksum or size of the object did not match the export's; nothing was deleted.
    Unverified,
}

/// One housekeeping run: archives due campaigns (at most `max_campaigns`), then prunes the
/// contact ledger; emits its metrics.
///
/// # Errors
/// [`BulkError`] if the list of due campaigns or the prune failed; a campaign whose
/// archiving fails is logged, counted in `archives_failed` and left for the next run.
pub async fn run(
    pool: &deadpool_postgres::Pool,
    s3: &aws_sdk_s3::Client,
    options: &HousekeepingOptions,
) -> Result<HousekeepingReport, BulkError> {
    let mut report = HousekeepingReport::default();
    for (tenant, campaign) in due(pool, options).await? {
        match archive_campaign(pool, s3, options, &tenant, campaign).await {
            Ok(ArchiveOutcome::Archived { rows }) => {
                report.campaigns_archived += 1;
                report.deliveries_archived += u64::try_from(rows).unwrap_or(0);
            }
            Ok(ArchiveOutcome::Unverified) => report.archives_unverified += 1,
            Err(err) => {
                report.archives_failed += 1;
                tracing::error!(tenant = %tenant, campaign.id = campaign, error = %err,
                    "archiving failed; the next run resumes it");
            }
        }
    }
    report.contacts_pruned = prune_contacts(pool, options.report_grace_days).await?;
    metrics::emit(
        crate::HOUSEKEEPING_FUNCTION,
        &[
            Metric::count(
                metrics::CAMPAIGNS_ARCHIVED,
                report.campaigns_archived as f64,
            ),
            Metric::count(
                metrics::DELIVERIES_ARCHIVED,
                report.deliveries_archived as f64,
            ),
            Metric::count(
                metrics::ARCHIVES_UNVERIFIED,
                (report.archives_unverified + report.archives_failed) as f64,
            ),
            Metric::count(metrics::CONTACTS_PRUNED, report.contacts_pruned as f64),
        ],
    );
    Ok(report)
}

/// Completed campaigns past their tenant's retention (and the report grace) whose
/// deliveries are not archived yet, oldest end first.
async fn due(
    pool: &deadpool_postgres::Pool,
    options: &HousekeepingOptions,
) -> Result<Vec<(TenantName, i32)>, BulkError> {
    let client = pool.get().await.map_err(shared::ApiError::from)?;
    Ok(archives::due(&client, options.report_grace_days, options.max_campaigns).await?)
}

/// The object an archive row names.
fn object_of(record: &ArchiveRecord) -> Location {
    Location {
        bucket: record.bucket.clone(),
        key: record.key.clone(),
    }
}

/// The archive object's and manifest's places for a campaign.
pub fn archive_locations(bucket: &str, tenant: &TenantName, campaign: i32) -> (Location, Location) {
    let base = format!("{ARCHIVE_PREFIX}{tenant}/{campaign}");
    (
        Location {
            bucket: bucket.to_owned(),
            key: format!("{base}.csv.gz"),
        },
        Location {
            bucket: bucket.to_owned(),
            key: format!("{base}.manifest.json"),
        },
    )
}

/// Archives one campaign's deliveries, resuming from whatever state a previous run left
/// (module documentation): [`step`] until it is done. Does not check that the campaign is
/// due: [`run`] does.
///
/// # Errors
/// [`BulkError`] if the database or S3 failed (the next run resumes).
pub async fn archive_campaign(
    pool: &deadpool_postgres::Pool,
    s3: &aws_sdk_s3::Client,
    options: &HousekeepingOptions,
    tenant: &TenantName,
    campaign: i32,
) -> Result<ArchiveOutcome, BulkError> {
    // Milliseconds spent exporting, verifying and deleting, and the delete batches: logged
    // once per campaign, for operators and the benchmark's profile of the phases.
    let (mut export_ms, mut verify_ms, mut delete_ms, mut batches) = (0_u128, 0_u128, 0_u128, 0);
    loop {
        let started = std::time::Instant::now();
        let step = step(pool, s3, options, tenant, campaign).await?;
        let spent = started.elapsed().as_millis();
        match step {
            Step::Exported => export_ms += spent,
            Step::Verified | Step::Unverified => verify_ms += spent,
            Step::Deleted { .. } => {
                delete_ms += spent;
                batches += 1;
            }
            // The step that marks the archive `archived` ends the deletes.
            Step::Done { .. } => delete_ms += spent,
        }
        match step {
            Step::Exported | Step::Verified | Step::Deleted { .. } => {}
            Step::Done { rows } => {
                tracing::info!(tenant = %tenant, campaign.id = campaign, rows, export_ms,
                    verify_ms, delete_ms, delete_batches = batches, "archive phases");
                return Ok(ArchiveOutcome::Archived { rows });
            }
            Step::Unverified => return Ok(ArchiveOutcome::Unverified),
        }
    }
}

/// The slices of the customer-id space a campaign's deliveries are deleted in: about
/// `batch_rows` rows each (customer ids are random, so equal slices hold about equally many;
/// [`shared::queue::IdRange`]), each a range of the primary key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DeleteSlices {
    count: u32,
}

impl DeleteSlices {
    /// Slices for `rows` rows of about `batch_rows` each (at least one).
    fn of(rows: i64, batch_rows: i64) -> Self {
        let count = (rows.max(1) + batch_rows.max(1) - 1) / batch_rows.max(1);
        Self {
            count: u32::try_from(count).unwrap_or(u32::MAX).max(1),
        }
    }

    /// The slice after the one whose high end is `deleted_through` (the first when none);
    /// `None` when that was the last.
    fn after(self, deleted_through: Option<Uuid>) -> Option<IdRange> {
        let index = match deleted_through {
            None => 0,
            Some(high) => {
                let width = u128::MAX / u128::from(self.count);
                u32::try_from(high.as_u128() / width + 1).unwrap_or(u32::MAX)
            }
        };
        (index < self.count).then_some(IdRange {
            index,
            count: self.count,
        })
    }
}

/// What one [`step`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Exported the object and manifest; the archive row is `exported`.
    Exported,
    /// S3's checksum and size of the object matched the export's; the archive row is
    /// `deleting`.
    Verified,
    /// The object did not match: the archive row was removed, nothing deleted.
    Unverified,
    /// Deleted one slice of delivery rows (`rows` of them, perhaps none).
    Deleted {
        /// Rows deleted in this batch.
        rows: u64,
    },
    /// Nothing left to do: the archive is `archived` (by this step or before) with `rows`
    /// rows.
    Done {
        /// Rows in the archive.
        rows: i64,
    },
}

/// Takes the next step of a campaign's archive from its committed state (the module
/// documentation's steps; deleting goes one slice of about `delete_batch_rows` rows per
/// step).
/// Stopping between any two steps, as a kill would, loses nothing: the next call resumes.
///
/// # Errors
/// [`BulkError`] if the database or S3 failed (the state stays as it was committed).
pub async fn step(
    pool: &deadpool_postgres::Pool,
    s3: &aws_sdk_s3::Client,
    options: &HousekeepingOptions,
    tenant: &TenantName,
    campaign: i32,
) -> Result<Step, BulkError> {
    let state = {
        let mut client = pool.get().await.map_err(shared::ApiError::from)?;
        let tx = TenantTx::begin(&mut client, tenant).await?;
        archives::get(&tx, campaign, false).await?
    };
    match state {
        None => {
            export(pool, s3, &options.bucket, tenant, campaign).await?;
            Ok(Step::Exported)
        }
        Some(row) if row.state == ArchiveState::Exported => {
            if verify(pool, s3, tenant, campaign, &row).await? {
                Ok(Step::Verified)
            } else {
                Ok(Step::Unverified)
            }
        }
        Some(row) if row.state == ArchiveState::Deleting => {
            let mut client = pool.get().await.map_err(shared::ApiError::from)?;
            let tx = TenantTx::begin(&mut client, tenant).await?;
            let slices = DeleteSlices::of(row.rows, options.delete_batch_rows);
            // Every slice, empty or not, until the last: customer ids a bank assigns need
            // not be spread evenly, and an empty slice says nothing of the next.
            let Some(slice) = slices.after(row.deleted_through) else {
                archives::advance(
                    &tx,
                    campaign,
                    ArchiveState::Deleting,
                    ArchiveState::Archived,
                )
                .await?;
                tx.commit().await?;
                tracing::info!(tenant = %tenant, campaign.id = campaign, rows = row.rows,
                    object = %object_of(&row), "campaign deliveries archived");
                return Ok(Step::Done { rows: row.rows });
            };
            let bounds = slice.bounds().map_err(BulkError::Inconsistent)?;
            let deleted = archives::delete_deliveries(&tx, campaign, bounds).await?;
            tx.commit().await?;
            Ok(Step::Deleted { rows: deleted })
        }
        Some(row) => Ok(Step::Done { rows: row.rows }),
    }
}

/// Step 1: the export, its manifest and the `exported` row.
async fn export(
    pool: &deadpool_postgres::Pool,
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    tenant: &TenantName,
    campaign: i32,
) -> Result<(), BulkError> {
    let (object, manifest_location) = archive_locations(bucket, tenant, campaign);
    let mut client = pool.get().await.map_err(shared::ApiError::from)?;
    let tx = TenantTx::begin_snapshot(&mut client, tenant).await?;
    // The campaign's rows are read from the table once, into the transaction's own copy;
    // the counts and the CSV come from that copy.
    archives::stage_deliveries(&tx, campaign).await?;
    let summary = deliveries::summary_of(&tx, campaign, DeliveryRows::Staged).await?;
    let results = shared::db::results::counts_of(&tx, campaign, DeliveryRows::Staged).await?;
    let columns = archives::delivery_columns(&tx).await?;
    let stream = archives::copy_staged_out(&tx, &columns).await?;
    futures_util::pin_mut!(stream);
    let mut upload = Upload::start(s3, object.clone(), "application/gzip").await?;
    let mut hasher = Sha256::new();
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    let written: Result<(), BulkError> = async {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            hasher.update(&chunk);
            encoder
                .write_all(&chunk)
                .map_err(|e| BulkError::Inconsistent(format!("gzip: {e}")))?;
            if encoder.get_ref().len() >= s3::PART_BYTES {
                let compressed = std::mem::take(encoder.get_mut());
                upload.write(&compressed).await?;
            }
        }
        Ok(())
    }
    .await;
    if let Err(err) = written {
        upload.abort().await;
        return Err(err);
    }
    let rest = encoder
        .finish()
        .map_err(|e| BulkError::Inconsistent(format!("gzip: {e}")))?;
    upload.write(&rest).await?;
    let uploaded = upload.complete().await?;
    tx.rollback().await?;
    let sha256 = format!("{:x}", hasher.finalize());
    let manifest = Manifest {
        campaign_id: campaign,
        tenant_name: tenant.to_string(),
        object: object.to_string(),
        rows: summary.total,
        sha256: sha256.clone(),
        object_checksum: Some(uploaded.checksum.clone()),
        object_bytes: Some(uploaded.bytes),
        columns: columns.clone(),
        summary,
        exported_at: Utc::now(),
    };
    let body = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| BulkError::Inconsistent(format!("manifest: {e}")))?;
    s3::put(s3, &manifest_location, body, "application/json").await?;
    let summary_json = serde_json::to_value(summary)
        .map_err(|e| BulkError::Inconsistent(format!("summary: {e}")))?;
    let results_json = serde_json::to_value(&results)
        .map_err(|e| BulkError::Inconsistent(format!("results: {e}")))?;
    let tx = TenantTx::begin(&mut client, tenant).await?;
    let new = NewArchive {
        bucket: &object.bucket,
        key: &object.key,
        manifest_key: &manifest_location.key,
        rows: summary.total,
        sha256: &sha256,
        object_checksum: &uploaded.checksum,
        object_bytes: uploaded.bytes,
        columns: &columns,
        summary: &summary_json,
        results: &results_json,
    };
    archives::insert(&tx, campaign, &new).await?;
    tx.commit().await?;
    Ok(())
}

/// Step 2: asks S3 for the stored object's checksum and size (nothing of it is read) and
/// compares them with the export's; a match (and the campaign still `completed`) moves the
/// archive to `deleting`.
async fn verify(
    pool: &deadpool_postgres::Pool,
    s3: &aws_sdk_s3::Client,
    tenant: &TenantName,
    campaign: i32,
    row: &ArchiveRecord,
) -> Result<bool, BulkError> {
    let stored = s3::stored_checksum(s3, &object_of(row)).await?;
    let mut client = pool.get().await.map_err(shared::ApiError::from)?;
    let tx = TenantTx::begin(&mut client, tenant).await?;
    let Some(current) = archives::get(&tx, campaign, true).await? else {
        return Ok(false);
    };
    let completed = archives::still_completed(&tx, campaign).await?;
    let (stored_checksum, stored_bytes) = match &stored {
        Some((checksum, bytes)) => (checksum.as_deref(), Some(*bytes)),
        None => (None, None),
    };
    let matches = match (&current.object_checksum, stored_checksum) {
        (Some(expected), Some(reported)) => {
            s3::checksum_matches(reported, expected)
                && stored_bytes == current.object_bytes
                && completed
        }
        _ => false,
    };
    if matches {
        archives::advance(
            &tx,
            campaign,
            ArchiveState::Exported,
            ArchiveState::Deleting,
        )
        .await?;
    } else {
        tracing::error!(tenant = %tenant, campaign.id = campaign, object = %object_of(row),
            campaign_completed = completed,
            expected_checksum = current.object_checksum.as_deref(),
            stored_checksum, expected_bytes = current.object_bytes, stored_bytes,
            "the archive did not verify; nothing deleted, it is exported again next run");
        archives::remove(&tx, campaign).await?;
    }
    tx.commit().await?;
    Ok(matches)
}

/// Contact-ledger rows deleted per transaction.
const PRUNE_BATCH_ROWS: i64 = 10_000;

/// Deletes contact-ledger rows no contact policy can count any more: those of campaigns that
/// ended more than [`MAX_POLICY_WINDOW_DAYS`] plus `report_grace_days` days ago, whose
/// `contact_at` is older than [`MAX_POLICY_WINDOW_DAYS`] days; in batches, each its own
/// transaction. Answers how many.
///
/// # Errors
/// Database failures (batches committed before stay done).
pub async fn prune_contacts(
    pool: &deadpool_postgres::Pool,
    report_grace_days: i32,
) -> Result<u64, BulkError> {
    let mut client = pool.get().await.map_err(shared::ApiError::from)?;
    let campaigns =
        archives::prunable_campaigns(&client, MAX_POLICY_WINDOW_DAYS, report_grace_days).await?;
    let mut pruned = 0;
    for (tenant, campaign) in campaigns {
        loop {
            let tx = TenantTx::begin(&mut client, &tenant).await?;
            let deleted =
                archives::prune_contacts(&tx, campaign, MAX_POLICY_WINDOW_DAYS, PRUNE_BATCH_ROWS)
                    .await?;
            tx.commit().await?;
            pruned += deleted;
            if deleted < u64::try_from(PRUNE_BATCH_ROWS).unwrap_or(0) {
                break;
            }
        }
    }
    Ok(pruned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delete_slices_cover_the_id_space_once_and_resume_after_the_last_deleted() {
        let slices = DeleteSlices::of(1_000_000, 20_000);
        assert_eq!(slices.count, 50);
        assert_eq!(DeleteSlices::of(0, 20_000).count, 1);
        assert_eq!(DeleteSlices::of(20_001, 20_000).count, 2);
        let mut done = None;
        let mut seen = Vec::new();
        while let Some(slice) = slices.after(done) {
            let (low, high) = slice.bounds().expect("bounds");
            if let Some(previous) = done {
                assert_eq!(low.as_u128(), previous.as_u128() + 1, "no gap, no overlap");
            } else {
                assert_eq!(low, Uuid::nil());
            }
            seen.push(slice.index);
            done = Some(high);
        }
        assert_eq!(done, Some(Uuid::max()));
        assert_eq!(seen, (0..50).collect::<Vec<_>>());
    }
}
