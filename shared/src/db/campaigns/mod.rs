//! The `campaigns` aggregate: campaigns and their audit trail here; their selection jobs in
//! [`processing`], their deliveries (customers, counts, release, feed) in [`deliveries`],
//! release jobs (a large release by ranges on the queue) in [`releases`],
//! audience previews in [`audience`]; each name is re-exported from this module. API
//! functions filter by tenant in SQL; the processor's functions address a campaign by id and
//! job, as its queue message names them.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::{CachedStatements, TenantExecutor, TenantTx, violated_constraint};
use crate::domain::{CampaignStatus, Channel, ProcessingStatus, Username};
use crate::error::ApiError;
use crate::pagination::Page;

pub mod audience;
pub mod calendar;
mod content;
pub mod deliveries;
pub mod processing;
pub mod releases;
pub mod reports;

pub use content::{
    CampaignContent, DEFAULT_CONVERSION_WINDOW_DAYS, MAX_NAME_CHARS, holdout_basis_points,
};

pub use audience::{AudienceMember, PreviewBreakdown, preview, preview_breakdown};
pub use deliveries::{
    Contact, Delivery, DeliverySummary, FeedDelivery, RELEASE_LOCK, ReleaseSummary, customers,
    feed, release, summary,
};
pub use processing::{
    FinishedJob, JobTarget, StaleJob, customer_count, drop_unreleased, expand,
    finish_job_if_complete, finish_range, job_target, queue_job, record_failure, record_redrive,
    stale_jobs, start_ranges,
};

/// A campaign as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Campaign {
    /// Identifier (unique across tenants).
    pub id: i32,
    /// Owning tenant.
    pub tenant_name: String,
    /// The approved offer it delivers (null if that offer was deleted).
    pub offer_id: Option<i32>,
    /// The offer version it delivers, pinned at creation (or moved explicitly while `draft`
    /// or `paused`); a newer approved version never changes it.
    pub offer_version: Option<i32>,
    /// What it is sent through (so which consent it needs); fixed at creation.
    pub channel: Channel,
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Who it selects (DESIGN's criteria language).
    #[schema(value_type = crate::criteria::SelectionCriteria)]
    pub selection_criteria: Value,
    /// First day.
    pub start_date: NaiveDate,
    /// Last day (not before `start_date`).
    pub end_date: NaiveDate,
    /// When it starts: the start of `start_date` in the tenant's time zone.
    pub starts_at: DateTime<Utc>,
    /// When it ends: the end of `end_date` in the tenant's time zone (the start of the next
    /// day there). The scheduler completes it then; the feed stops.
    pub ends_at: DateTime<Utc>,
    /// Lifecycle status.
    pub status: CampaignStatus,
    /// Who created it.
    pub created_by: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Customer selection: idle, queued, running, done or failed.
    pub processing_status: ProcessingStatus,
    /// Customers selected after the last finished job.
    pub matched_count: i64,
    /// When the last job finished.
    pub processed_at: Option<DateTime<Utc>>,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<String>,
    /// Customer-id ranges of the current job (0 until it is planned).
    pub ranges_total: i32,
    /// Ranges finished so far.
    pub ranges_done: i32,
    /// How often the current job has been driven: 1 when queued, one more each time the relay
    /// re-drives it after it made no progress (see `shared::relay`).
    pub processing_attempts: i32,
    /// The share of the customers a release would contact that it holds back as the
    /// control group, in percent (0 to 50, two decimals; 0: no holdout). Fixed once the
    /// campaign leaves `draft`.
    pub holdout_percent: f64,
    /// The key of the holdout's draw, 16 bytes in hexadecimal: a customer is in the control
    /// group when the first 4 bytes of HMAC-SHA256(key = this seed, message = the customer
    /// id's 16 bytes), read as an unsigned big-endian integer, times 10,000 is below
    /// `holdout_percent` × 100 × 2³² (docs/results.md).
    pub holdout_seed: String,
    /// Conversions count for this campaign until its end plus this many days (0 to 365,
    /// default 30). Fixed once the campaign leaves `draft`.
    pub conversion_window_days: i32,
    /// Where its deliveries were archived, once housekeeping exported them (null before).
    pub archive: Option<CampaignArchive>,
    /// Its latest release job: null until a release went by ranges on the queue (more
    /// selected customers than `CAMPAIGN_RELEASE_BATCH`); while `running`, its deliveries
    /// are being released range by range.
    pub release: Option<releases::ReleaseProgress>,
    /// When it first released a delivery to providers (V018), if it ever did: such a
    /// campaign is never deleted. Internal (not part of the API's JSON).
    #[serde(skip)]
    pub first_released_at: Option<DateTime<Utc>>,
}

/// A campaign's deliveries in S3 (housekeeping, after the tenant's `retention_days`).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct CampaignArchive {
    /// The gzip-compressed CSV object: `s3://bucket/archive/<tenant>/<campaign>.csv.gz`.
    pub location: String,
    /// Its manifest (row count, SHA-256 of the CSV, columns).
    pub manifest: String,
    /// Delivery rows in it.
    pub rows: i64,
    /// SHA-256 of the uncompressed CSV, hexadecimal.
    pub sha256: String,
    /// `exported` (rows still here), `deleting`, or `archived` (rows only in S3; the
    /// campaign's summary comes from the counts taken at export).
    pub state: String,
    /// When it was exported.
    pub exported_at: DateTime<Utc>,
    /// When its last row left the database.
    pub archived_at: Option<DateTime<Utc>>,
}

pub(super) const COLUMNS: &str = "id, tenant_name, offer_id, offer_version, channel, name, description, \
    coalesce(selection_criteria, '{}') as selection_criteria, start_date, end_date, starts_at, \
    ends_at, status, \
    created_by, created_at, updated_at, processing_status, matched_count, processed_at, \
    last_error, ranges_total, ranges_done, processing_attempts, first_released_at, \
    (holdout_percent * 100)::int4 as holdout_basis_points, \
    encode(holdout_seed, 'hex') as holdout_seed, conversion_window_days, \
    release_status, release_ranges_total, release_ranges_done, release_attempts, \
    (select jsonb_build_object('location', 's3://' || a.bucket || '/' || a.key, \
            'manifest', 's3://' || a.bucket || '/' || a.manifest_key, 'rows', a.rows, \
            'sha256', a.sha256, 'state', a.state, 'exported_at', a.exported_at, \
            'archived_at', a.archived_at) \
     from campaign_archives a where a.campaign_id = campaigns.id) as archive";

pub(super) fn campaign(row: &tokio_postgres::Row) -> Result<Campaign, ApiError> {
    let status: String = row.get("status");
    let channel: String = row.get("channel");
    let processing: String = row.get("processing_status");
    Ok(Campaign {
        id: row.get("id"),
        tenant_name: row.get("tenant_name"),
        offer_id: row.get("offer_id"),
        offer_version: row.get("offer_version"),
        channel: Channel::parse(&channel).map_err(ApiError::internal)?,
        name: row.get("name"),
        description: row.get("description"),
        selection_criteria: row.get("selection_criteria"),
        start_date: row.get("start_date"),
        end_date: row.get("end_date"),
        starts_at: row.get("starts_at"),
        ends_at: row.get("ends_at"),
        status: CampaignStatus::parse(&status).map_err(ApiError::internal)?,
        created_by: row.get("created_by"),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
        processing_status: ProcessingStatus::parse(&processing).map_err(ApiError::internal)?,
        matched_count: row.get("matched_count"),
        processed_at: row.get("processed_at"),
        last_error: row.get("last_error"),
        ranges_total: row.get("ranges_total"),
        ranges_done: row.get("ranges_done"),
        processing_attempts: row.get("processing_attempts"),
        first_released_at: row.get("first_released_at"),
        holdout_percent: f64::from(row.get::<_, i32>("holdout_basis_points")) / 100.0,
        holdout_seed: row.get("holdout_seed"),
        conversion_window_days: row.get("conversion_window_days"),
        archive: row
            .get::<_, Option<Value>>("archive")
            .map(serde_json::from_value)
            .transpose()
            .map_err(ApiError::internal)?,
        release: row
            .get::<_, Option<&str>>("release_status")
            .map(|status| -> Result<_, ApiError> {
                Ok(releases::ReleaseProgress {
                    status: releases::ReleaseStatus::parse(status).map_err(ApiError::internal)?,
                    ranges_total: row.get("release_ranges_total"),
                    ranges_done: row.get("release_ranges_done"),
                    attempts: row.get("release_attempts"),
                })
            })
            .transpose()?,
    })
}

/// Inserts a `draft` campaign whose processing job `job_id` is `queued` (attempt 1); the
/// caller writes the job's message to the outbox in the same transaction.
///
/// # Errors
/// Database failures.
pub async fn insert(
    tx: &TenantTx<'_>,
    (offer_id, offer_version, channel): (i32, i32, Channel),
    content: &CampaignContent,
    created_by: &Username,
    job_id: Uuid,
) -> Result<Campaign, ApiError> {
    let row = tx
        .query_one_cached(
            &format!(
                "insert into campaigns (tenant_name, offer_id, name, description, selection_criteria,
                     start_date, end_date, created_by, status, processing_status, processing_job,
                     processing_attempts, processing_heartbeat, processing_queued_at,
                     offer_version, channel, holdout_percent, conversion_window_days)
                 values ($1, $2, $3, $4, $5, $6, $7, $8, 'draft', 'queued', $9, 1, now(), now(),
                         $10, $11, $12::int4 / 100.0, $13)
                 returning {COLUMNS}"
            ),
            &[
                &tx.tenant().as_str(),
                &offer_id,
                &content.name,
                &content.description,
                &content.selection_criteria,
                &content.start_date,
                &content.end_date,
                &created_by.as_str(),
                &job_id,
                &offer_version,
                &channel.as_str(),
                &content.holdout_basis_points,
                &content.conversion_window_days,
            ],
        )
        .await?;
    campaign(&row)
}

/// Moves a campaign to another version of its offer and records the move in the campaign's
/// audit trail (who, from, to, why), in the caller's transaction.
///
/// # Errors
/// Database failures.
pub async fn move_offer_version(
    tx: &TenantTx<'_>,
    id: i32,
    (from, to): (Option<i32>, i32),
    by: &Username,
    comment: Option<&str>,
) -> Result<Campaign, ApiError> {
    let row = tx
        .query_one_cached(
            &format!(
                "update campaigns set offer_version = $3, updated_at = now()
                 where tenant_name = $1 and id = $2 returning {COLUMNS}"
            ),
            &[&tx.tenant().as_str(), &id, &to],
        )
        .await?;
    let moved = campaign(&row)?;
    record_audit(
        tx,
        id,
        "offer_version_change",
        by.as_str(),
        (
            Some(&serde_json::json!({"offer_id": moved.offer_id, "offer_version": from})),
            Some(&serde_json::json!({"offer_id": moved.offer_id, "offer_version": to})),
        ),
        comment,
    )
    .await?;
    Ok(moved)
}

/// Appends an entry to campaign `id`'s audit trail: `action` (one of the trail's actions,
/// migration V016's check), by whom, the data before and after, and why.
///
/// # Errors
/// Database failures.
pub(crate) async fn record_audit(
    tx: &TenantTx<'_>,
    id: i32,
    action: &str,
    by: &str,
    (old_data, new_data): (Option<&Value>, Option<&Value>),
    comment: Option<&str>,
) -> Result<(), ApiError> {
    tx.execute_cached(
        "insert into campaign_audit_logs
             (tenant_name, campaign_id, action, performed_by, old_data, new_data, comment)
         values ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &tx.tenant().as_str(),
            &id,
            &action,
            &by,
            &old_data,
            &new_data,
            &comment,
        ],
    )
    .await?;
    Ok(())
}

/// An entry of a campaign's audit trail.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CampaignAuditEntry {
    /// Increasing with time.
    pub id: i64,
    /// The campaign.
    pub campaign_id: i32,
    /// `offer_version_change`, `status_change` or `delete`.
    pub action: String,
    /// Who.
    pub performed_by: String,
    /// Before (`{"offer_id", "offer_version"}`; for `delete`, the campaign as it was).
    #[schema(value_type = Option<Object>)]
    pub old_data: Option<Value>,
    /// After.
    #[schema(value_type = Option<Object>)]
    pub new_data: Option<Value>,
    /// Why.
    pub comment: Option<String>,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// A campaign's audit trail, oldest first (it outlives the campaign).
///
/// # Errors
/// Database failures.
pub async fn audit_trail(
    tx: &TenantTx<'_>,
    id: i32,
    page: Page,
) -> Result<Vec<CampaignAuditEntry>, ApiError> {
    let rows = tx
        .query_cached(
            "select id, campaign_id, action, performed_by, old_data, new_data, comment, created_at
             from campaign_audit_logs where tenant_name = $1 and campaign_id = $2
             order by id limit $3 offset $4",
            &[&tx.tenant().as_str(), &id, &page.limit, &page.offset],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| CampaignAuditEntry {
            id: r.get(0),
            campaign_id: r.get(1),
            action: r.get(2),
            performed_by: r.get(3),
            old_data: r.get(4),
            new_data: r.get(5),
            comment: r.get(6),
            created_at: r.get(7),
        })
        .collect())
}

/// Reads one campaign of `tenant`; with `for_update` the row stays locked until the
/// transaction ends.
///
/// # Errors
/// Database failures.
pub async fn get(
    client: &impl TenantExecutor,
    id: i32,
    for_update: bool,
) -> Result<Option<Campaign>, ApiError> {
    let lock = if for_update { "for update" } else { "" };
    let row = client
        .row_opt(
            &format!("select {COLUMNS} from campaigns where tenant_name = $1 and id = $2 {lock}"),
            &[&client.tenant().as_str(), &id],
        )
        .await?;
    row.as_ref().map(campaign).transpose()
}

/// Filters of the campaign list.
#[derive(Debug, Default, Clone)]
pub struct CampaignFilter {
    /// Only this status.
    pub status: Option<CampaignStatus>,
    /// Only campaigns of this offer.
    pub offer_id: Option<i32>,
}

/// One page of `tenant`'s campaigns, newest first.
///
/// # Errors
/// Database failures.
pub async fn list(
    client: &impl TenantExecutor,
    filter: &CampaignFilter,
    page: Page,
) -> Result<Vec<Campaign>, ApiError> {
    let rows = client
        .rows(
            &format!(
                "select {COLUMNS} from campaigns
                 where tenant_name = $1 and ($2::text is null or status = $2)
                   and ($3::int4 is null or offer_id = $3)
                 order by created_at desc, id desc limit $4 offset $5"
            ),
            &[
                &client.tenant().as_str(),
                &filter.status.map(CampaignStatus::as_str),
                &filter.offer_id,
                &page.limit,
                &page.offset,
            ],
        )
        .await?;
    rows.iter().map(campaign).collect()
}

/// Writes a campaign's content and status.
///
/// # Errors
/// Database failures.
pub async fn update(
    tx: &TenantTx<'_>,
    id: i32,
    content: &CampaignContent,
    status: CampaignStatus,
) -> Result<Campaign, ApiError> {
    let row = tx
        .query_one_cached(
            &format!(
                "update campaigns set name = $3, description = $4, selection_criteria = $5,
                     start_date = $6, end_date = $7, status = $8,
                     holdout_percent = $9::int4 / 100.0, conversion_window_days = $10,
                     updated_at = now()
                 where tenant_name = $1 and id = $2 returning {COLUMNS}"
            ),
            &[
                &tx.tenant().as_str(),
                &id,
                &content.name,
                &content.description,
                &content.selection_criteria,
                &content.start_date,
                &content.end_date,
                &status.as_str(),
                &content.holdout_basis_points,
                &content.conversion_window_days,
            ],
        )
        .await?;
    campaign(&row)
}

/// Deletes `campaign` (its selected customers, processing ranges and outbox rows go by
/// cascade) and records the deletion in the campaign audit trail (`delete`, by `by`, with the
/// campaign's last state as `old_data`), in the caller's transaction. The contact ledger keeps
/// its rows: a campaign that still has some cannot be deleted (the foreign key refuses, 409).
///
/// # Errors
/// 409 if the contact ledger still holds the campaign's contacts; database failures.
pub async fn delete(tx: &TenantTx<'_>, campaign: &Campaign, by: &Username) -> Result<(), ApiError> {
    let deleted = tx
        .execute_cached(
            "delete from campaigns where tenant_name = $1 and id = $2",
            &[&tx.tenant().as_str(), &campaign.id],
        )
        .await
        .map_err(|err| match violated_constraint(&err) {
            Some("customer_contacts_campaign_id_fkey") => ApiError::Conflict(format!(
                "campaign {} has contacts in the contact ledger; it can no longer be deleted",
                campaign.id
            )),
            _ => err.into(),
        })?;
    if deleted == 1 {
        let old_data = serde_json::to_value(campaign)
            .map_err(|e| ApiError::internal(format!("campaign snapshot: {e}")))?;
        record_audit(
            tx,
            campaign.id,
            "delete",
            by.as_str(),
            (Some(&old_data), None),
            None,
        )
        .await?;
    }
    Ok(())
}
