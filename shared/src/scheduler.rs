//! The campaign scheduler: starts `scheduled` campaigns at `starts_at` and ends running ones
//! at `ends_at`. It runs on the relay's schedule ([`crate::relay::Relay::run_once`]: the
//! EventBridge schedule in AWS, the interval of `offerctl serve` locally).
//!
//! Each run asks the database which actions are due ([`calendar::actions`], by its clock)
//! and takes each in a transaction of its own, scoped to the campaign's tenant, with the
//! campaign's row locked and its status read again under the lock. So two schedulers racing
//! (two relay invocations, a server and a Lambda) take each action once: the second waits
//! for the first's lock and then finds the campaign no longer due. A missed run or a restart
//! leaves the actions due, and the next run takes them; a `kill -9` mid-action rolls its
//! transaction back, leaving the campaign as it was.
//!
//! - **Start**: the campaign's prepared deliveries are released exactly as activation
//!   releases them (consent and the contact cap judged now; a campaign of more than the release batch by
//!   a release job on the queue, [`campaigns::releases::begin`], whose messages the relay
//!   sends after the run), and it becomes `active`. A
//!   campaign whose audience is not complete (`processing_status` not `done`) cannot start:
//!   it stays `scheduled`, the run counts a failed start ([`metrics::CAMPAIGN_STARTS_FAILED`],
//!   the alarm's metric) and logs why, and the next run tries again.
//! - A campaign whose offer was retired after it was scheduled never starts: at its start
//!   it is completed, unstarted, nothing released, and its audit trail says why
//!   (`withdrawn` in the report).
//! - **End**: the campaign becomes `completed` and its released, unreported deliveries
//!   `expired` ([`calendar::expire`]); their contacts stay counted by the contact cap. A
//!   release job still running stops (its remaining ranges release nothing).
//!
//! Every transition is written to the campaign's audit trail by `scheduler`.

use deadpool_postgres::Pool;

use crate::config::ReleaseBatch;
use crate::db::TenantTx;
use crate::db::campaigns::{
    self,
    calendar::{self, Due, Phase, SCHEDULER},
};
use crate::db::offers;
use crate::domain::{CampaignStatus, ProcessingStatus};
use crate::error::ApiError;
use crate::metrics::{self, Metric};

/// Actions read per query; a run loops until fewer are due.
pub const BATCH: i64 = 50;

/// What one [`run`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CalendarReport {
    /// Campaigns started.
    pub started: u64,
    /// Starts that failed (the campaigns stay `scheduled`).
    pub starts_failed: u64,
    /// Campaigns completed at their end.
    pub completed: u64,
    /// Scheduled campaigns completed unstarted at their start because their offer was
    /// retired meanwhile (a retired offer takes no new campaigns, and a start is one).
    pub withdrawn: u64,
    /// Deliveries expired.
    pub expired: u64,
}

impl CalendarReport {
    /// The report's figures as metrics (only those that are not zero).
    #[must_use]
    pub fn metrics(&self) -> Vec<Metric> {
        [
            (metrics::CAMPAIGNS_STARTED, self.started),
            (metrics::CAMPAIGN_STARTS_FAILED, self.starts_failed),
            (
                metrics::CAMPAIGNS_COMPLETED,
                self.completed + self.withdrawn,
            ),
            (metrics::DELIVERIES_EXPIRED, self.expired),
        ]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(name, n)| Metric::count(name, n as f64))
        .collect()
    }
}

/// Takes every action due now (module documentation) through `pool` (a platform pool); a
/// start releases at most `release_batch` deliveries in its transaction, more by a release
/// job.
///
/// # Errors
/// Database failures reading the due actions; a failure of one action is counted and
/// logged (a failed start) or returned (an end), and the actions taken before stay taken.
pub async fn run(pool: &Pool, release_batch: ReleaseBatch) -> Result<CalendarReport, ApiError> {
    let mut report = CalendarReport::default();
    // Campaigns whose start failed in this run are not tried again until the next.
    let mut failed: Vec<i32> = Vec::new();
    loop {
        let due = {
            let client = pool.get().await?;
            calendar::actions(&client, true, BATCH + failed.len() as i64).await?
        };
        let todo: Vec<_> = due
            .into_iter()
            .filter(|a| !(a.due == Due::Start && failed.contains(&a.campaign_id)))
            .collect();
        if todo.is_empty() {
            return Ok(report);
        }
        for action in &todo {
            let tenant = &action.tenant_name;
            let mut client = pool.get().await?;
            let tx = TenantTx::begin(&mut client, tenant).await?;
            match action.due {
                Due::Start => match start(&tx, action.campaign_id, release_batch).await {
                    Ok(Started::Yes) => {
                        tx.commit().await?;
                        report.started += 1;
                    }
                    Ok(Started::Withdrawn) => {
                        tx.commit().await?;
                        report.withdrawn += 1;
                    }
                    Ok(Started::NotDue) => tx.rollback().await?,
                    Err(err) => {
                        tx.rollback().await?;
                        tracing::error!(campaign.id = action.campaign_id, tenant.name = %tenant,
                            error = %err, "scheduled campaign could not start; it stays \
                            scheduled and is tried again on the next run");
                        report.starts_failed += 1;
                        failed.push(action.campaign_id);
                    }
                },
                Due::End => {
                    if let Some(expired) = end(&tx, action.campaign_id).await? {
                        tx.commit().await?;
                        report.completed += 1;
                        report.expired += u64::try_from(expired).unwrap_or(0);
                    } else {
                        tx.rollback().await?;
                    }
                }
            }
        }
    }
}

/// What a start did.
enum Started {
    /// Released and `active`.
    Yes,
    /// Another run started it, or it is no longer due.
    NotDue,
    /// Its offer was retired: completed unstarted, nothing released.
    Withdrawn,
}

/// Starts campaign `id` if it is still `scheduled` and inside its window (under its lock).
/// The start applies the rule activation applies ([`crate::db::offers::Offer::version_for_campaigns`]):
/// a campaign whose offer was retired meanwhile is completed, unstarted, with the reason in
/// its audit trail.
///
/// # Errors
/// 409 if its audience is not complete; database failures.
async fn start(
    tx: &TenantTx<'_>,
    id: i32,
    release_batch: ReleaseBatch,
) -> Result<Started, ApiError> {
    let Some(campaign) = campaigns::get(tx, id, true).await? else {
        return Ok(Started::NotDue);
    };
    if campaign.status != CampaignStatus::Scheduled
        || calendar::phase(tx, &campaign).await? != Phase::Running
    {
        return Ok(Started::NotDue);
    }
    if let Some(offer_id) = campaign.offer_id
        && offers::retired(tx, offer_id).await?
    {
        calendar::set_status(tx, id, CampaignStatus::Completed).await?;
        let reason = format!("not started: its offer {offer_id} was retired");
        calendar::record_status_change(
            tx,
            id,
            (CampaignStatus::Scheduled, CampaignStatus::Completed),
            SCHEDULER,
            Some(&reason),
        )
        .await?;
        tracing::warn!(campaign.id = id, tenant.name = %tx.tenant(), offer.id = offer_id,
            "scheduled campaign withdrawn at its start: its offer was retired");
        return Ok(Started::Withdrawn);
    }
    if campaign.processing_status != ProcessingStatus::Done {
        return Err(ApiError::Conflict(format!(
            "campaign {id}'s audience is not complete (processing is {})",
            campaign.processing_status
        )));
    }
    // Active first: a release job's ranges release only into an active campaign.
    calendar::set_status(tx, id, CampaignStatus::Active).await?;
    let release = campaigns::releases::begin(tx, &campaign, release_batch.deliveries).await?;
    calendar::record_status_change(
        tx,
        id,
        (CampaignStatus::Scheduled, CampaignStatus::Active),
        SCHEDULER,
        Some("started at starts_at"),
    )
    .await?;
    tracing::info!(campaign.id = id, tenant.name = %tx.tenant(),
        release.status = ?release.status, release.ranges = release.ranges_total,
        released = release.summary.released,
        suppressed_by_pressure = release.summary.suppressed_by_pressure,
        suppressed_by_consent = release.summary.suppressed_by_consent,
        "scheduled campaign started");
    Ok(Started::Yes)
}

/// Ends campaign `id` if it is still running (scheduled, active or paused) past its end
/// (under its lock); answers how many deliveries expired, `None` if another run ended it.
///
/// # Errors
/// Database failures.
async fn end(tx: &TenantTx<'_>, id: i32) -> Result<Option<i64>, ApiError> {
    let Some(campaign) = campaigns::get(tx, id, true).await? else {
        return Ok(None);
    };
    let running = matches!(
        campaign.status,
        CampaignStatus::Scheduled | CampaignStatus::Active | CampaignStatus::Paused
    );
    if !running || calendar::phase(tx, &campaign).await? != Phase::Ended {
        return Ok(None);
    }
    campaigns::releases::stop(tx, id).await?;
    let expired = calendar::expire(tx, id).await?;
    calendar::set_status(tx, id, CampaignStatus::Completed).await?;
    calendar::record_status_change(
        tx,
        id,
        (campaign.status, CampaignStatus::Completed),
        SCHEDULER,
        Some("ended at ends_at"),
    )
    .await?;
    tracing::info!(campaign.id = id, tenant.name = %tx.tenant(), expired,
        "campaign completed at its end");
    Ok(Some(expired))
}
