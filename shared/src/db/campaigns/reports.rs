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
pub const APPLY_REPORTS_SQL: &str = include_str!("reports.sql");

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
    let answer = Answer::read(row);
    Ok(reports
        .iter()
        .map(|r| (r.index, answer.outcome(r)))
        .collect())
}

/// The answer of [`APPLY_REPORTS_SQL`], by delivery: what each report's outcome is told from.
struct Answer {
    /// Indexes of reports refused whole: campaign not open, result late, grace passed.
    closed: HashSet<i32>,
    late: HashSet<i32>,
    overdue: HashSet<i32>,
    /// Each delivery the update changed: the times its row now records (`sent_at`,
    /// `delivered_at`, `opened_at`, `clicked_at`).
    updated: HashMap<(i32, Uuid), [Option<DateTime<Utc>>; 4]>,
    /// Each delivery found but not changed: its release.
    found: HashMap<(i32, Uuid), Option<DateTime<Utc>>>,
}

impl Answer {
    /// Reads the statement's one row (its arrays are null when empty).
    fn read(row: &tokio_postgres::Row) -> Self {
        let set =
            |name: &str| -> HashSet<i32> { row.get::<_, Vec<i32>>(name).into_iter().collect() };
        let keys = |campaigns: &str, customers: &str| -> Vec<(i32, Uuid)> {
            let campaigns = row.get::<_, Option<Vec<i32>>>(campaigns);
            let customers = row.get::<_, Option<Vec<Uuid>>>(customers);
            campaigns
                .unwrap_or_default()
                .into_iter()
                .zip(customers.unwrap_or_default())
                .collect()
        };
        let times = |name: &str| -> Vec<Option<DateTime<Utc>>> {
            row.get::<_, Option<Vec<Option<DateTime<Utc>>>>>(name)
                .unwrap_or_default()
        };
        let recorded = [
            times("sent_at"),
            times("delivered_at"),
            times("opened_at"),
            times("clicked_at"),
        ];
        let updated = keys("updated_campaigns", "updated_customers")
            .into_iter()
            .enumerate()
            .map(|(i, key)| {
                let at = |k: usize| recorded[k].get(i).copied().flatten();
                (key, [at(0), at(1), at(2), at(3)])
            })
            .collect();
        let found = keys("found_campaigns", "found_customers")
            .into_iter()
            .zip(times("released_at"))
            .collect();
        Self {
            closed: set("closed"),
            late: set("late"),
            overdue: set("overdue"),
            updated,
            found,
        }
    }

    /// The outcome of report `r`: refused whole, else what its delivery's row shows.
    fn outcome(&self, r: &DeliveryReport) -> ReportOutcome {
        let key = (r.campaign_id, r.customer_id);
        // PostgreSQL keeps microseconds: the report's time as the row stores it.
        let at = r.sent_at.trunc_subsecs(6);
        if self.closed.contains(&r.index) {
            ReportOutcome::CampaignNotOpen
        } else if self.overdue.contains(&r.index) {
            ReportOutcome::GracePassed
        } else if self.late.contains(&r.index) {
            ReportOutcome::AfterEnd
        } else if let Some(times) = self.updated.get(&key) {
            // The delivery changed: this report is what its row now records, or not.
            let recorded = match r.status {
                DeliveryStatus::Delivered => times[1],
                DeliveryStatus::Opened => times[2],
                DeliveryStatus::Clicked => times[3],
                _ => times[0],
            };
            if recorded == Some(at) {
                ReportOutcome::Updated
            } else {
                ReportOutcome::Unchanged
            }
        } else if let Some(released_at) = self.found.get(&key) {
            if released_at.is_some_and(|released| at < released) {
                ReportOutcome::BeforeRelease
            } else {
                ReportOutcome::Unchanged
            }
        } else {
            ReportOutcome::NotFound
        }
    }
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
