//! `delivery-webhook`: `POST /system/campaigns/update-delivery-status`, where delivery
//! providers (e-mail, SMS, push) report what happened to each campaign delivery.
//!
//! - **Authentication** by API key in `X-API-Key` (keys from `/sa/webhook-keys` or
//!   `offerctl webhook-key create`; stored as SHA-256, compared in constant time), not JWT.
//!   A key belongs to one tenant: reports on another tenant's campaigns are answered exactly
//!   like reports on a campaign that does not exist (`not_found`), so the answer reveals
//!   nothing about other tenants. A key made before keys were tenant-scoped and not yet bound
//!   to a tenant is refused (401).
//!   When the key has a signing secret, the request must also carry a Standard Webhooks
//!   signature (`webhook-id`, `webhook-timestamp`, `webhook-signature`: HMAC-SHA256 over
//!   `id.timestamp.body`), verified on the raw bytes before parsing by the `standardwebhooks`
//!   crate, with its 5-minute window. A replayed `webhook-id` is answered 200 and changes
//!   nothing.
//! - **Body**: a JSON array of at most [`MAX_REPORTS`] reports
//!   `{campaign_id, customer_id, status: "sent"|"failed", sent_at, provider_message_id?,
//!   failure_reason?}`, at most [`MAX_BODY_BYTES`] (413 beyond; 422 for too many items).
//! - **One statement** applies the batch. The answer lists every report as `updated`,
//!   `unchanged` (the row records the same or a later event), `not_found` or `invalid` (with a
//!   reason), and counts them; the request answers 200 once understood.
//! - Events never go back in time: a report whose `sent_at` is not later than the recorded one
//!   changes nothing; of two reports for one delivery in a batch the later wins. A `sent_at`
//!   more than [`MAX_CLOCK_SKEW_SECS`] in the future, or before the delivery was released, is
//!   `invalid` (a report dated 2999 would otherwise freeze the delivery for good, and one
//!   dated before the release would age its contact out of the contact cap's window).
//! - Only `active`, `paused` and `completed` campaigns accept reports; for the tenant's other
//!   campaigns each report is `invalid` with the reason. Only released deliveries take
//!   reports (a suppressed or not yet released one is `not_found`); each report keeps the
//!   contact ledger of the platform's contact cap current (a failed delivery frees its slot).
//! - `unsubscribed` and `complained` opt the customer out of the campaign's channel
//!   (`customer_consents`, source `provider: …`), leaving the delivery's result as it is.
//! - [`feed`]: `GET /system/campaigns/{campaign_id}/deliveries`, the released deliveries a
//!   provider has to send, with the same key; a signing key signs those requests too, over
//!   [`signed_request_line`] (method and request target) in place of a body.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{FromRef, Request, State};
use axum::http::HeaderMap;
use axum::http::Method;
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::ApiError;
use shared::auth::api_key;
use shared::db::tenant_transaction;
use shared::db::webhooks::{
    self, ActiveKey, DeliveryReport, OptOutReport, PinnedCampaign, ReportOutcome,
};
use shared::domain::{DeliveryStatus, TenantName};
use shared::http::{AppJson, has_media_type, read_body_limited};
use standardwebhooks::{HEADER_WEBHOOK_ID, Webhook, WebhookError};
use utoipa::openapi::schema::{AnyOfBuilder, ArrayBuilder, ObjectBuilder, Schema, SchemaType};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub mod feed;

/// How far in the future a report's `sent_at` may lie (the provider's clock may run ahead), in
/// seconds.
pub const MAX_CLOCK_SKEW_SECS: i64 = 5 * 60;
/// Most reports per request.
pub const MAX_REPORTS: usize = 1000;
/// Largest body, in bytes.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Header carrying the API key.
pub const API_KEY_HEADER: &str = "x-api-key";
/// Longest `provider_message_id`, in characters.
pub const MAX_PROVIDER_MESSAGE_ID_CHARS: usize = 200;
/// Longest `failure_reason`, in characters.
pub const MAX_FAILURE_REASON_CHARS: usize = 1000;

/// The routes of this function (checked against `template.yaml`). They need only the
/// database pool, so the Lambda runs them without the JWT configuration of the user-facing
/// functions.
pub fn routes<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Pool: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(update_delivery_status))
        .routes(routes!(feed::deliveries))
}

/// The router of this function.
pub fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Pool: FromRef<S>,
{
    routes().split_for_parts().0
}

/// The OpenAPI description of this function's routes (merged by
/// [`shared::openapi::document`]).
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes::<Pool>().into_openapi()
}

/// The request body's schema: an array of at most [`MAX_REPORTS`] items, each a
/// `DeliveryReport` or anything else (answered `invalid`, item by item, not refused whole).
struct Reports;

impl PartialSchema for Reports {
    fn schema() -> RefOr<Schema> {
        let item = AnyOfBuilder::new()
            .item(Ref::from_schema_name(RawReport::name()))
            .item(
                ObjectBuilder::new()
                    .schema_type(SchemaType::AnyValue)
                    .description(Some(
                        "Anything else is answered `invalid`, with the reason, in its result.",
                    )),
            )
            .build();
        ArrayBuilder::new()
            .items(RefOr::T(Schema::AnyOf(item)))
            .max_items(Some(MAX_REPORTS))
            .description(Some("Delivery reports, at most 1,000 (and 1 MiB)."))
            .into()
    }
}

impl ToSchema for Reports {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((RawReport::name().into_owned(), RawReport::schema()));
    }
}

/// Checks the API key of `X-API-Key` (no signature): the key and its tenant. 401 for a
/// missing, unknown, revoked or unbound key.
async fn authenticate_key(
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
    let key = webhooks::active_key(&client, id).await?;
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
async fn authenticate(
    pool: &Pool,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(ActiveKey, TenantName, Option<String>), ApiError> {
    let (key, tenant) = authenticate_key(pool, headers).await?;
    let message_id = verify_signature(&key, headers, body)?;
    Ok((key, tenant, message_id))
}

/// One delivery report.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = DeliveryReport)]
struct RawReport {
    /// The campaign.
    campaign_id: i32,
    /// The customer it was delivered to.
    customer_id: Uuid,
    /// `sent` or `failed` (the delivery's result), or `unsubscribed` / `complained` (the
    /// customer opts out of the campaign's channel; the delivery's result is not changed).
    #[schema(pattern = "^(sent|failed|unsubscribed|complained)$")]
    status: String,
    /// When the provider sent (or gave up); a report no later than the recorded one
    /// changes nothing.
    sent_at: DateTime<Utc>,
    /// The provider's id for the message, at most 200 characters.
    #[serde(default)]
    #[schema(max_length = 200)]
    provider_message_id: Option<String>,
    /// Why it failed, at most 1,000 characters.
    #[serde(default)]
    #[schema(max_length = 1000)]
    failure_reason: Option<String>,
}

/// A valid array item.
enum Parsed {
    /// A delivery's result.
    Delivery(DeliveryReport),
    /// A customer's opt-out through a delivery.
    OptOut(OptOutReport),
}

/// Validates one array item received at `now`.
fn validate(index: i32, item: Value, now: DateTime<Utc>) -> Result<Parsed, String> {
    let raw: RawReport = serde_json::from_value(item).map_err(|e| e.to_string())?;
    if raw.sent_at > now + chrono::Duration::seconds(MAX_CLOCK_SKEW_SECS) {
        return Err(format!(
            "sent_at lies more than {MAX_CLOCK_SKEW_SECS} seconds in the future"
        ));
    }
    let status = match raw.status.as_str() {
        "sent" => DeliveryStatus::Sent,
        "failed" => DeliveryStatus::Failed,
        kind @ ("unsubscribed" | "complained") => {
            return Ok(Parsed::OptOut(OptOutReport {
                index,
                campaign_id: raw.campaign_id,
                customer_id: raw.customer_id,
                kind: if kind == "unsubscribed" {
                    "unsubscribed"
                } else {
                    "complained"
                },
            }));
        }
        other => {
            return Err(format!(
                "status {other:?} is not sent, failed, unsubscribed or complained"
            ));
        }
    };
    if [&raw.provider_message_id, &raw.failure_reason]
        .into_iter()
        .flatten()
        .any(|text| text.contains('\0'))
    {
        return Err("text must not contain the NUL character (U+0000)".into());
    }
    let too_long =
        |v: &Option<String>, max: usize| v.as_ref().is_some_and(|s| s.chars().count() > max);
    if too_long(&raw.provider_message_id, MAX_PROVIDER_MESSAGE_ID_CHARS) {
        return Err(format!(
            "provider_message_id is longer than {MAX_PROVIDER_MESSAGE_ID_CHARS} characters"
        ));
    }
    if too_long(&raw.failure_reason, MAX_FAILURE_REASON_CHARS) {
        return Err(format!(
            "failure_reason is longer than {MAX_FAILURE_REASON_CHARS} characters"
        ));
    }
    Ok(Parsed::Delivery(DeliveryReport {
        index,
        campaign_id: raw.campaign_id,
        customer_id: raw.customer_id,
        status,
        sent_at: raw.sent_at,
        provider_message_id: raw.provider_message_id,
        failure_reason: raw.failure_reason,
    }))
}

/// What happened to one report (`updated`, `unchanged`, `not_found`, `invalid`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum ItemStatus {
    Updated,
    Unchanged,
    NotFound,
    Invalid,
}

impl ItemResult {
    /// The result of report `index` that the database judged `outcome`.
    fn judged(index: i32, outcome: ReportOutcome) -> Self {
        let (status, reason) = match outcome {
            ReportOutcome::Updated => (ItemStatus::Updated, None),
            ReportOutcome::Unchanged => (ItemStatus::Unchanged, None),
            ReportOutcome::NotFound => (ItemStatus::NotFound, None),
            ReportOutcome::CampaignNotOpen => (
                ItemStatus::Invalid,
                Some("only active, paused or completed campaigns accept reports"),
            ),
            ReportOutcome::BeforeRelease => (
                ItemStatus::Invalid,
                Some("sent_at is earlier than the delivery's release to providers"),
            ),
        };
        Self {
            index,
            status,
            reason: reason.map(str::to_owned),
        }
    }
}

/// One report's result.
#[derive(Debug, Serialize, ToSchema)]
struct ItemResult {
    /// The report's position in the request, from 0.
    index: i32,
    /// Its outcome.
    status: ItemStatus,
    /// Why it was `invalid` or `unchanged`, when there is more to say.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// Counts per outcome.
#[derive(Debug, Default, Serialize, ToSchema)]
struct Summary {
    /// Reports applied.
    updated: usize,
    /// Reports that changed nothing (an equal or later event is recorded, or a replay).
    unchanged: usize,
    /// Reports naming no delivery of that campaign.
    not_found: usize,
    /// Items that are not valid reports.
    invalid: usize,
}

/// The answer: every report's outcome, in request order, and the counts.
#[derive(Debug, Serialize, ToSchema)]
struct Answer {
    /// One result per item, in request order.
    results: Vec<ItemResult>,
    /// Counts per outcome.
    summary: Summary,
    /// The key's campaigns that valid reports named, by id, each with the offer version it
    /// delivers (what the provider should have sent).
    campaigns: Vec<PinnedCampaign>,
}

/// Report delivery results (provider webhook).
///
/// `POST /system/campaigns/update-delivery-status`.
#[utoipa::path(
    post,
    path = "/system/campaigns/update-delivery-status",
    tag = "delivery",
    security(("webhook_key" = [])),
    params(
        ("webhook-id" = Option<String>, Header, description = "Standard Webhooks message id (keys with a signing secret only); a replayed id changes nothing."),
        ("webhook-timestamp" = Option<String>, Header, description = "Standard Webhooks Unix timestamp, within 5 minutes (signing keys only)."),
        ("webhook-signature" = Option<String>, Header, description = "Standard Webhooks `v1,<base64 HMAC-SHA256 of id.timestamp.body>` (signing keys only)."),
    ),
    request_body = Reports,
    responses(
        (status = 200, description = "Every report's outcome, in request order, with counts. Items that are not valid reports are answered `invalid` with a reason; the others are applied in one statement.", body = Answer),
    )
)]
async fn update_delivery_status(
    State(pool): State<Pool>,
    request: Request,
) -> Result<AppJson<Answer>, ApiError> {
    let headers = request.headers().clone();
    let body = read_body_limited(request.into_body(), MAX_BODY_BYTES).await?;
    let (key, tenant, message_id) = authenticate(&pool, &headers, &body).await?;
    if !has_media_type(&headers, "application/json") {
        return Err(ApiError::UnsupportedMediaType(
            "send the reports as application/json".into(),
        ));
    }
    if let Some(pointer) = shared::http::duplicate_key(&body) {
        return Err(shared::http::duplicate_key_error(pointer));
    }
    let items: Vec<Value> = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Array(items)) => items,
        Ok(_) => {
            return Err(ApiError::invalid_field(
                "",
                "the body must be a JSON array of reports",
            ));
        }
        Err(e) => {
            return Err(ApiError::BadRequest {
                detail: format!("the body is not valid JSON: {e}"),
                errors: Vec::new(),
            });
        }
    };
    if items.len() > MAX_REPORTS {
        return Err(ApiError::Unprocessable {
            detail: format!("at most {MAX_REPORTS} reports per request; split the batch"),
            errors: Vec::new(),
        });
    }
    let mut outcomes: Vec<ItemResult> = Vec::with_capacity(items.len());
    let mut reports: Vec<DeliveryReport> = Vec::new();
    let mut opt_outs: Vec<OptOutReport> = Vec::new();
    let now = Utc::now();
    for (index, item) in items.into_iter().enumerate() {
        let index = i32::try_from(index).unwrap_or(i32::MAX);
        match validate(index, item, now) {
            Ok(Parsed::Delivery(report)) => reports.push(report),
            Ok(Parsed::OptOut(report)) => opt_outs.push(report),
            Err(reason) => outcomes.push(ItemResult {
                index,
                status: ItemStatus::Invalid,
                reason: Some(reason),
            }),
        }
    }
    // Of several reports for one delivery, only the latest (then the last sent) is applied.
    let mut latest: HashMap<(i32, Uuid), usize> = HashMap::new();
    for (i, report) in reports.iter().enumerate() {
        let slot = latest
            .entry((report.campaign_id, report.customer_id))
            .or_insert(i);
        if (report.sent_at, report.index) > (reports[*slot].sent_at, reports[*slot].index) {
            *slot = i;
        }
    }
    let (winners, superseded): (Vec<_>, Vec<_>) = reports
        .into_iter()
        .enumerate()
        .partition(|(i, r)| latest.get(&(r.campaign_id, r.customer_id)) == Some(i));
    let winners: Vec<DeliveryReport> = winners.into_iter().map(|(_, r)| r).collect();
    outcomes.extend(superseded.into_iter().map(|(_, r)| ItemResult {
        index: r.index,
        status: ItemStatus::Unchanged,
        reason: Some("a later report for the same delivery is in this batch".into()),
    }));

    let mut client = pool.get().await?;
    let tx = tenant_transaction(&mut client, &tenant).await?;
    let replayed = match &message_id {
        Some(id) => !webhooks::record_message(&tx, key.id, id).await?,
        None => false,
    };
    if replayed {
        let indexes = winners.iter().map(|r| r.index);
        outcomes.extend(
            indexes
                .chain(opt_outs.iter().map(|r| r.index))
                .map(|index| ItemResult {
                    index,
                    status: ItemStatus::Unchanged,
                    reason: Some("this webhook-id was already processed".into()),
                }),
        );
    } else {
        if !winners.is_empty() {
            for (index, outcome) in webhooks::apply_reports(&tx, &tenant, &winners).await? {
                outcomes.push(ItemResult::judged(index, outcome));
            }
        }
        if !opt_outs.is_empty() {
            for (index, outcome) in
                webhooks::apply_opt_outs(&tx, &tenant, key.id, &opt_outs).await?
            {
                outcomes.push(ItemResult::judged(index, outcome));
            }
        }
    }
    let mut named: Vec<i32> = winners
        .iter()
        .map(|r| r.campaign_id)
        .chain(opt_outs.iter().map(|r| r.campaign_id))
        .collect();
    named.sort_unstable();
    named.dedup();
    let campaigns = if named.is_empty() {
        Vec::new()
    } else {
        webhooks::pinned_campaigns(&tx, &tenant, &named).await?
    };
    webhooks::touch_key(&tx, key.id).await?;
    tx.commit().await?;

    outcomes.sort_by_key(|r| r.index);
    let mut summary = Summary::default();
    for result in &outcomes {
        match result.status {
            ItemStatus::Updated => summary.updated += 1,
            ItemStatus::Unchanged => summary.unchanged += 1,
            ItemStatus::NotFound => summary.not_found += 1,
            ItemStatus::Invalid => summary.invalid += 1,
        }
    }
    tracing::info!(webhook.key_id = %key.id, tenant.name = %tenant, replayed, updated = summary.updated,
        unchanged = summary.unchanged, not_found = summary.not_found, invalid = summary.invalid,
        "delivery reports applied");
    Ok(AppJson(Answer {
        results: outcomes,
        summary,
        campaigns,
    }))
}
