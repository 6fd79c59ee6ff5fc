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
use axum::extract::{OriginalUri, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::auth::{Permission, Principal};
use shared::criteria::Criteria;
use shared::criteria::SelectionCriteria;
use shared::db::campaigns::CampaignCustomer;
use shared::db::campaigns::{
    self, AudienceMember, Campaign, CampaignContent, CampaignFilter, DeliverySummary,
    PreviewBreakdown,
};
use shared::db::{TenantRead, in_tenant, offers, outbox};
use shared::domain::{CampaignStatus, Channel, DeliveryStatus, ProcessingStatus, TenantName};
use shared::error::FieldError;
use shared::http::{AppJson, AppPath, AppQuery, check_length, nullable, with_location};
use shared::openapi::Conflict;
use shared::pagination::{Keyset, Page};
use shared::paths::{CampaignPath, TenantPath};
use shared::{ApiError, AppState};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

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
        .routes(routes!(create, list))
        .routes(routes!(preview))
        .routes(routes!(read, update, remove))
        .routes(routes!(process))
        .routes(routes!(customers))
        .routes(routes!(summary))
        .routes(routes!(offer_version::move_offer_version))
        .routes(routes!(offer_version::audit_logs))
        .routes(routes!(release))
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

fn not_found(id: i32) -> ApiError {
    ApiError::NotFound(format!("no campaign {id} in this tenant"))
}

/// Campaign `id` of `tenant` (locked with `for_update`), or 404.
async fn find(
    client: &impl shared::db::Executor,
    tenant: &TenantName,
    id: i32,
    for_update: bool,
) -> Result<Campaign, ApiError> {
    campaigns::get(client, tenant, id, for_update)
        .await?
        .ok_or_else(|| not_found(id))
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
/// 409 when `campaign`'s offer was retired: a retired offer takes no new campaigns, and a
/// draft's first activation starts one (a campaign already running keeps its version). The
/// offer's row is locked, so it cannot be retired while the campaign starts.
async fn refuse_retired_offer(
    tx: &impl shared::db::GenericClient,
    tenant: &TenantName,
    campaign: &Campaign,
) -> Result<(), ApiError> {
    let Some(offer_id) = campaign.offer_id else {
        return Ok(());
    };
    match offers::get(tx, tenant, offer_id, true).await? {
        Some(offer) if offer.retired_at.is_some() => Err(ApiError::Conflict(format!(
            "offer {offer_id} is retired; campaign {} cannot start (it may be deleted)",
            campaign.id
        ))),
        _ => Ok(()),
    }
}

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
async fn create(
    State(state): State<AppState>,
    principal: Principal,
    AppPath(tenant): AppPath<TenantName>,
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
        let offer = offers::get(tx, &tenant, body.offer_id, true).await?;
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
                offers::version(tx, &tenant, body.offer_id, asked)
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
        let campaign = campaigns::insert(
            tx,
            &tenant,
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
        outbox::add_plan(tx, campaign.id, tenant.as_str(), job_id).await?;
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
async fn list(
    State(state): State<AppState>,
    principal: Principal,
    AppPath(tenant): AppPath<TenantName>,
    AppQuery(query): AppQuery<ListQuery>,
    page: Page,
) -> Result<AppJson<Vec<Campaign>>, ApiError> {
    principal.require(&tenant, Permission::CampaignRead)?;
    let client = state.pool.get().await?;
    let filter = CampaignFilter {
        status: query.status,
        offer_id: query.offer_id,
    };
    let list = campaigns::list(&TenantRead::new(&client, &tenant), &tenant, &filter, page).await?;
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
async fn read(
    State(state): State<AppState>,
    principal: Principal,
    AppPath((tenant, id)): AppPath<(TenantName, i32)>,
) -> Result<AppJson<Campaign>, ApiError> {
    principal.require(&tenant, Permission::CampaignRead)?;
    let client = state.pool.get().await?;
    let campaign = find(&TenantRead::new(&client, &tenant), &tenant, id, false).await?;
    Ok(AppJson(campaign))
}

/// `PUT` body: any of the fields; absent ones keep their value.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct UpdateCampaign {
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
    /// The next status: draft → active ⇄ paused, active → completed.
    status: Option<CampaignStatus>,
}

/// Update a campaign or change its status.
///
/// `PUT /tenants/{t}/campaigns/{id}`: content changes need `campaign.write` while the
/// campaign is `draft` and `campaign.manage` after that (never once `completed`, 409);
/// status changes need `campaign.manage` and follow draft → active ⇄ paused, active →
/// completed (409 otherwise).
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
async fn update(
    State(state): State<AppState>,
    principal: Principal,
    AppPath((tenant, id)): AppPath<(TenantName, i32)>,
    AppJson(body): AppJson<UpdateCampaign>,
) -> Result<AppJson<Campaign>, ApiError> {
    let may_write = principal
        .require(&tenant, Permission::CampaignWrite)
        .is_ok();
    let may_manage = principal
        .require(&tenant, Permission::CampaignManage)
        .is_ok();
    if !may_write && !may_manage {
        principal.require(&tenant, Permission::CampaignManage)?;
    }
    let campaign = in_tenant(&state.pool, &tenant, async |tx| {
        let current = find(tx, &tenant, id, true).await?;
        let content_changes = body.name.is_some()
            || body.description.is_some()
            || body.selection_criteria.is_some()
            || body.start_date.is_some()
            || body.end_date.is_some();
        let next_status = body.status.unwrap_or(current.status);
        if next_status != current.status {
            principal.require(&tenant, Permission::CampaignManage)?;
            if !current.status.can_become(next_status) {
                return Err(ApiError::Conflict(format!(
                    "campaign {id} is {}; it cannot become {next_status}",
                    current.status
                )));
            }
            if next_status == CampaignStatus::Active {
                audience_complete(&current)?;
            }
            if current.status == CampaignStatus::Draft && next_status == CampaignStatus::Active {
                refuse_retired_offer(tx, &tenant, &current).await?;
            }
        }
        if content_changes {
            if current.status == CampaignStatus::Completed {
                return Err(ApiError::Conflict(format!(
                    "campaign {id} is completed and can no longer be edited"
                )));
            }
            if current.status != CampaignStatus::Draft {
                principal.require(&tenant, Permission::CampaignManage)?;
            }
        }
        let content = CampaignContent {
            name: body.name.unwrap_or(current.name),
            description: body.description.unwrap_or(current.description),
            selection_criteria: body
                .selection_criteria
                .unwrap_or(current.selection_criteria),
            start_date: body.start_date.unwrap_or(current.start_date),
            end_date: body.end_date.unwrap_or(current.end_date),
        };
        check_content(&content)?;
        let campaign = campaigns::update(tx, &tenant, id, &content, next_status).await?;
        if next_status == CampaignStatus::Active && current.status != CampaignStatus::Active {
            // Activation releases the prepared deliveries, with the contact cap applied.
            let released = campaigns::release(tx, &tenant, id).await?;
            tracing::info!(
                campaign.id = id,
                released = released.released,
                suppressed_by_pressure = released.suppressed_by_pressure,
                "deliveries released"
            );
        }
        Ok(campaign)
    })
    .await?;
    tracing::info!(user.name = %principal.username, tenant.name = %tenant, campaign.id = id, status = %campaign.status, "campaign updated");
    Ok(AppJson(campaign))
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
async fn remove(
    State(state): State<AppState>,
    principal: Principal,
    AppPath((tenant, id)): AppPath<(TenantName, i32)>,
) -> Result<StatusCode, ApiError> {
    principal.require(&tenant, Permission::CampaignDelete)?;
    in_tenant(&state.pool, &tenant, async |tx| {
        // Locked: a release (activation, `…/release`) takes the same lock, so none can slip in
        // between the check and the deletion.
        let campaign = find(tx, &tenant, id, true).await?;
        if campaigns::has_released_deliveries(tx, id).await? {
            return Err(ApiError::Conflict(format!(
                "campaign {id} is {} and has released deliveries to providers; it can no longer \
             be deleted (its contacts count against the contact cap); complete it instead",
                campaign.status
            )));
        }
        campaigns::delete(tx, &tenant, &campaign, &principal.username).await?;
        Ok(())
    })
    .await?;
    tracing::info!(user.name = %principal.username, tenant.name = %tenant, campaign.id = id, "campaign deleted");
    Ok(StatusCode::NO_CONTENT)
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
async fn process(
    State(state): State<AppState>,
    principal: Principal,
    AppPath((tenant, id)): AppPath<(TenantName, i32)>,
) -> Result<Response, ApiError> {
    principal.require(&tenant, Permission::CampaignProcess)?;
    let job_id = Uuid::new_v4();
    let campaign = in_tenant(&state.pool, &tenant, async |tx| {
        let current = find(tx, &tenant, id, true).await?;
        if current.status == CampaignStatus::Completed {
            return Err(ApiError::Conflict(format!(
                "campaign {id} is completed; its customers are final"
            )));
        }
        let campaign = campaigns::queue_job(tx, &tenant, id, job_id).await?;
        outbox::add_plan(tx, id, tenant.as_str(), job_id).await?;
        Ok(campaign)
    })
    .await?;
    relay_now(&state, &tenant, id, job_id).await;
    Ok((StatusCode::ACCEPTED, AppJson(campaign)).into_response())
}

/// `GET …/customers` filters.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct CustomersQuery {
    /// Only deliveries in this status.
    delivery_status: Option<DeliveryStatus>,
}

/// List a campaign's customers.
///
/// `GET /tenants/{t}/campaigns/{id}/customers?delivery_status=&limit=&after=`
/// (`campaign.read`): keyset pages in customer-id order, with a `Link: rel="next"` header on
/// full pages. Each customer's `contact` (name, e-mail, phone) is included only for
/// principals holding `customer.contact.read` in the tenant.
#[utoipa::path(
    get,
    path = "/tenants/{tenant_name}/campaigns/{campaign_id}/customers",
    tag = "campaigns",
    params(CampaignPath, CustomersQuery, Keyset),
    responses(
        (status = 200, description = "The campaign's customers in customer-id order.", body = Vec<CampaignCustomer>, headers(("Link" = String, description = "`<…?after=ID>; rel=\"next\"` on a full page (RFC 8288)."))),
        (status = 409, response = Conflict),
    )
)]
async fn customers(
    State(state): State<AppState>,
    principal: Principal,
    OriginalUri(uri): OriginalUri,
    AppPath((tenant, id)): AppPath<(TenantName, i32)>,
    AppQuery(query): AppQuery<CustomersQuery>,
    keyset: Keyset,
) -> Result<Response, ApiError> {
    principal.require(&tenant, Permission::CampaignRead)?;
    let rows = in_tenant(&state.pool, &tenant, async |tx| {
        audience_complete(&find(tx, &tenant, id, false).await?)?;
        let with_contact = principal.can(&tenant, Permission::CustomerContactRead);
        let rows = campaigns::customers(
            tx,
            id,
            query.delivery_status,
            keyset.after,
            keyset.limit,
            with_contact,
        )
        .await?;
        Ok(rows)
    })
    .await?;
    Ok(keyset.respond(&uri, rows, |row| row.customer_id))
}

/// Count a campaign's deliveries per status.
///
/// `GET /tenants/{t}/campaigns/{id}/customers/summary` (`campaign.read`): deliveries per
/// status, `{"total", "pending", "sent", "failed"}`.
#[utoipa::path(
    get,
    path = "/tenants/{tenant_name}/campaigns/{campaign_id}/customers/summary",
    tag = "campaigns",
    params(CampaignPath),
    responses(
        (status = 200, description = "Deliveries per status.", body = DeliverySummary),
        (status = 409, response = Conflict),
    )
)]
async fn summary(
    State(state): State<AppState>,
    principal: Principal,
    AppPath((tenant, id)): AppPath<(TenantName, i32)>,
) -> Result<AppJson<DeliverySummary>, ApiError> {
    principal.require(&tenant, Permission::CampaignRead)?;
    let counts = in_tenant(&state.pool, &tenant, async |tx| {
        audience_complete(&find(tx, &tenant, id, false).await?)?;
        let counts = campaigns::summary(tx, id).await?;
        Ok(counts)
    })
    .await?;
    Ok(AppJson(counts))
}

/// `POST …/audience-preview` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PreviewRequest {
    /// Which customers to select.
    #[schema(value_type = SelectionCriteria)]
    selection_criteria: Value,
    /// The channel the campaign would use (default `email`): decides which consent counts.
    channel: Option<Channel>,
    /// Customers to sample, 0 to 50 (default 10).
    #[schema(minimum = 0, maximum = 50)]
    sample_size: Option<i64>,
}

/// `POST …/audience-preview` answer.
#[derive(Serialize, ToSchema)]
struct Preview {
    /// Customers the criteria select.
    matched_count: i64,
    /// How they would fare if released now: `matched_count` = `suppressed_by_consent` +
    /// `suppressed_by_pressure` + `releasable`.
    #[serde(flatten)]
    breakdown: PreviewBreakdown,
    /// Some of them, without contact details.
    sample: Vec<AudienceMember>,
}

/// Preview an audience.
///
/// `POST /tenants/{t}/campaigns/audience-preview` (`campaign.write`): how many customers the
/// criteria select and a sample of them (`sample_size` 0–50, default 10), creating nothing.
#[utoipa::path(
    post,
    path = "/tenants/{tenant_name}/campaigns/audience-preview",
    tag = "campaigns",
    params(TenantPath),
    request_body = PreviewRequest,
    responses(
        (status = 200, description = "How many customers the criteria select, with a sample (no contact details).", body = Preview),
    )
)]
async fn preview(
    State(state): State<AppState>,
    principal: Principal,
    AppPath(tenant): AppPath<TenantName>,
    AppJson(body): AppJson<PreviewRequest>,
) -> Result<AppJson<Preview>, ApiError> {
    principal.require(&tenant, Permission::CampaignWrite)?;
    let sample = body.sample_size.unwrap_or(PREVIEW_SAMPLE.0);
    if !(0..=PREVIEW_SAMPLE.1).contains(&sample) {
        return Err(ApiError::invalid_field(
            "sample_size",
            format!("must be between 0 and {}", PREVIEW_SAMPLE.1),
        ));
    }
    let compiled = check_criteria(&body.selection_criteria)?.compile(1);
    let ((matched_count, sample), breakdown) = in_tenant(&state.pool, &tenant, async |tx| {
        let (matched_count, sample) = campaigns::preview(tx, &compiled, sample).await?;
        let channel = body.channel.unwrap_or(Channel::Email);
        let breakdown = campaigns::preview_breakdown(tx, &compiled, &tenant, channel).await?;
        Ok(((matched_count, sample), breakdown))
    })
    .await?;
    Ok(AppJson(Preview {
        matched_count,
        breakdown,
        sample,
    }))
}

/// Release prepared deliveries.
///
/// `POST /tenants/{t}/campaigns/{id}/release` (`campaign.manage`): gives an `active`
/// campaign's prepared deliveries (those selected since it was activated, e.g. by a
/// re-processing) to the provider, with the contact cap applied, as activation
/// does. 409 unless the campaign is active with a complete audience.
#[utoipa::path(
    post,
    path = "/tenants/{tenant_name}/campaigns/{campaign_id}/release",
    tag = "campaigns",
    params(CampaignPath),
    responses(
        (status = 200, description = "What this release gave out and held back.", body = campaigns::ReleaseSummary),
        (status = 409, response = Conflict),
    )
)]
async fn release(
    State(state): State<AppState>,
    principal: Principal,
    AppPath((tenant, id)): AppPath<(TenantName, i32)>,
) -> Result<AppJson<campaigns::ReleaseSummary>, ApiError> {
    principal.require(&tenant, Permission::CampaignManage)?;
    let released = in_tenant(&state.pool, &tenant, async |tx| {
        let campaign = find(tx, &tenant, id, true).await?;
        if campaign.status != CampaignStatus::Active {
            return Err(ApiError::Conflict(format!(
                "campaign {id} is {}; only an active campaign releases deliveries",
                campaign.status
            )));
        }
        audience_complete(&campaign)?;
        let released = campaigns::release(tx, &tenant, id).await?;
        Ok(released)
    })
    .await?;
    tracing::info!(user.name = %principal.username, tenant.name = %tenant, campaign.id = id,
        released = released.released, suppressed_by_pressure = released.suppressed_by_pressure,
        "deliveries released");
    Ok(AppJson(released))
}
