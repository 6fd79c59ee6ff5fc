//! An offer's content: create, list, read, edit (`PUT`, `PATCH`), delete, comment, and its
//! audit trail. Edits of a retired offer are 409; `If-Match` binds an edit to the version
//! read (412 when stale).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;
use shared::auth::{Permission, Principal};
use shared::db::offers::{self, AuditAction, AuditRecord, Offer, OfferFilter};
use shared::db::{TenantRead, in_tenant};
use shared::domain::{OfferStatus, Username};
use shared::error::FieldError;
use shared::http::{AppJson, AppPath, AppQuery, MAX_COMMENT_CHARS, check_length};
use shared::openapi::{Conflict, PreconditionFailed};
use shared::pagination::Page;
use shared::paths::{OfferPath, TenantPath, offer_not_found as not_found};
use shared::{ApiError, AppState};
use utoipa::{IntoParams, ToSchema};

use crate::etag::{IfMatch, Tagged};

/// 422 unless `data` is an object satisfying the tenant's schema; lists every failing JSON
/// pointer (under `/data`).
fn validate_data(data: &Value, schema: Option<&Value>) -> Result<(), ApiError> {
    if !data.is_object() {
        return Err(ApiError::invalid_field("data", "must be a JSON object"));
    }
    let Some(schema) = schema else {
        return Ok(());
    };
    let validator = jsonschema::validator_for(schema)
        .map_err(|e| ApiError::internal(format!("stored offer schema does not compile: {e}")))?;
    let errors: Vec<FieldError> = validator
        .iter_errors(data)
        .map(|err| FieldError {
            pointer: format!("/data{}", err.instance_path()),
            detail: err.to_string(),
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Unprocessable {
            detail: format!(
                "data violates the tenant's offer schema in {} place(s)",
                errors.len()
            ),
            errors,
        })
    }
}

/// `POST` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateOffer {
    /// The offer's content: a JSON object, valid against the tenant's `offer_schema`.
    #[schema(value_type = Object)]
    data: Value,
    /// At most 4,000 characters.
    #[schema(max_length = 4000)]
    comments: Option<String>,
}

/// Write an offer (draft).
///
/// `POST /tenants/{t}/offers` (`offer.create`): a `draft` offer (201, `Location`, `ETag`).
#[utoipa::path(
    post,
    path = "/tenants/{tenant_name}/offers",
    tag = "offers",
    params(TenantPath),
    request_body = CreateOffer,
    responses(
        (status = 201, description = "Created as `draft`; `Location` names it.", body = Offer, headers(("ETag" = String, description = "The offer's version, quoted."))),
    )
)]
pub(crate) async fn create_offer(
    State(state): State<AppState>,
    principal: Principal,
    AppPath(TenantPath {
        tenant_name: tenant,
    }): AppPath<TenantPath>,
    AppJson(body): AppJson<CreateOffer>,
) -> Result<Response, ApiError> {
    principal.require(&tenant, Permission::OfferCreate)?;
    check_length("comments", body.comments.as_deref(), MAX_COMMENT_CHARS)?;
    let offer = in_tenant(&state.pool, &tenant, async |tx| {
        let (schema, _) = offers::tenant_rules(tx).await?;
        validate_data(&body.data, schema.as_ref())?;
        let comments = body.comments.as_deref();
        let offer = offers::insert(tx, &body.data, comments, &principal.username).await?;
        let record = AuditRecord {
            action: AuditAction::Create,
            performed_by: &principal.username,
            old_data: None,
            new_data: Some(offer.snapshot()),
            comment: comments,
        };
        offers::audit(tx, offer.id, record).await?;
        Ok(offer)
    })
    .await?;
    tracing::info!(user.name = %principal.username, tenant.name = %tenant, offer.id = offer.id, "offer created");
    let location = format!("/tenants/{tenant}/offers/{}", offer.id);
    Ok(shared::http::with_location(
        Tagged(StatusCode::CREATED, offer).into_response(),
        &location,
    ))
}

/// `GET` list filters.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// Only offers whose working copy is in this status (an approved offer with a draft
    /// pending reads `draft`).
    status: Option<OfferStatus>,
    /// Only offers this user created.
    created_by: Option<Username>,
    /// `true`: only offers campaigns can run (a live version, not retired), what a campaign
    /// maker picks from; `false`: only the others.
    live: Option<bool>,
}

/// List offers.
///
/// `GET /tenants/{t}/offers?status=&created_by=&live=&limit=&offset=` (`offer.read`): newest
/// first.
#[utoipa::path(
    get,
    path = "/tenants/{tenant_name}/offers",
    tag = "offers",
    params(TenantPath, ListQuery, Page),
    responses(
        (status = 200, description = "Offers, newest first.", body = Vec<Offer>),
    )
)]
pub(crate) async fn list_offers(
    State(state): State<AppState>,
    principal: Principal,
    AppPath(TenantPath {
        tenant_name: tenant,
    }): AppPath<TenantPath>,
    AppQuery(query): AppQuery<ListQuery>,
    page: Page,
) -> Result<AppJson<Vec<Offer>>, ApiError> {
    principal.require(&tenant, Permission::OfferRead)?;
    let client = state.pool.get().await?;
    let filter = OfferFilter {
        status: query.status,
        created_by: query.created_by,
        live: query.live,
    };
    let offers = offers::list(&TenantRead::new(&client, &tenant), &filter, page).await?;
    Ok(AppJson(offers))
}

/// Read an offer.
///
/// `GET /tenants/{t}/offers/{id}` (`offer.read`).
#[utoipa::path(
    get,
    path = "/tenants/{tenant_name}/offers/{offer_id}",
    tag = "offers",
    params(OfferPath),
    responses(
        (status = 200, description = "The offer.", body = Offer, headers(("ETag" = String, description = "The offer's version, quoted."))),
    )
)]
pub(crate) async fn get_offer(
    State(state): State<AppState>,
    principal: Principal,
    AppPath(path): AppPath<OfferPath>,
) -> Result<Tagged, ApiError> {
    let (tenant, _id) = (&path.tenant_name, path.offer_id);
    principal.require(tenant, Permission::OfferRead)?;
    let client = state.pool.get().await?;
    let offer = path.load(&TenantRead::new(&client, tenant), false).await?;
    Ok(Tagged(StatusCode::OK, offer))
}

/// `PUT` body: the whole content.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReplaceOffer {
    /// The offer's content: a JSON object, valid against the tenant's `offer_schema`.
    #[schema(value_type = Object)]
    data: Value,
    /// At most 4,000 characters.
    #[schema(max_length = 4000)]
    comments: Option<String>,
}

/// `PATCH` body: the fields to change.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PatchOffer {
    /// The new content: a JSON object, valid against the tenant's `offer_schema`.
    #[schema(value_type = Option<Object>)]
    data: Option<Value>,
    /// At most 4,000 characters; `null` clears them.
    #[serde(default, deserialize_with = "shared::http::nullable")]
    #[schema(value_type = Option<String>, max_length = 4000)]
    comments: Option<Option<String>>,
}

/// The edit rules: `offer.edit_any` edits anything not approved; `offer.edit` edits `draft`
/// and `rejected` offers; editing a rejected or submitted offer returns it to `draft` (a
/// submitted one must be submitted again: its checker reviewed other content), recorded in
/// the audit trail with both statuses.
async fn edit(
    state: &AppState,
    principal: &Principal,
    path: &OfferPath,
    if_match: &IfMatch,
    change: impl FnOnce(&Offer) -> (Value, Option<String>),
) -> Result<Tagged, ApiError> {
    let (tenant, id) = (&path.tenant_name, path.offer_id);
    let access = principal
        .require(tenant, Permission::OfferEdit)
        .or_else(|_| principal.require(tenant, Permission::OfferEditAny))?;
    let edit_any = access.permissions.contains(&Permission::OfferEditAny);
    let after = in_tenant(&state.pool, tenant, async |tx| {
        let before = path.load(tx, true).await?;
        if_match.check(&before)?;
        before.ensure_not_retired()?;
        match before.status {
            OfferStatus::Submitted if !edit_any => {
                return Err(ApiError::Conflict(format!(
                    "offer {id} is submitted; only draft or rejected offers can be edited"
                )));
            }
            _ => {}
        }
        let (data, comments) = change(&before);
        check_length("comments", comments.as_deref(), MAX_COMMENT_CHARS)?;
        let (schema, _) = offers::tenant_rules(tx).await?;
        validate_data(&data, schema.as_ref())?;
        // Editing an approved offer opens a draft on top of its live version, which stays as it
        // is (campaigns keep delivering it) until the draft is approved. Every edit (re)bases the
        // draft on the version live now: the editor has seen it.
        // Any change of content sends a submitted offer back to `draft`: what its checker reviewed
        // is no longer what it holds, so it must be submitted (and reviewed) again.
        let status = match before.status {
            OfferStatus::Approved | OfferStatus::Rejected | OfferStatus::Submitted => {
                OfferStatus::Draft
            }
            other => other,
        };
        let draft_base = before.live_version;
        let after = offers::update_content(
            tx,
            id,
            &data,
            comments.as_deref(),
            status,
            &principal.username,
            draft_base,
        )
        .await?;
        offers::audit(
            tx,
            id,
            AuditRecord {
                action: AuditAction::Update,
                performed_by: &principal.username,
                old_data: Some(before.snapshot()),
                new_data: Some(after.snapshot()),
                comment: None,
            },
        )
        .await?;
        Ok(after)
    })
    .await?;
    tracing::info!(user.name = %principal.username, tenant.name = %tenant, offer.id = id, "offer updated");
    Ok(Tagged(StatusCode::OK, after))
}

/// Replace an offer.
///
/// `PUT /tenants/{t}/offers/{id}` (`offer.edit` / `offer.edit_any`): replaces `data` and
/// `comments`. On an approved offer this opens a new draft on top of the live version, which
/// stays live and unchanged until the draft is approved. 409 for a retired offer (or a
/// submitted one without `offer.edit_any`).
#[utoipa::path(
    put,
    path = "/tenants/{tenant_name}/offers/{offer_id}",
    tag = "offers",
    params(OfferPath, ("If-Match" = Option<String>, Header, description = "The `ETag` of the version this change is based on (RFC 9110 §13.1.1); a stale one answers 412.")),
    request_body = ReplaceOffer,
    responses(
        (status = 200, description = "Replaced; a rejected or submitted offer returns to `draft` (a submitted one must be submitted again), an approved one opens a draft of its next version.", body = Offer, headers(("ETag" = String, description = "The offer's version, quoted."))),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
    )
)]
pub(crate) async fn replace_offer(
    State(state): State<AppState>,
    principal: Principal,
    AppPath(path): AppPath<OfferPath>,
    if_match: IfMatch,
    AppJson(body): AppJson<ReplaceOffer>,
) -> Result<Tagged, ApiError> {
    edit(&state, &principal, &path, &if_match, |_| {
        (body.data, body.comments)
    })
    .await
}

/// Change part of an offer.
///
/// `PATCH /tenants/{t}/offers/{id}`: as `PUT`, changing only the fields present.
#[utoipa::path(
    patch,
    path = "/tenants/{tenant_name}/offers/{offer_id}",
    tag = "offers",
    params(OfferPath, ("If-Match" = Option<String>, Header, description = "The `ETag` of the version this change is based on (RFC 9110 §13.1.1); a stale one answers 412.")),
    request_body = PatchOffer,
    responses(
        (status = 200, description = "Changed; a rejected or submitted offer returns to `draft` (a submitted one must be submitted again), an approved one opens a draft of its next version.", body = Offer, headers(("ETag" = String, description = "The offer's version, quoted."))),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
    )
)]
pub(crate) async fn patch_offer(
    State(state): State<AppState>,
    principal: Principal,
    AppPath(path): AppPath<OfferPath>,
    if_match: IfMatch,
    AppJson(body): AppJson<PatchOffer>,
) -> Result<Tagged, ApiError> {
    edit(&state, &principal, &path, &if_match, |before| {
        (
            body.data.unwrap_or_else(|| before.data.clone()),
            body.comments.unwrap_or_else(|| before.comments.clone()),
        )
    })
    .await
}

/// Delete an offer.
///
/// `DELETE /tenants/{t}/offers/{id}` (`offer.delete`): 204; 409 once it has an approved
/// version (retire it instead) or while an active campaign uses it. The audit trail keeps a `delete` row with the last content.
#[utoipa::path(
    delete,
    path = "/tenants/{tenant_name}/offers/{offer_id}",
    tag = "offers",
    params(OfferPath, ("If-Match" = Option<String>, Header, description = "The `ETag` of the version this change is based on (RFC 9110 §13.1.1); a stale one answers 412.")),
    responses(
        (status = 204, description = "Deleted; its audit trail keeps a `delete` entry."),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
    )
)]
pub(crate) async fn delete_offer(
    State(state): State<AppState>,
    principal: Principal,
    AppPath(path): AppPath<OfferPath>,
    if_match: IfMatch,
) -> Result<StatusCode, ApiError> {
    let (tenant, id) = (&path.tenant_name, path.offer_id);
    principal.require(tenant, Permission::OfferDelete)?;
    in_tenant(&state.pool, tenant, async |tx| {
        let before = path.load(tx, true).await?;
        if_match.check(&before)?;
        if let Some(live) = before.live_version {
            return Err(ApiError::Conflict(format!(
                "offer {id} has approved versions (version {live} is live) and cannot be deleted; \
             retire it instead"
            )));
        }
        if offers::has_active_campaign(tx, id).await? {
            return Err(ApiError::Conflict(format!(
                "offer {id} is used by an active campaign and cannot be deleted"
            )));
        }
        offers::audit(
            tx,
            id,
            AuditRecord {
                action: AuditAction::Delete,
                performed_by: &principal.username,
                old_data: Some(before.snapshot()),
                new_data: None,
                comment: None,
            },
        )
        .await?;
        offers::delete(tx, id).await
    })
    .await?;
    tracing::info!(user.name = %principal.username, tenant.name = %tenant, offer.id = id, "offer deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// `POST …/comment` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Comment {
    /// 1 to 4,000 characters, not only spaces.
    #[schema(min_length = 1, max_length = 4000, pattern = "\\S")]
    comment_text: String,
}

/// Comment on an offer.
///
/// `POST …/comment` (`offer.comment`): appends a `comment` audit row (201 with it).
#[utoipa::path(
    post,
    path = "/tenants/{tenant_name}/offers/{offer_id}/comment",
    tag = "offers",
    params(OfferPath),
    request_body = Comment,
    responses(
        (status = 201, description = "The comment's audit entry.", body = offers::AuditEntry),
    )
)]
pub(crate) async fn comment_on_offer(
    State(state): State<AppState>,
    principal: Principal,
    AppPath(path): AppPath<OfferPath>,
    AppJson(body): AppJson<Comment>,
) -> Result<(StatusCode, AppJson<offers::AuditEntry>), ApiError> {
    let tenant = &path.tenant_name;
    principal.require(tenant, Permission::OfferComment)?;
    if body.comment_text.trim().is_empty() {
        return Err(ApiError::invalid_field("comment_text", "must not be empty"));
    }
    check_length("comment_text", Some(&body.comment_text), MAX_COMMENT_CHARS)?;
    let entry = in_tenant(&state.pool, tenant, async |tx| {
        let offer = path.load(tx, true).await?;
        let record = AuditRecord {
            action: AuditAction::Comment,
            performed_by: &principal.username,
            old_data: None,
            new_data: None,
            comment: Some(&body.comment_text),
        };
        offers::audit(tx, offer.id, record).await?;
        offers::last_audit_entry(tx, offer.id).await
    })
    .await?;
    Ok((StatusCode::CREATED, AppJson(entry)))
}

/// Read an offer's audit trail.
///
/// `GET …/audit-logs` (`offer.audit`): the trail, oldest first; it outlives the offer, so a
/// deleted offer's trail is still readable. 404 when the tenant has no trail for that id.
#[utoipa::path(
    get,
    path = "/tenants/{tenant_name}/offers/{offer_id}/audit-logs",
    tag = "offers",
    params(OfferPath, Page),
    responses(
        (status = 200, description = "The audit trail, oldest first.", body = Vec<offers::AuditEntry>),
    )
)]
pub(crate) async fn list_offer_audit_logs(
    State(state): State<AppState>,
    principal: Principal,
    AppPath(OfferPath {
        tenant_name: tenant,
        offer_id: id,
    }): AppPath<OfferPath>,
    page: Page,
) -> Result<AppJson<Vec<offers::AuditEntry>>, ApiError> {
    principal.require(&tenant, Permission::OfferAudit)?;
    let entries = in_tenant(&state.pool, &tenant, async |tx| {
        let entries = offers::audit_trail(tx, id, page).await?;
        Ok(entries)
    })
    .await?;
    if entries.is_empty() && page.offset == 0 {
        return Err(not_found(id));
    }
    Ok(AppJson(entries))
}
