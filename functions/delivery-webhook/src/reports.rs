//! Delivery reports: `POST /system/campaigns/update-delivery-status`. The body is parsed item
//! by item, each report validated, the latest per delivery kept, and the batch applied by
//! `shared::db` in one statement; the answer lists every item.

use std::collections::HashMap;

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::ApiError;
use shared::config::ReportGrace;
use shared::db::campaigns::reports::{
    self, DeliveryReport, OptOutReport, PinnedCampaign, ReportOutcome,
};
use shared::db::in_tenant;
use shared::db::webhook_keys;
use shared::domain::DeliveryStatus;
use shared::http::{AppJson, has_media_type, read_body_limited};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::Schema;
use utoipa::{PartialSchema, ToSchema};
use uuid::Uuid;

use crate::provider::authenticate;

/// How far in the future a report's `sent_at` may lie (the provider's clock may run ahead), in
/// seconds.
pub const MAX_CLOCK_SKEW_SECS: i64 = 5 * 60;
/// Most reports per request.
pub const MAX_REPORTS: usize = 1000;
/// Largest body, in bytes.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Longest `provider_message_id`, in characters.
pub const MAX_PROVIDER_MESSAGE_ID_CHARS: usize = 200;
/// Longest `failure_reason`, in characters.
pub const MAX_FAILURE_REASON_CHARS: usize = 1000;

/// The request body's schema: an array of at most [`MAX_REPORTS`] items, each a
/// `DeliveryReport` or anything else (answered `invalid`, item by item, not refused whole).
pub(crate) struct Reports;

impl PartialSchema for Reports {
    fn schema() -> RefOr<Schema> {
        shared::openapi::item_by_item_array(
            &RawReport::name(),
            MAX_REPORTS,
            "Delivery reports, at most 1,000 (and 1 MiB).",
        )
    }
}

impl ToSchema for Reports {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((RawReport::name().into_owned(), RawReport::schema()));
    }
}

/// One delivery report.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = DeliveryReport)]
pub(crate) struct RawReport {
    /// The campaign.
    campaign_id: i32,
    /// The customer it was delivered to.
    customer_id: Uuid,
    /// The delivery's result, `sent` or `failed` (`bounced` is a failure); an engagement
    /// stage, `delivered`, `opened` or `clicked`; or `unsubscribed` / `complained` (the
    /// customer opts out of the campaign's channel; the delivery's result is not changed).
    #[schema(pattern = "^(sent|failed|bounced|delivered|opened|clicked|unsubscribed|complained)$")]
    status: String,
    /// When it happened (also accepted as `occurred_at`). A result no later than the
    /// recorded one changes nothing; a stage keeps its first time.
    #[serde(alias = "occurred_at")]
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
pub(crate) enum Parsed {
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
    let mut failure_reason = raw.failure_reason;
    let status = match raw.status.as_str() {
        "sent" => DeliveryStatus::Sent,
        "failed" => DeliveryStatus::Failed,
        "bounced" => {
            failure_reason.get_or_insert_with(|| "bounced".to_owned());
            DeliveryStatus::Failed
        }
        "delivered" => DeliveryStatus::Delivered,
        "opened" => DeliveryStatus::Opened,
        "clicked" => DeliveryStatus::Clicked,
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
                "status {other:?} is not sent, failed, bounced, delivered, opened, clicked, \
                 unsubscribed or complained"
            ));
        }
    };
    if [&raw.provider_message_id, &failure_reason]
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
    if too_long(&failure_reason, MAX_FAILURE_REASON_CHARS) {
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
        failure_reason,
    }))
}

/// What happened to one report (`updated`, `unchanged`, `not_found`, `invalid`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ItemStatus {
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
                    "the campaign ended longer ago than the report grace period \
                     (CAMPAIGN_REPORT_GRACE_DAYS)",
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
pub(crate) struct ItemResult {
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
pub(crate) struct Summary {
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
pub(crate) struct Answer {
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
pub(crate) async fn report_delivery_status(
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
            Some(id) => !webhook_keys::record_message(tx, key.id, id).await?,
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
                for (index, outcome) in reports::apply_reports(tx, &winners, grace).await? {
                    outcomes.push(ItemResult::judged(index, outcome));
                }
            }
            if !opt_outs.is_empty() {
                for (index, outcome) in reports::apply_opt_outs(tx, key.id, &opt_outs).await? {
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
            reports::pinned_campaigns(tx, &named).await?
        };
        webhook_keys::touch_key(tx, key.id).await?;
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

/// Of several results (`sent`, `failed`) for one delivery, only the latest is applied (of
/// two at the same time, the later in the request): the winners, and an `unchanged` result
/// for each of the others. Results never go back in time within a batch either. Stages all
/// go on (the statement keeps each stage's earliest time).
fn latest_wins(reports: Vec<DeliveryReport>) -> (Vec<DeliveryReport>, Vec<ItemResult>) {
    let is_result =
        |r: &DeliveryReport| matches!(r.status, DeliveryStatus::Sent | DeliveryStatus::Failed);
    let mut latest: HashMap<(i32, Uuid), usize> = HashMap::new();
    for (i, report) in reports.iter().enumerate().filter(|(_, r)| is_result(r)) {
        let slot = latest
            .entry((report.campaign_id, report.customer_id))
            .or_insert(i);
        if (report.sent_at, report.index) > (reports[*slot].sent_at, reports[*slot].index) {
            *slot = i;
        }
    }
    let (winners, superseded): (Vec<_>, Vec<_>) =
        reports.into_iter().enumerate().partition(|(i, r)| {
            !is_result(r) || latest.get(&(r.campaign_id, r.customer_id)) == Some(i)
        });
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
