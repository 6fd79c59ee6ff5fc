//! Marketing consent per customer and channel (`customer_consents`, with every change kept in
//! `customer_consent_history`; migration V011) and the platform's contact policy
//! (`contact_policy`). No record means `unknown`. Customers are shared by every tenant, and
//! so is their consent: these tables have no tenant.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::{CachedStatements, GenericClient};
use crate::domain::{Channel, ConsentStatus, Username};
use crate::error::ApiError;
use crate::pagination::Page;

/// A customer's consent for one channel, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Consent {
    /// The channel.
    pub channel: Channel,
    /// `opted_in`, `opted_out` or `unknown` (never recorded).
    pub status: ConsentStatus,
    /// Where the current state came from (`api`, `csv import`, `provider: unsubscribed`, …).
    pub source: Option<String>,
    /// When it was recorded.
    pub recorded_at: Option<DateTime<Utc>>,
    /// Who recorded it (a username, or `webhook key <id>`).
    pub recorded_by: Option<String>,
}

/// One change of a customer's consent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ConsentChange {
    /// Increasing with time.
    pub id: i64,
    /// The channel.
    pub channel: Channel,
    /// The state it changed to.
    pub status: ConsentStatus,
    /// Where it came from.
    pub source: String,
    /// When.
    pub recorded_at: DateTime<Utc>,
    /// Who.
    pub recorded_by: Option<String>,
}

fn parse<T>(parsed: Result<T, crate::domain::NameError>) -> Result<T, ApiError> {
    parsed.map_err(ApiError::internal)
}

/// The customer's consent for every channel, in [`Channel::ALL`] order.
///
/// # Errors
/// Database failures.
pub async fn current(
    client: &impl GenericClient,
    customer: Uuid,
) -> Result<Vec<Consent>, ApiError> {
    let rows = client
        .query_cached(
            "select channel, status, source, recorded_at, recorded_by from customer_consents
             where customer_id = $1",
            &[&customer],
        )
        .await?;
    let mut states = Vec::with_capacity(Channel::ALL.len());
    for channel in Channel::ALL {
        let row = rows
            .iter()
            .find(|r| r.get::<_, &str>("channel") == channel.as_str());
        states.push(match row {
            None => Consent {
                channel: *channel,
                status: ConsentStatus::Unknown,
                source: None,
                recorded_at: None,
                recorded_by: None,
            },
            Some(row) => Consent {
                channel: *channel,
                status: parse(ConsentStatus::parse(row.get("status")))?,
                source: row.get("source"),
                recorded_at: row.get("recorded_at"),
                recorded_by: row.get("recorded_by"),
            },
        });
    }
    Ok(states)
}

/// The customer's consent changes, newest first.
///
/// # Errors
/// Database failures.
pub async fn history(
    client: &impl GenericClient,
    customer: Uuid,
    page: Page,
) -> Result<Vec<ConsentChange>, ApiError> {
    let rows = client
        .query_cached(
            "select id, channel, status, source, recorded_at, recorded_by
             from customer_consent_history where customer_id = $1
             order by id desc limit $2 offset $3",
            &[&customer, &page.limit, &page.offset],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(ConsentChange {
                id: r.get("id"),
                channel: parse(Channel::parse(r.get("channel")))?,
                status: parse(ConsentStatus::parse(r.get("status")))?,
                source: r.get("source"),
                recorded_at: r.get("recorded_at"),
                recorded_by: r.get("recorded_by"),
            })
        })
        .collect()
}

/// Sets consents in bulk: one `(customer, channel, status)` triple per entry, recorded with
/// `source` and `recorded_by`. `unknown` removes the record. Entries that change nothing are
/// skipped; each change is appended to the history in the same statement. Answers how many
/// changed. Call in a transaction with the change that caused it.
///
/// # Errors
/// Database failures (a customer that does not exist violates a foreign key).
pub async fn set_many(
    client: &impl GenericClient,
    entries: &[(Uuid, Channel, ConsentStatus)],
    source: &str,
    recorded_by: Option<&str>,
) -> Result<u64, ApiError> {
    if entries.is_empty() {
        return Ok(0);
    }
    let customers: Vec<Uuid> = entries.iter().map(|e| e.0).collect();
    let channels: Vec<&str> = entries.iter().map(|e| e.1.as_str()).collect();
    let statuses: Vec<&str> = entries.iter().map(|e| e.2.as_str()).collect();
    let row = client
        .query_one_cached(
            SET_MANY_SQL.as_str(),
            &[&customers, &channels, &statuses, &source, &recorded_by],
        )
        .await?;
    Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
}

/// [`set_many`]'s statement: the wanted changes from three parallel arrays (`$1` customer
/// ids, `$2` channels, `$3` statuses; the last entry for a customer and channel wins),
/// source `$4`, recorder `$5`.
static SET_MANY_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    change_sql(
        "select distinct on (customer_id, channel) customer_id, channel, status
         from unnest($1::uuid[], $2::text[], $3::text[]) with ordinality
             as w(customer_id, channel, status, n)
         order by customer_id, channel, n desc",
        "$4",
        "$5",
    )
});

/// The one statement that changes consents: `wanted` is a query of `(customer_id, channel,
/// status)` with at most one row per customer and channel; rows whose status differs from the
/// current one (none stored: `unknown`) are written (`unknown` deletes the stored row) and
/// appended to the history with `source` and `recorded_by` (SQL expressions: parameters or
/// literals). It answers one row: the number of changes. Used by [`set_many`] and by the
/// bulk import (`customer_import`), which reads `wanted` from its staging table.
pub(crate) fn change_sql(wanted: &str, source: &str, recorded_by: &str) -> String {
    format!(
        "with wanted as ({wanted}),
         changed as (
             select w.* from wanted w
             left join customer_consents c
               on c.customer_id = w.customer_id and c.channel = w.channel
             where coalesce(c.status, 'unknown') <> w.status
         ),
         upserted as (
             insert into customer_consents (customer_id, channel, status, source, recorded_by)
             select customer_id, channel, status, {source}, {recorded_by} from changed
             where status <> 'unknown'
             on conflict (customer_id, channel) do update
             set status = excluded.status, source = excluded.source,
                 recorded_by = excluded.recorded_by, recorded_at = now()
         ),
         removed as (
             delete from customer_consents c using changed w
             where w.status = 'unknown' and c.customer_id = w.customer_id
               and c.channel = w.channel
         ),
         logged as (
             insert into customer_consent_history
                 (customer_id, channel, status, source, recorded_by)
             select customer_id, channel, status, {source}, {recorded_by} from changed
             returning 1
         )
         select count(*) from logged"
    )
}

/// Sets one consent (see [`set_many`]); answers the customer's consents after it.
///
/// # Errors
/// Database failures.
pub async fn set(
    client: &impl GenericClient,
    customer: Uuid,
    channel: Channel,
    status: ConsentStatus,
    source: &str,
    by: &Username,
) -> Result<Vec<Consent>, ApiError> {
    set_many(
        client,
        &[(customer, channel, status)],
        source,
        Some(by.as_str()),
    )
    .await?;
    current(client, customer).await
}

/// The platform's contact policy: at most `max_contacts` contacts per customer in any
/// rolling `window_days` days, across every tenant and channel, and at most
/// `channel_limits[channel]` through one channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ContactPolicy {
    /// Contacts per customer per window, all channels together (≥ 1).
    #[schema(minimum = 1)]
    pub max_contacts: i32,
    /// The rolling window, in days (1–366).
    #[schema(minimum = 1, maximum = 366)]
    pub window_days: i32,
    /// Optional tighter limits per channel, e.g. `{"sms": 1}`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub channel_limits: Value,
    /// Who set it (read only).
    #[serde(default, skip_deserializing)]
    pub updated_by: Option<String>,
    /// When (read only).
    #[serde(default, skip_deserializing)]
    pub updated_at: Option<DateTime<Utc>>,
}

/// The contact policy, if one is set.
///
/// # Errors
/// Database failures.
pub async fn policy(client: &impl GenericClient) -> Result<Option<ContactPolicy>, ApiError> {
    let row = client
        .query_opt_cached(
            "select max_contacts, window_days, channel_limits, updated_by, updated_at
             from contact_policy",
            &[],
        )
        .await?;
    Ok(row.map(|r| ContactPolicy {
        max_contacts: r.get(0),
        window_days: r.get(1),
        channel_limits: r.get(2),
        updated_by: r.get(3),
        updated_at: r.get(4),
    }))
}

/// Sets the contact policy (already validated); answers it as stored.
///
/// # Errors
/// Database failures.
pub async fn set_policy(
    client: &impl GenericClient,
    policy: &ContactPolicy,
    by: &Username,
) -> Result<ContactPolicy, ApiError> {
    client
        .execute_cached(
            "insert into contact_policy (singleton, max_contacts, window_days, channel_limits,
                                         updated_by, updated_at)
             values (true, $1, $2, $3, $4, now())
             on conflict (singleton) do update
             set max_contacts = excluded.max_contacts, window_days = excluded.window_days,
                 channel_limits = excluded.channel_limits, updated_by = excluded.updated_by,
                 updated_at = now()",
            &[
                &policy.max_contacts,
                &policy.window_days,
                &policy.channel_limits,
                &by.as_str(),
            ],
        )
        .await?;
    self::policy(client)
        .await?
        .ok_or_else(|| ApiError::internal("the contact policy just written is missing"))
}

/// Removes the contact policy (no cap); answers whether there was one.
///
/// # Errors
/// Database failures.
pub async fn clear_policy(client: &impl GenericClient) -> Result<bool, ApiError> {
    Ok(client
        .execute_cached("delete from contact_policy", &[])
        .await?
        == 1)
}
