//! The `campaigns` aggregate, its customers (`campaign_customers`) and the SQL of campaign
//! processing. API functions filter by tenant in SQL; the processor's functions address a
//! campaign by id and job, as its queue message names them.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::{CachedStatements, Executor, GenericClient, violated_constraint};
use crate::criteria::Compiled;
use crate::domain::{
    CampaignStatus, Channel, DeliveryStatus, ProcessingStatus, TenantName, Username,
};
use crate::error::ApiError;
use crate::pagination::Page;

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
}

const COLUMNS: &str = "id, tenant_name, offer_id, offer_version, channel, name, description, \
    coalesce(selection_criteria, '{}') as selection_criteria, start_date, end_date, status, \
    created_by, created_at, updated_at, processing_status, matched_count, processed_at, \
    last_error, ranges_total, ranges_done, processing_attempts";

fn campaign(row: &tokio_postgres::Row) -> Result<Campaign, ApiError> {
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
    })
}

/// The writable content of a campaign.
#[derive(Debug, Clone, PartialEq)]
pub struct CampaignContent {
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Validated selection criteria.
    pub selection_criteria: Value,
    /// First day.
    pub start_date: NaiveDate,
    /// Last day.
    pub end_date: NaiveDate,
}

/// Inserts a `draft` campaign whose processing job `job_id` is `queued` (attempt 1); the
/// caller writes the job's message to the outbox in the same transaction.
///
/// # Errors
/// Database failures.
pub async fn insert(
    client: &impl GenericClient,
    tenant: &TenantName,
    (offer_id, offer_version, channel): (i32, i32, Channel),
    content: &CampaignContent,
    created_by: &Username,
    job_id: Uuid,
) -> Result<Campaign, ApiError> {
    let row = client
        .query_one_cached(
            &format!(
                "insert into campaigns (tenant_name, offer_id, name, description, selection_criteria,
                     start_date, end_date, created_by, status, processing_status, processing_job,
                     processing_attempts, processing_heartbeat, processing_queued_at,
                     offer_version, channel)
                 values ($1, $2, $3, $4, $5, $6, $7, $8, 'draft', 'queued', $9, 1, now(), now(),
                         $10, $11)
                 returning {COLUMNS}"
            ),
            &[
                &tenant.as_str(),
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
    client: &impl GenericClient,
    tenant: &TenantName,
    id: i32,
    (from, to): (Option<i32>, i32),
    by: &Username,
    comment: Option<&str>,
) -> Result<Campaign, ApiError> {
    let row = client
        .query_one_cached(
            &format!(
                "update campaigns set offer_version = $3, updated_at = now()
                 where tenant_name = $1 and id = $2 returning {COLUMNS}"
            ),
            &[&tenant.as_str(), &id, &to],
        )
        .await?;
    let moved = campaign(&row)?;
    client
        .execute_cached(
            "insert into campaign_audit_logs
                 (tenant_name, campaign_id, action, performed_by, old_data, new_data, comment)
             values ($1, $2, 'offer_version_change', $3, $4, $5, $6)",
            &[
                &tenant.as_str(),
                &id,
                &by.as_str(),
                &serde_json::json!({"offer_id": moved.offer_id, "offer_version": from}),
                &serde_json::json!({"offer_id": moved.offer_id, "offer_version": to}),
                &comment,
            ],
        )
        .await?;
    Ok(moved)
}

/// An entry of a campaign's audit trail.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CampaignAuditEntry {
    /// Increasing with time.
    pub id: i64,
    /// The campaign.
    pub campaign_id: i32,
    /// `offer_version_change` or `delete`.
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
    client: &impl GenericClient,
    tenant: &TenantName,
    id: i32,
    page: Page,
) -> Result<Vec<CampaignAuditEntry>, ApiError> {
    let rows = client
        .query_cached(
            "select id, campaign_id, action, performed_by, old_data, new_data, comment, created_at
             from campaign_audit_logs where tenant_name = $1 and campaign_id = $2
             order by id limit $3 offset $4",
            &[&tenant.as_str(), &id, &page.limit, &page.offset],
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
    client: &impl Executor,
    tenant: &TenantName,
    id: i32,
    for_update: bool,
) -> Result<Option<Campaign>, ApiError> {
    let lock = if for_update { "for update" } else { "" };
    let row = client
        .row_opt(
            &format!("select {COLUMNS} from campaigns where tenant_name = $1 and id = $2 {lock}"),
            &[&tenant.as_str(), &id],
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
    client: &impl Executor,
    tenant: &TenantName,
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
                &tenant.as_str(),
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
    client: &impl GenericClient,
    tenant: &TenantName,
    id: i32,
    content: &CampaignContent,
    status: CampaignStatus,
) -> Result<Campaign, ApiError> {
    let row = client
        .query_one_cached(
            &format!(
                "update campaigns set name = $3, description = $4, selection_criteria = $5,
                     start_date = $6, end_date = $7, status = $8, updated_at = now()
                 where tenant_name = $1 and id = $2 returning {COLUMNS}"
            ),
            &[
                &tenant.as_str(),
                &id,
                &content.name,
                &content.description,
                &content.selection_criteria,
                &content.start_date,
                &content.end_date,
                &status.as_str(),
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
pub async fn delete(
    client: &impl GenericClient,
    tenant: &TenantName,
    campaign: &Campaign,
    by: &Username,
) -> Result<(), ApiError> {
    let deleted = client
        .execute_cached(
            "delete from campaigns where tenant_name = $1 and id = $2",
            &[&tenant.as_str(), &campaign.id],
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
        client
            .execute_cached(
                "insert into campaign_audit_logs
                     (tenant_name, campaign_id, action, performed_by, old_data)
                 values ($1, $2, 'delete', $3, $4)",
                &[&tenant.as_str(), &campaign.id, &by.as_str(), &old_data],
            )
            .await?;
    }
    Ok(())
}

/// Whether any of the campaign's deliveries was ever released to providers (a released
/// delivery keeps `released_at`, whatever its report said since).
///
/// # Errors
/// Database failures.
pub async fn has_released_deliveries(
    client: &impl GenericClient,
    id: i32,
) -> Result<bool, ApiError> {
    let row = client
        .query_one_cached(
            "select exists (select 1 from campaign_customers
                            where campaign_id = $1 and released_at is not null)",
            &[&id],
        )
        .await?;
    Ok(row.get(0))
}

/// Makes `job_id` the campaign's current processing job, `queued` (attempt 1); the caller
/// writes the job's message to the outbox in the same transaction.
///
/// # Errors
/// Database failures.
pub async fn queue_job(
    client: &impl GenericClient,
    tenant: &TenantName,
    id: i32,
    job_id: Uuid,
) -> Result<Campaign, ApiError> {
    let row = client
        .query_one_cached(
            &format!(
                "update campaigns set processing_status = 'queued', processing_job = $3,
                     ranges_total = 0, ranges_done = 0, last_error = null,
                     processing_attempts = 1, processing_heartbeat = now(),
                     processing_queued_at = now()
                 where tenant_name = $1 and id = $2 returning {COLUMNS}"
            ),
            &[&tenant.as_str(), &id, &job_id],
        )
        .await?;
    campaign(&row)
}

/// Records that an attempt of job `job_id` failed (unless a newer job has replaced it, or
/// the job already ended): `reason` becomes the campaign's `last_error`, shown to its readers,
/// so it must not hold internal detail. A `permanent` failure (one that will recur on every
/// attempt) also makes the job `failed`; otherwise the job keeps its state and is retried by
/// queue redelivery or the relay's re-drive. Returns whether the campaign was changed.
///
/// # Errors
/// Database failures.
pub async fn record_failure(
    client: &impl GenericClient,
    id: i32,
    job_id: Uuid,
    reason: &str,
    permanent: bool,
) -> Result<bool, ApiError> {
    let n = client
        .execute_cached(
            "update campaigns set last_error = $3,
                 processing_status = case when $4 then 'failed' else processing_status end
             where id = $1 and processing_job = $2 and processing_status in ('queued', 'running')",
            &[&id, &job_id, &reason, &permanent],
        )
        .await?;
    Ok(n == 1)
}

/// What the processor needs of a campaign, read under a lock.
#[derive(Debug, Clone, PartialEq)]
pub struct JobTarget {
    /// Owning tenant.
    pub tenant_name: String,
    /// The offer recorded on each selected row.
    pub offer_id: Option<i32>,
    /// The stored criteria.
    pub selection_criteria: Value,
    /// The current job.
    pub processing_job: Option<Uuid>,
    /// Its state.
    pub processing_status: ProcessingStatus,
    /// Ranges the current job was split into (0 until planned).
    pub ranges_total: i32,
}

/// Reads campaign `id` for the processor. `exclusive` takes `FOR UPDATE` (planning: one
/// planner at a time); otherwise `FOR KEY SHARE`, which lets range jobs of the same campaign
/// run side by side while keeping the campaign from being deleted under them.
///
/// # Errors
/// Database failures.
pub async fn job_target(
    client: &impl GenericClient,
    id: i32,
    exclusive: bool,
) -> Result<Option<JobTarget>, ApiError> {
    let lock = if exclusive {
        "for update"
    } else {
        "for key share"
    };
    let row = client
        .query_opt_cached(
            &format!(
                "select tenant_name, offer_id, coalesce(selection_criteria, '{{}}') as criteria,
                        processing_job, processing_status, ranges_total
                 from campaigns where id = $1 {lock}"
            ),
            &[&id],
        )
        .await?;
    row.map(|row| {
        let status: String = row.get("processing_status");
        Ok(JobTarget {
            tenant_name: row.get("tenant_name"),
            offer_id: row.get("offer_id"),
            selection_criteria: row.get("criteria"),
            processing_job: row.get("processing_job"),
            processing_status: ProcessingStatus::parse(&status).map_err(ApiError::internal)?,
            ranges_total: row.get("ranges_total"),
        })
    })
    .transpose()
}

/// Number of customers, to decide how to split a job.
///
/// # Errors
/// Database failures.
pub async fn customer_count(client: &impl GenericClient) -> Result<i64, ApiError> {
    Ok(client
        .query_one_cached("select count(*) from customers", &[])
        .await?
        .get(0))
}

/// Marks job `job_id` as split into `ranges` ranges (`running`); ranges it already finished
/// (before a failure made it plan again) stay counted.
///
/// # Errors
/// Database failures.
pub async fn start_ranges(
    client: &impl GenericClient,
    id: i32,
    job_id: Uuid,
    ranges: i32,
) -> Result<(), ApiError> {
    client
        .execute_cached(
            "update campaigns set processing_status = 'running', ranges_total = $3,
                 ranges_done = (select count(*) from campaign_processing_ranges
                                where campaign_id = $1 and job_id = $2),
                 processing_heartbeat = now()
             where id = $1 and processing_job = $2",
            &[&id, &job_id, &ranges],
        )
        .await?;
    Ok(())
}

/// The expansion: one set-based statement adding every customer with an id in
/// `[low, high]` that matches `criteria` (compiled with its first parameter at `$5`);
/// rows already present are left alone, so running it again changes nothing. Returns the
/// number of rows added. A customer without consent for the campaign's channel (opted out,
/// or unknown where the tenant does not count unknown as consent) is added `suppressed` for
/// `consent`, so the report counts it and nothing ever sends to it.
///
/// # Errors
/// Database failures.
pub async fn expand(
    client: &impl GenericClient,
    id: i32,
    offer_id: Option<i32>,
    (low, high): (Uuid, Uuid),
    criteria: &Compiled,
) -> Result<u64, ApiError> {
    let sql = format!(
        "insert into campaign_customers (campaign_id, customer_id, offer_id, tenant_name,
                                         delivery_status, suppression_reason)
         select $1, c.id, $2, cmp.tenant_name,
                case when consented then 'pending' else 'suppressed' end,
                case when consented then null else 'consent' end
         from customers c
         cross join (select cm.tenant_name, cm.channel, t.unknown_consent_allowed
                     from campaigns cm join tenants t on t.name = cm.tenant_name
                     where cm.id = $1) cmp
         left join customer_consents k on k.customer_id = c.id and k.channel = cmp.channel
         cross join lateral (select consent_allows(k.status, cmp.unknown_consent_allowed)
                                    as consented) judged
         where c.id between $3 and $4 and {}
         on conflict do nothing",
        criteria.sql
    );
    let params = criteria.bind(&[&id, &offer_id, &low, &high]);
    Ok(client.execute(&sql, &params).await?)
}

/// Records range `index` of job `job_id` as finished, once: `false` if it already was (a
/// redelivered message), in which case nothing else changes.
///
/// # Errors
/// Database failures.
pub async fn finish_range(
    client: &impl GenericClient,
    id: i32,
    job_id: Uuid,
    index: i32,
    inserted: u64,
) -> Result<bool, ApiError> {
    let inserted = i64::try_from(inserted).unwrap_or(i64::MAX);
    let n = client
        .execute_cached(
            "insert into campaign_processing_ranges (campaign_id, job_id, range_index, inserted)
             values ($1, $2, $3, $4) on conflict do nothing",
            &[&id, &job_id, &index, &inserted],
        )
        .await?;
    if n == 0 {
        return Ok(false);
    }
    client
        .execute_cached(
            "update campaigns set ranges_done = ranges_done + 1, processing_heartbeat = now()
             where id = $1 and processing_job = $2",
            &[&id, &job_id],
        )
        .await?;
    Ok(true)
}

/// A job that has just finished.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FinishedJob {
    /// Customers the campaign now has.
    pub matched: i64,
    /// Seconds from queueing the job to its end (0 if the queueing time is unknown).
    pub duration_seconds: f64,
}

/// Finishes job `job_id` if all its ranges are done (or it was not split): `done`,
/// `matched_count` from the table, `processed_at` now. Returns the finished job if it
/// finished.
///
/// # Errors
/// Database failures.
pub async fn finish_job_if_complete(
    client: &impl GenericClient,
    id: i32,
    job_id: Uuid,
) -> Result<Option<FinishedJob>, ApiError> {
    let row = client
        .query_opt_cached(
            "update campaigns set processing_status = 'done', processed_at = now(), last_error = null,
                 matched_count = (select count(*) from campaign_customers where campaign_id = $1)
             where id = $1 and processing_job = $2 and ranges_done >= ranges_total
               and processing_status in ('queued', 'running')
             returning matched_count,
                 coalesce(extract(epoch from now() - processing_queued_at), 0)::float8",
            &[&id, &job_id],
        )
        .await?;
    Ok(row.map(|r| FinishedJob {
        matched: r.get(0),
        duration_seconds: r.get(1),
    }))
}

/// A queued or running job that has made no progress (see [`stale_jobs`]).
#[derive(Debug, Clone, PartialEq)]
pub struct StaleJob {
    /// The campaign.
    pub campaign_id: i32,
    /// Its tenant.
    pub tenant_name: String,
    /// The job.
    pub job_id: Uuid,
    /// Attempts so far (1 for a job never re-driven).
    pub attempts: i32,
    /// Ranges the job was split into (0: not planned yet).
    pub ranges_total: i32,
    /// Ranges finished.
    pub ranges_done: i32,
    /// Seconds since the job last made progress (was queued, re-driven or finished a range).
    pub idle_seconds: f64,
    /// The last recorded error, if any.
    pub last_error: Option<String>,
}

/// Up to `limit` jobs that are `queued` or `running`, have made no progress for
/// `stale_after_seconds`, and have no unsent outbox message (a message the relay could not
/// send yet is not lost). Their campaign rows stay locked until the transaction ends; rows
/// locked elsewhere (a range being expanded, another relay) are skipped.
///
/// # Errors
/// Database failures.
pub async fn stale_jobs(
    client: &impl GenericClient,
    stale_after_seconds: f64,
    limit: i64,
) -> Result<Vec<StaleJob>, ApiError> {
    let rows = client
        .query_cached(
            "select c.id, c.tenant_name, c.processing_job, c.processing_attempts, c.ranges_total,
                    c.ranges_done, c.last_error,
                    coalesce(extract(epoch from now() - c.processing_heartbeat), 0)::float8 as idle
             from campaigns c
             where c.processing_status in ('queued', 'running') and c.processing_job is not null
               and (c.processing_heartbeat is null
                    or c.processing_heartbeat <= now() - make_interval(secs => $1))
               and not exists (select 1 from campaign_outbox o where o.job_id = c.processing_job)
             order by c.processing_heartbeat nulls first, c.id
             limit $2
             for update of c skip locked",
            &[&stale_after_seconds, &limit],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| StaleJob {
            campaign_id: row.get("id"),
            tenant_name: row.get("tenant_name"),
            job_id: row.get("processing_job"),
            attempts: row.get("processing_attempts"),
            ranges_total: row.get("ranges_total"),
            ranges_done: row.get("ranges_done"),
            idle_seconds: row.get("idle"),
            last_error: row.get("last_error"),
        })
        .collect())
}

/// Counts another attempt of a stale job (its heartbeat restarts now) and records `note` as
/// its `last_error`. The caller writes the messages to re-send in the same transaction.
///
/// # Errors
/// Database failures.
pub async fn record_redrive(
    client: &impl GenericClient,
    id: i32,
    job_id: Uuid,
    note: &str,
) -> Result<(), ApiError> {
    client
        .execute_cached(
            "update campaigns set processing_attempts = processing_attempts + 1,
                 processing_heartbeat = now(), last_error = $3
             where id = $1 and processing_job = $2",
            &[&id, &job_id, &note],
        )
        .await?;
    Ok(())
}

/// A customer's contact details: personal data, shown only to principals holding
/// `customer.contact.read` in the tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Contact {
    /// Name.
    pub full_name: String,
    /// E-mail address.
    pub email: Option<String>,
    /// Phone number.
    pub phone: Option<String>,
}

/// One of a campaign's customers with its delivery.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CampaignCustomer {
    /// The customer.
    pub customer_id: Uuid,
    /// Contact details; present only for principals holding `customer.contact.read`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact: Option<Contact>,
    /// `pending`, `sent` or `failed`.
    pub delivery_status: DeliveryStatus,
    /// When the provider sent it (as reported).
    pub sent_at: Option<DateTime<Utc>>,
    /// The provider's id of the message.
    pub provider_message_id: Option<String>,
    /// Why it failed, if reported.
    pub failure_reason: Option<String>,
    /// Last change of the row.
    pub updated_at: DateTime<Utc>,
}

/// One keyset page of campaign `id`'s customers in customer-id order, after `after`; with
/// `with_contact`, each with its [`Contact`] (otherwise the customers table is not read).
///
/// # Errors
/// Database failures.
pub async fn customers(
    client: &impl GenericClient,
    id: i32,
    status: Option<DeliveryStatus>,
    after: Option<Uuid>,
    limit: i64,
    with_contact: bool,
) -> Result<Vec<CampaignCustomer>, ApiError> {
    let rows = client
        .query_cached(
            "select cc.customer_id, cc.delivery_status, cc.sent_at,
                    cc.provider_message_id, cc.failure_reason, cc.updated_at,
                    c.full_name, c.email, c.phone
             from campaign_customers cc
             left join customers c on $5 and c.id = cc.customer_id
             where cc.campaign_id = $1
               and ($2::text is null or cc.delivery_status = $2)
               and ($3::uuid is null or cc.customer_id > $3)
             order by cc.customer_id limit $4",
            &[
                &id,
                &status.map(DeliveryStatus::as_str),
                &after,
                &limit,
                &with_contact,
            ],
        )
        .await?;
    rows.iter()
        .map(|row| {
            let status: String = row.get("delivery_status");
            let contact = row
                .get::<_, Option<String>>("full_name")
                .map(|full_name| Contact {
                    full_name,
                    email: row.get("email"),
                    phone: row.get("phone"),
                });
            Ok(CampaignCustomer {
                customer_id: row.get("customer_id"),
                contact,
                delivery_status: DeliveryStatus::parse(&status).map_err(ApiError::internal)?,
                sent_at: row.get("sent_at"),
                provider_message_id: row.get("provider_message_id"),
                failure_reason: row.get("failure_reason"),
                updated_at: row.get("updated_at"),
            })
        })
        .collect()
}

/// Counts of a campaign's deliveries. They add up: `total` (matched) is
/// `suppressed_by_consent` plus `suppressed_by_pressure` plus `awaiting_release` plus
/// `released`, and `released` is `sent` plus `failed` plus `pending`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct DeliverySummary {
    /// All selected customers (matched).
    pub total: i64,
    /// Released to the provider, not yet reported.
    pub pending: i64,
    /// Reported sent.
    pub sent: i64,
    /// Reported failed.
    pub failed: i64,
    /// Matched but without consent for the campaign's channel.
    pub suppressed_by_consent: i64,
    /// Held back at release: the customer was at the platform's contact cap.
    pub suppressed_by_pressure: i64,
    /// Prepared, not yet released (the campaign was not activated since they were
    /// selected).
    pub awaiting_release: i64,
    /// Released to the provider.
    pub released: i64,
}

/// Counts campaign `id`'s deliveries (see [`DeliverySummary`]).
///
/// # Errors
/// Database failures.
pub async fn summary(client: &impl GenericClient, id: i32) -> Result<DeliverySummary, ApiError> {
    let row = client
        .query_one_cached(
            "select count(*),
                    count(*) filter (where delivery_status = 'pending'
                                       and released_at is not null),
                    count(*) filter (where delivery_status = 'sent'),
                    count(*) filter (where delivery_status = 'failed'),
                    count(*) filter (where suppression_reason = 'consent'),
                    count(*) filter (where suppression_reason = 'contact_pressure'),
                    count(*) filter (where delivery_status = 'pending' and released_at is null),
                    count(*) filter (where released_at is not null)
             from campaign_customers where campaign_id = $1",
            &[&id],
        )
        .await?;
    Ok(DeliverySummary {
        total: row.get(0),
        pending: row.get(1),
        sent: row.get(2),
        failed: row.get(3),
        suppressed_by_consent: row.get(4),
        suppressed_by_pressure: row.get(5),
        awaiting_release: row.get(6),
        released: row.get(7),
    })
}

/// What one release did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ReleaseSummary {
    /// Deliveries given to the provider now.
    pub released: i64,
    /// Deliveries held back now: the customer was at the contact cap.
    pub suppressed_by_pressure: i64,
    /// Deliveries held back now: the customer withdrew consent since selection.
    pub suppressed_by_consent: i64,
}

/// The advisory lock every release holds until its transaction ends: releases run one at a
/// time across the platform, so each counts the contacts the previous ones committed and two
/// releases at the same moment cannot together pass a customer's cap.
pub const RELEASE_LOCK: i64 = 0x6f66_6665_725f_726c; // "offer_rl"

/// Releases campaign `id`'s prepared deliveries (pending, never released) to the provider,
/// in one statement after taking [`RELEASE_LOCK`]: a customer who no longer consents to the
/// campaign's channel (consent is judged again: it may have changed since selection) is
/// marked `suppressed` for `consent`; a customer already at the contact
/// policy's cap (`contact_policy`: contacts in the rolling window across every tenant, all
/// channels together and through this campaign's channel) is marked `suppressed` for
/// `contact_pressure`; every other delivery gets `released_at` and a row in the contact
/// ledger (`customer_contacts`). Without a policy everything is released. Call in the
/// transaction that activates the campaign (it switches JIT compilation off for the rest of
/// that transaction).
///
/// # Errors
/// Database failures.
pub async fn release(
    client: &impl GenericClient,
    tenant: &TenantName,
    id: i32,
) -> Result<ReleaseSummary, ApiError> {
    // JIT compilation costs more than it saves on this statement (its row estimates, through
    // the CTEs, are far above the real counts): off for this transaction, which ends with it.
    client.batch_execute("set local jit = off").await?;
    client
        .execute_cached("select pg_advisory_xact_lock($1)", &[&RELEASE_LOCK])
        .await?;
    let row = client
        .query_one_cached(include_str!("release.sql"), &[&id, &tenant.as_str()])
        .await?;
    Ok(ReleaseSummary {
        released: row.get(0),
        suppressed_by_pressure: row.get(1),
        suppressed_by_consent: row.get(2),
    })
}

/// A released delivery as a provider's feed gives it: whom to send to, where, in which
/// language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FeedDelivery {
    /// The customer (quote it back in the delivery report).
    pub customer_id: Uuid,
    /// Where to send: the e-mail address for `email`, the phone number for `sms` and
    /// `call`, null for `push` (the bank's app addresses the customer by id).
    pub address: Option<String>,
    /// The customer's preferred language, if known (e.g. `en`).
    pub preferred_language: Option<String>,
}

/// A page of campaign `id`'s released deliveries not yet reported, in customer-id order
/// after `after`: at most `limit`. A customer who opted out of the channel since the release
/// is left out (the delivery stays pending: nobody sends it).
///
/// # Errors
/// Database failures.
pub async fn feed(
    client: &impl GenericClient,
    tenant: &TenantName,
    id: i32,
    channel: Channel,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<FeedDelivery>, ApiError> {
    let rows = client
        .query_cached(
            "select cc.customer_id,
                    case $5 when 'email' then c.email when 'push' then null else c.phone end
                        as address,
                    c.preferred_language
             from campaign_customers cc join customers c on c.id = cc.customer_id
             where cc.campaign_id = $1 and cc.tenant_name = $2
               and cc.released_at is not null and cc.delivery_status = 'pending'
               and ($3::uuid is null or cc.customer_id > $3)
               and not exists (select 1 from customer_consents k
                               where k.customer_id = cc.customer_id and k.channel = $5
                                 and k.status = 'opted_out')
             order by cc.customer_id limit $4",
            &[&id, &tenant.as_str(), &after, &limit, &channel.as_str()],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| FeedDelivery {
            customer_id: r.get(0),
            address: r.get(1),
            preferred_language: r.get(2),
        })
        .collect())
}

/// How a previewed audience would fare if released now (see [`DeliverySummary`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PreviewBreakdown {
    /// Without consent for the channel (opted out, or unknown where unknown is not consent).
    pub suppressed_by_consent: i64,
    /// With consent, but at the platform's contact cap now.
    pub suppressed_by_pressure: i64,
    /// What a release now would give out.
    pub releasable: i64,
}

/// The consent and contact-pressure breakdown of the customers `criteria` (compiled from
/// `$1`) select, for a campaign of `tenant` through `channel`.
///
/// # Errors
/// Database failures.
pub async fn preview_breakdown(
    client: &impl GenericClient,
    criteria: &Compiled,
    tenant: &TenantName,
    channel: Channel,
) -> Result<PreviewBreakdown, ApiError> {
    let mut params = criteria.bind(&[]);
    let tenant_name = tenant.as_str();
    let channel_name = channel.as_str();
    params.push(&tenant_name);
    params.push(&channel_name);
    let (t, ch) = (params.len() - 1, params.len());
    let row = client
        .query_one(
            &format!(
                "with matched as (select c.id from customers c where {criteria}),
                 policy as (
                     select max_contacts, window_days,
                            (channel_limits ->> ${ch}::text)::integer as channel_max
                     from contact_policy
                 ),
                 judged as (
                     select m.id,
                            consent_allows(k.status, t.unknown_consent_allowed) as consented
                     from matched m
                     cross join (select unknown_consent_allowed from tenants
                                 where name = ${t}::text) t
                     left join customer_consents k
                       on k.customer_id = m.id and k.channel = ${ch}::text
                 ),
                 contacts as (
                     select l.customer_id, count(*) as total,
                            count(*) filter (where l.channel = ${ch}::text) as on_channel
                     from customer_contacts l join judged j on j.id = l.customer_id
                     where j.consented and exists (select 1 from policy)
                       and l.contact_at > now()
                           - make_interval(days => (select window_days from policy))
                     group by l.customer_id
                 ),
                 verdict as (
                     select j.consented,
                            contact_cap_reached(c.total, c.on_channel, p.max_contacts,
                                                p.channel_max) as over
                     from judged j
                     left join contacts c on c.customer_id = j.id
                     left join policy p on true
                 )
                 select count(*) filter (where not consented),
                        count(*) filter (where consented and over),
                        count(*) filter (where consented and not over)
                 from verdict",
                criteria = criteria.sql
            ),
            &params,
        )
        .await?;
    Ok(PreviewBreakdown {
        suppressed_by_consent: row.get(0),
        suppressed_by_pressure: row.get(1),
        releasable: row.get(2),
    })
}

/// A customer in an audience preview (no contact details).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AudienceMember {
    /// The customer.
    pub id: Uuid,
    /// Segment.
    pub segment: Option<String>,
    /// KYC status.
    pub kyc_status: Option<String>,
    /// Credit score.
    pub credit_score: Option<i32>,
    /// State.
    pub state: Option<String>,
    /// Active?
    pub is_active: bool,
}

/// How many customers match `criteria` (compiled from `$1`), and the first `sample` of them
/// in id order.
///
/// # Errors
/// Database failures.
pub async fn preview(
    client: &impl GenericClient,
    criteria: &Compiled,
    sample: i64,
) -> Result<(i64, Vec<AudienceMember>), ApiError> {
    let params = criteria.bind(&[]);
    let count: i64 = client
        .query_one(
            &format!("select count(*) from customers c where {}", criteria.sql),
            &params,
        )
        .await?
        .get(0);
    let mut params = params;
    params.push(&sample);
    let placeholder = params.len();
    let rows = client
        .query(
            &format!(
                "select c.id, c.segment, c.kyc_status, c.credit_score, c.state,
                        coalesce(c.is_active, true) as is_active
                 from customers c where {} order by c.id limit ${placeholder}",
                criteria.sql
            ),
            &params,
        )
        .await?;
    let members = rows
        .iter()
        .map(|row| AudienceMember {
            id: row.get("id"),
            segment: row.get("segment"),
            kyc_status: row.get("kyc_status"),
            credit_score: row.get("credit_score"),
            state: row.get("state"),
            is_active: row.get("is_active"),
        })
        .collect();
    Ok((count, members))
}
