//! A campaign's release as a job (V029): inline when small, by customer-id ranges on the
//! campaign queue when large, each range released in its own transaction; re-driven when
//! stale.
//!
//! An activation, `…/release` and the scheduler's start call [`begin`] in the transaction
//! that asks for the release. For a campaign of at most [`crate::config::ReleaseBatch`]
//! selected customers it releases its prepared deliveries there ([`super::release`], as before). Otherwise it makes a
//! new release job current (`campaigns.release_job`, `running`) and writes the message of its
//! first range to the outbox, in that same transaction: a crash before the commit leaves
//! nothing, after it the message. The processor calls [`release_range`] per message, and
//! each range writes the next range's message in its own transaction: the ranges run one
//! after another (they would anyway, under the release lock), so no invocation waits on the
//! lock behind its own job's other ranges until its timeout.
//!
//! Each range runs under the campaign's row lock (`for no key update`) and the platform's
//! release lock ([`super::RELEASE_LOCK`]), judges its candidates exactly as one release
//! would ([`super::deliveries::release_between`]), and records itself in
//! `campaign_release_ranges` in its own transaction: a redelivered message finds its row
//! and changes nothing; a killed one rolls back whole and is released by the redelivery.
//! A range releases only while the campaign is `active` and its job current: a pause or a
//! completion stops the job (`stopped`), and the next activation starts a new one over what
//! is left. A user's status change waits for the range in progress (the row lock), so no
//! range releases into a campaign that was paused or completed before it.

use uuid::Uuid;

use super::deliveries::{ReleaseSummary, release_between};
use super::{Campaign, StaleJob};
use crate::db::{CachedStatements, GenericClient, TenantTx, outbox};
use crate::error::ApiError;
use crate::queue::IdRange;

/// Most ranges one release job is split into.
pub const MAX_RANGES: i64 = 10_000;

/// Where a campaign's release job stands (`campaigns.release_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseStatus {
    /// Ranges remain; the processor is releasing them.
    Running,
    /// Every range released.
    Done,
    /// A range found the campaign no longer active (paused or completed); the next
    /// activation releases what is left, as a new job.
    Stopped,
    /// Given up by the relay after `CAMPAIGN_MAX_ATTEMPTS` re-drives without progress;
    /// `POST …/release` starts a new job.
    Failed,
}

impl ReleaseStatus {
    /// Parses the stored name.
    ///
    /// # Errors
    /// The unknown name.
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "running" => Ok(Self::Running),
            "done" => Ok(Self::Done),
            "stopped" => Ok(Self::Stopped),
            "failed" => Ok(Self::Failed),
            other => Err(format!("unknown release status {other:?}")),
        }
    }
}

/// A campaign's release job as the API shows it (`Campaign.release`): null until a release
/// first went by ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct ReleaseProgress {
    /// Where the job stands.
    pub status: ReleaseStatus,
    /// Customer-id ranges of the job.
    pub ranges_total: i32,
    /// Ranges released so far.
    pub ranges_done: i32,
    /// How often the job has been driven: 1 when started, one more per re-drive.
    pub attempts: i32,
}

/// What asking for a release did: everything released now (`done`, the counts of this
/// release), or a release job started (`running`, nothing released yet: follow the
/// campaign's `release` and its delivery summary).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Release {
    /// `done` (released in the request) or `running` (a release job on the queue).
    pub status: ReleaseStatus,
    /// Ranges of the job (0 when released in the request).
    pub ranges_total: i32,
    /// What this release did so far.
    #[serde(flatten)]
    pub summary: ReleaseSummary,
    /// The release job started (its messages are sent after the commit). Internal.
    #[serde(skip)]
    pub job: Option<Uuid>,
}

impl Release {
    /// The campaign's `release` after this release: the new job, none released yet, or
    /// `previous` when it released in the request.
    #[must_use]
    pub fn progress(&self, previous: Option<ReleaseProgress>) -> Option<ReleaseProgress> {
        match self.job {
            Some(_) => Some(ReleaseProgress {
                status: ReleaseStatus::Running,
                ranges_total: self.ranges_total,
                ranges_done: 0,
                attempts: 1,
            }),
            None => previous,
        }
    }
}

/// Releases `campaign`'s prepared deliveries now if it selected at most `batch`
/// customers (its `matched_count`, read by the caller under the campaign's row lock; current whenever a release may run: activation, `…/release`
/// and the scheduler's start all need the selection done), or starts a release job of
/// `ceil(matched / batch)` ranges (2 to [`MAX_RANGES`]) with its first message in the
/// outbox. The campaign's size decides, not a count of what is still unreleased: at
/// 10,000,000 customers even a count stopped after `batch` candidates read the campaign's
/// whole share of the primary key (a bitmap of 8.4 million entries, 14.6 s), and a job
/// whose ranges find little left to release ends in a few seconds anyway.
/// Either way a job still `running` is superseded: its remaining messages find it no longer
/// current. The caller holds the campaign's row lock and has made (or keeps) it active; the
/// relay sends the messages after the commit.
///
/// # Errors
/// Database failures.
pub async fn begin(
    tx: &TenantTx<'_>,
    campaign: &Campaign,
    batch: i64,
) -> Result<Release, ApiError> {
    let (tenant, id, matched) = (tx.tenant().as_str(), campaign.id, campaign.matched_count);
    if matched <= batch {
        stop(tx, id).await?;
        let summary = super::release(tx, id).await?;
        return Ok(Release {
            status: ReleaseStatus::Done,
            ranges_total: 0,
            summary,
            job: None,
        });
    }
    let ranges =
        i32::try_from(((matched + batch - 1) / batch).clamp(2, MAX_RANGES)).unwrap_or(i32::MAX);
    let job = Uuid::new_v4();
    tx.execute_cached(
        "update campaigns set release_job = $3, release_status = 'running',
             release_ranges_total = $4, release_ranges_done = 0, release_attempts = 1,
             release_heartbeat = now()
         where id = $1 and tenant_name = $2",
        &[&id, &tenant, &job, &ranges],
    )
    .await?;
    outbox::add_next_release_range(tx.transaction(), id, tenant, job, ranges).await?;
    tracing::info!(campaign.id = id, tenant.name = %tenant, release.job = %job, ranges,
        "release job started");
    Ok(Release {
        status: ReleaseStatus::Running,
        ranges_total: ranges,
        summary: ReleaseSummary::default(),
        job: Some(job),
    })
}

/// What [`release_range`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeOutcome {
    /// The range was released; `finished` when it was the job's last.
    Released {
        /// Its counts.
        summary: ReleaseSummary,
        /// Whether the job is now `done`.
        finished: bool,
    },
    /// The range had been released already (a redelivered message).
    Duplicate,
    /// The job is no longer the campaign's current running one.
    Stale,
    /// The campaign is no longer active: the job is now `stopped`.
    Stopped,
    /// No such campaign in the tenant.
    Unknown,
}

/// Releases range `range` of release job `job` of campaign `id`, once, and writes the message
/// of the job's next unreleased range (see the module documentation).
///
/// # Errors
/// Database failures; a malformed range.
pub async fn release_range(
    tx: &TenantTx<'_>,
    id: i32,
    job: Uuid,
    range: IdRange,
) -> Result<RangeOutcome, ApiError> {
    let tenant = tx.tenant().as_str();
    let bounds = range.bounds().map_err(ApiError::internal)?;
    let Some(row) = tx
        .query_opt_cached(
            "select status, release_job, release_status from campaigns
             where id = $1 and tenant_name = $2 for no key update",
            &[&id, &tenant],
        )
        .await?
    else {
        return Ok(RangeOutcome::Unknown);
    };
    let (status, current, release_status): (&str, Option<Uuid>, Option<&str>) =
        (row.get(0), row.get(1), row.get(2));
    if current != Some(job) || release_status != Some("running") {
        return Ok(RangeOutcome::Stale);
    }
    if status != "active" {
        tx.execute_cached(
            "update campaigns set release_status = 'stopped'
             where id = $1 and tenant_name = $2 and release_job = $3",
            &[&id, &tenant, &job],
        )
        .await?;
        tracing::info!(campaign.id = id, tenant.name = %tenant, release.job = %job, status,
            "release job stopped: the campaign is no longer active");
        return Ok(RangeOutcome::Stopped);
    }
    let index = i32::try_from(range.index).map_err(ApiError::internal)?;
    let recorded = tx
        .execute_cached(
            "insert into campaign_release_ranges (campaign_id, job_id, range_index)
             values ($1, $2, $3) on conflict do nothing",
            &[&id, &job, &index],
        )
        .await?;
    if recorded == 0 {
        return Ok(RangeOutcome::Duplicate);
    }
    let summary = release_between(tx, id, bounds).await?;
    tx.execute_cached(
        "update campaign_release_ranges
         set released = $4, suppressed_by_pressure = $5, suppressed_by_consent = $6,
             control = $7
         where campaign_id = $1 and job_id = $2 and range_index = $3",
        &[
            &id,
            &job,
            &index,
            &summary.released,
            &summary.suppressed_by_pressure,
            &summary.suppressed_by_consent,
            &summary.control,
        ],
    )
    .await?;
    let count = i32::try_from(range.count).map_err(ApiError::internal)?;
    let next = outbox::add_next_release_range(tx.transaction(), id, tenant, job, count).await?;
    let finished: bool = tx
        .query_one_cached(
            "update campaigns set release_ranges_done = release_ranges_done + 1,
                 release_heartbeat = now(),
                 release_status = case when $4 then 'done' else 'running' end
             where id = $1 and tenant_name = $2 and release_job = $3
             returning release_status = 'done'",
            &[&id, &tenant, &job, &(next == 0)],
        )
        .await?
        .get(0);
    Ok(RangeOutcome::Released { summary, finished })
}

/// Up to `limit` running release jobs without progress for `stale_after_seconds` and
/// without an unsent outbox message, in the shape of the selection's stale jobs (`job_id`
/// the release job, `ranges_*` its ranges, no `last_error`); their campaign rows stay locked
/// until the transaction ends (rows locked elsewhere, such as by a range in progress, are
/// skipped).
///
/// # Errors
/// Database failures.
pub async fn stale_releases(
    client: &impl GenericClient,
    stale_after_seconds: f64,
    limit: i64,
) -> Result<Vec<StaleJob>, ApiError> {
    let rows = client
        .query_cached(
            "select c.id, c.tenant_name, c.release_job as processing_job,
                    c.release_attempts as processing_attempts,
                    c.release_ranges_total as ranges_total,
                    c.release_ranges_done as ranges_done, null::text as last_error,
                    coalesce(extract(epoch from now() - c.release_heartbeat), 0)::float8 as idle
             from campaigns c
             where c.release_status = 'running'
               and (c.release_heartbeat is null
                    or c.release_heartbeat <= now() - make_interval(secs => $1))
               and not exists (select 1 from campaign_outbox o where o.job_id = c.release_job)
             order by c.release_heartbeat nulls first, c.id
             limit $2
             for no key update of c skip locked",
            &[&stale_after_seconds, &limit],
        )
        .await?;
    Ok(rows.iter().map(super::processing::stale_job).collect())
}

/// Re-drives a stale release job: the message of its first unreleased range goes to the
/// outbox again (the chain goes on from there) and its attempts grow; returns how many
/// messages it wrote. With none left to write (every range released, the job not closed) it
/// closes the job as `done`.
///
/// # Errors
/// Database failures.
pub async fn redrive(client: &impl GenericClient, job: &StaleJob) -> Result<u64, ApiError> {
    let messages = outbox::add_next_release_range(
        client,
        job.campaign_id,
        &job.tenant_name,
        job.job_id,
        job.ranges_total,
    )
    .await?;
    client
        .execute_cached(
            "update campaigns set release_attempts = release_attempts + 1,
                 release_heartbeat = now(),
                 release_status = case when $3 then 'done' else release_status end
             where id = $1 and release_job = $2",
            &[&job.campaign_id, &job.job_id, &(messages == 0)],
        )
        .await?;
    Ok(messages)
}

/// Gives a stale release job up: `failed`, with `reason` as the campaign's `last_error`
/// (shown to its readers: no internal detail).
///
/// # Errors
/// Database failures.
pub async fn give_up(
    client: &impl GenericClient,
    job: &StaleJob,
    reason: &str,
) -> Result<(), ApiError> {
    client
        .execute_cached(
            "update campaigns set release_status = 'failed', last_error = $3
             where id = $1 and release_job = $2 and release_status = 'running'",
            &[&job.campaign_id, &job.job_id, &reason],
        )
        .await?;
    Ok(())
}

/// Stops campaign `id`'s running release job, if any (the campaign is being paused or
/// completed under its row lock): its remaining messages then find it no longer running and
/// release nothing. Returns whether a job was stopped.
///
/// # Errors
/// Database failures.
pub async fn stop(tx: &TenantTx<'_>, id: i32) -> Result<bool, ApiError> {
    Ok(tx
        .execute_cached(
            "update campaigns set release_status = 'stopped'
             where id = $1 and tenant_name = $2 and release_status = 'running'",
            &[&id, &tx.tenant().as_str()],
        )
        .await?
        == 1)
}
