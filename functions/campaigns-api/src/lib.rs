//! `campaigns-api`: a tenant's campaigns under `/tenants/{tenant_name}/campaigns`, their
//! customers, and audience previews. Creating a campaign and `process-customers` write a
//! selection job to the outbox in their transaction, send it to the campaign queue right after
//! the commit (see `campaign-processor`, `shared::relay`), and answer 202 with the campaign's
//! processing state.
//!
//! A campaign's audience is complete or invisible: until its processing is `done`, its
//! customers and their summary answer 409 and it cannot become `active`.
//!
//! Permissions (README, "Authentication and authorisation"): `campaign.read` to read; `campaign.write` to create, preview and
//! edit a `draft`; `campaign.manage` to edit any campaign and change its status;
//! `campaign.delete`; `campaign.process`. Every query filters by the tenant of the path, so
//! another tenant's campaign is 404.
//!
//! A campaign pins the offer version it delivers when it is created; moving it to another
//! version is explicit and audited ([`offer_version`]).

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::Value;
use shared::auth::{Permission, Principal};
use shared::criteria::Criteria;
use shared::criteria::SelectionCriteria;
use shared::db::campaigns::{self, Campaign, CampaignContent, CampaignFilter};
use shared::db::{TenantRead, TenantTx, in_tenant, offers, outbox};
use shared::domain::{CampaignStatus, Channel, ProcessingStatus, TenantName};
use shared::error::FieldError;
use shared::http::{AppJson, AppPath, AppQuery, check_length, with_location};
use shared::openapi::Conflict;
use shared::pagination::Page;
use shared::paths::{CampaignPath, TenantPath};
use shared::{ApiError, AppState};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

mod audience;
mod lifecycle;
mod offer_version;

/// Longest campaign name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 4000;
/// Default and largest sample of an audience preview.
pub const PREVIEW_SAMPLE: (i64, i64) = (10, 50);

/// The routes of this function (checked against `template.yaml`).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_campaign, list_campaigns))
        .routes(routes!(audience::preview_audience))
        .routes(routes!(
            get_campaign,
            lifecycle::update_campaign,
            lifecycle::delete_campaign
        ))
        .routes(routes!(process_campaign_customers))
        .routes(routes!(audience::list_campaign_customers))
        .routes(routes!(audience::get_campaign_summary))
        .routes(routes!(offer_version::move_campaign_offer_version))
        .routes(routes!(offer_version::list_campaign_audit_logs))
        .routes(routes!(lifecycle::release_campaign_deliveries))
}

/// The router of this function.
pub fn router() -> Router<AppState> {
    routes().split_for_parts().0
}

/// The OpenAPI description of this function's routes (merged by
/// [`shared::openapi::document`]).
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().into_openapi()
}

/// 409 unless the campaign's audience is complete (its processing is `done`): a partly
/// selected audience is never listed, counted or activated.
fn audience_complete(campaign: &Campaign) -> Result<(), ApiError> {
    if campaign.processing_status == ProcessingStatus::Done {
        return Ok(());
    }
    let progress = if campaign.ranges_total > 0 {
        format!(
            ", {} of {} ranges selected",
            campaign.ranges_done, campaign.ranges_total
        )
    } else {
        String::new()
    };
    Err(ApiError::Conflict(format!(
        "campaign {}'s audience is not complete (processing_status {}{progress}); it can be \
         listed and activated once processing_status is done",
        campaign.id, campaign.processing_status
    )))
}

/// Parses criteria, answering 422 with a pointer under `/selection_criteria`.
fn check_criteria(criteria: &Value) -> Result<Criteria, ApiError> {
    Criteria::parse(criteria).map_err(|err| ApiError::Unprocessable {
        detail: format!("selection_criteria: {}", err.detail),
        errors: vec![FieldError {
            pointer: format!("/selection_criteria{}", err.pointer),
            detail: err.detail,
        }],
    })
}

/// 422 unless the content is acceptable.
fn check_content(content: &CampaignContent) -> Result<(), ApiError> {
    let name_chars = content.name.trim().chars().count();
    if name_chars == 0 || content.name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::invalid_field(
            "name",
            format!("must be 1 to {MAX_NAME_CHARS} characters"),
        ));
    }
    check_length(
        "description",
        content.description.as_deref(),
        MAX_DESCRIPTION_CHARS,
    )?;
    check_criteria(&content.selection_criteria)?;
    if content.start_date > content.end_date {
        return Err(ApiError::invalid_field(
            "end_date",
            "must not be before start_date",
        ));
    }
    Ok(())
}

/// 422 on `end_date` if that day has already ended in the tenant's time zone: a campaign
/// ending then could never run.
async fn refuse_past_end(tx: &TenantTx<'_>, content: &CampaignContent) -> Result<(), ApiError> {
    if campaigns::calendar::has_ended(tx, content.end_date).await? {
        return Err(ApiError::invalid_field(
            "end_date",
            "has already ended in the tenant's time zone",
        ));
    }
    Ok(())
}

/// Sends job `job_id`'s outbox message to the queue right after the commit that wrote it (the
/// fast path). If the queue is unavailable the message stays in the outbox and the scheduled
/// relay sends it (`shared::relay`); the request succeeds either way, since the job is
/// durable.
async fn relay_now(state: &AppState, tenant: &TenantName, campaign_id: i32, job_id: Uuid) {
    let sent = match state.queue() {
        Ok(queue) => shared::relay::send_tenant_job(&state.pool, tenant, queue, job_id)
            .await
            .map_err(|err| err.to_string()),
        Err(err) => Err(err.to_string()),
    };
    match sent {
        Ok(_) => {
            tracing::info!(campaign.id = campaign_id, job.id = %job_id, "selection job queued")
        }
        Err(err) => tracing::warn!(campaign.id = campaign_id, job.id = %job_id, error = %err,
            "selection job left in the outbox for the scheduled relay"),
    }
}

/// `POST` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateCampaign {
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
async fn create_campaign(
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
    };
    check_content(&content)?;
    let job_id = Uuid::new_v4();
    let campaign = in_tenant(&state.pool, &tenant, async |tx| {
        // Locked, so it cannot be deleted while the campaign that uses it is created.
        let offer = offers::get(tx, body.offer_id, true).await?;
        let live = match offer {
        None => {
            return Err(ApiError::invalid_field(
                "offer_id",
                format!("no offer {} in this tenant", body.offer_id),
            ));
        }
        Some(offer) if offer.retired_at.is_some() => {
            return Err(ApiError::invalid_field(
                "offer_id",
                format!("offer {} is retired; it takes no new campaigns", offer.id),
            ));
        }
        Some(offer) => offer.live_version.ok_or_else(|| {
            ApiError::invalid_field(
                "offer_id",
                format!(
                    "offer {} is {} and has no approved version; campaigns need an approved offer",
                    offer.id, offer.status
                ),
            )
        })?,
    };
        // The live version, or the one asked for, pinned for the campaign's whole life.
        let pinned = match body.offer_version {
            None => live,
            Some(asked) => {
                offers::version(tx, body.offer_id, asked)
                    .await?
                    .ok_or_else(|| {
                        ApiError::NotFound(format!(
                            "offer {} has no version {asked}",
                            body.offer_id
                        ))
                    })?
                    .version
            }
        };
        refuse_past_end(tx, &content).await?;
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
        outbox::add_plan(tx.transaction(), campaign.id, tenant.as_str(), job_id).await?;
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

/// `GET` list filters.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
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
async fn list_campaigns(
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
async fn get_campaign(
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
async fn process_campaign_customers(
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
        outbox::add_plan(tx.transaction(), id, tenant.as_str(), job_id).await?;
        Ok(campaign)
    })
    .await?;
    relay_now(&state, tenant, id, job_id).await;
    Ok((StatusCode::ACCEPTED, AppJson(campaign)).into_response())
}
