//! The maker–checker workflow: `submit`, `approve` and `reject` as steps of one table, with
//! the four-eyes rule and the approval bound to the version the checker read.

use crate::etag::{IfMatch, Tagged};
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use shared::auth::{Permission, Principal};
use shared::db::offers::{self, AuditAction, AuditRecord, Offer};
use shared::db::{TenantTx, in_tenant};
use shared::domain::{OfferStatus, Username};
use shared::http::MAX_COMMENT_CHARS;
use shared::http::{AppPath, OptionalJson, check_length};
use shared::openapi::{Conflict, Forbidden, PreconditionFailed, PreconditionRequired};
use shared::paths::OfferPath;
use shared::{ApiError, AppState};
use utoipa::ToSchema;

/// Optional reason of a status change.
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Reason {
    /// Why, at most 4,000 characters (kept in the audit trail).
    #[schema(max_length = 4000)]
    comments: Option<String>,
}

/// One workflow step: who may take it, from which status to which, and whether the
/// maker–checker rule applies.
#[derive(Clone, Copy)]
struct Step {
    permission: Permission,
    from: OfferStatus,
    to: OfferStatus,
    checker: bool,
}

/// draft → submitted, by a maker.
const SUBMIT: Step = Step {
    permission: Permission::OfferSubmit,
    from: OfferStatus::Draft,
    to: OfferStatus::Submitted,
    checker: false,
};
/// submitted → approved, by a checker who did not write any of its content.
const APPROVE: Step = Step {
    permission: Permission::OfferReview,
    from: OfferStatus::Submitted,
    to: OfferStatus::Approved,
    checker: true,
};
/// submitted → rejected, by a checker who did not write any of its content.
const REJECT: Step = Step {
    permission: Permission::OfferReview,
    from: OfferStatus::Submitted,
    to: OfferStatus::Rejected,
    checker: true,
};

/// Takes `step` for offer `id`. 409 naming the current status for any other transition.
async fn transition(
    state: &AppState,
    principal: &Principal,
    path: OfferPath,
    if_match: &IfMatch,
    step: Step,
    reason: Option<String>,
) -> Result<Tagged, ApiError> {
    let Step {
        permission,
        from,
        to,
        checker,
    } = step;
    let (tenant, id) = (&path.tenant_name, path.offer_id);
    principal.require(tenant, permission)?;
    check_length("comments", reason.as_deref(), MAX_COMMENT_CHARS)?;
    let (after, version) = in_tenant(&state.pool, tenant, async |tx| {
        let before = path.load(tx, true).await?;
        if checker {
            // A checker acts on the content they reviewed: a change since (even one that kept
            // the offer `submitted`, as before) fails the precondition.
            if_match.require(&before)?;
        } else {
            if_match.check(&before)?;
        }
        before.ensure_not_retired()?;
        check_step(&before, from, to)?;
        // Who wrote the content since the last version: barred from reviewing it (four eyes),
        // and recorded with the version an approval makes.
        let authors = if checker {
            four_eyes(tx, &before, &principal.username).await?
        } else {
            Vec::new()
        };
        let (after, version) = if to == OfferStatus::Approved {
            let by = &principal.username;
            let (after, version) = offers::approve(tx, id, by, reason.as_deref(), &authors).await?;
            (after, Some(version.version))
        } else {
            (offers::set_status(tx, id, to).await?, None)
        };
        offers::audit(
            tx,
            id,
            AuditRecord {
                action: AuditAction::StatusChange,
                performed_by: &principal.username,
                old_data: Some(before.snapshot()),
                new_data: Some(after.snapshot()),
                comment: reason.as_deref(),
            },
        )
        .await?;
        Ok((after, version))
    })
    .await?;
    if let Some(version) = version {
        tracing::info!(user.name = %principal.username, tenant.name = %tenant, offer.id = id,
            offer.version = version, "offer version approved");
    }
    tracing::info!(user.name = %principal.username, tenant.name = %tenant, offer.id = id,
        from = %from, to = %to, "offer status changed");
    Ok(Tagged(StatusCode::OK, after))
}

/// 409 unless `before` may take the step `from` → `to`: it must be `from`, and an approval
/// must be of a draft based on the live version.
fn check_step(before: &Offer, from: OfferStatus, to: OfferStatus) -> Result<(), ApiError> {
    let id = before.id;
    if before.status != from {
        return Err(ApiError::Conflict(format!(
            "offer {id} is {}; only a {from} offer can become {to}",
            before.status
        )));
    }
    if to == OfferStatus::Approved && before.draft_base_version != before.live_version {
        return Err(ApiError::Conflict(format!(
            "offer {id}'s draft is based on version {}, but version {} is live now; \
             edit the draft again on top of the live version",
            before.draft_base_version.unwrap_or_default(),
            before.live_version.unwrap_or_default(),
        )));
    }
    Ok(())
}

/// Maker–checker: the content's authors since the last version (sorted, once each); 403
/// when `checker` is one of them and the tenant requires four eyes.
async fn four_eyes(
    tx: &TenantTx<'_>,
    before: &Offer,
    checker: &Username,
) -> Result<Vec<String>, ApiError> {
    let id = before.id;
    let mut authors = offers::content_authors(tx, id).await?;
    authors.sort();
    authors.dedup();
    let (_, maker_checker) = offers::tenant_rules(tx).await?;
    if maker_checker && authors.iter().any(|a| a == checker.as_str()) {
        return Err(ApiError::Forbidden(format!(
            "maker-checker: you created or changed the content of offer {id} since its \
                 last approval, so someone else must review it"
        )));
    }
    Ok(authors)
}

/// Submit an offer for review.
///
/// `POST …/submit` (`offer.submit`): draft → submitted.
#[utoipa::path(
    post,
    path = "/tenants/{tenant_name}/offers/{offer_id}/submit",
    tag = "offers",
    params(OfferPath, ("If-Match" = Option<String>, Header, description = "The `ETag` of the version this change is based on (RFC 9110 §13.1.1); a stale one answers 412.")),
    request_body = Option<Reason>,
    responses(
        (status = 200, description = "Submitted for review.", body = Offer, headers(("ETag" = String, description = "The offer's version, quoted."))),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
    )
)]
pub(crate) async fn submit_offer(
    State(state): State<AppState>,
    principal: Principal,
    AppPath(path): AppPath<OfferPath>,
    if_match: IfMatch,
    OptionalJson(reason): OptionalJson<Reason>,
) -> Result<Tagged, ApiError> {
    transition(&state, &principal, path, &if_match, SUBMIT, reason.comments).await
}

/// Approve an offer (checker).
///
/// `POST …/approve` (`offer.review`): submitted → approved; not by anyone who wrote its
/// content since the last version. `If-Match` must carry the `ETag` of the version the
/// checker reviewed (the offer's or its draft-diff's): 428 without, 412 if it changed since. The content becomes the next numbered version (1 for a
/// new offer), live from now on for new campaigns. 409 if the draft was opened on a version
/// that is no longer live (naming both).
#[utoipa::path(
    post,
    path = "/tenants/{tenant_name}/offers/{offer_id}/approve",
    tag = "offers",
    params(OfferPath, ("If-Match" = String, Header, pattern = "^(W/)?\"[!#-~]*\"$", description = "Required: the `ETag` of the version the checker reviewed (the offer's, or its draft-diff's; RFC 9110 §13.1.1), e.g. `\"7\"`. Without it (or with `*`) 428; a stale one answers 412.")),
    request_body = Option<Reason>,
    responses(
        (status = 200, description = "Approved.", body = Offer, headers(("ETag" = String, description = "The offer's version, quoted."))),
        (status = 403, response = Forbidden),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 428, response = PreconditionRequired),
    )
)]
pub(crate) async fn approve_offer(
    State(state): State<AppState>,
    principal: Principal,
    AppPath(path): AppPath<OfferPath>,
    if_match: IfMatch,
    OptionalJson(reason): OptionalJson<Reason>,
) -> Result<Tagged, ApiError> {
    transition(
        &state,
        &principal,
        path,
        &if_match,
        APPROVE,
        reason.comments,
    )
    .await
}

/// Reject an offer (checker).
///
/// `POST …/reject` (`offer.review`): submitted → rejected, with an optional `comments`
/// reason; not by its maker. `If-Match` as for approval (428 without, 412 if stale).
#[utoipa::path(
    post,
    path = "/tenants/{tenant_name}/offers/{offer_id}/reject",
    tag = "offers",
    params(OfferPath, ("If-Match" = String, Header, pattern = "^(W/)?\"[!#-~]*\"$", description = "Required: the `ETag` of the version the checker reviewed (the offer's, or its draft-diff's; RFC 9110 §13.1.1), e.g. `\"7\"`. Without it (or with `*`) 428; a stale one answers 412.")),
    request_body = Option<Reason>,
    responses(
        (status = 200, description = "Rejected; its makers may edit it again.", body = Offer, headers(("ETag" = String, description = "The offer's version, quoted."))),
        (status = 403, response = Forbidden),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 428, response = PreconditionRequired),
    )
)]
pub(crate) async fn reject_offer(
    State(state): State<AppState>,
    principal: Principal,
    AppPath(path): AppPath<OfferPath>,
    if_match: IfMatch,
    OptionalJson(reason): OptionalJson<Reason>,
) -> Result<Tagged, ApiError> {
    transition(&state, &principal, path, &if_match, REJECT, reason.comments).await
}
