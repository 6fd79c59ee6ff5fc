//! The campaign calendar in SQL: where a campaign stands against its window by the database
//! clock, the campaigns the scheduler owes a start or an end, the end itself (completion and
//! expiry of unreported deliveries), and the audit entry of every status change. The window
//! is `starts_at` .. `ends_at`, computed by migration V016's trigger from the dates and the
//! tenant's `time_zone`.

use chrono::{DateTime, NaiveDate, Utc};

use super::{COLUMNS, Campaign, campaign};
use crate::db::{CachedStatements, GenericClient, TenantTx};
use crate::domain::{CampaignStatus, TenantName};
use crate::error::ApiError;

/// Where a campaign stands against its window, by the database clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// `now() < starts_at`.
    BeforeStart,
    /// `starts_at <= now() < ends_at`.
    Running,
    /// `ends_at <= now()`.
    Ended,
}

/// The [`Phase`] of `campaign` (as read in this transaction: its `starts_at` and `ends_at`)
/// by the database clock.
///
/// # Errors
/// Database failures.
pub async fn phase(tx: &TenantTx<'_>, campaign: &Campaign) -> Result<Phase, ApiError> {
    let row = tx
        .query_one_cached(
            "select case when now() < $1 then 0 when now() < $2 then 1 else 2 end",
            &[&campaign.starts_at, &campaign.ends_at],
        )
        .await?;
    Ok(match row.get::<_, i32>(0) {
        0 => Phase::BeforeStart,
        1 => Phase::Running,
        _ => Phase::Ended,
    })
}

/// Whether the day `end_date` has already ended in the transaction's tenant's time zone (a
/// campaign ending then could never run).
///
/// # Errors
/// Database failures.
pub async fn has_ended(tx: &TenantTx<'_>, end_date: NaiveDate) -> Result<bool, ApiError> {
    // A day has ended there when the next one has begun (the last representable day never
    // ends).
    match end_date.checked_add_days(chrono::Days::new(1)) {
        Some(next) => has_begun(tx, next).await,
        None => Ok(false),
    }
}

/// Whether day `date` has begun in the tenant's time zone (its midnight there is now or
/// past).
///
/// # Errors
/// Database failures.
pub async fn has_begun(tx: &TenantTx<'_>, date: NaiveDate) -> Result<bool, ApiError> {
    let row = tx
        .query_one_cached(
            "select $2::date::timestamp at time zone time_zone <= now()
             from tenants where name = $1",
            &[&tx.tenant().as_str(), &date],
        )
        .await?;
    Ok(row.get(0))
}

/// 422 on `end_date` if that day has already ended in the tenant's time zone: a campaign
/// ending then could never run.
///
/// # Errors
/// [`ApiError::Unprocessable`] naming `end_date`; database failures.
pub async fn ensure_not_ended(tx: &TenantTx<'_>, end_date: NaiveDate) -> Result<(), ApiError> {
    if has_ended(tx, end_date).await? {
        return Err(ApiError::invalid_field(
            "end_date",
            "has already ended in the tenant's time zone",
        ));
    }
    Ok(())
}

/// Records a status change of campaign `id` in its audit trail (`status_change`, from and
/// to, by a user or `scheduler`).
///
/// # Errors
/// Database failures.
pub async fn record_status_change(
    tx: &TenantTx<'_>,
    id: i32,
    (from, to): (CampaignStatus, CampaignStatus),
    by: &str,
    comment: Option<&str>,
) -> Result<(), ApiError> {
    super::record_audit(
        tx,
        id,
        "status_change",
        by,
        (
            Some(&serde_json::json!({ "status": from })),
            Some(&serde_json::json!({ "status": to })),
        ),
        comment,
    )
    .await
}

/// Sets campaign `id`'s status alone (the scheduler's transitions), answering the campaign.
///
/// # Errors
/// Database failures.
pub async fn set_status(
    tx: &TenantTx<'_>,
    id: i32,
    status: CampaignStatus,
) -> Result<Campaign, ApiError> {
    let row = tx
        .query_one_cached(
            &format!(
                "update campaigns set status = $3, updated_at = now()
                 where tenant_name = $1 and id = $2 returning {COLUMNS}"
            ),
            &[&tx.tenant().as_str(), &id, &status.as_str()],
        )
        .await?;
    campaign(&row)
}

/// The statement of [`expire`], one slice of it: the released, unreported (`pending`)
/// deliveries of campaign `$1` of tenant `$2` from customer id `$3` on (`uuid`, inclusive; the
/// nil UUID for the first slice) up to the `$4`-th of them (`bigint`, at least 1) in
/// customer-id order, or to the end of the id space when fewer are left, become `expired` at
/// `now()`. One row: how many expired (`bigint`), and the slice's high end, inclusive (`uuid`;
/// the largest UUID for the last slice).
///
/// Each delivery keeps its row in the contact ledger: it was released, so the provider may
/// well have sent it (its report may still arrive within the grace period), and the contact
/// cap keeps counting it until the policy's window has passed (the invariant of
/// ARCHITECTURE.md, "The contact cap").
///
/// The update takes its rows in key order: it reads them through the primary key
/// `(campaign_id, customer_id)` (sequential and bitmap scans, which take rows in physical
/// order, are off: [`plan_expiry`]), and the slices follow each other in that order. That is
/// the order in which a report batch's update takes the deliveries it names
/// ([`crate::db::campaigns::reports::APPLY_REPORTS_SQL`] sorts its reports by key): a batch
/// of reports arriving at the campaign's end waits for the expiry, or the expiry for it, and
/// the two never deadlock. The slice's high end is found first by reading (not locking) the
/// key from `$3`, so each slice holds about `$4` pending deliveries however the ids spread.
///
/// At 10,000,000 customers the whole campaign in one statement, its rows locked first
/// (`select … for update` in key order) and then joined back to the table and updated, took
/// 1.69x one hand-written `update`: every row was written twice (its lock, then its new
/// version), and the 7.55 M locked keys were joined back by a hash that spilled to disk.
pub const EXPIRE_SQL: &str = "with slice as (
         select coalesce(
                    (select customer_id from campaign_customers
                     where campaign_id = $1 and tenant_name = $2
                       and released_at is not null and delivery_status = 'pending'
                       and customer_id >= $3
                     order by customer_id offset $4::bigint - 1 limit 1),
                    'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid) as high
     ),
     expired as (
         update campaign_customers
         set delivery_status = 'expired', expired_at = now(), updated_at = now()
         where campaign_id = $1 and tenant_name = $2
           and customer_id >= $3 and customer_id <= (select high from slice)
           and released_at is not null and delivery_status = 'pending'
         returning 1
     )
     select count(*), (select high from slice) from expired";

/// Pending deliveries expired per statement of [`expire`] (about 20 MB of pages at 10 M
/// customers).
pub const EXPIRE_SLICE_ROWS: i64 = 50_000;

/// Expires campaign `id`'s unreported deliveries ([`EXPIRE_SQL`]) by slices of
/// [`EXPIRE_SLICE_ROWS`] in customer-id order; answers how many. Call in the transaction
/// that completes the campaign, with its row locked: the slices commit together with the
/// completion, or not at all.
///
/// # Errors
/// Database failures.
pub async fn expire(tx: &TenantTx<'_>, id: i32) -> Result<i64, ApiError> {
    expire_by_slices(tx, id, EXPIRE_SLICE_ROWS).await
}

/// [`expire`] with slices of `slice_rows` (at least 1) pending deliveries.
///
/// # Errors
/// Database failures.
pub async fn expire_by_slices(
    tx: &TenantTx<'_>,
    id: i32,
    slice_rows: i64,
) -> Result<i64, ApiError> {
    plan_expiry(tx).await?;
    let slice_rows = slice_rows.max(1);
    let (mut expired, mut from) = (0_i64, uuid::Uuid::nil());
    loop {
        let row = tx
            .query_one_cached(
                EXPIRE_SQL,
                &[&id, &tx.tenant().as_str(), &from, &slice_rows],
            )
            .await?;
        expired += row.get::<_, i64>(0);
        // The last slice ends at the largest UUID.
        match row.get::<_, uuid::Uuid>(1).as_u128().checked_add(1) {
            Some(next) => from = uuid::Uuid::from_u128(next),
            None => break,
        }
    }
    // Back to the defaults for the transaction's later statements, as `set local` (a
    // `reset` would be a session-level setting, kept by the pooled connection).
    tx.batch_execute(
        "set local enable_seqscan to default; set local enable_bitmapscan to default;
         set local enable_sort to default",
    )
    .await?;
    Ok(expired)
}

/// The planner settings of [`expire`]'s slices, for the rest of the transaction (or until
/// `expire` resets them): no JIT, and neither sequential scans, bitmap scans nor sorts, so
/// that a slice reads and updates its rows through the primary key, in key order, even on
/// statistics that predate the campaign's release (a campaign under a tenth of the table
/// never triggers autovacuum's analyze).
///
/// # Errors
/// Database failures.
pub async fn plan_expiry(tx: &TenantTx<'_>) -> Result<(), ApiError> {
    tx.batch_execute(
        "set local jit = off; set local enable_seqscan = off; set local enable_bitmapscan = off;
         set local enable_sort = off",
    )
    .await?;
    Ok(())
}

/// What the scheduler owes a campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// A `scheduled` campaign reached `starts_at`: release and make it `active`.
    Start,
    /// A `scheduled`, `active` or `paused` campaign reached `ends_at`: make it `completed`
    /// and expire its unreported deliveries.
    End,
}

/// One action of the scheduler, due or coming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarAction {
    /// The campaign.
    pub campaign_id: i32,
    /// Its tenant.
    pub tenant_name: TenantName,
    /// What is owed.
    pub due: Due,
    /// When (`starts_at` or `ends_at`).
    pub at: DateTime<Utc>,
}

/// The database's clock, which judges every window (`now()`).
///
/// # Errors
/// Database failures.
pub async fn now(client: &impl GenericClient) -> Result<DateTime<Utc>, ApiError> {
    Ok(client.query_one_cached("select now()", &[]).await?.get(0))
}

/// The scheduler's actions, earliest first: with `due_only`, those due now (`at <= now()`);
/// otherwise also the coming ones. At most `limit`. Reads every tenant: call on the platform
/// pool.
///
/// # Errors
/// Database failures.
pub async fn actions(
    client: &impl GenericClient,
    due_only: bool,
    limit: i64,
) -> Result<Vec<CalendarAction>, ApiError> {
    let rows = client
        .query_cached(
            "select id, tenant_name, due, at from (
                 (select id, tenant_name, 'start' as due, starts_at as at from campaigns
                  where status = 'scheduled' and ($1 = false or starts_at <= now())
                    and ends_at > now()
                  order by starts_at limit $2)
                 union all
                 (select id, tenant_name, 'end', ends_at from campaigns
                  where status in ('scheduled', 'active', 'paused')
                    and ($1 = false or ends_at <= now())
                  order by ends_at limit $2)
             ) a order by at, id limit $2",
            &[&due_only, &limit],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(CalendarAction {
                campaign_id: r.get(0),
                tenant_name: TenantName::parse(r.get::<_, &str>(1)).map_err(ApiError::internal)?,
                due: if r.get::<_, &str>(2) == "start" {
                    Due::Start
                } else {
                    Due::End
                },
                at: r.get(3),
            })
        })
        .collect()
}

/// The scheduler's own name in audit trails.
pub const SCHEDULER: &str = "scheduler";
