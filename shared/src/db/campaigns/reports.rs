//! Delivery reports: what providers say happened to each delivery (`sent`, `failed`) applied
//! to the campaign's deliveries and the contact ledger in one statement per batch, and the
//! opt-outs they report (`unsubscribed`, `complained`) applied to the customers' consent.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::config::ReportGrace;
use crate::db::{CachedStatements, TenantTx, consents};
use crate::domain::{Channel, ConsentStatus, DeliveryStatus};
use crate::error::ApiError;

/// One validated status report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryReport {
    /// Position in the request's array.
    pub index: i32,
    /// The campaign.
    pub campaign_id: i32,
    /// The customer.
    pub customer_id: Uuid,
    /// `sent` or `failed` (never `pending`).
    pub status: DeliveryStatus,
    /// When the provider acted (the event's time; later events win).
    pub sent_at: DateTime<Utc>,
    /// The provider's message id.
    pub provider_message_id: Option<String>,
    /// Why delivery failed.
    pub failure_reason: Option<String>,
}

/// What one report did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReportOutcome {
    /// The delivery row changed.
    Updated,
    /// The row already records this or a later event.
    Unchanged,
    /// No such campaign/customer pair (in the key's tenant).
    NotFound,
    /// The campaign is not `active`, `paused` or `completed`.
    CampaignNotOpen,
    /// `sent_at` is earlier than the delivery's release to providers (nothing was sent then).
    BeforeRelease,
    /// `sent_at` is at or after the campaign's end (`ends_at`): nothing is sent then.
    AfterEnd,
    /// The campaign ended longer ago than the grace period ([`crate::config::ReportGrace`]).
    GracePassed,
}

/// The statement of [`apply_reports`]. Parameters: `$1` indexes (`int4[]`), `$2` campaign
/// ids (`int4[]`), `$3` customer ids (`uuid[]`), `$4` statuses (`text[]`), `$5` event times
/// (`timestamptz[]`), `$6` provider message ids and `$7` failure reasons (`text[]`, null for
/// none), `$8` the tenant, `$9` the grace period in days (`int4`). One row: the `updated`,
/// `unchanged`, `closed`, `early`, `late` and `overdue` index lists (`int4[]`).
///
/// The campaign's window bounds a report: one dated at or after `ends_at`, or after the end
/// its delivery was released under (the ledger's `open_until`: a later end does not stretch
/// what was released before it), is `late`; once the grace period after `ends_at` has
/// passed, every report for the campaign is `overdue`. Within it, a report dated inside the
/// window applies, also to a delivery that `expired` at the end.
///
/// The ledger (V022): the first accepted `sent` report settles the delivery's row at the
/// send's time (later ones leave it); a `failed` report leaves the row as it is, unsettled
/// and counted until `open_until`, since the provider may still retry.
///
/// A report applies only from its delivery's release on (`sent_at >= released_at`): the
/// contact ledger takes the report's time, so an earlier one would age the contact out of the
/// cap's window before it was made. Those found but dated earlier are `early`.
///
/// Concurrent batches: the reports are sorted by key, and the update takes each delivery's
/// row lock as it reaches it, so two batches naming the same deliveries lock them in the
/// same order and never deadlock (nor with an expiry, which locks in key order too). A
/// batch that reaches a delivery another one holds waits for its commit and judges the
/// delivery again as it is then (PostgreSQL's re-check of the update's conditions; the
/// ledger's settle re-checks `not settled` the same way). No separate lock is needed since
/// no report deletes a ledger row (V022): it took 9–14 ms of a request at 1,000,000
/// customers, writing each row's lock into its page.
///
/// The reports not updated are found with `not in` over `updated`, which PostgreSQL runs as a
/// hashed subplan: an anti join of two CTE scans (each estimated at one row) was planned as a
/// nested loop comparing every report with every updated one, 500,000 comparisons for 1,000
/// reports.
pub const APPLY_REPORTS_SQL: &str = "with report as materialized (
         select * from unnest($1::int4[], $2::int4[], $3::uuid[], $4::text[],
                              $5::timestamptz[], $6::text[], $7::text[])
           as r(index, campaign_id, customer_id, status, sent_at, provider_message_id,
                failure_reason)
         order by campaign_id, customer_id
     ),
     judged as (
         select r.*, c.status in ('active', 'paused', 'completed') as open,
                r.sent_at >= least(c.ends_at, l.open_until) as late,
                now() > c.ends_at + make_interval(days => $9) as overdue, c.channel,
                coalesce(l.open_until, c.ends_at) as open_until
         from report r
         join campaigns c on c.id = r.campaign_id and c.tenant_name = $8
         left join customer_contacts l
           on l.campaign_id = r.campaign_id and l.customer_id = r.customer_id
     ),
     accepted as (select * from judged where open and not late and not overdue),
     updated as (
         update campaign_customers cc
         set delivery_status = r.status, sent_at = r.sent_at,
             provider_message_id = r.provider_message_id,
             failure_reason = r.failure_reason, updated_at = now()
         from accepted r
         where cc.campaign_id = r.campaign_id and cc.customer_id = r.customer_id
           and cc.tenant_name = $8
           and cc.released_at is not null and cc.delivery_status <> 'suppressed'
           and r.sent_at >= cc.released_at
           and (cc.sent_at is null or r.sent_at > cc.sent_at)
         returning r.index, r.campaign_id, r.customer_id, r.status, r.sent_at, r.channel,
                   r.open_until
     ),
     settled as (
         insert into customer_contacts (campaign_id, customer_id, tenant_name, channel,
                                        contact_at, open_until, settled)
         select campaign_id, customer_id, $8, channel, sent_at, open_until, true
         from updated where status = 'sent'
         on conflict (campaign_id, customer_id) do update
         set contact_at = excluded.contact_at, settled = true
         where not customer_contacts.settled
     ),
     found as (
         select r.index, r.sent_at < cc.released_at as early from accepted r
         join campaign_customers cc
           on cc.campaign_id = r.campaign_id and cc.customer_id = r.customer_id
          and cc.tenant_name = $8
         where r.index not in (select u.index from updated u)
           and cc.released_at is not null and cc.delivery_status <> 'suppressed'
     )
     select coalesce((select array_agg(index) from updated), '{}') as updated,
            coalesce((select array_agg(index) from found where not early), '{}')
                as unchanged,
            coalesce((select array_agg(index) from judged where not open), '{}')
                as closed,
            coalesce((select array_agg(index) from found where early), '{}') as early,
            coalesce((select array_agg(index) from judged where open and late), '{}') as late,
            coalesce((select array_agg(index) from judged where open and not late and overdue),
                     '{}') as overdue";

/// Applies reports for campaigns of `tenant` in one statement ([`APPLY_REPORTS_SQL`]): each
/// updates its `campaign_customers` row unless the row records an event at the same time or
/// later (events never go back in time). A report naming another tenant's
/// campaign is answered exactly like a campaign that does not exist
/// ([`ReportOutcome::NotFound`]); one for a campaign of the tenant that is not `active`,
/// `paused` or `completed`, dated before its delivery was released or at or after the
/// campaign's end (or the end it was released under), or arriving after `grace` past that end, changes nothing. The same statement brings the contact ledger
/// (`customer_contacts`) in line with the deliveries it changed: the first `sent` report
/// accepted for a delivery settles its row at the send's time; a `failed` one leaves the row
/// counting until the end the delivery was released under (the provider may retry).
/// Returns the outcome of each report, by index.
///
/// # Errors
/// Database failures.
pub async fn apply_reports(
    tx: &TenantTx<'_>,
    reports: &[DeliveryReport],
    grace: ReportGrace,
) -> Result<Vec<(i32, ReportOutcome)>, ApiError> {
    let index: Vec<i32> = reports.iter().map(|r| r.index).collect();
    let campaign: Vec<i32> = reports.iter().map(|r| r.campaign_id).collect();
    let customer: Vec<Uuid> = reports.iter().map(|r| r.customer_id).collect();
    let status: Vec<&str> = reports.iter().map(|r| r.status.as_str()).collect();
    let sent_at: Vec<DateTime<Utc>> = reports.iter().map(|r| r.sent_at).collect();
    let message: Vec<Option<&str>> = reports
        .iter()
        .map(|r| r.provider_message_id.as_deref())
        .collect();
    let reason: Vec<Option<&str>> = reports
        .iter()
        .map(|r| r.failure_reason.as_deref())
        .collect();
    let rows = tx
        .query_cached(
            APPLY_REPORTS_SQL,
            &[
                &index,
                &campaign,
                &customer,
                &status,
                &sent_at,
                &message,
                &reason,
                &tx.tenant().as_str(),
                &grace.days,
            ],
        )
        .await?;
    // Index lists rather than a join of the sets, which the planner (seeing an unnest of
    // unknown length) may nest-loop.
    let row = rows
        .first()
        .ok_or_else(|| ApiError::internal("the report statement returned no row"))?;
    let set = |name: &str| -> HashSet<i32> { row.get::<_, Vec<i32>>(name).into_iter().collect() };
    // `unchanged`: found but not updated (the row is looked up again only for those, not for
    // the usual case of a report that applies).
    let (updated, unchanged, closed, early) = (
        set("updated"),
        set("unchanged"),
        set("closed"),
        set("early"),
    );
    let (late, overdue) = (set("late"), set("overdue"));
    Ok(reports
        .iter()
        .map(|r| {
            let outcome = if closed.contains(&r.index) {
                ReportOutcome::CampaignNotOpen
            } else if late.contains(&r.index) {
                ReportOutcome::AfterEnd
            } else if overdue.contains(&r.index) {
                ReportOutcome::GracePassed
            } else if early.contains(&r.index) {
                ReportOutcome::BeforeRelease
            } else if updated.contains(&r.index) {
                ReportOutcome::Updated
            } else if unchanged.contains(&r.index) {
                ReportOutcome::Unchanged
            } else {
                ReportOutcome::NotFound
            };
            (r.index, outcome)
        })
        .collect())
}

/// A campaign named by delivery reports, with the offer version it delivers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct PinnedCampaign {
    /// The campaign.
    pub campaign_id: i32,
    /// Its offer.
    pub offer_id: Option<i32>,
    /// The offer version it delivers.
    pub offer_version: Option<i32>,
}

/// The campaigns of `tenant` among `ids`, by id, with their pinned offer versions.
///
/// # Errors
/// Database failures.
pub async fn pinned_campaigns(
    tx: &TenantTx<'_>,
    ids: &[i32],
) -> Result<Vec<PinnedCampaign>, ApiError> {
    let rows = tx
        .query_cached(
            "select id, offer_id, offer_version from campaigns
             where tenant_name = $1 and id = any ($2::int4[]) order by id",
            &[&tx.tenant().as_str(), &ids],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| PinnedCampaign {
            campaign_id: r.get(0),
            offer_id: r.get(1),
            offer_version: r.get(2),
        })
        .collect())
}

/// An opt-out a provider reported (`unsubscribed` or `complained`) for a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptOutReport {
    /// Position in the request's array.
    pub index: i32,
    /// The campaign that reached the customer.
    pub campaign_id: i32,
    /// The customer.
    pub customer_id: Uuid,
    /// `unsubscribed` or `complained`.
    pub kind: &'static str,
}

/// Opts customers out of the channel of the campaign that reached them, for reports naming
/// a released delivery of `tenant`'s campaigns (recorded with source `provider: <kind>` and
/// `webhook key <key_id>`). Answers each report's outcome: `Updated` when consent changed,
/// `Unchanged` when the customer was opted out already, `NotFound` for no such delivery.
///
/// # Errors
/// Database failures.
pub async fn apply_opt_outs(
    tx: &TenantTx<'_>,
    key_id: Uuid,
    reports: &[OptOutReport],
) -> Result<Vec<(i32, ReportOutcome)>, ApiError> {
    let index: Vec<i32> = reports.iter().map(|r| r.index).collect();
    let campaign: Vec<i32> = reports.iter().map(|r| r.campaign_id).collect();
    let customer: Vec<Uuid> = reports.iter().map(|r| r.customer_id).collect();
    let rows = tx
        .query_cached(
            "select r.index, r.customer_id, c.channel,
                    coalesce(k.status = 'opted_out', false) as already
             from unnest($1::int4[], $2::int4[], $3::uuid[]) as r(index, campaign_id, customer_id)
             join campaigns c on c.id = r.campaign_id and c.tenant_name = $4
             join campaign_customers cc
               on cc.campaign_id = r.campaign_id and cc.customer_id = r.customer_id
              and cc.tenant_name = $4 and cc.released_at is not null
             left join customer_consents k
               on k.customer_id = r.customer_id and k.channel = c.channel",
            &[&index, &campaign, &customer, &tx.tenant().as_str()],
        )
        .await?;
    let recorded_by = format!("webhook key {key_id}");
    let by_index: HashMap<i32, &OptOutReport> = reports.iter().map(|r| (r.index, r)).collect();
    let mut outcomes: HashMap<i32, ReportOutcome> = HashMap::new();
    let mut entries: HashMap<&str, Vec<(Uuid, Channel, ConsentStatus)>> = HashMap::new();
    for row in &rows {
        let Some(report) = by_index.get(&row.get::<_, i32>(0)) else {
            continue;
        };
        let channel = Channel::parse(row.get(2)).map_err(ApiError::internal)?;
        let already: bool = row.get(3);
        entries.entry(report.kind).or_default().push((
            report.customer_id,
            channel,
            ConsentStatus::OptedOut,
        ));
        outcomes.insert(
            report.index,
            if already {
                ReportOutcome::Unchanged
            } else {
                ReportOutcome::Updated
            },
        );
    }
    for (kind, entries) in &entries {
        consents::set_many(
            tx.transaction(),
            entries,
            &format!("provider: {kind}"),
            Some(&recorded_by),
        )
        .await?;
    }
    Ok(reports
        .iter()
        .map(|r| {
            (
                r.index,
                outcomes
                    .get(&r.index)
                    .copied()
                    .unwrap_or(ReportOutcome::NotFound),
            )
        })
        .collect())
}
