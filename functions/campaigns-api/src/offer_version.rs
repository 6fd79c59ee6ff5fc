//! `…/campaigns/{campaign_id}/offer-version` and `…/audit-logs`: moving a campaign to another
//! approved version of its offer (an explicit, audited act: a newly approved version never
//! changes a campaign by itself) and reading the campaign's audit trail.

use axum::extract::State;
use serde::Deserialize;
use shared::auth::{Permission, Principal};
use shared::db::campaigns::{self, Campaign, CampaignAuditEntry};
use shared::db::in_tenant;
use shared::db::offers::{self, NoNewCampaigns};
use shared::domain::CampaignStatus;
use shared::http::{AppJson, AppPath, check_length};
use shared::openapi::{Conflict, NotFound};
use shared::pagination::Page;
use shared::paths::CampaignPath;
use shared::{ApiError, AppState};
use utoipa::ToSchema;

/// `POST …/offer-version` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MoveOfferVersion {
    /// An approved version of the campaign's offer.
    #[schema(minimum = 1)]
    offer_version: i32,
    /// Why, at most 4,000 characters (kept in the campaign's audit trail).
    #[schema(max_length = 4000)]
    comment: Option<String>,
}

/// Move a campaign to another offer version.
///
/// `POST /tenants/{t}/campaigns/{id}/offer-version` `{"offer_version", "comment"?}`
/// (the permission that edits the campaign in its state: `campaign.write` or `campaign.manage`
/// while `draft`, `campaign.manage` while `paused`): pins the campaign to another approved
/// version of its offer, recorded in the campaign's audit trail; only while the campaign is
/// `draft` or `paused` (409 otherwise, or if the offer is retired); 404 if the offer has no such version. Naming the
/// pinned version again changes nothing.
#[utoipa::path(
    post,
    path = "/tenants/{tenant_name}/campaigns/{campaign_id}/offer-version",
    tag = "campaigns",
    params(CampaignPath),
    request_body = MoveOfferVersion,
    responses(
        (status = 200, description = "The campaign, pinned to the version asked for.", body = Campaign),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
    )
)]
pub(crate) async fn move_campaign_offer_version(
    State(state): State<AppState>,
    principal: Principal,
    AppPath(path): AppPath<CampaignPath>,
    AppJson(body): AppJson<MoveOfferVersion>,
) -> Result<AppJson<Campaign>, ApiError> {
    let (tenant, id) = (&path.tenant_name, path.campaign_id);
    principal
        .require(tenant, Permission::CampaignWrite)
        .or_else(|_| principal.require(tenant, Permission::CampaignManage))?;
    check_length(
        "comment",
        body.comment.as_deref(),
        shared::http::MAX_COMMENT_CHARS,
    )?;
    // `None`: the campaign already delivers that version (nothing to change, nor to log).
    let moved = in_tenant(&state.pool, tenant, async |tx| {
        let campaign = path.load(tx, true).await?;
        // The same rule as editing the campaign's content (`update`): past `draft`, only
        // those who manage campaigns.
        if campaign.status != CampaignStatus::Draft {
            principal.require(tenant, Permission::CampaignManage)?;
        }
        if !matches!(
            campaign.status,
            CampaignStatus::Draft | CampaignStatus::Paused
        ) {
            return Err(ApiError::Conflict(format!(
                "campaign {id} is {}; its offer version can change only while it is draft or \
                 paused",
                campaign.status
            )));
        }
        let Some(offer_id) = campaign.offer_id else {
            return Err(ApiError::Conflict(format!(
                "campaign {id}'s offer was deleted; it has no versions to move to"
            )));
        };
        if campaign.offer_version == Some(body.offer_version) {
            return Ok((campaign, None));
        }
        // Locked, so the offer cannot be retired while the campaign moves.
        let offer = offers::get(tx, offer_id, true)
            .await?
            .ok_or_else(|| ApiError::Conflict(format!("campaign {id}'s offer was deleted")))?;
        if offer.version_for_campaigns() == Err(NoNewCampaigns::Retired) {
            return Err(ApiError::Conflict(format!(
                "offer {offer_id} is retired; campaign {id} keeps version {}",
                campaign.offer_version.unwrap_or_default()
            )));
        }
        if offers::version(tx, offer_id, body.offer_version)
            .await?
            .is_none()
        {
            return Err(ApiError::NotFound(format!(
                "offer {offer_id} has no version {}",
                body.offer_version
            )));
        }
        let moved = campaigns::move_offer_version(
            tx,
            id,
            (campaign.offer_version, body.offer_version),
            &principal.username,
            body.comment.as_deref(),
        )
        .await?;
        Ok((moved, Some((offer_id, campaign.offer_version))))
    })
    .await?;
    let (campaign, moved) = moved;
    if let Some((offer_id, from)) = moved {
        tracing::info!(user.name = %principal.username, tenant.name = %tenant, campaign.id = id,
            offer.id = offer_id, from = ?from, to = body.offer_version,
            "campaign moved to another offer version");
    }
    Ok(AppJson(campaign))
}

/// Read a campaign's audit trail.
///
/// `GET /tenants/{t}/campaigns/{id}/audit-logs` (`campaign.read`): the campaign's recorded
/// changes (moves to another offer version, its deletion), oldest first; it outlives the
/// campaign.
#[utoipa::path(
    get,
    path = "/tenants/{tenant_name}/campaigns/{campaign_id}/audit-logs",
    tag = "campaigns",
    params(CampaignPath, Page),
    responses(
        (status = 200, description = "The audit trail, oldest first.", body = Vec<CampaignAuditEntry>),
    )
)]
pub(crate) async fn list_campaign_audit_logs(
    State(state): State<AppState>,
    principal: Principal,
    AppPath(CampaignPath {
        tenant_name: tenant,
        campaign_id: id,
    }): AppPath<CampaignPath>,
    page: Page,
) -> Result<AppJson<Vec<CampaignAuditEntry>>, ApiError> {
    principal.require(&tenant, Permission::CampaignRead)?;
    let entries = in_tenant(&state.pool, &tenant, async |tx| {
        let entries = campaigns::audit_trail(tx, id, page).await?;
        Ok(entries)
    })
    .await?;
    Ok(AppJson(entries))
}
