//! A campaign's lifecycle: edits and status changes (`draft` → `active` ⇄ `paused` →
//! `completed`, activation releasing the prepared deliveries), the release of deliveries a
//! re-processing added, and deletion (never once anything was released).

use axum::extract::State;
use axum::http::StatusCode;
use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::Value;
use shared::auth::{Permission, Principal};
use shared::criteria::SelectionCriteria;
use shared::db::campaigns::calendar::{self, Phase};
use shared::db::campaigns::releases::{self, Release, ReleaseStatus};
use shared::db::campaigns::{self, Campaign, CampaignContent};
use shared::db::offers;
use shared::db::{TenantTx, in_tenant, outbox};
use shared::domain::CampaignStatus;
use shared::http::{AppJson, AppPath, nullable};
use shared::openapi::Conflict;
use shared::paths::CampaignPath;
use shared::{ApiError, AppState};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::campaigns::relay_now;

/// 409 when `campaign`'s offer was retired: a retired offer takes no new campaigns, and a
/// draft's first activation starts one (a campaign already running keeps its version). The
/// offer's row is locked, so it cannot be retired while the campaign starts.
async fn refuse_retired_offer(tx: &TenantTx<'_>, campaign: &Campaign) -> Result<(), ApiError> {
    let Some(offer_id) = campaign.offer_id else {
        return Ok(());
    };
    if offers::retired(tx, offer_id).await? {
        return Err(ApiError::Conflict(format!(
            "offer {offer_id} is retired; campaign {} cannot start (it may be deleted)",
            campaign.id
        )));
    }
    Ok(())
}

/// `PUT` body: any of the fields; absent ones keep their value.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateCampaign {
    /// 1 to 200 characters, not only spaces.
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    name: Option<String>,
    /// At most 4,000 characters; `null` clears it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 4000)]
    description: Option<Option<String>>,
    /// Which customers to select (run `process-customers` to apply it).
    #[schema(value_type = Option<SelectionCriteria>)]
    selection_criteria: Option<Value>,
    /// First day (not after `end_date`).
    start_date: Option<NaiveDate>,
    /// Last day.
    end_date: Option<NaiveDate>,
    /// The holdout's share in percent, 0 to 50 with at most two decimals (`draft` only).
    #[schema(minimum = 0, maximum = 50, multiple_of = 0.01)]
    holdout_percent: Option<f64>,
    /// Days after the end during which conversions count, 0 to 365 (`draft` only).
    #[schema(minimum = 0, maximum = 365)]
    conversion_window_days: Option<i32>,
    /// The next status: draft → active ⇄ paused, scheduled → paused, active or scheduled →
    /// completed. Asking for `active` before the campaign's start makes it `scheduled`.
    status: Option<CampaignStatus>,
}

/// Update a campaign or change its status.
///
/// `PUT /tenants/{t}/campaigns/{id}`: content changes need `campaign.write` while the
/// campaign is `draft` and `campaign.manage` after that (never once `completed`, 409);
/// moving `end_date` to a day that has ended (in the tenant's time zone) is 422. Status
/// changes need `campaign.manage` and follow draft → active ⇄ paused, scheduled → paused,
/// active or scheduled → completed (cancelling a scheduled one); 409 otherwise. Activating
/// (or resuming) before `starts_at` makes the campaign `scheduled`: nothing is released
/// until the scheduler starts it; after `ends_at` it is 409. Every status change is written
/// to the campaign's audit trail.
#[utoipa::path(
    put,
    path = "/tenants/{tenant_name}/campaigns/{campaign_id}",
    tag = "campaigns",
    params(CampaignPath),
    request_body = UpdateCampaign,
    responses(
        (status = 200, description = "Updated.", body = Campaign),
        (status = 409, response = Conflict),
    )
)]
pub(crate) async fn update_campaign(
    State(state): State<AppState>,
    principal: Principal,
    AppPath(path): AppPath<CampaignPath>,
    AppJson(body): AppJson<UpdateCampaign>,
) -> Result<AppJson<Campaign>, ApiError> {
    let (tenant, id) = (&path.tenant_name, path.campaign_id);
    let may_write = principal.require(tenant, Permission::CampaignWrite).is_ok();
    let may_manage = principal
        .require(tenant, Permission::CampaignManage)
        .is_ok();
    if !may_write && !may_manage {
        principal.require(tenant, Permission::CampaignManage)?;
    }
    let job_id = Uuid::new_v4();
    let (campaign, requeued, release_job) = in_tenant(&state.pool, tenant, async |tx| {
        let current = path.load(tx, true).await?;
        let asked = body.status.unwrap_or(current.status);
        authorize_update(tx, &principal, &current, asked, body.changes_content()).await?;
        let from = current.status;
        let started = current.ever_released();
        let criteria_changed = body
            .selection_criteria
            .as_ref()
            .is_some_and(|criteria| *criteria != current.selection_criteria);
        if body.changes_analysis() && current.status != CampaignStatus::Draft {
            return Err(ApiError::Conflict(format!(
                "campaign {id} is {}: its holdout_percent and conversion_window_days are fixed \
                 once it leaves draft (the analysis is planned before the first contact)",
                current.status
            )));
        }
        let content = body.merged_with(current)?;
        content.check()?;
        if body.start_date.is_some() || body.end_date.is_some() {
            calendar::ensure_not_ended(tx, content.end_date).await?;
        }
        if let Some(start) = body.start_date {
            ensure_start_not_moved_ahead(tx, started, start).await?;
        }
        if from == CampaignStatus::Active && asked != CampaignStatus::Active {
            // A release job's remaining ranges release nothing once the campaign is paused
            // or completed; the next activation releases what is left.
            releases::stop(tx, id).await?;
        }
        let mut campaign = campaigns::update(tx, id, &content, asked).await?;
        // A scheduled or paused campaign whose criteria change selects its audience again,
        // and starts only once that audience is complete (third review, finding 10).
        let requeued =
            criteria_changed && matches!(from, CampaignStatus::Scheduled | CampaignStatus::Paused);
        if requeued {
            if asked == CampaignStatus::Active {
                return Err(ApiError::Conflict(format!(
                    "campaign {id}'s criteria change selects its audience again; activate it \
                     once processing_status is done"
                )));
            }
            campaigns::drop_unreleased(tx, id).await?;
            campaign = campaigns::queue_job(tx, id, job_id).await?;
            outbox::add_plan(tx, id, job_id).await?;
        }
        let mut release_job = None;
        if asked == CampaignStatus::Active && from != CampaignStatus::Active {
            (campaign, release_job) = start(tx, campaign, state.release_batch.deliveries).await?;
        }
        if asked == CampaignStatus::Completed && from != CampaignStatus::Completed {
            // A user's completion ends the campaign exactly as the scheduler's does: its
            // unreported deliveries expire (their contacts stay counted).
            let expired = calendar::expire(tx, id).await?;
            tracing::info!(campaign.id = id, expired, "campaign completed by a user");
        }
        if campaign.status != from {
            calendar::record_status_change(
                tx,
                id,
                (from, campaign.status),
                principal.username.as_str(),
                None,
            )
            .await?;
        }
        Ok((campaign, requeued, release_job))
    })
    .await?;
    if requeued {
        relay_now(&state, tenant, id, job_id).await;
    }
    if let Some(job) = release_job {
        relay_now(&state, tenant, id, job).await;
    }
    tracing::info!(user.name = %principal.username, tenant.name = %tenant, campaign.id = id, status = %campaign.status, "campaign updated");
    Ok(AppJson(campaign))
}

impl UpdateCampaign {
    /// Whether the body changes the campaign's content (anything but its status).
    fn changes_content(&self) -> bool {
        self.name.is_some()
            || self.description.is_some()
            || self.selection_criteria.is_some()
            || self.start_date.is_some()
            || self.end_date.is_some()
            || self.changes_analysis()
    }

    /// Whether the body changes the campaign's analysis plan (its holdout or conversion
    /// window), which only a draft takes.
    fn changes_analysis(&self) -> bool {
        self.holdout_percent.is_some() || self.conversion_window_days.is_some()
    }

    /// The content after this change: the body's fields over `current`'s.
    ///
    /// # Errors
    /// 422 on a `holdout_percent` out of range or with more than two decimals.
    fn merged_with(&self, current: Campaign) -> Result<CampaignContent, ApiError> {
        let holdout_basis_points = match self.holdout_percent {
            Some(percent) => campaigns::holdout_basis_points(percent)?,
            None => campaigns::holdout_basis_points(current.holdout_percent)?,
        };
        Ok(CampaignContent {
            name: self.name.clone().unwrap_or(current.name),
            description: self.description.clone().unwrap_or(current.description),
            selection_criteria: self
                .selection_criteria
                .clone()
                .unwrap_or(current.selection_criteria),
            start_date: self.start_date.unwrap_or(current.start_date),
            end_date: self.end_date.unwrap_or(current.end_date),
            holdout_basis_points,
            conversion_window_days: self
                .conversion_window_days
                .unwrap_or(current.conversion_window_days),
        })
    }
}

/// The permissions and the state machine of an update: a status change needs
/// `campaign.manage` and an allowed step (activation a complete audience, and a first
/// activation an offer that takes campaigns); a content change of anything but a draft
/// needs `campaign.manage`, and a completed campaign takes none.
async fn authorize_update(
    tx: &TenantTx<'_>,
    principal: &Principal,
    current: &Campaign,
    asked: CampaignStatus,
    content_changes: bool,
) -> Result<(), ApiError> {
    let (tenant, id) = (tx.tenant(), current.id);
    if asked != current.status {
        principal.require(tenant, Permission::CampaignManage)?;
        if !current.status.can_become(asked) {
            return Err(ApiError::Conflict(format!(
                "campaign {id} is {}; it cannot become {asked}",
                current.status
            )));
        }
        if asked == CampaignStatus::Active {
            current.ensure_audience_complete()?;
        }
        if current.status == CampaignStatus::Draft && asked == CampaignStatus::Active {
            refuse_retired_offer(tx, current).await?;
        }
    }
    if content_changes {
        if current.status == CampaignStatus::Completed {
            return Err(ApiError::Conflict(format!(
                "campaign {id} is completed and can no longer be edited"
            )));
        }
        if current.status != CampaignStatus::Draft {
            principal.require(tenant, Permission::CampaignManage)?;
        }
    }
    Ok(())
}

/// 422 on `start_date` when a campaign that already released deliveries would start after
/// today in the tenant's time zone: it would be running "before its start", its feed open
/// and its reports accepted outside its own window.
async fn ensure_start_not_moved_ahead(
    tx: &TenantTx<'_>,
    started: bool,
    start: NaiveDate,
) -> Result<(), ApiError> {
    if started && !calendar::has_begun(tx, start).await? {
        return Err(ApiError::invalid_field(
            "start_date",
            "lies ahead in the tenant's time zone, but the campaign has already released \
             deliveries; a started campaign's start cannot move into the future",
        ));
    }
    Ok(())
}

/// An activation, judged on the dates as they are now by the database clock: 409 once
/// ended; `scheduled` before the start; at or after it, the prepared deliveries released
/// with the contact cap applied: in this transaction for a campaign of at most `batch`
/// selected customers, by a release job on the queue for a larger one (`releases::begin`;
/// the answer's `release` shows it running, and its id comes back for the fast path).
async fn start(
    tx: &TenantTx<'_>,
    campaign: Campaign,
    batch: i64,
) -> Result<(Campaign, Option<Uuid>), ApiError> {
    let id = campaign.id;
    match calendar::phase(tx, &campaign).await? {
        Phase::Ended => Err(ApiError::Conflict(format!(
            "campaign {id} ended at {}; it can no longer run",
            campaign.ends_at.to_rfc3339()
        ))),
        Phase::BeforeStart => Ok((
            calendar::set_status(tx, id, CampaignStatus::Scheduled).await?,
            None,
        )),
        Phase::Running => {
            let release = releases::begin(tx, &campaign, batch).await?;
            tracing::info!(
                campaign.id = id,
                release.status = ?release.status,
                release.ranges = release.ranges_total,
                released = release.summary.released,
                suppressed_by_pressure = release.summary.suppressed_by_pressure,
                "deliveries released"
            );
            // The answer shows the job.
            let campaign = Campaign {
                release: release.progress(campaign.release),
                ..campaign
            };
            Ok((campaign, release.job))
        }
    }
}

/// Delete a campaign.
///
/// `DELETE /tenants/{t}/campaigns/{id}` (`campaign.delete`): only a campaign that never
/// released a delivery to a provider (409 otherwise: its deliveries hold slots of the
/// contact cap; complete it instead). The deletion is recorded in the campaign's
/// audit trail, which outlives it. 204.
#[utoipa::path(
    delete,
    path = "/tenants/{tenant_name}/campaigns/{campaign_id}",
    tag = "campaigns",
    params(CampaignPath),
    responses(
        (status = 204, description = "Deleted; the campaign's audit trail records who deleted it."),
        (status = 409, response = Conflict),
    )
)]
pub(crate) async fn delete_campaign(
    State(state): State<AppState>,
    principal: Principal,
    AppPath(path): AppPath<CampaignPath>,
) -> Result<StatusCode, ApiError> {
    let (tenant, id) = (&path.tenant_name, path.campaign_id);
    principal.require(tenant, Permission::CampaignDelete)?;
    in_tenant(&state.pool, tenant, async |tx| {
        // Locked: a release (activation, `…/release`) takes the same lock, so none can slip in
        // between the check and the deletion.
        let campaign = path.load(tx, true).await?;
        // Judged from the campaign's own record of its first release (V018), which archiving
        // and the ledger's prune leave as it is.
        if campaign.ever_released() {
            return Err(ApiError::Conflict(format!(
                "campaign {id} is {} and has released deliveries to providers; it can no longer \
             be deleted (its contacts count against the contact cap, its archive keeps them); \
             complete it instead",
                campaign.status
            )));
        }
        campaigns::delete(tx, &campaign, &principal.username).await?;
        Ok(())
    })
    .await?;
    tracing::info!(user.name = %principal.username, tenant.name = %tenant, campaign.id = id, "campaign deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Release prepared deliveries.
///
/// `POST /tenants/{t}/campaigns/{id}/release` (`campaign.manage`): gives an `active`
/// campaign's prepared deliveries (those selected since it was activated, e.g. by a
/// re-processing, or left by a stopped or failed release job) to the provider, with the
/// contact cap applied, as activation does. For a campaign of at most `CAMPAIGN_RELEASE_BATCH` selected customers
/// they are released in the request (200, `status` `done`, with the counts); more start a release
/// job on the queue (202, `status` `running`: follow the campaign's `release`). 409 unless
/// the campaign is active with a complete audience and no release job running.
#[utoipa::path(
    post,
    path = "/tenants/{tenant_name}/campaigns/{campaign_id}/release",
    tag = "campaigns",
    params(CampaignPath),
    responses(
        (status = 200, description = "Released in the request: what it gave out and held back.", body = Release),
        (status = 202, description = "A release job started: its ranges are released on the queue.", body = Release),
        (status = 409, response = Conflict),
    )
)]
pub(crate) async fn release_campaign_deliveries(
    State(state): State<AppState>,
    principal: Principal,
    AppPath(path): AppPath<CampaignPath>,
) -> Result<(StatusCode, AppJson<Release>), ApiError> {
    let (tenant, id) = (&path.tenant_name, path.campaign_id);
    principal.require(tenant, Permission::CampaignManage)?;
    let release = in_tenant(&state.pool, tenant, async |tx| {
        let campaign = path.load(tx, true).await?;
        if campaign.status != CampaignStatus::Active {
            return Err(ApiError::Conflict(format!(
                "campaign {id} is {}; only an active campaign releases deliveries",
                campaign.status
            )));
        }
        campaign.ensure_audience_complete()?;
        if campaign
            .release
            .is_some_and(|job| job.status == ReleaseStatus::Running)
        {
            return Err(ApiError::Conflict(format!(
                "campaign {id} has a release job running; release again once its release \
                 status is no longer running"
            )));
        }
        releases::begin(tx, &campaign, state.release_batch.deliveries).await
    })
    .await?;
    if let Some(job) = release.job {
        relay_now(&state, tenant, id, job).await;
    }
    tracing::info!(user.name = %principal.username, tenant.name = %tenant, campaign.id = id,
        release.status = ?release.status, release.ranges = release.ranges_total,
        released = release.summary.released,
        suppressed_by_pressure = release.summary.suppressed_by_pressure,
        "deliveries released");
    let status = match release.status {
        ReleaseStatus::Running => StatusCode::ACCEPTED,
        _ => StatusCode::OK,
    };
    Ok((status, AppJson(release)))
}
