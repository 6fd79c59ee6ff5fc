//! A campaign's audience: its selected customers (keyset pages), their delivery counts, and
//! the preview of criteria before a campaign exists.

use axum::extract::{OriginalUri, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::auth::{Permission, Principal};
use shared::criteria::{Criteria, SelectionCriteria};
use shared::db::campaigns::Delivery;
use shared::db::campaigns::{self, AudienceMember, DeliverySummary, PreviewBreakdown};
use shared::db::in_tenant;
use shared::domain::{Channel, DeliveryStatus};
use shared::http::{AppJson, AppPath, AppQuery};
use shared::openapi::Conflict;
use shared::pagination::Keyset;
use shared::paths::{CampaignPath, TenantPath};
use shared::{ApiError, AppState};
use utoipa::{IntoParams, ToSchema};

/// A preview's sample size: the default and the largest accepted.
const PREVIEW_SAMPLE: (i64, i64) = (10, 50);

/// `GET …/customers` filters.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct CustomersQuery {
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
        (status = 200, description = "The campaign's customers in customer-id order.", body = Vec<Delivery>, headers(("Link" = String, description = "`<…?after=ID>; rel=\"next\"` on a full page (RFC 8288)."))),
        (status = 409, response = Conflict),
    )
)]
pub(crate) async fn list_campaign_customers(
    State(state): State<AppState>,
    principal: Principal,
    OriginalUri(uri): OriginalUri,
    AppPath(path): AppPath<CampaignPath>,
    AppQuery(query): AppQuery<CustomersQuery>,
    keyset: Keyset,
) -> Result<Response, ApiError> {
    let (tenant, id) = (&path.tenant_name, path.campaign_id);
    principal.require(tenant, Permission::CampaignRead)?;
    let rows = in_tenant(&state.pool, tenant, async |tx| {
        let campaign = path.load(tx, false).await?;
        campaign.ensure_audience_complete()?;
        campaign.ensure_deliveries_present()?;
        let with_contact = principal.can(tenant, Permission::CustomerContactRead);
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
pub(crate) async fn get_campaign_summary(
    State(state): State<AppState>,
    principal: Principal,
    AppPath(path): AppPath<CampaignPath>,
) -> Result<AppJson<DeliverySummary>, ApiError> {
    let (tenant, id) = (&path.tenant_name, path.campaign_id);
    principal.require(tenant, Permission::CampaignRead)?;
    let counts = in_tenant(&state.pool, tenant, async |tx| {
        path.load(tx, false).await?.ensure_audience_complete()?;
        let counts = campaigns::summary(tx, id).await?;
        Ok(counts)
    })
    .await?;
    Ok(AppJson(counts))
}

/// `POST …/audience-preview` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PreviewRequest {
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
pub(crate) struct Preview {
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
pub(crate) async fn preview_audience(
    State(state): State<AppState>,
    principal: Principal,
    AppPath(TenantPath {
        tenant_name: tenant,
    }): AppPath<TenantPath>,
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
    let compiled = Criteria::from_request(&body.selection_criteria)?.compile(1);
    let ((matched_count, sample), breakdown) = in_tenant(&state.pool, &tenant, async |tx| {
        let (matched_count, sample) = campaigns::preview(tx, &compiled, sample).await?;
        let channel = body.channel.unwrap_or(Channel::Email);
        let breakdown = campaigns::preview_breakdown(tx, &compiled, channel).await?;
        Ok(((matched_count, sample), breakdown))
    })
    .await?;
    Ok(AppJson(Preview {
        matched_count,
        breakdown,
        sample,
    }))
}
