//! A campaign's creation, listing and reading, and re-processing its customers: each writes
//! its selection job to the outbox in its transaction and sends it right after the commit.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::Value;
use shared::auth::{Permission, Principal};
use shared::criteria::SelectionCriteria;
use shared::db::campaigns::{self, Campaign, CampaignContent, CampaignFilter};
use shared::db::offers::{self, NoNewCampaigns};
use shared::db::{TenantRead, TenantTx, in_tenant, outbox};
use shared::domain::{CampaignStatus, Channel, TenantName};
use shared::http::{AppJson, AppPath, AppQuery, with_location};
use shared::openapi::Conflict;
use shared::pagination::Page;
use shared::paths::{CampaignPath, TenantPath};
use shared::{ApiError, AppState};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// Sends job `job_id`'s outbox messages (a selection job's plan, or a release job's
/// ranges) to the queue right after the commit that wrote them (the fast path). If the queue is unavailable the message stays in the outbox and the scheduled
/// relay sends it (`shared::relay`); the request succeeds either way, since the job is
/// durable.
pub(crate) async fn relay_now(
    state: &AppState,
    tenant: &TenantName,
    campaign_id: i32,
    job_id: Uuid,
) {
    let sent = match state.queue() {
        Ok(queue) => shared::relay::send_tenant_job(&state.pool, tenant, queue, job_id)
            .await
            .map_err(|err| err.to_string()),
        Err(err) => Err(err.to_string()),
    };
    match sent {
        Ok(_) => {
            tracing::info!(campaign.id = campaign_id, job.id = %job_id, "job queued")
        }
        Err(err) => tracing::warn!(campaign.id = campaign_id, job.id = %job_id, error = %err,
            "job left in the outbox for the scheduled relay"),
    }
}

/// `POST` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateCampaign {
    /// An approved, not retired offer of the tenant.
    offer_id: i32,
    /// The approved version of the offer to deliver (default: its live version).
    #[schema(minimum = 1)]
    offer_version: Option<i32>,
    /// What it is sent through (default `email`); customers need consent for it.
    channel: Option<Channel>,
    /// 1 to 200 characters, not only spaces.
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    name: String,
    /// At most 4,000 characters.
    #[schema(max_length = 4000)]
    description: Option<String>,
    /// Which customers to select.
    #[schema(value_type = SelectionCriteria)]
    selection_criteria: Value,
    /// First day (not after `end_date`).
    start_date: NaiveDate,
    /// Last day.
    end_date: NaiveDate,
    /// The share of the customers each release would contact that it holds back as the
    /// control group, in percent: 0 (the default) to 50, at most two decimals.
    #[schema(minimum = 0, maximum = 50, multiple_of = 0.01)]
    holdout_percent: Option<f64>,
    /// Conversions count until the campaign's end plus this many days: 0 to 365, default 30.
    #[schema(minimum = 0, maximum = 365)]
    conversion_window_days: Option<i32>,
}

/// Create a campaign (queues its selection).
///
/// `POST /tenants/{t}/campaigns` (`campaign.write`): a `draft` campaign for an approved, not
/// retired offer of the tenant, pinned to the offer's live version (or `offer_version`: 404
/// if the offer has no such version); its selection job is queued. 202 with `Location` and
/// the campaign.
#[utoipa::path(
    post,
    path = "/tenants/{tenant_name}/campaigns",
    tag = "campaigns",
    params(TenantPath),
    request_body = CreateCampaign,
    responses(
        (status = 202, description = "Created as `draft`; its selection job is queued. `Location` names it.", body = Campaign),
    )
)]
pub(crate) async fn create_campaign(
    State(state): State<AppState>,
    principal: Principal,
    AppPath(TenantPath {
        tenant_name: tenant,
    }): AppPath<TenantPath>,
    AppJson(body): AppJson<CreateCampaign>,
) -> Result<Response, ApiError> {
    principal.require(&tenant, Permission::CampaignWrite)?;
    let content = CampaignContent {
        name: body.name,
        description: body.description,
        selection_criteria: body.selection_criteria,
        start_date: body.start_date,
        end_date: body.end_date,
        holdout_basis_points: body
            .holdout_percent
            .map_or(Ok(0), campaigns::holdout_basis_points)?,
        conversion_window_days: body
            .conversion_window_days
            .unwrap_or(campaigns::DEFAULT_CONVERSION_WINDOW_DAYS),
    };
    content.check()?;
    let job_id = Uuid::new_v4();
    let campaign = in_tenant(&state.pool, &tenant, async |tx| {
        let pinned = pinned_version(tx, body.offer_id, body.offer_version).await?;
        campaigns::calendar::ensure_not_ended(tx, content.end_date).await?;
        let campaign = campaigns::insert(
            tx,
            (
                body.offer_id,
                pinned,
                body.channel.unwrap_or(Channel::Email),
            ),
            &content,
            &principal.username,
            job_id,
        )
        .await?;
        outbox::add_plan(tx, campaign.id, job_id).await?;
        Ok(campaign)
    })
    .await?;
    tracing::info!(user.name = %principal.username, tenant.name = %tenant, campaign.id = campaign.id, "campaign created");
    let location = format!("/tenants/{tenant}/campaigns/{}", campaign.id);
    relay_now(&state, &tenant, campaign.id, job_id).await;
    Ok(with_location(
        (StatusCode::ACCEPTED, AppJson(campaign)).into_response(),
        &location,
    ))
}

/// The version of offer `offer_id` a new campaign pins for its whole life: `asked`, or the
/// live one. 422 on `offer_id` when the tenant has no such offer or it takes no new
/// campaigns ([`offers::Offer::version_for_campaigns`]); 404 for a version it does not have.
/// The offer's row is locked, so it cannot be deleted or retired while the campaign is
/// created.
async fn pinned_version(
    tx: &TenantTx<'_>,
    offer_id: i32,
    asked: Option<i32>,
) -> Result<i32, ApiError> {
    let Some(offer) = offers::get(tx, offer_id, true).await? else {
        return Err(ApiError::invalid_field(
            "offer_id",
            format!("no offer {offer_id} in this tenant"),
        ));
    };
    let live = offer.version_for_campaigns().map_err(|why| {
        let detail = match why {
            NoNewCampaigns::Retired => {
                format!("offer {} is retired; it takes no new campaigns", offer.id)
            }
            NoNewCampaigns::NotApproved => format!(
                "offer {} is {} and has no approved version; campaigns need an approved offer",
                offer.id, offer.status
            ),
        };
        ApiError::invalid_field("offer_id", detail)
    })?;
    let Some(asked) = asked else {
        return Ok(live);
    };
    Ok(offers::version(tx, offer_id, asked)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("offer {offer_id} has no version {asked}")))?
        .version)
}

/// `GET` list filters.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// Only campaigns in this status.
    status: Option<CampaignStatus>,
    /// Only campaigns of this offer.
    offer_id: Option<i32>,
}

/// List campaigns.
///
/// `GET /tenants/{t}/campaigns?status=&offer_id=&limit=&offset=` (`campaign.read`): newest
/// first.
#[utoipa::path(
    get,
    path = "/tenants/{tenant_name}/campaigns",
    tag = "campaigns",
    params(TenantPath, ListQuery, Page),
    responses(
        (status = 200, description = "Campaigns, newest first.", body = Vec<Campaign>),
    )
)]
pub(crate) async fn list_campaigns(
    State(state): State<AppState>,
    principal: Principal,
    AppPath(TenantPath {
        tenant_name: tenant,
    }): AppPath<TenantPath>,
    AppQuery(query): AppQuery<ListQuery>,
    page: Page,
) -> Result<AppJson<Vec<Campaign>>, ApiError> {
    principal.require(&tenant, Permission::CampaignRead)?;
    let client = state.pool.get().await?;
    let filter = CampaignFilter {
        status: query.status,
        offer_id: query.offer_id,
    };
    let list = campaigns::list(&TenantRead::new(&client, &tenant), &filter, page).await?;
    Ok(AppJson(list))
}

/// Read a campaign.
///
/// `GET /tenants/{t}/campaigns/{id}` (`campaign.read`).
#[utoipa::path(
    get,
    path = "/tenants/{tenant_name}/campaigns/{campaign_id}",
    tag = "campaigns",
    params(CampaignPath),
    responses(
        (status = 200, description = "The campaign with its processing state.", body = Campaign),
    )
)]
pub(crate) async fn get_campaign(
    State(state): State<AppState>,
    principal: Principal,
    AppPath(path): AppPath<CampaignPath>,
) -> Result<AppJson<Campaign>, ApiError> {
    let tenant = &path.tenant_name;
    principal.require(tenant, Permission::CampaignRead)?;
    let client = state.pool.get().await?;
    let campaign = path.load(&TenantRead::new(&client, tenant), false).await?;
    Ok(AppJson(campaign))
}

/// Re-run a campaign's selection.
///
/// `POST /tenants/{t}/campaigns/{id}/process-customers` (`campaign.process`): queues a new
/// selection job (superseding any earlier one). 202 with the campaign; 409 once completed.
/// Until the new job is `done`, the campaign's customers answer 409; rows selected before
/// stay, and new matches are added.
#[utoipa::path(
    post,
    path = "/tenants/{tenant_name}/campaigns/{campaign_id}/process-customers",
    tag = "campaigns",
    params(CampaignPath),
    responses(
        (status = 202, description = "A new selection job is queued.", body = Campaign),
        (status = 409, response = Conflict),
    )
)]
pub(crate) async fn process_campaign_customers(
    State(state): State<AppState>,
    principal: Principal,
    AppPath(path): AppPath<CampaignPath>,
) -> Result<Response, ApiError> {
    let (tenant, id) = (&path.tenant_name, path.campaign_id);
    principal.require(tenant, Permission::CampaignProcess)?;
    let job_id = Uuid::new_v4();
    let campaign = in_tenant(&state.pool, tenant, async |tx| {
        let current = path.load(tx, true).await?;
        if current.status == CampaignStatus::Completed {
            return Err(ApiError::Conflict(format!(
                "campaign {id} is completed; its customers are final"
            )));
        }
        let campaign = campaigns::queue_job(tx, id, job_id).await?;
        outbox::add_plan(tx, id, job_id).await?;
        Ok(campaign)
    })
    .await?;
    relay_now(&state, tenant, id, job_id).await;
    Ok((StatusCode::ACCEPTED, AppJson(campaign)).into_response())
}
