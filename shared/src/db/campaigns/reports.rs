//! Delivery reports: what providers say happened to each delivery (its result, `sent` or
//! `failed`, and its engagement stages, `delivered`, `opened`, `clicked`) applied to the
//! campaign's deliveries and the contact ledger in one statement per batch, and the opt-outs
//! they report (`unsubscribed`, `complained`) applied to the customers' consent.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, SubsecRound, Utc};
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
    /// A result, `sent` or `failed` (the latest wins), or a stage, `delivered`, `opened`
    /// or `clicked` (the first time of each is kept).
    pub status: DeliveryStatus,
    /// When it happened (the event's time).
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
/// ids (`int4[]`), `$3` customer ids (`uuid[]`), `$4` statuses (`text[]`: `sent`, `failed`,
/// or a stage, `delivered`, `opened`, `clicked`), `$5` event times (`timestamptz[]`), `$6`
/// provider message ids and `$7` failure reasons (`text[]`, null for none), `$8` the tenant,
/// `$9` the grace period in days (`int4`). One row: per delivery the update changed, its
/// key (`updated_campaigns` `int4[]`, `updated_customers` `uuid[]`) and the times its row
/// now records (`sent_at`, `delivered_at`, `opened_at`, `clicked_at`: `timestamptz[]`);
/// per delivery found but not changed, its key (`found_campaigns`, `found_customers`) and
/// `released_at`; these are null when empty. Then the report indexes (`int4[]`) refused
/// whole: `closed`, `late` and `overdue`. The caller tells each report's outcome from these
/// (a report applied when its delivery's row records its time): answering per delivery
/// rather than per report spares the statement an `unnest` of every report and a lookup
/// of each (an engagement batch names a delivery up to four times).
///
/// A delivery's result (`sent` or `failed`): the latest wins (the caller sends at most one
/// per delivery; one no later than the recorded `sent_at` changes nothing). Its stages:
/// each keeps the first time reported (`delivered_at`, `opened_at`, `clicked_at`, the
/// earliest of any batch), so stages sent out of order or more than once give the same row.
/// The delivery status is the furthest stage reached, else the latest result.
///
/// The campaign's window bounds a result: one dated at or after `ends_at`, or after the end
/// its delivery was released under (the ledger's `open_until`: a later end does not stretch
/// what was released before it), is `late`. A stage may come later (a customer opens an
/// e-mail after the campaign's end). Once the grace period after `ends_at` has passed,
/// every report for the campaign is `overdue` (whatever its date: `overdue` before `late`).
/// Within it, a result dated inside the window applies, also to a delivery that `expired` at
/// the end. The ledger's `open_until` is read for lateness only for a result dated at or
/// after the campaign's `released_until` (V027: no ledger row of the campaign has an earlier
/// `open_until`), so a result dated before it is late only at `ends_at`; that read is made
/// once per delivery, after its reports are gathered (an engagement batch names a delivery
/// up to four times). The campaigns are judged once each, before the reports are joined to
/// them.
///
/// The ledger (V022): a `sent` result or any stage shows the contact happened; the delivery's
/// row is settled at the earliest such time known (a stage's time capped at `open_until`,
/// which the unsettled row already counted to), and moves only earlier. A `failed` result
/// leaves the row as it is, unsettled and counted until `open_until`, since the provider
/// may still retry. The row is settled by an `update` (its `open_until` caps a stage's
/// time there), which reads the row once: the statement read every delivery's row before
/// its update, and then `insert … on conflict` probed the primary key's index again. A
/// delivery without a row (pruned) gets one by `insert … on conflict`, which also meets a
/// row another batch inserted since, with the `open_until` of the campaign's end or
/// `released_until`, whichever is later (V027's invariant holds).
///
/// A report applies only from its delivery's release on (its time at or after
/// `released_at`): the contact ledger takes the report's time, so an earlier one would age
/// the contact out of the cap's window before it was made. Those found but dated earlier
/// are `early`.
///
/// Concurrent batches: the reports are gathered per delivery in key order, and the update
/// takes each delivery's row lock as it reaches it, so two batches
/// naming the same deliveries lock them in the same order and never deadlock (nor with an
/// expiry, which locks in key order too). A batch that reaches a delivery another one holds
/// waits for its commit and judges the delivery again as it is then (PostgreSQL's re-check
/// of the update's conditions; the ledger's settle re-checks the same way). No separate
/// lock is needed since no report deletes a ledger row (V022): it took 9–14 ms of a request
/// at 1,000,000 customers, writing each row's lock into its page.
///
/// The deliveries not updated are found with `not in` over `updated`, which PostgreSQL runs
/// as a hashed subplan: an anti join of two CTE scans (each estimated at one row) was
/// planned as a nested loop comparing every report with every updated one, 500,000
/// comparisons for 1,000 reports.
pub const APPLY_REPORTS_SQL: &str = "with report as materialized (
         select * from unnest($1::int4[], $2::int4[], $3::uuid[], $4::text[],
                              $5::timestamptz[], $6::text[], $7::text[])
           as r(index, campaign_id, customer_id, status, sent_at, provider_message_id,
                failure_reason)
     ),
     campaign as materialized (
         select id, status in ('active', 'paused', 'completed') as open,
                now() > ends_at + make_interval(days => $9) as overdue, channel, ends_at,
                released_until
         from campaigns
         where tenant_name = $8 and id in (select distinct campaign_id from report)
     ),
     accepted as (
         select r.*, c.channel, c.ends_at, c.released_until from report r
         join campaign c on c.id = r.campaign_id and c.open and not c.overdue
     ),
     gathered as (
         select campaign_id, customer_id,
                max(index) filter (where status in ('sent', 'failed')) as result_index,
                max(status) filter (where status in ('sent', 'failed')) as result,
                max(sent_at) filter (where status in ('sent', 'failed')) as result_at,
                max(provider_message_id) filter (where status in ('sent', 'failed'))
                    as provider_message_id,
                max(failure_reason) filter (where status in ('sent', 'failed'))
                    as failure_reason,
                min(sent_at) filter (where status = 'delivered') as delivered,
                min(sent_at) filter (where status = 'opened') as opened,
                min(sent_at) filter (where status = 'clicked') as clicked,
                max(channel) as channel, max(ends_at) as ends_at,
                max(released_until) as released_until
         from accepted
         group by campaign_id, customer_id
     ),
     delivery as materialized (
         select g.campaign_id, g.customer_id, g.delivered,
                g.opened, g.clicked, g.channel, g.provider_message_id, g.failure_reason,
                g.ends_at, g.released_until,
                -- The result, unless it is dated at or after the end its delivery was
                -- released under (then `late`).
                case when g.result_at >= least(g.ends_at, l.open_until)
                     then g.result_index end as late,
                case when g.result_at < least(g.ends_at, l.open_until) then g.result end
                    as result,
                case when g.result_at < least(g.ends_at, l.open_until) then g.result_at end
                    as result_at
         from gathered g
         -- Read only for a result the campaign's earliest end released under (V027) does
         -- not already place before every end its deliveries were released under (and for
         -- a campaign that has none: its ledger rows were all pruned before V027).
         left join lateral (
             select l.open_until from customer_contacts l
             where (g.result_at >= g.released_until or g.released_until is null)
               and l.campaign_id = g.campaign_id and l.customer_id = g.customer_id
             -- Planned apart (not pulled up into a join), so the condition on the result
             -- is a one-time filter that skips the read rather than a filter after it.
             offset 0
         ) l on true
         order by g.campaign_id, g.customer_id
     ),
     updated as (
         update campaign_customers cc
         set sent_at = case when d.result_at >= cc.released_at
                                 and (cc.sent_at is null or d.result_at > cc.sent_at)
                            then d.result_at else cc.sent_at end,
             provider_message_id = case when d.result_at >= cc.released_at
                                             and (cc.sent_at is null or d.result_at > cc.sent_at)
                                        then d.provider_message_id
                                        else cc.provider_message_id end,
             failure_reason = case when d.result_at >= cc.released_at
                                        and (cc.sent_at is null or d.result_at > cc.sent_at)
                                   then d.failure_reason else cc.failure_reason end,
             delivered_at = least(cc.delivered_at,
                                  case when d.delivered >= cc.released_at then d.delivered end),
             opened_at = least(cc.opened_at,
                               case when d.opened >= cc.released_at then d.opened end),
             clicked_at = least(cc.clicked_at,
                                case when d.clicked >= cc.released_at then d.clicked end),
             delivery_status = case
                 when cc.clicked_at is not null or d.clicked >= cc.released_at then 'clicked'
                 when cc.opened_at is not null or d.opened >= cc.released_at then 'opened'
                 when cc.delivered_at is not null or d.delivered >= cc.released_at
                     then 'delivered'
                 when d.result_at >= cc.released_at
                      and (cc.sent_at is null or d.result_at > cc.sent_at) then d.result
                 else cc.delivery_status end,
             updated_at = now()
         from delivery d
         where cc.campaign_id = d.campaign_id and cc.customer_id = d.customer_id
           and cc.tenant_name = $8
           and cc.released_at is not null and cc.delivery_status <> 'suppressed'
           and ((d.result_at >= cc.released_at
                 and (cc.sent_at is null or d.result_at > cc.sent_at))
                or (d.delivered >= cc.released_at
                    and (cc.delivered_at is null or d.delivered < cc.delivered_at))
                or (d.opened >= cc.released_at
                    and (cc.opened_at is null or d.opened < cc.opened_at))
                or (d.clicked >= cc.released_at
                    and (cc.clicked_at is null or d.clicked < cc.clicked_at)))
         returning cc.campaign_id, cc.customer_id, d.channel, d.ends_at, d.released_until, cc.sent_at, cc.delivered_at, cc.opened_at, cc.clicked_at,
                   -- The contact's time as this batch shows it: an applied `sent`, or the
                   -- first stage (the settle caps it at open_until, which the unsettled
                   -- row counted to).
                   least(case when d.result = 'sent' and cc.sent_at = d.result_at
                              then d.result_at end,
                         case when d.delivered >= cc.released_at then d.delivered end,
                         case when d.opened >= cc.released_at then d.opened end,
                         case when d.clicked >= cc.released_at then d.clicked end)
                       as contact_at
     ),
     settled as (
         update customer_contacts l
         set contact_at = least(case when l.settled then l.contact_at end, u.contact_at,
                                l.open_until),
             settled = true
         from updated u
         where u.contact_at is not null
           and l.campaign_id = u.campaign_id and l.customer_id = u.customer_id
           and (not l.settled or least(u.contact_at, l.open_until) < l.contact_at)
         returning l.campaign_id, l.customer_id
     ),
     -- A delivery without a ledger row (pruned): one, settled, under the latest end it can
     -- have been released under that keeps V027's invariant.
     recorded as (
         insert into customer_contacts (campaign_id, customer_id, tenant_name, channel,
                                        contact_at, open_until, settled)
         select u.campaign_id, u.customer_id, $8, u.channel,
                least(u.contact_at, greatest(u.ends_at, u.released_until)),
                greatest(u.ends_at, u.released_until), true
         from updated u
         where u.contact_at is not null
           and (u.campaign_id, u.customer_id) not in
                   (select s.campaign_id, s.customer_id from settled s)
           and not exists (select 1 from customer_contacts l
                           where l.campaign_id = u.campaign_id
                             and l.customer_id = u.customer_id)
         on conflict (campaign_id, customer_id) do update
         set contact_at = case when customer_contacts.settled
                               then least(customer_contacts.contact_at, excluded.contact_at)
                               else excluded.contact_at end,
             settled = true
         where not customer_contacts.settled
            or excluded.contact_at < customer_contacts.contact_at
     ),
     found as (
         select d.campaign_id, d.customer_id, cc.released_at from delivery d
         join campaign_customers cc
           on cc.campaign_id = d.campaign_id and cc.customer_id = d.customer_id
          and cc.tenant_name = $8
         where (d.campaign_id, d.customer_id) not in
                   (select u.campaign_id, u.customer_id from updated u)
           and cc.released_at is not null and cc.delivery_status <> 'suppressed'
     )
     select (select array_agg(campaign_id) from updated) as updated_campaigns,
            (select array_agg(customer_id) from updated) as updated_customers,
            (select array_agg(sent_at) from updated) as sent_at,
            (select array_agg(delivered_at) from updated) as delivered_at,
            (select array_agg(opened_at) from updated) as opened_at,
            (select array_agg(clicked_at) from updated) as clicked_at,
            (select array_agg(campaign_id) from found) as found_campaigns,
            (select array_agg(customer_id) from found) as found_customers,
            (select array_agg(released_at) from found) as released_at,
            coalesce((select array_agg(r.index) from report r
                      join campaign c on c.id = r.campaign_id and not c.open), '{}')
                as closed,
            coalesce((select array_agg(late) from delivery where late is not null), '{}')
                as late,
            coalesce((select array_agg(r.index) from report r
                      join campaign c on c.id = r.campaign_id and c.open and c.overdue), '{}')
                as overdue";

/// Applies reports for campaigns of `tenant` in one statement ([`APPLY_REPORTS_SQL`]): a
/// result updates its `campaign_customers` row unless the row records a result at the same
/// time or later (results never go back in time); a stage records its time unless an
/// earlier one is recorded (stages keep their first time). At most one result per delivery:
/// the caller keeps the latest of a batch. A report naming another tenant's campaign is
/// answered exactly like a campaign that does not exist ([`ReportOutcome::NotFound`]); one
/// for a campaign of the tenant that is not `active`, `paused` or `completed`, dated before
/// its delivery was released, a result dated at or after the campaign's end (or the end it
/// was released under), or any report arriving after `grace` past that end, changes
/// nothing. The same statement brings the contact ledger (`customer_contacts`) in line with
/// the deliveries it changed: an accepted `sent` result or stage settles the delivery's row
/// at the earliest time it shows (a stage's capped at the end the delivery was released
/// under); a `failed` one leaves the row counting until that end (the provider may retry).
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
    let row = rows
        .first()
        .ok_or_else(|| ApiError::internal("the report statement returned no row"))?;
    let set = |name: &str| -> HashSet<i32> { row.get::<_, Vec<i32>>(name).into_iter().collect() };
    let (closed, late, overdue) = (set("closed"), set("late"), set("overdue"));
    // Per delivery: the row as the update left it, or the release of one it did not change.
    let list =
        |name: &str| -> Vec<i32> { row.get::<_, Option<Vec<i32>>>(name).unwrap_or_default() };
    let keys = |campaigns: &str, customers: &str| -> Vec<(i32, Uuid)> {
        list(campaigns)
            .into_iter()
            .zip(
                row.get::<_, Option<Vec<Uuid>>>(customers)
                    .unwrap_or_default(),
            )
            .collect()
    };
    let times = |name: &str| -> Vec<Option<DateTime<Utc>>> {
        row.get::<_, Option<Vec<Option<DateTime<Utc>>>>>(name)
            .unwrap_or_default()
    };
    let (sent, delivered, opened, clicked) = (
        times("sent_at"),
        times("delivered_at"),
        times("opened_at"),
        times("clicked_at"),
    );
    let updated: HashMap<(i32, Uuid), usize> = keys("updated_campaigns", "updated_customers")
        .into_iter()
        .enumerate()
        .map(|(i, key)| (key, i))
        .collect();
    let found: HashMap<(i32, Uuid), Option<DateTime<Utc>>> =
        keys("found_campaigns", "found_customers")
            .into_iter()
            .zip(times("released_at"))
            .collect();
    Ok(reports
        .iter()
        .map(|r| {
            let key = (r.campaign_id, r.customer_id);
            // PostgreSQL keeps microseconds: the report's time as the row stores it.
            let at = r.sent_at.trunc_subsecs(6);
            let outcome = if closed.contains(&r.index) {
                ReportOutcome::CampaignNotOpen
            } else if overdue.contains(&r.index) {
                ReportOutcome::GracePassed
            } else if late.contains(&r.index) {
                ReportOutcome::AfterEnd
            } else if let Some(&i) = updated.get(&key) {
                // The delivery changed: this report is what its row now records, or not.
                let recorded = match r.status {
                    DeliveryStatus::Delivered => delivered.get(i),
                    DeliveryStatus::Opened => opened.get(i),
                    DeliveryStatus::Clicked => clicked.get(i),
                    _ => sent.get(i),
                };
                if recorded.copied().flatten() == Some(at) {
                    ReportOutcome::Updated
                } else {
                    ReportOutcome::Unchanged
                }
            } else if let Some(released_at) = found.get(&key) {
                if released_at.is_some_and(|released| at < released) {
                    ReportOutcome::BeforeRelease
                } else {
                    ReportOutcome::Unchanged
                }
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
