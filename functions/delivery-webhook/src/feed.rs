//! `GET /system/campaigns/{campaign_id}/deliveries?after=&limit=`: the delivery feed a
//! provider pulls with its tenant's webhook key — the released deliveries of an active
//! campaign not yet reported, keyset-paginated by customer id, with exactly what sending
//! needs (the customer's id, the address for the campaign's channel, the preferred language)
//! and the pinned offer version's content, once per page. Nothing else about the customer
//! leaves. Every page served is logged with the key's id.

use axum::extract::{OriginalUri, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use deadpool_postgres::Pool;
use serde::Serialize;
use serde_json::Value;
use shared::ApiError;
use shared::db::campaigns::calendar::{self, Phase};
use shared::db::campaigns::{self, FeedDelivery};
use shared::db::{in_tenant, offers, webhook_keys};
use shared::domain::{CampaignStatus, Channel};
use shared::http::{AppJson, AppPath};
use shared::openapi::{Conflict, NotFound};
use shared::pagination::Keyset;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::provider::{authenticate_key, signed_request_line, verify_signature};

/// One page of the feed.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct FeedPage {
    /// The campaign.
    campaign_id: i32,
    /// Its channel: what `address` is.
    channel: Channel,
    /// The offer it delivers.
    offer_id: Option<i32>,
    /// The offer version it delivers (pinned).
    offer_version: Option<i32>,
    /// That version's approved content: what to send.
    #[schema(value_type = Option<Object>)]
    offer: Option<Value>,
    /// Released deliveries not yet reported, by customer id.
    deliveries: Vec<FeedDelivery>,
    /// The `after` of the next page; null on the last one.
    next_after: Option<Uuid>,
}

/// Fetch deliveries to send (provider feed).
///
/// `GET /system/campaigns/{campaign_id}/deliveries?after=&limit=` (webhook key of the
/// campaign's tenant): the campaign's released deliveries not yet reported, in customer-id
/// order, with the pinned offer content. A key with a signing secret must sign the request:
/// Standard Webhooks headers over `id.timestamp.GET <path and query>` (401 otherwise, and for
/// a `webhook-id` used before). A full page carries `Link: rel="next"` and
/// `next_after`. 404 for a campaign of another tenant or none; 409 unless it is `active` and
/// inside its window (a `scheduled` campaign gives out nothing before its start, an ended one
/// nothing after `ends_at`).
#[utoipa::path(
    get,
    path = "/system/campaigns/{campaign_id}/deliveries",
    tag = "delivery",
    security(("webhook_key" = [])),
    params(
        ("campaign_id" = i32, Path, description = "The campaign's id."),
        Keyset,
        ("webhook-id" = Option<String>, Header, description = "Standard Webhooks message id (keys with a signing secret only); each request needs a new one."),
        ("webhook-timestamp" = Option<String>, Header, description = "Standard Webhooks Unix timestamp, within 5 minutes (signing keys only)."),
        ("webhook-signature" = Option<String>, Header, description = "Standard Webhooks `v1,<base64 HMAC-SHA256 of id.timestamp.GET path?query>` (signing keys only): the method, a space and the request target in place of a body."),
    ),
    responses(
        (status = 200, description = "A page of deliveries to send.", body = FeedPage, headers(("Link" = String, description = "`<…?after=ID>; rel=\"next\"` on a full page (RFC 8288)."))),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
    )
)]
pub(crate) async fn list_deliveries(
    State(pool): State<Pool>,
    OriginalUri(uri): OriginalUri,
    headers: axum::http::HeaderMap,
    AppPath(id): AppPath<i32>,
    keyset: Keyset,
) -> Result<Response, ApiError> {
    let (key, tenant) = authenticate_key(&pool, &headers).await?;
    let target = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let line = signed_request_line(&axum::http::Method::GET, target);
    let message_id = verify_signature(&key, &headers, line.as_bytes())?;
    let (campaign, offer, rows) = in_tenant(&pool, &tenant, async |tx| {
        // A signed page is served once per message id: a captured request replays nothing.
        if let Some(message_id) = &message_id
            && !webhook_keys::record_message(tx, key.id, message_id).await?
        {
            tracing::warn!(webhook.key_id = %key.id, "feed request with a replayed webhook-id");
            return Err(ApiError::Unauthorized(
                "this webhook-id was already used; sign each request with a new one",
            ));
        }
        let campaign = campaigns::get(tx, id, false)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no campaign {id} for this key")))?;
        if campaign.status != CampaignStatus::Active {
            return Err(ApiError::Conflict(format!(
                "campaign {id} is {}; its deliveries are given out only while it is active",
                campaign.status
            )));
        }
        // Past its end the feed stops at once, before the scheduler's next run completes it.
        if calendar::phase(tx, &campaign).await? == Phase::Ended {
            return Err(ApiError::Conflict(format!(
                "campaign {id} ended at {}; its deliveries are no longer given out",
                campaign.ends_at.to_rfc3339()
            )));
        }
        let offer = match (campaign.offer_id, campaign.offer_version) {
            (Some(offer_id), Some(version)) => offers::version(tx, offer_id, version)
                .await?
                .map(|v| v.data),
            _ => None,
        };
        let rows = campaigns::feed(tx, id, campaign.channel, keyset.after, keyset.limit).await?;
        Ok((campaign, offer, rows))
    })
    .await?;
    let full = i64::try_from(rows.len()).is_ok_and(|n| n == keyset.limit);
    let next_after = full.then(|| rows.last().map(|r| r.customer_id)).flatten();
    tracing::info!(webhook.key_id = %key.id, tenant.name = %tenant, campaign.id = id,
        deliveries = rows.len(), after = ?keyset.after, "delivery feed page served");
    let page = FeedPage {
        campaign_id: id,
        channel: campaign.channel,
        offer_id: campaign.offer_id,
        offer_version: campaign.offer_version,
        offer,
        deliveries: rows,
        next_after,
    };
    let mut response = AppJson(page).into_response();
    if let Some(after) = next_after {
        let link = format!(
            "<{}?limit={}&after={after}>; rel=\"next\"",
            uri.path(),
            keyset.limit
        );
        if let Ok(value) = HeaderValue::from_str(&link) {
            response.headers_mut().insert(header::LINK, value);
        }
    }
    Ok(response)
}
