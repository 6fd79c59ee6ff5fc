//! Provider authentication: the API key of `X-API-Key` (its tenant), and for a signing key
//! the Standard Webhooks signature over the raw body, or over [`signed_request_line`] for a
//! request without one (the feed).

use axum::http::{HeaderMap, Method};
use deadpool_postgres::Pool;
use secrecy::{ExposeSecret, SecretString};
use shared::ApiError;
use shared::auth::api_key;
use shared::db::webhook_keys::{self, ActiveKey};
use shared::domain::TenantName;
use standardwebhooks::{HEADER_WEBHOOK_ID, Webhook, WebhookError};

/// Header carrying the API key.
pub const API_KEY_HEADER: &str = "x-api-key";

/// Checks the API key of `X-API-Key` (no signature): the key and its tenant. 401 for a
/// missing, unknown, revoked or unbound key.
pub(crate) async fn authenticate_key(
    pool: &Pool,
    headers: &HeaderMap,
) -> Result<(ActiveKey, TenantName), ApiError> {
    let presented = headers
        .get(API_KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(|v| SecretString::from(v.trim().to_owned()))
        .ok_or(ApiError::Unauthorized(
            "send the API key in the X-API-Key header",
        ))?;
    let refused = ApiError::Unauthorized("the API key is not valid");
    let Some(id) = api_key::key_id(&presented) else {
        return Err(refused);
    };
    let client = pool.get().await?;
    let key = webhook_keys::active_key(&client, id).await?;
    // Unknown and revoked keys cost the same comparison as a wrong one.
    let stored = key.as_ref().map_or(&[0u8; 32][..], |k| &k.hash[..]);
    let valid = api_key::matches(&presented, stored);
    let key = match key {
        Some(key) if valid => key,
        _ => {
            tracing::warn!(webhook.key_id = %id, "webhook request with an invalid API key");
            return Err(refused);
        }
    };
    let Some(tenant) = key
        .tenant_name
        .as_deref()
        .and_then(|t| TenantName::parse(t).ok())
    else {
        tracing::warn!(webhook.key_id = %id, "webhook key is not bound to a tenant; bind it with `offerctl webhook-key assign`");
        return Err(ApiError::Unauthorized(
            "this API key belongs to no tenant; ask the platform team to bind it",
        ));
    };
    Ok((key, tenant))
}

/// Checks the Standard Webhooks signature of a request made with `key`, if the key has a
/// signing secret (`webhook-id`, `webhook-timestamp`, `webhook-signature`: HMAC-SHA256 over
/// `id.timestamp.payload`, within 5 minutes), verified by the `standardwebhooks` crate.
/// `payload` is the raw body of a report, or [`signed_request_line`] for a `GET`. Answers the
/// message id of a signed request (`None` for a key without a secret).
///
/// # Errors
/// 401 naming what is wrong (missing headers, outside the window, no match).
pub(crate) fn verify_signature(
    key: &ActiveKey,
    headers: &HeaderMap,
    payload: &[u8],
) -> Result<Option<String>, ApiError> {
    let Some(secret) = &key.signing_secret else {
        return Ok(None);
    };
    let webhook = Webhook::new(secret.expose_secret())
        .map_err(|e| ApiError::internal(format!("stored signing secret is unusable: {e}")))?;
    if let Err(err) = webhook.verify(payload, headers) {
        tracing::warn!(webhook.key_id = %key.id, error = %err, "webhook signature refused");
        return Err(ApiError::Unauthorized(match err {
            WebhookError::TimestampTooOldError | WebhookError::FutureTimestampError => {
                "webhook-timestamp is outside the 5-minute window"
            }
            WebhookError::MissingHeader(_) | WebhookError::InvalidHeader(_) => {
                "this key requires signed requests: webhook-id, webhook-timestamp, webhook-signature"
            }
            _ => "the webhook signature does not match",
        }));
    }
    Ok(headers
        .get(HEADER_WEBHOOK_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned))
}

/// What a signing key signs for a request without a body (the feed's `GET`): the method, one
/// space and the request target as sent (path and query, RFC 9112 §3.2.1), e.g.
/// `GET /system/campaigns/7/deliveries?limit=500&after=…`. The signature is then the Standard
/// Webhooks one over `id.timestamp.GET /system/…`, so a signed request cannot be replayed for
/// another campaign or page.
#[must_use]
pub fn signed_request_line(method: &Method, path_and_query: &str) -> String {
    format!("{method} {path_and_query}")
}

/// Checks the API key (and, for a signing key, the signature over the raw body). Returns the
/// key, its tenant and, for signed requests, the message id.
pub(crate) async fn authenticate(
    pool: &Pool,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(ActiveKey, TenantName, Option<String>), ApiError> {
    let (key, tenant) = authenticate_key(pool, headers).await?;
    let message_id = verify_signature(&key, headers, body)?;
    Ok((key, tenant, message_id))
}
