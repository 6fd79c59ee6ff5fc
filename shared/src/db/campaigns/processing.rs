//! A campaign's selection jobs: queued, planned into customer-id ranges, expanded range by
//! range (the consent verdict judged at selection), finished once, re-driven when stale.

use super::{COLUMNS, Campaign, campaign};
use crate::criteria::Compiled;
use crate::db::{CachedStatements, GenericClient, TenantTx};
use crate::domain::ProcessingStatus;
use crate::error::ApiError;
use serde_json::Value;
use uuid::Uuid;

/// Removes campaign `id`'s deliveries that were never released, before its audience is
/// selected again for new criteria: the new selection is then exactly the new criteria's
/// (released ones stay: they were contacts; so does the control group: its customers were
/// drawn, and the results compare them from their assignment on). Answers how many went.
///
/// # Errors
/// Database failures.
pub async fn drop_unreleased(tx: &TenantTx<'_>, id: i32) -> Result<u64, ApiError> {
    Ok(tx
        .execute_cached(
            "delete from campaign_customers
             where campaign_id = $1 and tenant_name = $2 and released_at is null
               and delivery_status <> 'control'",
            &[&id, &tx.tenant().as_str()],
        )
        .await?)
}

/// Makes `job_id` the campaign's current processing job, `queued` (attempt 1); the caller
/// writes the job's message to the outbox in the same transaction.
///
/// # Errors
/// Database failures.
pub async fn queue_job(tx: &TenantTx<'_>, id: i32, job_id: Uuid) -> Result<Campaign, ApiError> {
    let row = tx
        .query_one_cached(
            &format!(
                "update campaigns set processing_status = 'queued', processing_job = $3,
                     ranges_total = 0, ranges_done = 0, last_error = null,
                     processing_attempts = 1, processing_heartbeat = now(),
                     processing_queued_at = now()
                 where tenant_name = $1 and id = $2 returning {COLUMNS}"
            ),
            &[&tx.tenant().as_str(), &id, &job_id],
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
    Ok(rows.iter().map(stale_job).collect())
}

/// A [`StaleJob`] from a row with the columns `id`, `tenant_name`, `processing_job`,
/// `processing_attempts`, `ranges_total`, `ranges_done`, `idle` and `last_error` (a release
/// job's query names its own columns so).
pub(super) fn stale_job(row: &tokio_postgres::Row) -> StaleJob {
    StaleJob {
        campaign_id: row.get("id"),
        tenant_name: row.get("tenant_name"),
        job_id: row.get("processing_job"),
        attempts: row.get("processing_attempts"),
        ranges_total: row.get("ranges_total"),
        ranges_done: row.get("ranges_done"),
        idle_seconds: row.get("idle"),
        last_error: row.get("last_error"),
    }
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
