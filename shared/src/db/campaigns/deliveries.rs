//! A campaign's deliveries: its selected customers, their counts per status, the release
//! to providers (consent and the contact cap judged again, `release.sql`), and the feed.

use crate::db::{CachedStatements, GenericClient, TenantTx};
use crate::domain::{Channel, DeliveryStatus};
use crate::error::ApiError;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

/// Makes the rest of the transaction plan a keyset page of a campaign's deliveries as a
/// walk of an index in customer-id order, stopped after the page, never as a scan and sort
/// of the campaign's rows.
///
/// The page filters on columns a release or a report batch rewrites by the million
/// (`released_at`, `delivery_status`), so right after one the planner's statistics say the
/// page matches about one row until autovacuum analyzes the table again; it then sorted a
/// sequential scan of the whole table: the first page of a 7.5-million-delivery feed took
/// 108 s at 10,000,000 customers. Without sorts it walks the primary key `(campaign_id,
/// customer_id)` or, on such statistics, the customer-id index (which also passes the other
/// campaigns' rows of the same customers: a page reads a few hundred more rows, not
/// millions). The setting ends with the transaction.
///
/// # Errors
/// Database failures.
pub async fn walk_in_key_order(tx: &TenantTx<'_>) -> Result<(), ApiError> {
    tx.batch_execute("set local enable_sort = off").await?;
    Ok(())
}

/// The statement of [`feed`] (for plan tests). Parameters: `$1` the campaign, `$2` the
/// tenant, `$3` the keyset's `after` (`uuid`, null for the first page), `$4` the page size,
/// `$5` the channel.
pub const FEED_SQL: &str = "select cc.customer_id,
                    case $5 when 'email' then c.email when 'push' then null else c.phone end
                        as address,
                    c.preferred_language
             from campaign_customers cc join customers c on c.id = cc.customer_id
             where cc.campaign_id = $1 and cc.tenant_name = $2
               and cc.released_at is not null and cc.delivery_status = 'pending'
               and ($3::uuid is null or cc.customer_id > $3)
               and not exists (select 1 from customer_consents k
                               where k.customer_id = cc.customer_id and k.channel = $5
                                 and k.status = 'opted_out')
             order by cc.customer_id limit $4";

/// A customer's contact details: personal data, shown only to principals holding
/// `customer.contact.read` in the tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Contact {
    /// Name.
    pub full_name: String,
    /// E-mail address.
    pub email: Option<String>,
    /// Phone number.
    pub phone: Option<String>,
}

/// A delivery: one of a campaign's customers, with where its delivery stands.
// A row of `campaign_customers`; the API's schema keeps its name, `CampaignCustomer`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = CampaignCustomer)]
pub struct Delivery {
    /// The customer.
    pub customer_id: Uuid,
    /// Contact details; present only for principals holding `customer.contact.read`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact: Option<Contact>,
    /// `pending`, `sent`, `failed`, `suppressed`, `expired`, `control`, or the furthest
    /// engagement stage reported: `delivered`, `opened`, `clicked`.
    pub delivery_status: DeliveryStatus,
    /// When the provider sent it (as reported).
    pub sent_at: Option<DateTime<Utc>>,
    /// The provider's id of the message.
    pub provider_message_id: Option<String>,
    /// Why it failed, if reported.
    pub failure_reason: Option<String>,
    /// When the release drew the customer into the control group (`control` only).
    pub assigned_at: Option<DateTime<Utc>>,
    /// When the provider first reported it delivered.
    pub delivered_at: Option<DateTime<Utc>>,
    /// When the provider first reported it opened.
    pub opened_at: Option<DateTime<Utc>>,
    /// When the provider first reported a click in it.
    pub clicked_at: Option<DateTime<Utc>>,
    /// Last change of the row.
    pub updated_at: DateTime<Utc>,
}

/// One keyset page of campaign `id`'s customers in customer-id order, after `after`; with
/// `with_contact`, each with its [`Contact`] (otherwise the customers table is not read).
///
/// # Errors
/// Database failures.
pub async fn customers(
    tx: &TenantTx<'_>,
    id: i32,
    status: Option<DeliveryStatus>,
    after: Option<Uuid>,
    limit: i64,
    with_contact: bool,
) -> Result<Vec<Delivery>, ApiError> {
    walk_in_key_order(tx).await?;
    let rows = tx
        .query_cached(
            "select cc.customer_id, cc.delivery_status, cc.sent_at,
                    cc.provider_message_id, cc.failure_reason, cc.updated_at, cc.assigned_at,
                    cc.delivered_at, cc.opened_at, cc.clicked_at,
                    c.full_name, c.email, c.phone
             from campaign_customers cc
             left join customers c on $5 and c.id = cc.customer_id
             where cc.campaign_id = $1
               and ($2::text is null or cc.delivery_status = $2)
               and ($3::uuid is null or cc.customer_id > $3)
             order by cc.customer_id limit $4",
            &[
                &id,
                &status.map(DeliveryStatus::as_str),
                &after,
                &limit,
                &with_contact,
            ],
        )
        .await?;
    rows.iter()
        .map(|row| {
            let status: String = row.get("delivery_status");
            let contact = row
                .get::<_, Option<String>>("full_name")
                .map(|full_name| Contact {
                    full_name,
                    email: row.get("email"),
                    phone: row.get("phone"),
                });
            Ok(Delivery {
                customer_id: row.get("customer_id"),
                contact,
                delivery_status: DeliveryStatus::parse(&status).map_err(ApiError::internal)?,
                sent_at: row.get("sent_at"),
                provider_message_id: row.get("provider_message_id"),
                failure_reason: row.get("failure_reason"),
                assigned_at: row.get("assigned_at"),
                delivered_at: row.get("delivered_at"),
                opened_at: row.get("opened_at"),
                clicked_at: row.get("clicked_at"),
                updated_at: row.get("updated_at"),
            })
        })
        .collect()
}

/// Counts of a campaign's deliveries. They add up: `total` (matched) is
/// `suppressed_by_consent` plus `suppressed_by_pressure` plus `awaiting_release` plus
/// `control` plus `released`, and `released` is `sent` plus `failed` plus `pending` plus `expired`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct DeliverySummary {
    /// All selected customers (matched).
    pub total: i64,
    /// Released to the provider, not yet reported.
    pub pending: i64,
    /// Reported sent (or further: delivered, opened, clicked).
    pub sent: i64,
    /// Of the sent, reported delivered (or opened or clicked, which imply it).
    #[serde(default)]
    pub delivered: i64,
    /// Of the sent, reported opened (or clicked).
    #[serde(default)]
    pub opened: i64,
    /// Of the sent, with a click reported.
    #[serde(default)]
    pub clicked: i64,
    /// Reported failed.
    pub failed: i64,
    /// Released, never reported by the campaign's end.
    pub expired: i64,
    /// Matched but without consent for the campaign's channel.
    pub suppressed_by_consent: i64,
    /// Held back at release: the customer was at the platform's contact cap.
    pub suppressed_by_pressure: i64,
    /// Prepared, not yet released (the campaign was not activated since they were
    /// selected).
    pub awaiting_release: i64,
    /// Released to the provider.
    pub released: i64,
    /// Held back by the campaign's holdout: the control group, never contacted (absent
    /// from the counts of campaigns archived before holdouts existed, read as 0).
    #[serde(default)]
    pub control: i64,
}

/// Counts campaign `id`'s deliveries (see [`DeliverySummary`]): from its rows, or, once
/// housekeeping began deleting them after archiving them to S3, the counts it took with the
/// archive (`campaign_archives.summary`).
///
/// # Errors
/// Database failures.
pub async fn summary(tx: &TenantTx<'_>, id: i32) -> Result<DeliverySummary, ApiError> {
    let archived = tx
        .query_opt_cached(
            "select summary from campaign_archives
             where campaign_id = $1 and state in ('deleting', 'archived')",
            &[&id],
        )
        .await?;
    if let Some(row) = archived {
        return serde_json::from_value(row.get(0)).map_err(ApiError::internal);
    }
    live_summary(tx, id).await
}

/// Where a statement reads a campaign's delivery rows from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryRows {
    /// `campaign_customers`, the table itself.
    Live,
    /// The archive export's copy of one campaign's rows, staged in the export's own
    /// transaction ([`crate::db::archives::stage_deliveries`]): read once from the table,
    /// then counted, summarised and copied out from this compact temporary table.
    Staged,
}

impl DeliveryRows {
    /// The table's name as SQL (one of two fixed names, never request text).
    #[must_use]
    pub const fn table(self) -> &'static str {
        match self {
            Self::Live => "campaign_customers",
            Self::Staged => "pg_temp.archived_deliveries",
        }
    }
}

/// The counts of [`DeliverySummary`], in its order, over the rows of campaign `$1`.
const SUMMARY_COUNTS: &str = "select count(*),
        count(*) filter (where delivery_status = 'pending' and released_at is not null),
        count(*) filter (where delivery_was_sent(delivery_status)),
        count(*) filter (where delivery_status = 'failed'),
        count(*) filter (where suppression_reason = 'consent'),
        count(*) filter (where suppression_reason = 'contact_pressure'),
        count(*) filter (where delivery_status = 'pending' and released_at is null),
        count(*) filter (where released_at is not null),
        count(*) filter (where delivery_status = 'expired'),
        count(*) filter (where delivery_status = 'control'),
        count(*) filter (where coalesce(delivered_at, opened_at, clicked_at) is not null),
        count(*) filter (where coalesce(opened_at, clicked_at) is not null),
        count(*) filter (where clicked_at is not null)";

/// Counts campaign `id`'s delivery rows as they are in the database now (see
/// [`summary`]).
///
/// # Errors
/// Database failures.
pub async fn live_summary(tx: &TenantTx<'_>, id: i32) -> Result<DeliverySummary, ApiError> {
    summary_of(tx, id, DeliveryRows::Live).await
}

/// Counts campaign `id`'s delivery rows in `rows` (see [`DeliverySummary`]).
///
/// # Errors
/// Database failures (the staged table missing outside an export's transaction).
pub async fn summary_of(
    tx: &TenantTx<'_>,
    id: i32,
    rows: DeliveryRows,
) -> Result<DeliverySummary, ApiError> {
    let sql = format!(
        "{SUMMARY_COUNTS} from {} where campaign_id = $1",
        rows.table()
    );
    let row = tx.query_one_cached(&sql, &[&id]).await?;
    Ok(DeliverySummary {
        total: row.get(0),
        pending: row.get(1),
        sent: row.get(2),
        failed: row.get(3),
        suppressed_by_consent: row.get(4),
        suppressed_by_pressure: row.get(5),
        awaiting_release: row.get(6),
        released: row.get(7),
        expired: row.get(8),
        control: row.get(9),
        delivered: row.get(10),
        opened: row.get(11),
        clicked: row.get(12),
    })
}

/// What one release did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ReleaseSummary {
    /// Deliveries given to the provider now.
    pub released: i64,
    /// Deliveries held back now: the customer was at the contact cap.
    pub suppressed_by_pressure: i64,
    /// Deliveries held back now: the customer withdrew consent since selection.
    pub suppressed_by_consent: i64,
    /// Customers put in the campaign's control group now (its holdout): never contacted.
    pub control: i64,
}

/// The advisory lock every release holds until its transaction ends: releases run one at a
/// time across the platform, so each counts the contacts the previous ones committed and two
/// releases at the same moment cannot together pass a customer's cap.
pub const RELEASE_LOCK: i64 = 0x6f66_6665_725f_726c; // "offer_rl"

/// The release statement (`release.sql`): `$1` the campaign's id, `$2` its tenant, `$3` and
/// `$4` the customer ids it releases (`uuid`, inclusive); answers `(released, suppressed for
/// contact pressure, suppressed for consent, control)`.
pub const RELEASE_SQL: &str = include_str!("release.sql");

/// Makes the rest of the transaction plan [`RELEASE_SQL`] so that its work grows with the
/// campaign's candidates whatever the planner's statistics say, as [`release`] runs it.
///
/// Right after a campaign is selected its hundreds of thousands of new rows are not in the
/// statistics yet (autovacuum analyzes a table once a tenth of it changed: at 10,000,000
/// customers a campaign of 500,000 never triggers it), so the planner expected one
/// candidate, and joined each of the campaign's rows to a scan of every judged candidate: a
/// release of 839,271 deliveries at 1,000,000 customers ran for more than 10 minutes where
/// 82 s do. With nested loops off, the updates join the judged candidates to the
/// campaign's rows by hash; the statement's own lookups (a candidate's consent and its
/// contacts in the window) are index probes per candidate either way. JIT compilation, which
/// costs more than it saves here (the CTEs' row estimates are far above the real counts), is
/// off too. The settings last until the transaction ends ([`release`] turns nested loops
/// back on after its statement).
///
/// # Errors
/// Database failures.
pub async fn plan_release(tx: &TenantTx<'_>) -> Result<(), ApiError> {
    tx.batch_execute("set local jit = off; set local enable_nestloop = off")
        .await?;
    Ok(())
}

/// Releases campaign `id`'s prepared deliveries (pending, never released) to the provider,
/// in one statement after taking [`RELEASE_LOCK`]: a customer who no longer consents to the
/// campaign's channel (consent is judged again: it may have changed since selection) is
/// marked `suppressed` for `consent`; a customer already at the contact
/// policy's cap (`contact_policy`: contacts in the rolling window across every tenant, all
/// channels together and through this campaign's channel) is marked `suppressed` for
/// `contact_pressure`; of the others, those the campaign's holdout draws (SQL `in_holdout`,
/// V025) become `control` with `assigned_at`, and every other delivery gets `released_at`
/// and a row in the contact ledger (`customer_contacts`). Without a policy everything is
/// released. Call in the transaction that activates the campaign; a large campaign's release
/// goes by ranges instead ([`super::releases`]), each through [`release_between`].
///
/// # Errors
/// Database failures.
pub async fn release(tx: &TenantTx<'_>, id: i32) -> Result<ReleaseSummary, ApiError> {
    release_between(tx, id, (Uuid::nil(), Uuid::max())).await
}

/// [`release`] of the prepared deliveries whose customer id lies in `[low, high]` only (a
/// range of a release job). Every candidate of the range is judged as [`release`] judges
/// it, under the same lock, so releasing a campaign range by range gives each customer the
/// verdict one release would, against the ledger as the earlier ranges left it.
///
/// # Errors
/// Database failures.
pub async fn release_between(
    tx: &TenantTx<'_>,
    id: i32,
    (low, high): (Uuid, Uuid),
) -> Result<ReleaseSummary, ApiError> {
    plan_release(tx).await?;
    tx.execute_cached("select pg_advisory_xact_lock($1)", &[&RELEASE_LOCK])
        .await?;
    let row = tx
        .query_one_cached(RELEASE_SQL, &[&id, &tx.tenant().as_str(), &low, &high])
        .await?;
    // The transaction's later statements plan as usual.
    tx.batch_execute("set local enable_nestloop to default")
        .await?;
    Ok(ReleaseSummary {
        released: row.get(0),
        suppressed_by_pressure: row.get(1),
        suppressed_by_consent: row.get(2),
        control: row.get(3),
    })
}

/// A released delivery as a provider's feed gives it: whom to send to, where, in which
/// language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FeedDelivery {
    /// The customer (quote it back in the delivery report).
    pub customer_id: Uuid,
    /// Where to send: the e-mail address for `email`, the phone number for `sms` and
    /// `call`, null for `push` (the bank's app addresses the customer by id).
    pub address: Option<String>,
    /// The customer's preferred language, if known (e.g. `en`).
    pub preferred_language: Option<String>,
}

/// A page of campaign `id`'s released deliveries not yet reported, in customer-id order
/// after `after`: at most `limit`. A customer who opted out of the channel since the release
/// is left out (the delivery stays pending: nobody sends it).
///
/// # Errors
/// Database failures.
pub async fn feed(
    tx: &TenantTx<'_>,
    id: i32,
    channel: Channel,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<FeedDelivery>, ApiError> {
    walk_in_key_order(tx).await?;
    let rows = tx
        .query_cached(
            FEED_SQL,
            &[
                &id,
                &tx.tenant().as_str(),
                &after,
                &limit,
                &channel.as_str(),
            ],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| FeedDelivery {
            customer_id: r.get(0),
            address: r.get(1),
            preferred_language: r.get(2),
        })
        .collect())
}
