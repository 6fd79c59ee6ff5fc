//! Did an offer work: conversions in (`POST /tenants/{t}/conversions`) and a campaign's
//! results out (`GET …/campaigns/{id}/results`), its treated group against its holdout.

use std::collections::{BTreeMap, HashSet};

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::auth::{Permission, Principal};
use shared::db::conversions::{self, ConversionOutcome, NewConversion};
use shared::db::in_tenant;
use shared::db::results::{self, Funnel, GroupCounts};
use shared::http::{AppJson, AppPath, AppQuery};
use shared::openapi::Conflict;
use shared::paths::{CampaignPath, TenantPath};
use shared::uplift::{self, Confidence, Group, Lift};
use shared::{ApiError, AppState};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::Schema;
use utoipa::{IntoParams, PartialSchema, ToSchema};
use uuid::Uuid;

/// Most conversions per request.
pub const MAX_CONVERSIONS: usize = 1000;
/// A conversion's value is below this (and at least 0), with at most 4 decimals.
const MAX_VALUE: f64 = 1e15;

/// `POST /tenants/{t}/conversions` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConversionBatch {
    /// At most 1,000 conversions; each is answered on its own, as a delivery report is.
    conversions: ConversionItems,
}

/// The items of a [`ConversionBatch`]: at most [`MAX_CONVERSIONS`], each a `Conversion` or
/// anything else (answered `invalid`, item by item, not refused whole).
#[derive(Deserialize)]
#[serde(transparent)]
pub(crate) struct ConversionItems(Vec<Value>);

impl PartialSchema for ConversionItems {
    fn schema() -> RefOr<Schema> {
        shared::openapi::item_by_item_array(
            &RawConversion::name(),
            MAX_CONVERSIONS,
            "Conversions, at most 1,000.",
        )
    }
}

impl ToSchema for ConversionItems {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((RawConversion::name().into_owned(), RawConversion::schema()));
    }
}

/// One conversion: what the bank's own systems saw a customer do.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Conversion)]
pub(crate) struct RawConversion {
    /// The tenant's id of the event, 1 to 200 characters; the same id again changes nothing.
    #[schema(min_length = 1, max_length = 200)]
    event_id: String,
    /// The customer (give this or `email`).
    customer_id: Option<Uuid>,
    /// The customer's e-mail address as imported (give this or `customer_id`).
    email: Option<String>,
    /// When it happened (at most 5 minutes ahead of the server's clock).
    occurred_at: DateTime<Utc>,
    /// The offer it was for, if known: it then counts only for that offer's campaigns.
    offer_id: Option<i32>,
    /// What it was worth, 0 to 10^15 with at most 4 decimals (needs `currency`).
    value: Option<f64>,
    /// ISO 4217 code of `value`'s currency, three capital letters (needs `value`).
    #[schema(pattern = "^[A-Z]{3}$")]
    currency: Option<String>,
}

/// What happened to one conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ItemStatus {
    /// Recorded now.
    Recorded,
    /// Already recorded (same `event_id`): nothing changed.
    Unchanged,
    /// No such customer, or no such offer in the tenant.
    NotFound,
    /// Not a valid conversion.
    Invalid,
}

/// One conversion's result.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct ItemResult {
    /// Its position in `conversions`, from 0.
    index: i32,
    /// Its outcome.
    status: ItemStatus,
    /// Why it was not recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// Counts per outcome.
#[derive(Debug, Default, Serialize, ToSchema)]
pub(crate) struct ConversionSummary {
    /// Recorded now.
    recorded: usize,
    /// Already recorded.
    unchanged: usize,
    /// Naming no known customer or offer.
    not_found: usize,
    /// Not valid.
    invalid: usize,
}

/// The answer: every conversion's outcome in request order, and the counts.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ConversionAnswer {
    /// One result per item, in request order.
    results: Vec<ItemResult>,
    /// Counts per outcome.
    summary: ConversionSummary,
}

/// Validates one item received at `now` with the rules conversion files share
/// ([`conversions::check_event_id`] and the others).
fn validate(index: i32, item: Value, now: DateTime<Utc>) -> Result<NewConversion, String> {
    let raw: RawConversion = serde_json::from_value(item).map_err(|e| e.to_string())?;
    conversions::check_event_id(&raw.event_id)?;
    let customer = conversions::customer_ref(raw.customer_id, raw.email)?;
    conversions::check_occurred_at(raw.occurred_at, now)?;
    let value = match (raw.value, raw.currency) {
        (None, None) => None,
        (Some(value), Some(currency)) => {
            // A JSON number is a binary fraction: 4 decimals are taken within rounding.
            if !(0.0..MAX_VALUE).contains(&value)
                || ((value * 1e4).round() - value * 1e4).abs() > 1e-6 * value.max(1.0)
            {
                return Err(conversions::AMOUNT_RULE.into());
            }
            conversions::check_currency(&currency)?;
            Some((value.to_string(), currency))
        }
        _ => return Err("value and currency go together".into()),
    };
    Ok(NewConversion {
        index,
        event_id: raw.event_id,
        customer,
        occurred_at: raw.occurred_at,
        offer_id: raw.offer_id,
        value,
    })
}

/// Record conversions.
///
/// `POST /tenants/{t}/conversions` (`conversion.write`): at most 1,000 conversions, each
/// answered on its own (`recorded`, `unchanged` for an `event_id` the tenant already has,
/// `not_found` for an unknown customer or offer, `invalid` with the reason), recorded in one
/// transaction. A repeated `event_id` within the request is answered `unchanged` after its
/// first occurrence. Which campaigns a conversion counts for is decided when results are
/// read (docs/results.md).
#[utoipa::path(
    post,
    path = "/tenants/{tenant_name}/conversions",
    tag = "results",
    params(TenantPath),
    request_body = ConversionBatch,
    responses(
        (status = 200, description = "Every conversion's outcome, in request order, with counts.", body = ConversionAnswer),
    )
)]
pub(crate) async fn record_conversions(
    State(state): State<AppState>,
    principal: Principal,
    AppPath(TenantPath {
        tenant_name: tenant,
    }): AppPath<TenantPath>,
    AppJson(body): AppJson<ConversionBatch>,
) -> Result<AppJson<ConversionAnswer>, ApiError> {
    principal.require(&tenant, Permission::ConversionWrite)?;
    let items = body.conversions.0;
    if items.len() > MAX_CONVERSIONS {
        return Err(ApiError::invalid_field(
            "conversions",
            format!("at most {MAX_CONVERSIONS} items per request"),
        ));
    }
    let now = Utc::now();
    let mut results = Vec::with_capacity(items.len());
    let mut valid = Vec::new();
    let mut seen = HashSet::new();
    for (index, item) in (0..).zip(items) {
        match validate(index, item, now) {
            Ok(conversion) if !seen.insert(conversion.event_id.clone()) => {
                results.push(ItemResult {
                    index,
                    status: ItemStatus::Unchanged,
                    reason: Some("the same event_id came earlier in this request".into()),
                });
            }
            Ok(conversion) => valid.push(conversion),
            Err(reason) => results.push(ItemResult {
                index,
                status: ItemStatus::Invalid,
                reason: Some(reason),
            }),
        }
    }
    if !valid.is_empty() {
        let outcomes = in_tenant(&state.pool, &tenant, async |tx| {
            conversions::record(tx, &valid).await
        })
        .await?;
        results.extend(outcomes.into_iter().map(|(index, outcome)| {
            let (status, reason) = match outcome {
                ConversionOutcome::Recorded => (ItemStatus::Recorded, None),
                ConversionOutcome::Duplicate => (
                    ItemStatus::Unchanged,
                    Some("this event_id was already recorded"),
                ),
                ConversionOutcome::UnknownCustomer => {
                    (ItemStatus::NotFound, Some(conversions::UNKNOWN_CUSTOMER))
                }
                ConversionOutcome::UnknownOffer => {
                    (ItemStatus::NotFound, Some(conversions::UNKNOWN_OFFER))
                }
            };
            ItemResult {
                index,
                status,
                reason: reason.map(str::to_owned),
            }
        }));
    }
    results.sort_by_key(|r| r.index);
    let mut summary = ConversionSummary::default();
    for r in &results {
        *match r.status {
            ItemStatus::Recorded => &mut summary.recorded,
            ItemStatus::Unchanged => &mut summary.unchanged,
            ItemStatus::NotFound => &mut summary.not_found,
            ItemStatus::Invalid => &mut summary.invalid,
        } += 1;
    }
    tracing::info!(user.name = %principal.username, tenant.name = %tenant,
        recorded = summary.recorded, unchanged = summary.unchanged,
        not_found = summary.not_found, invalid = summary.invalid, "conversions recorded");
    Ok(AppJson(ConversionAnswer { results, summary }))
}

/// `GET …/results` parameters.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ResultsQuery {
    /// The intervals' confidence level: `0.90`, `0.95` (the default) or `0.99`.
    #[param(pattern = "^0\\.(90?|95|99)$")]
    confidence: Option<String>,
}

/// One group's results.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct GroupResult {
    /// Customers in the group.
    customers: i64,
    /// Of them, customers who converted (at most once each).
    converted: i64,
    /// `converted / customers`; null for an empty group.
    conversion_rate: Option<f64>,
    /// Summed value of the conversions that count, per currency.
    value: BTreeMap<String, f64>,
}

impl From<&GroupCounts> for GroupResult {
    fn from(counts: &GroupCounts) -> Self {
        Self {
            customers: counts.customers,
            converted: counts.converted,
            conversion_rate: group(counts).rate(),
            value: counts.value.clone(),
        }
    }
}

fn group(counts: &GroupCounts) -> Group {
    Group {
        customers: counts.customers,
        converted: counts.converted,
    }
}

/// A campaign's results.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CampaignResults {
    /// The campaign.
    campaign_id: i32,
    /// Its holdout, in percent.
    holdout_percent: f64,
    /// Conversions count until this instant: the campaign's end plus its
    /// `conversion_window_days`.
    conversions_until: DateTime<Utc>,
    /// The intervals' confidence level.
    confidence: f64,
    /// Released customers (contacted, or meant to be: failed and expired deliveries stay in
    /// their group).
    treated: GroupResult,
    /// Held-out customers, never contacted.
    control: GroupResult,
    /// The treated group from release to conversion.
    funnel: Funnel,
    /// The treated rate's difference from the control rate, with Newcombe's hybrid score
    /// interval and the pooled z-test's p-value; null when either group is empty.
    lift: Option<Lift>,
    /// What to keep in mind when reading these numbers (no control group, small groups, an
    /// open conversion window), in plain words.
    notes: Vec<String>,
}

/// Read a campaign's results.
///
/// `GET /tenants/{t}/campaigns/{id}/results?confidence=` (`campaign.read`): its treated and
/// control groups with their conversions, the treated group's funnel, and the lift with its
/// interval (docs/results.md says how to read them). An archived campaign answers from the
/// counts kept with its archive; one archived before results were kept is 409.
#[utoipa::path(
    get,
    path = "/tenants/{tenant_name}/campaigns/{campaign_id}/results",
    tag = "results",
    params(CampaignPath, ResultsQuery),
    responses(
        (status = 200, description = "The campaign's results.", body = CampaignResults),
        (status = 409, response = Conflict),
    )
)]
pub(crate) async fn get_campaign_results(
    State(state): State<AppState>,
    principal: Principal,
    AppPath(path): AppPath<CampaignPath>,
    AppQuery(query): AppQuery<ResultsQuery>,
) -> Result<AppJson<CampaignResults>, ApiError> {
    let (tenant, id) = (&path.tenant_name, path.campaign_id);
    principal.require(tenant, Permission::CampaignRead)?;
    let confidence = match query.confidence.as_deref() {
        None => Confidence::default(),
        Some(text) => Confidence::parse(text)
            .ok_or_else(|| ApiError::invalid_field("confidence", "must be 0.90, 0.95 or 0.99"))?,
    };
    let (campaign, counts) = in_tenant(&state.pool, tenant, async |tx| {
        let campaign = path.load(tx, false).await?;
        let counts = results::stored_or_live(tx, id).await?;
        Ok((campaign, counts))
    })
    .await?;
    let Some(counts) = counts else {
        return Err(ApiError::Conflict(format!(
            "campaign {id} was archived before results were kept with archives; restore it \
             (`offerctl archive restore {id}`) to read its results"
        )));
    };
    let conversions_until =
        campaign.ends_at + chrono::Duration::days(i64::from(campaign.conversion_window_days));
    let (treated, control) = (group(&counts.treated), group(&counts.control));
    let lift = uplift::lift(treated, control, confidence);
    let notes = notes(
        campaign.holdout_percent,
        treated,
        control,
        conversions_until,
    );
    Ok(AppJson(CampaignResults {
        campaign_id: id,
        holdout_percent: campaign.holdout_percent,
        conversions_until,
        confidence: confidence.level(),
        treated: (&counts.treated).into(),
        control: (&counts.control).into(),
        funnel: counts.funnel,
        lift,
        notes,
    }))
}

/// The plain-words caveats of a result.
fn notes(
    holdout_percent: f64,
    treated: Group,
    control: Group,
    conversions_until: DateTime<Utc>,
) -> Vec<String> {
    let mut notes = Vec::new();
    if holdout_percent == 0.0 {
        notes.push(
            "no control group: the campaign's holdout_percent is 0, so nothing says how many \
             of the treated customers would have converted anyway; there is no lift"
                .to_owned(),
        );
    } else if control.customers == 0 {
        notes.push(
            "the control group is empty (nobody was released yet, or every draw fell to the \
             treated group): there is no lift yet"
                .to_owned(),
        );
    }
    if treated.customers > 0 && control.customers > 0 {
        let pooled = (treated.converted + control.converted) as f64
            / (treated.customers + control.customers) as f64;
        let smallest = [treated.customers, control.customers]
            .into_iter()
            .flat_map(|n| [n as f64 * pooled, n as f64 * (1.0 - pooled)])
            .fold(f64::INFINITY, f64::min);
        if smallest < 5.0 {
            notes.push(
                "a group expects fewer than 5 conversions or non-conversions: the interval \
                 (Newcombe's hybrid score) still holds, but the z-test's p-value is a rough \
                 approximation and the lift is too uncertain to act on alone"
                    .to_owned(),
            );
        }
    }
    if Utc::now() < conversions_until {
        notes.push(format!(
            "the conversion window is still open (until {conversions_until}): these results \
             will change"
        ));
    }
    notes
}
