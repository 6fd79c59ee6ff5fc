//! An offer's approved versions (`…/offers/{offer_id}/versions…`), the differences between
//! them and against a pending draft (RFC 6902 JSON Patch, computed by the `json-patch`
//! crate), and retirement (`…/retire`).

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;
use shared::auth::{Permission, Principal};
use shared::db::in_tenant;
use shared::db::offers::{self, AuditAction, AuditRecord, OfferVersion};
use shared::http::{AppJson, AppPath, AppQuery, check_length};
use shared::openapi::{Conflict, NotFound, Unprocessable};
use shared::pagination::Page;
use shared::paths::{OfferPath, OfferVersionPath};
use shared::{ApiError, AppState};
use utoipa::{IntoParams, ToSchema};

use crate::etag::Tagged;
use shared::http::MAX_COMMENT_CHARS;

/// The media type of a JSON Patch document (RFC 6902 §6).
pub const JSON_PATCH: &str = "application/json-patch+json";

fn version_not_found(id: i32, number: i32) -> ApiError {
    ApiError::NotFound(format!("offer {id} has no version {number}"))
}

/// List an offer's approved versions.
///
/// `GET …/offers/{offer_id}/versions` (`offer.read`): every approved version, oldest first,
/// with its content, authors, approver, approval time and comment. 404 for an unknown offer.
#[utoipa::path(
    get,
    path = "/tenants/{tenant_name}/offers/{offer_id}/versions",
    tag = "offers",
    params(OfferPath, Page),
    responses(
        (status = 200, description = "The approved versions, oldest first (empty before the first approval).", body = Vec<OfferVersion>),
        (status = 404, response = NotFound),
    )
)]
pub(crate) async fn list_offer_versions(
    State(state): State<AppState>,
    principal: Principal,
    AppPath(path): AppPath<OfferPath>,
    page: Page,
) -> Result<AppJson<Vec<OfferVersion>>, ApiError> {
    let (tenant, id) = (&path.tenant_name, path.offer_id);
    principal.require(tenant, Permission::OfferRead)?;
    let versions = in_tenant(&state.pool, tenant, async |tx| {
        path.load(tx, false).await?;
        let versions = offers::versions(tx, id, page).await?;
        Ok(versions)
    })
    .await?;
    Ok(AppJson(versions))
}

/// Read one approved version.
///
/// `GET …/offers/{offer_id}/versions/{version}` (`offer.read`); 404 if the offer or the
/// version does not exist.
#[utoipa::path(
    get,
    path = "/tenants/{tenant_name}/offers/{offer_id}/versions/{version}",
    tag = "offers",
    params(OfferVersionPath),
    responses(
        (status = 200, description = "The version.", body = OfferVersion),
        (status = 404, response = NotFound),
    )
)]
pub(crate) async fn get_offer_version(
    State(state): State<AppState>,
    principal: Principal,
    AppPath(OfferVersionPath {
        tenant_name: tenant,
        offer_id: id,
        version: number,
    }): AppPath<OfferVersionPath>,
) -> Result<AppJson<OfferVersion>, ApiError> {
    principal.require(&tenant, Permission::OfferRead)?;
    let version = in_tenant(&state.pool, &tenant, async |tx| {
        let version = offers::version(tx, id, number)
            .await?
            .ok_or_else(|| version_not_found(id, number))?;
        Ok(version)
    })
    .await?;
    Ok(AppJson(version))
}

/// A JSON Patch answer.
struct PatchDocument(json_patch::Patch);

impl IntoResponse for PatchDocument {
    fn into_response(self) -> Response {
        let mut response = AppJson(self.0).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_PATCH));
        response
    }
}

/// `GET …/versions/{version}/diff` query.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct DiffQuery {
    /// The version to compare with (default: the one before `version`).
    #[param(minimum = 1)]
    against: Option<i32>,
}

/// Compare two approved versions.
///
/// `GET …/offers/{offer_id}/versions/{version}/diff?against=m` (`offer.read`): the RFC 6902
/// JSON Patch that turns version `m`'s `data` into version `version`'s (`against` defaults
/// to the version before; `[]` when they are equal). 404 if either version does not exist;
/// 422 for version 1 without `against`.
#[utoipa::path(
    get,
    path = "/tenants/{tenant_name}/offers/{offer_id}/versions/{version}/diff",
    tag = "offers",
    params(OfferVersionPath, DiffQuery),
    responses(
        (status = 200, description = "The RFC 6902 JSON Patch from `against` to `version`.", content_type = "application/json-patch+json", body = Vec<Object>),
        (status = 404, response = NotFound),
        (status = 422, response = Unprocessable),
    )
)]
pub(crate) async fn diff_offer_versions(
    State(state): State<AppState>,
    principal: Principal,
    AppPath(OfferVersionPath {
        tenant_name: tenant,
        offer_id: id,
        version: number,
    }): AppPath<OfferVersionPath>,
    AppQuery(query): AppQuery<DiffQuery>,
) -> Result<Response, ApiError> {
    principal.require(&tenant, Permission::OfferRead)?;
    let against = match query.against {
        Some(against) => against,
        None if number > 1 => number - 1,
        None => {
            return Err(ApiError::invalid_field(
                "against",
                "version 1 has no previous version; name the version to compare with",
            ));
        }
    };
    let (from, to) = in_tenant(&state.pool, &tenant, async |tx| {
        let to = offers::version(tx, id, number)
            .await?
            .ok_or_else(|| version_not_found(id, number))?;
        let from = offers::version(tx, id, against)
            .await?
            .ok_or_else(|| version_not_found(id, against))?;
        Ok((from, to))
    })
    .await?;
    Ok(PatchDocument(json_patch::diff(&from.data, &to.data)).into_response())
}

/// Compare the pending draft with the live version.
///
/// `GET …/offers/{offer_id}/draft-diff` (`offer.read`): the RFC 6902 JSON Patch that turns
/// the live version's `data` into the pending draft's — what a checker is asked to approve —
/// with the offer's `ETag`, which `approve` and `reject` require as `If-Match`. 404 unless the
/// offer has a live version and a draft pending on it.
#[utoipa::path(
    get,
    path = "/tenants/{tenant_name}/offers/{offer_id}/draft-diff",
    tag = "offers",
    params(OfferPath),
    responses(
        (status = 200, description = "The RFC 6902 JSON Patch from the live version to the draft.", content_type = "application/json-patch+json", body = Vec<Object>, headers(("ETag" = String, description = "The offer's version, quoted: the If-Match of its approval."))),
        (status = 404, response = NotFound),
    )
)]
pub(crate) async fn get_offer_draft_diff(
    State(state): State<AppState>,
    principal: Principal,
    AppPath(path): AppPath<OfferPath>,
) -> Result<Response, ApiError> {
    let (tenant, id) = (&path.tenant_name, path.offer_id);
    principal.require(tenant, Permission::OfferRead)?;
    let (offer, live) = in_tenant(&state.pool, tenant, async |tx| {
        let offer = path.load(tx, false).await?;
        let live = match offer.live_version {
            Some(live) if offer.draft_pending => offers::version(tx, id, live)
                .await?
                .ok_or_else(|| version_not_found(id, live))?,
            _ => {
                return Err(ApiError::NotFound(format!(
                    "offer {id} has no draft pending on an approved version"
                )));
            }
        };
        Ok((offer, live))
    })
    .await?;
    let mut response = PatchDocument(json_patch::diff(&live.data, &offer.data)).into_response();
    // The draft's entity tag: the checker approves (or rejects) with it as If-Match, so an
    // approval is of exactly the content this diff showed.
    response
        .headers_mut()
        .insert(header::ETAG, crate::etag::entity_tag(&offer));
    Ok(response)
}

/// `POST …/retire` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Retirement {
    /// Why, 1 to 4,000 characters (kept in the audit trail).
    #[schema(min_length = 1, max_length = 4000, pattern = "\\S")]
    reason: String,
}

/// Retire an offer.
///
/// `POST …/offers/{offer_id}/retire` `{"reason"}` (`offer.review`): every version of the
/// offer stops taking new campaigns and the offer takes no further edits or workflow steps;
/// existing campaigns keep their pinned version. 409 if it is retired already or was never
/// approved (delete it instead).
#[utoipa::path(
    post,
    path = "/tenants/{tenant_name}/offers/{offer_id}/retire",
    tag = "offers",
    params(OfferPath),
    request_body = Retirement,
    responses(
        (status = 200, description = "Retired.", body = offers::Offer, headers(("ETag" = String, description = "The offer's version, quoted."))),
        (status = 409, response = Conflict),
    )
)]
pub(crate) async fn retire_offer(
    State(state): State<AppState>,
    principal: Principal,
    AppPath(path): AppPath<OfferPath>,
    AppJson(body): AppJson<Retirement>,
) -> Result<Tagged, ApiError> {
    let (tenant, id) = (&path.tenant_name, path.offer_id);
    principal.require(tenant, Permission::OfferReview)?;
    if body.reason.trim().is_empty() {
        return Err(ApiError::invalid_field("reason", "must not be empty"));
    }
    check_length("reason", Some(&body.reason), MAX_COMMENT_CHARS)?;
    let after = in_tenant(&state.pool, tenant, async |tx| {
        let before = path.load(tx, true).await?;
        before.ensure_not_retired()?;
        if before.live_version.is_none() {
            return Err(ApiError::Conflict(format!(
                "offer {id} was never approved; delete it instead of retiring it"
            )));
        }
        let after = offers::retire(tx, id, &principal.username, &body.reason).await?;
        let mut old_data = before.snapshot();
        let mut new_data = after.snapshot();
        old_data["retired"] = Value::Bool(false);
        new_data["retired"] = Value::Bool(true);
        offers::audit(
            tx,
            id,
            AuditRecord {
                action: AuditAction::Retire,
                performed_by: &principal.username,
                old_data: Some(old_data),
                new_data: Some(new_data),
                comment: Some(&body.reason),
            },
        )
        .await?;
        Ok(after)
    })
    .await?;
    tracing::info!(user.name = %principal.username, tenant.name = %tenant, offer.id = id, "offer retired");
    Ok(Tagged(StatusCode::OK, after))
}
