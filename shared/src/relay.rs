//! The outbox relay and the stale-job re-drive: what makes campaign processing survive a
//! crash at any line.
//!
//! - [`send`] moves outbox messages ([`crate::db::outbox`]) to the campaign queue: it deletes
//!   a batch and commits only after the queue took it, so every committed message reaches the
//!   queue at least once. The API and the processor call it for their own job right after
//!   their commit (the fast path); [`Relay::run_once`] sends whatever is left.
//! - [`Relay::sweep`] finds jobs that are `queued` or `running` but made no progress for
//!   [`RedrivePolicy::stale_after`] (a message lost with a killed process, a range whose
//!   redeliveries ran out, a plan that never reached the queue before the outbox existed) and
//!   writes their plan, or their unfinished ranges, to the outbox again, counting the attempt.
//!   A job at [`RedrivePolicy::max_attempts`] becomes `failed` with a `last_error` saying what
//!   happened and how to start again. Release jobs (a large release by ranges,
//!   [`campaigns::releases`]) are swept the same way: their unreleased ranges are written
//!   again, and one given up becomes `failed` (`POST …/release` starts a new one).
//!
//! [`Relay::run_once`] does both, then runs the campaign scheduler ([`crate::scheduler`]:
//! scheduled starts, automatic ends); it runs on a schedule: an EventBridge schedule invoking the
//! `outbox-relay` function on AWS, a tokio interval in `offerctl serve`. Sending a message
//! twice is harmless: the processor is idempotent.

use std::time::Duration;

use deadpool_postgres::Pool;
use uuid::Uuid;

use crate::config::{RedrivePolicy, ReleaseBatch};
use crate::db::{campaigns, outbox, set_tenant};
use crate::domain::TenantName;
use crate::error::ApiError;
use crate::metrics::{self, Metric};
use crate::queue::{Queue, QueueError};
use crate::scheduler::CalendarReport;

/// Messages taken from the outbox per transaction (ten SQS batches).
pub const SEND_BATCH: i64 = 100;
/// Stale jobs handled per transaction.
pub const SWEEP_BATCH: i64 = 50;

/// The relay could not do its work; the next run tries again.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] ApiError),
    /// The queue refused messages (they stay in the outbox).
    #[error(transparent)]
    Queue(#[from] QueueError),
}

impl From<tokio_postgres::Error> for RelayError {
    fn from(err: tokio_postgres::Error) -> Self {
        Self::Database(err.into())
    }
}

impl From<deadpool_postgres::PoolError> for RelayError {
    fn from(err: deadpool_postgres::PoolError) -> Self {
        Self::Database(err.into())
    }
}

/// Sends the outbox's messages (only job `job`'s, if given) to `queue` in batches of
/// [`SEND_BATCH`]; returns how many it sent. `pool` must see every tenant's rows (the
/// platform scope).
///
/// # Errors
/// [`RelayError`] at the first batch that fails; that batch stays in the outbox, batches
/// before it were sent.
pub async fn send(pool: &Pool, queue: &Queue, job: Option<Uuid>) -> Result<usize, RelayError> {
    let sent = send_scoped(pool, None, queue, job).await?;
    if job.is_some() {
        return Ok(sent);
    }
    Ok(sent + send_imports(pool, queue).await?)
}

/// Sends the import outbox's messages (the steps of split customer files,
/// [`crate::db::customer_import::parts`]) to `queue` in batches of [`SEND_BATCH`]; returns
/// how many it sent. `pool` must be the platform's.
///
/// # Errors
/// As [`send`].
pub async fn send_imports(pool: &Pool, queue: &Queue) -> Result<usize, RelayError> {
    drain(pool, None, queue, Outbox::Imports).await
}

/// The fast path of a tenant route: sends job `job`'s outbox messages in tenant transactions
/// of `tenant` on the tenant pool, so row-level security shows it that tenant's messages only.
///
/// # Errors
/// As [`send`].
pub async fn send_tenant_job(
    pool: &Pool,
    tenant: &TenantName,
    queue: &Queue,
    job: Uuid,
) -> Result<usize, RelayError> {
    send_scoped(pool, Some(tenant), queue, Some(job)).await
}

async fn send_scoped(
    pool: &Pool,
    tenant: Option<&TenantName>,
    queue: &Queue,
    job: Option<Uuid>,
) -> Result<usize, RelayError> {
    drain(pool, tenant, queue, Outbox::Campaigns(job)).await
}

/// Which outbox a relay drains.
#[derive(Debug, Clone, Copy)]
enum Outbox {
    /// `campaign_outbox` (only job `.0`'s messages, if given).
    Campaigns(Option<Uuid>),
    /// `import_outbox`.
    Imports,
}

/// Sends an outbox's messages in transactions (in `tenant`, if given) of at most
/// [`SEND_BATCH`], until a batch comes back short.
async fn drain(
    pool: &Pool,
    tenant: Option<&TenantName>,
    queue: &Queue,
    outbox: Outbox,
) -> Result<usize, RelayError> {
    let mut sent = 0;
    loop {
        let mut client = pool.get().await?;
        let tx = client.transaction().await?;
        if let Some(tenant) = tenant {
            set_tenant(&tx, tenant).await?;
        }
        let batch = match outbox {
            Outbox::Campaigns(job) => {
                let jobs = outbox::take(&tx, job, SEND_BATCH).await?;
                send_batch(tx, queue, &jobs).await?
            }
            Outbox::Imports => {
                let jobs =
                    crate::db::customer_import::parts::take_messages(&tx, SEND_BATCH).await?;
                send_batch(tx, queue, &jobs).await?
            }
        };
        sent += batch;
        if i64::try_from(batch).unwrap_or(i64::MAX) < SEND_BATCH {
            return Ok(sent);
        }
    }
}

/// Sends `jobs`, taken (deleted) in `tx`, and commits; answers how many. The rows are
/// deleted but not committed: if the send fails or this process dies, they come back for
/// the next relay. On failure the rollback is awaited, so the rows are free for another
/// relay by the time this returns.
async fn send_batch(
    tx: deadpool_postgres::Transaction<'_>,
    queue: &Queue,
    jobs: &[impl serde::Serialize],
) -> Result<usize, RelayError> {
    if jobs.is_empty() {
        return Ok(0);
    }
    if let Err(err) = queue.send_all(jobs).await {
        tx.rollback().await?;
        return Err(err.into());
    }
    tx.commit().await?;
    Ok(jobs.len())
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Stale jobs re-driven.
    pub jobs_redriven: u64,
    /// Messages written for them (a plan counts as one).
    pub ranges_redriven: u64,
    /// Stale jobs that reached the maximum attempts and became `failed`.
    pub jobs_failed: u64,
    /// Stale release jobs re-driven.
    pub releases_redriven: u64,
    /// Stale release jobs given up (`failed`).
    pub releases_failed: u64,
}

/// What one [`Relay::run_once`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayReport {
    /// The sweep.
    pub sweep: SweepReport,
    /// Messages sent to the queue.
    pub sent: usize,
    /// The campaign scheduler's run ([`crate::scheduler`]).
    pub calendar: CalendarReport,
}

/// The scheduled relay: a platform-scope pool, the campaign queue, the re-drive policy.
#[derive(Debug, Clone)]
pub struct Relay {
    /// A pool in [`crate::db::Scope::Platform`].
    pub pool: Pool,
    /// The campaign queue.
    pub queue: Queue,
    /// When to re-drive, and when to give up.
    pub policy: RedrivePolicy,
    /// Most deliveries the scheduler's start of a campaign releases in its transaction.
    pub release_batch: ReleaseBatch,
}

impl Relay {
    /// Sweeps stale jobs, sends every outbox message, then runs the campaign scheduler
    /// ([`crate::scheduler::run`]); emits the figures ([`crate::metrics`]) as `function`.
    ///
    /// # Errors
    /// [`RelayError`]; work committed before the failure stays done.
    pub async fn run_once(&self, function: &str) -> Result<RelayReport, RelayError> {
        let sweep = self.sweep().await?;
        let mut sent = send(&self.pool, &self.queue, None).await?;
        let calendar = crate::scheduler::run(&self.pool, self.release_batch).await?;
        if calendar.started > 0 {
            // A start may have written a release job's messages.
            sent += send(&self.pool, &self.queue, None).await?;
        }
        let mut figures = calendar.metrics();
        if sweep.jobs_redriven + sweep.releases_redriven > 0 {
            figures.push(Metric::count(
                metrics::JOBS_REDRIVEN,
                (sweep.jobs_redriven + sweep.releases_redriven) as f64,
            ));
            figures.push(Metric::count(
                metrics::RANGES_REDRIVEN,
                sweep.ranges_redriven as f64,
            ));
        }
        if sweep.jobs_failed + sweep.releases_failed > 0 {
            figures.push(Metric::count(
                metrics::JOBS_FAILED,
                (sweep.jobs_failed + sweep.releases_failed) as f64,
            ));
        }
        if sent > 0 {
            figures.push(Metric::count(metrics::MESSAGES_RELAYED, sent as f64));
        }
        metrics::emit(function, &figures);
        Ok(RelayReport {
            sweep,
            sent,
            calendar,
        })
    }

    /// Re-drives or fails every stale job (see the module documentation).
    ///
    /// # Errors
    /// [`RelayError::Database`].
    pub async fn sweep(&self) -> Result<SweepReport, RelayError> {
        let mut report = SweepReport::default();
        loop {
            let mut client = self.pool.get().await?;
            let tx = client.transaction().await?;
            let stale =
                campaigns::stale_jobs(&tx, self.policy.stale_after.as_secs_f64(), SWEEP_BATCH)
                    .await?;
            for job in &stale {
                let idle = job.idle_seconds.round();
                if job.attempts >= self.policy.max_attempts {
                    let previous = job
                        .last_error
                        .as_deref()
                        .map(|e| format!(" Last error: {e}"))
                        .unwrap_or_default();
                    let reason = format!(
                        "the selection job made no progress for {idle} s after {} attempts \
                         ({} of {} ranges finished) and was given up. POST \
                         /tenants/{}/campaigns/{}/process-customers to start a new job.{previous}",
                        job.attempts,
                        job.ranges_done,
                        job.ranges_total,
                        job.tenant_name,
                        job.campaign_id
                    );
                    campaigns::record_failure(&tx, job.campaign_id, job.job_id, &reason, true)
                        .await?;
                    tracing::error!(campaign.id = job.campaign_id, tenant.name = %job.tenant_name,
                        job.id = %job.job_id, job.attempts = job.attempts,
                        "stale selection job given up; the campaign is failed");
                    report.jobs_failed += 1;
                    continue;
                }
                let attempt = job.attempts + 1;
                let messages = if job.ranges_total == 0 {
                    outbox::insert_plan(&tx, job.campaign_id, &job.tenant_name, job.job_id).await?;
                    1
                } else {
                    outbox::add_unfinished_ranges(
                        &tx,
                        job.campaign_id,
                        &job.tenant_name,
                        job.job_id,
                        job.ranges_total,
                    )
                    .await?
                };
                let note = format!(
                    "no progress for {idle} s; re-driven (attempt {attempt} of {}, {messages} \
                     message(s) sent again)",
                    self.policy.max_attempts
                );
                campaigns::record_redrive(&tx, job.campaign_id, job.job_id, &note).await?;
                if messages == 0 {
                    // Every range finished but the job was not closed: close it now.
                    campaigns::finish_job_if_complete(&tx, job.campaign_id, job.job_id).await?;
                }
                tracing::warn!(campaign.id = job.campaign_id, tenant.name = %job.tenant_name,
                    job.id = %job.job_id, job.attempts = attempt, messages,
                    "stale selection job re-driven");
                report.jobs_redriven += 1;
                report.ranges_redriven += messages;
            }
            tx.commit().await?;
            if i64::try_from(stale.len()).unwrap_or(i64::MAX) < SWEEP_BATCH {
                break;
            }
        }
        self.sweep_releases(&mut report).await?;
        Ok(report)
    }

    /// Re-drives or gives up every stale release job.
    async fn sweep_releases(&self, report: &mut SweepReport) -> Result<(), RelayError> {
        use campaigns::releases;
        loop {
            let mut client = self.pool.get().await?;
            let tx = client.transaction().await?;
            let stale =
                releases::stale_releases(&tx, self.policy.stale_after.as_secs_f64(), SWEEP_BATCH)
                    .await?;
            for job in &stale {
                let idle = job.idle_seconds.round();
                if job.attempts >= self.policy.max_attempts {
                    let reason = format!(
                        "the release job made no progress for {idle} s after {} attempts ({} \
                         of {} ranges released) and was given up. POST \
                         /tenants/{}/campaigns/{}/release to release the rest.",
                        job.attempts,
                        job.ranges_done,
                        job.ranges_total,
                        job.tenant_name,
                        job.campaign_id
                    );
                    releases::give_up(&tx, job, &reason).await?;
                    tracing::error!(campaign.id = job.campaign_id, tenant.name = %job.tenant_name,
                        release.job = %job.job_id, release.attempts = job.attempts,
                        "stale release job given up");
                    report.releases_failed += 1;
                    continue;
                }
                let messages = releases::redrive(&tx, job).await?;
                tracing::warn!(campaign.id = job.campaign_id, tenant.name = %job.tenant_name,
                    release.job = %job.job_id, release.attempts = job.attempts + 1, messages,
                    "stale release job re-driven");
                report.releases_redriven += 1;
                report.ranges_redriven += messages;
            }
            tx.commit().await?;
            if i64::try_from(stale.len()).unwrap_or(i64::MAX) < SWEEP_BATCH {
                return Ok(());
            }
        }
    }
}

/// Runs [`Relay::run_once`] every `interval` until the process ends, logging failures (the
/// local server's stand-in for the EventBridge schedule).
pub async fn run_every(relay: Relay, interval: Duration, function: &'static str) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if let Err(err) = relay.run_once(function).await {
            tracing::warn!(error = %err, "outbox relay run failed; retrying on the next tick");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_reads_positive_integers_and_names_bad_variables() {
        let policy = RedrivePolicy::from_lookup(|key| match key {
            "CAMPAIGN_STALE_AFTER_SECONDS" => Some("30".into()),
            "CAMPAIGN_MAX_ATTEMPTS" => Some("5".into()),
            _ => None,
        })
        .expect("valid");
        assert_eq!(policy.stale_after, Duration::from_secs(30));
        assert_eq!(policy.max_attempts, 5);
        assert_eq!(
            RedrivePolicy::from_lookup(|_| None).expect("defaults"),
            RedrivePolicy::default()
        );
        let err = RedrivePolicy::from_lookup(|key| {
            (key == "CAMPAIGN_MAX_ATTEMPTS").then(|| "0".to_owned())
        })
        .expect_err("zero");
        assert!(err.to_string().contains("CAMPAIGN_MAX_ATTEMPTS"), "{err}");
    }
}
