//! The `conversions` aggregate (V025): what the bank's own systems saw customers do, one row
//! per event, idempotent by the tenant's `event_id`. Rows are facts: inserted and read,
//! never changed. Which campaign a conversion counts for is decided when results are read
//! ([`crate::db::results`]).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{CachedStatements, TenantTx};
use crate::error::ApiError;

/// Who converted: the customer's id, or their e-mail address as the customers table holds
/// it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CustomerRef {
    /// `customers.id`.
    Id(Uuid),
    /// `customers.email` (compared exactly).
    Email(String),
}

/// One valid conversion of a request or a file.
#[derive(Debug, Clone, PartialEq)]
pub struct NewConversion {
    /// Its position in the request (or its line in the file).
    pub index: i32,
    /// The tenant's id of the event, 1 to 200 characters: the same id again changes nothing.
    pub event_id: String,
    /// Who converted.
    pub customer: CustomerRef,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// The offer it was for, if the bank's system knows (it must be one of the tenant's).
    pub offer_id: Option<i32>,
    /// Its value and ISO 4217 currency code, if any: the amount as a decimal string (at
    /// most 4 decimals, below 10^15).
    pub value: Option<(String, String)>,
}

/// Longest `event_id`, in characters.
pub const MAX_EVENT_ID_CHARS: usize = 200;
/// Longest e-mail address naming a customer, in characters.
pub const MAX_EMAIL_CHARS: usize = 320;
/// How far in the future a conversion's `occurred_at` may lie (clocks differ), in seconds.
pub const MAX_CLOCK_SKEW_SECS: i64 = 5 * 60;
/// The reason [`check_amount`] gives: the API's and the files' rule for `value`.
pub const AMOUNT_RULE: &str = "value must be a number from 0 to 10^15 with at most 4 decimals";

// The field rules of one conversion, shared by `POST /tenants/{t}/conversions` and
// conversion files (`conversions/<tenant>/…`, `customer_import::conversions`) so that both
// refuse the same values with the same words.

/// An `event_id`: 1 to [`MAX_EVENT_ID_CHARS`] characters, no U+0000.
///
/// # Errors
/// The reason, as a sentence naming the field.
pub fn check_event_id(event_id: &str) -> Result<(), String> {
    let chars = event_id.chars().count();
    if chars == 0 || chars > MAX_EVENT_ID_CHARS {
        return Err(format!(
            "event_id must be 1 to {MAX_EVENT_ID_CHARS} characters"
        ));
    }
    if event_id.contains('\0') {
        return Err("event_id must not contain the NUL character (U+0000)".into());
    }
    Ok(())
}

/// Who converted, from exactly one of `customer_id` and `email` (1 to [`MAX_EMAIL_CHARS`]
/// characters, no U+0000).
///
/// # Errors
/// The reason, as a sentence naming the field.
pub fn customer_ref(id: Option<Uuid>, email: Option<String>) -> Result<CustomerRef, String> {
    match (id, email) {
        (Some(id), None) => Ok(CustomerRef::Id(id)),
        (None, Some(email)) if email.contains('\0') => {
            Err("email must not contain the NUL character (U+0000)".into())
        }
        (None, Some(email)) if !email.is_empty() && email.chars().count() <= MAX_EMAIL_CHARS => {
            Ok(CustomerRef::Email(email))
        }
        (None, Some(_)) => Err(format!("email must be 1 to {MAX_EMAIL_CHARS} characters")),
        _ => Err("give exactly one of customer_id and email".into()),
    }
}

/// `occurred_at` received at `now`: at most [`MAX_CLOCK_SKEW_SECS`] ahead.
///
/// # Errors
/// The reason, as a sentence naming the field.
pub fn check_occurred_at(occurred_at: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), String> {
    if occurred_at > now + chrono::Duration::seconds(MAX_CLOCK_SKEW_SECS) {
        return Err(format!(
            "occurred_at lies more than {MAX_CLOCK_SKEW_SECS} seconds in the future"
        ));
    }
    Ok(())
}

/// A value as decimal text: digits, at most 15 before the point and 4 after it (so 0 to
/// below 10^15, as `numeric(20, 4)` holds it), no sign or exponent.
///
/// # Errors
/// [`AMOUNT_RULE`].
pub fn check_amount(text: &str) -> Result<(), String> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    let fraction_ok = if text.contains('.') {
        (1..=4).contains(&fraction.len())
    } else {
        true
    };
    if (1..=15).contains(&whole.len()) && digits(whole) && digits(fraction) && fraction_ok {
        Ok(())
    } else {
        Err(AMOUNT_RULE.into())
    }
}

/// An ISO 4217 currency code: three capital letters.
///
/// # Errors
/// The reason, as a sentence naming the field.
pub fn check_currency(currency: &str) -> Result<(), String> {
    if currency.len() == 3 && currency.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err("currency must be an ISO 4217 code: three capital letters".into())
    }
}

/// The reason an unknown customer is given, by the API and by files.
pub const UNKNOWN_CUSTOMER: &str = "no customer has this customer_id or email";
/// The reason an offer the tenant does not have is given, by the API and by files.
pub const UNKNOWN_OFFER: &str = "the tenant has no such offer";

/// What happened to one conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConversionOutcome {
    /// Recorded now.
    Recorded,
    /// The tenant already has a conversion with this `event_id`: nothing changed.
    Duplicate,
    /// No customer has this id or e-mail address.
    UnknownCustomer,
    /// The tenant has no offer with this id.
    UnknownOffer,
}

/// Records `conversions` (distinct `event_id`s: the caller answers repeats within one
/// request) in one statement, in the tenant's transaction: each is `Recorded`, or a
/// `Duplicate` of an earlier event of the tenant, or refused for naming an unknown customer
/// or offer. Answers `(index, outcome)` in the order given.
///
/// # Errors
/// Database failures.
pub async fn record(
    tx: &TenantTx<'_>,
    conversions: &[NewConversion],
) -> Result<Vec<(i32, ConversionOutcome)>, ApiError> {
    let mut columns = Columns::default();
    for c in conversions {
        columns.index.push(c.index);
        columns.event_id.push(c.event_id.as_str());
        let (id, email) = match &c.customer {
            CustomerRef::Id(id) => (Some(*id), None),
            CustomerRef::Email(email) => (None, Some(email.as_str())),
        };
        columns.customer_id.push(id);
        columns.email.push(email);
        columns.occurred_at.push(c.occurred_at);
        columns.offer_id.push(c.offer_id);
        columns
            .value
            .push(c.value.as_ref().map(|(amount, _)| amount.as_str()));
        columns
            .currency
            .push(c.value.as_ref().map(|(_, currency)| currency.as_str()));
    }
    let rows = tx
        .query_cached(
            "with input as (
                 select * from unnest($1::int4[], $2::text[], $3::uuid[], $4::text[],
                                      $5::timestamptz[], $6::int4[], $7::text[], $8::text[])
                   as i(index, event_id, customer_id, email, occurred_at, offer_id, value,
                        currency)
             ),
             resolved as (
                 select i.*,
                        coalesce((select c.id from customers c where c.id = i.customer_id),
                                 (select c.id from customers c
                                  where i.customer_id is null and c.email = i.email))
                            as customer,
                        i.offer_id is null or exists (
                            select 1 from offers o
                            where o.id = i.offer_id and o.tenant_name = $9) as offer_known
                 from input i
             ),
             inserted as (
                 insert into conversions (tenant_name, event_id, customer_id, occurred_at,
                                          offer_id, value, currency)
                 select $9, event_id, customer, occurred_at, offer_id, value::numeric, currency
                 from resolved where customer is not null and offer_known
                 on conflict (tenant_name, event_id) do nothing
                 returning event_id
             )
             select r.index,
                    case when r.customer is null then 'unknown_customer'
                         when not r.offer_known then 'unknown_offer'
                         when exists (select 1 from inserted n where n.event_id = r.event_id)
                             then 'recorded'
                         else 'duplicate' end as outcome
             from resolved r order by r.index",
            &[
                &columns.index,
                &columns.event_id,
                &columns.customer_id,
                &columns.email,
                &columns.occurred_at,
                &columns.offer_id,
                &columns.value,
                &columns.currency,
                &tx.tenant().as_str(),
            ],
        )
        .await?;
    rows.iter()
        .map(|row| {
            let outcome = match row.get::<_, &str>(1) {
                "recorded" => ConversionOutcome::Recorded,
                "duplicate" => ConversionOutcome::Duplicate,
                "unknown_customer" => ConversionOutcome::UnknownCustomer,
                "unknown_offer" => ConversionOutcome::UnknownOffer,
                other => return Err(ApiError::internal(format!("conversion outcome {other}"))),
            };
            Ok((row.get(0), outcome))
        })
        .collect()
}

/// The statement's parameter arrays, one per column.
#[derive(Default)]
struct Columns<'a> {
    index: Vec<i32>,
    event_id: Vec<&'a str>,
    customer_id: Vec<Option<Uuid>>,
    email: Vec<Option<&'a str>>,
    occurred_at: Vec<DateTime<Utc>>,
    offer_id: Vec<Option<i32>>,
    value: Vec<Option<&'a str>>,
    currency: Vec<Option<&'a str>>,
}
