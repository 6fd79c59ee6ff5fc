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
use shared::config::ReportGrace;
use shared::db::in_tenant;
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

/// The state of this function's routes: the platform pool and the report grace period, so
/// the Lambda runs them without the JWT configuration of the user-facing functions.
#[derive(Debug, Clone)]
pub struct WebhookState {
    /// A pool in the platform scope (the key is found before its tenant is known).
    pub pool: Pool,
    /// How long after a campaign's end its reports are accepted.
    pub report_grace: ReportGrace,
}

impl FromRef<WebhookState> for Pool {
    fn from_ref(state: &WebhookState) -> Pool {
        state.pool.clone()
    }
}

impl FromRef<WebhookState> for ReportGrace {
    fn from_ref(state: &WebhookState) -> ReportGrace {
        state.report_grace
    }
}

/// The routes of this function (checked against `template.yaml`), on any state that gives
/// the platform pool and the grace period ([`WebhookState`], or the local server's
/// `AppState`).
pub fn routes<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Pool: FromRef<S>,
    ReportGrace: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(report_delivery_status))
        .routes(routes!(feed::list_deliveries))
}

/// The router of this function.
pub fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Pool: FromRef<S>,
    ReportGrace: FromRef<S>,
{
    routes().split_for_parts().0
}

/// The OpenAPI description of this function's routes (merged by
/// [`shared::openapi::document`]).
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes::<WebhookState>().into_openapi()
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
            ReportOutcome::AfterEnd => (
                ItemStatus::Invalid,
                Some("sent_at is at or after the campaign's end (ends_at)"),
            ),
            ReportOutcome::GracePassed => (
                ItemStatus::Invalid,
                Some(
                    "the campaign ended longer ago than the report grace period                      (CAMPAIGN_REPORT_GRACE_DAYS)",
                ),
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
#[derive(Debug, Clone, Serialize, ToSchema)]
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
async fn report_delivery_status(
    State(pool): State<Pool>,
    State(grace): State<ReportGrace>,
    request: Request,
) -> Result<AppJson<Answer>, ApiError> {
    let headers = request.headers().clone();
    let body = read_body_limited(request.into_body(), MAX_BODY_BYTES).await?;
    let (key, tenant, message_id) = authenticate(&pool, &headers, &body).await?;
    let items = parse_items(&headers, &body)?;
    let (reports, opt_outs, mut outcomes) = validate_all(items, Utc::now());
    let (winners, superseded) = latest_wins(reports);
    outcomes.extend(superseded);

    let (replayed, campaigns) = in_tenant(&pool, &tenant, async |tx| {
        let replayed = match &message_id {
            Some(id) => !webhooks::record_message(tx.transaction(), key.id, id).await?,
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
                for (index, outcome) in webhooks::apply_reports(tx, &winners, grace).await? {
                    outcomes.push(ItemResult::judged(index, outcome));
                }
            }
            if !opt_outs.is_empty() {
                for (index, outcome) in webhooks::apply_opt_outs(tx, key.id, &opt_outs).await? {
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
            webhooks::pinned_campaigns(tx, &named).await?
        };
        webhooks::touch_key(tx.transaction(), key.id).await?;
        Ok((replayed, campaigns))
    })
    .await?;

    let answer = Answer::of(outcomes, campaigns);
    let summary = &answer.summary;
    tracing::info!(webhook.key_id = %key.id, tenant.name = %tenant, replayed, updated = summary.updated,
        unchanged = summary.unchanged, not_found = summary.not_found, invalid = summary.invalid,
        "delivery reports applied");
    Ok(AppJson(answer))
}

/// The request's items: a JSON array (`application/json`, no repeated member names) of at
/// most [`MAX_REPORTS`] values, each still to be validated on its own.
///
/// # Errors
/// 415 for another media type; 400 for text that is not JSON; 422 for a body that is not an
/// array, repeats a member name, or holds too many items.
fn parse_items(headers: &HeaderMap, body: &[u8]) -> Result<Vec<Value>, ApiError> {
    if !has_media_type(headers, "application/json") {
        return Err(ApiError::UnsupportedMediaType(
            "send the reports as application/json".into(),
        ));
    }
    if let Some(pointer) = shared::http::duplicate_key(body) {
        return Err(shared::http::duplicate_key_error(pointer));
    }
    let items: Vec<Value> = match serde_json::from_slice::<Value>(body) {
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
    Ok(items)
}

/// Validates every item received at `now`: the delivery results, the opt-outs, and an
/// `invalid` result (with the reason) for each item that is neither.
fn validate_all(
    items: Vec<Value>,
    now: DateTime<Utc>,
) -> (Vec<DeliveryReport>, Vec<OptOutReport>, Vec<ItemResult>) {
    let mut reports = Vec::new();
    let mut opt_outs = Vec::new();
    let mut invalid = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        let index = i32::try_from(index).unwrap_or(i32::MAX);
        match validate(index, item, now) {
            Ok(Parsed::Delivery(report)) => reports.push(report),
            Ok(Parsed::OptOut(report)) => opt_outs.push(report),
            Err(reason) => invalid.push(ItemResult {
                index,
                status: ItemStatus::Invalid,
                reason: Some(reason),
            }),
        }
    }
    (reports, opt_outs, invalid)
}

/// Of several reports for one delivery, only the latest is applied (of two at the same
/// time, the later in the request): the winners, and an `unchanged` result for each of the
/// others. Events never go back in time within a batch either.
fn latest_wins(reports: Vec<DeliveryReport>) -> (Vec<DeliveryReport>, Vec<ItemResult>) {
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
    let superseded = superseded
        .into_iter()
        .map(|(_, r)| ItemResult {
            index: r.index,
            status: ItemStatus::Unchanged,
            reason: Some("a later report for the same delivery is in this batch".into()),
        })
        .collect();
    (winners.into_iter().map(|(_, r)| r).collect(), superseded)
}

impl Answer {
    /// The answer of `outcomes` (sorted into request order, and counted) and the campaigns
    /// the reports named.
    fn of(mut outcomes: Vec<ItemResult>, campaigns: Vec<PinnedCampaign>) -> Self {
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
        Self {
            results: outcomes,
            summary,
            campaigns,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(index: i32, customer: u128, status: DeliveryStatus, minute: u32) -> DeliveryReport {
        DeliveryReport {
            index,
            campaign_id: 7,
            customer_id: Uuid::from_u128(customer),
            status,
            sent_at: DateTime::from_timestamp(1_800_000_000 + i64::from(minute) * 60, 0)
                .expect("time"),
            provider_message_id: None,
            failure_reason: None,
        }
    }

    #[test]
    fn of_several_reports_for_one_delivery_the_latest_wins() {
        let (winners, superseded) = latest_wins(vec![
            report(0, 1, DeliveryStatus::Sent, 5),
            report(1, 1, DeliveryStatus::Failed, 9),
            report(2, 2, DeliveryStatus::Sent, 3),
            report(3, 1, DeliveryStatus::Sent, 7),
            // Same time as index 2: the later in the request wins.
            report(4, 2, DeliveryStatus::Failed, 3),
        ]);
        let won: Vec<(i32, DeliveryStatus)> = winners.iter().map(|r| (r.index, r.status)).collect();
        assert_eq!(
            won,
            [(1, DeliveryStatus::Failed), (4, DeliveryStatus::Failed)]
        );
        let mut lost: Vec<i32> = superseded.iter().map(|r| r.index).collect();
        lost.sort_unstable();
        assert_eq!(lost, [0, 2, 3]);
        assert!(
            superseded
                .iter()
                .all(|r| r.status == ItemStatus::Unchanged && r.reason.is_some())
        );
    }

    #[test]
    fn items_are_judged_one_by_one_and_the_answer_counts_them_in_order() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).expect("time");
        let customer = Uuid::from_u128(1).to_string();
        let (reports, opt_outs, invalid) = validate_all(
            vec![
                serde_json::json!({"campaign_id": 7, "customer_id": customer, "status": "sent",
                                   "sent_at": "2027-01-15T08:00:00Z"}),
                serde_json::json!({"campaign_id": 7, "customer_id": customer,
                                   "status": "unsubscribed", "sent_at": "2027-01-15T08:00:00Z"}),
                serde_json::json!({"campaign_id": 7, "status": "sent"}),
                serde_json::json!({"campaign_id": 7, "customer_id": customer, "status": "sent",
                                   "sent_at": "2999-01-01T00:00:00Z"}),
            ],
            now,
        );
        assert_eq!((reports.len(), opt_outs.len(), invalid.len()), (1, 1, 2));
        let answer = Answer::of(
            vec![
                invalid[1].clone(),
                ItemResult::judged(0, ReportOutcome::Updated),
                ItemResult::judged(1, ReportOutcome::NotFound),
                invalid[0].clone(),
            ],
            Vec::new(),
        );
        let order: Vec<i32> = answer.results.iter().map(|r| r.index).collect();
        assert_eq!(order, [0, 1, 2, 3]);
        assert_eq!(
            (
                answer.summary.updated,
                answer.summary.not_found,
                answer.summary.invalid
            ),
            (1, 1, 2)
        );
    }
}
