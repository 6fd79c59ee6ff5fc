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
