//! Webhook keys (`webhook_keys`), seen Standard Webhooks message ids (`webhook_messages`) and
//! the bulk delivery-status update the webhook applies.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{CachedStatements, GenericClient, TenantTx, consents, violated_constraint};
use crate::config::ReportGrace;
use crate::domain::{Channel, ConsentStatus, DeliveryStatus, TenantName, Username};
use crate::error::ApiError;

/// How long a signed message id is remembered, in seconds: the 5-minute signature window
/// plus margin for clock skew.
pub const MESSAGE_ID_RETENTION_SECS: i64 = 15 * 60;

/// A webhook key as listed (never its secret parts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct WebhookKey {
    /// Public id (also inside the key).
    pub id: Uuid,
    /// What it is for (e.g. the provider's name).
    pub name: String,
    /// The tenant whose campaigns it may report on; `null` for a key made before keys were
    /// tenant-scoped and not yet bound (refused until bound with `offerctl webhook-key
    /// assign`).
    pub tenant_name: Option<String>,
    /// Whether requests must carry a Standard Webhooks signature.
    pub signed: bool,
    /// Who created it.
    pub created_by: Option<String>,
    /// When.
    pub created_at: DateTime<Utc>,
    /// Last accepted request.
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

const KEY_COLUMNS: &str = "id, name, tenant_name, signing_secret is not null as signed, created_by, created_at, last_used_at, revoked_at";

fn key(row: &tokio_postgres::Row) -> WebhookKey {
    WebhookKey {
        id: row.get("id"),
        name: row.get("name"),
        tenant_name: row.get("tenant_name"),
        signed: row.get("signed"),
        created_by: row.get("created_by"),
        created_at: row.get("created_at"),
        last_used_at: row.get("last_used_at"),
        revoked_at: row.get("revoked_at"),
    }
}

/// 404 for a key naming a tenant that does not exist; other errors as they are.
fn unknown_tenant(err: tokio_postgres::Error, tenant: &TenantName) -> ApiError {
    match violated_constraint(&err) {
        Some("webhook_keys_tenant_name_fkey") => ApiError::NotFound(format!("no tenant {tenant}")),
        _ => err.into(),
    }
}

/// Stores a new key of `tenant` (its hash, and the signing secret if any).
///
/// # Errors
/// 404 if the tenant does not exist; database failures.
#[allow(clippy::too_many_arguments)]
pub async fn insert_key(
    client: &impl GenericClient,
    id: Uuid,
    tenant: &TenantName,
    name: &str,
    hash: &[u8],
    signing_secret: Option<&str>,
    created_by: Option<&Username>,
) -> Result<WebhookKey, ApiError> {
    let row = client
        .query_one_cached(
            &format!(
                "insert into webhook_keys (id, name, key_hash, signing_secret, created_by, tenant_name)
                 values ($1, $2, $3, $4, $5, $6) returning {KEY_COLUMNS}"
            ),
            &[
                &id,
                &name,
                &hash,
                &signing_secret,
                &created_by.map(Username::as_str),
                &tenant.as_str(),
            ],
        )
        .await
        .map_err(|err| unknown_tenant(err, tenant))?;
    Ok(key(&row))
}

/// Every key (or only `tenant`'s), newest first.
///
/// # Errors
/// Database failures.
pub async fn list_keys(
    client: &impl GenericClient,
    tenant: Option<&TenantName>,
) -> Result<Vec<WebhookKey>, ApiError> {
    let rows = client
        .query_cached(
            &format!(
                "select {KEY_COLUMNS} from webhook_keys
                 where ($1::text is null or tenant_name = $1)
                 order by created_at desc, id"
            ),
            &[&tenant.map(TenantName::as_str)],
        )
        .await?;
    Ok(rows.iter().map(key).collect())
}

/// Binds a key made before keys were tenant-scoped to `tenant` (V006 left it unbound).
///
/// # Errors
/// 404 if there is no such key or tenant; 409 if the key is already bound (a key never
/// moves between tenants: revoke it and issue a new one); database failures.
pub async fn assign_tenant(
    client: &impl GenericClient,
    id: Uuid,
    tenant: &TenantName,
) -> Result<WebhookKey, ApiError> {
    // One statement: of two concurrent assignments, exactly one binds the key.
    let bound = client
        .query_opt_cached(
            &format!(
                "update webhook_keys set tenant_name = $2
                 where id = $1 and tenant_name is null returning {KEY_COLUMNS}"
            ),
            &[&id, &tenant.as_str()],
        )
        .await
        .map_err(|err| unknown_tenant(err, tenant))?;
    if let Some(row) = bound {
        return Ok(key(&row));
    }
    let current = client
        .query_opt_cached("select tenant_name from webhook_keys where id = $1", &[&id])
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no webhook key {id}")))?;
    let owner: Option<String> = current.get(0);
    Err(ApiError::Conflict(format!(
        "webhook key {id} already belongs to tenant {}",
        owner.unwrap_or_default()
    )))
}

/// Revokes a key (idempotent); `false` if there is no such key.
///
/// # Errors
/// Database failures.
pub async fn revoke_key(client: &impl GenericClient, id: Uuid) -> Result<bool, ApiError> {
    let n = client
        .execute_cached(
            "update webhook_keys set revoked_at = coalesce(revoked_at, now()) where id = $1",
            &[&id],
        )
        .await?;
    Ok(n == 1)
}

/// What authentication needs of an active (unrevoked) key.
#[derive(Debug, Clone)]
pub struct ActiveKey {
    /// The key's id.
    pub id: Uuid,
    /// Its tenant; `None` for an unbound key made before keys were tenant-scoped.
    pub tenant_name: Option<String>,
    /// SHA-256 of the key.
    pub hash: Vec<u8>,
    /// The signing secret, when requests must be signed.
    pub signing_secret: Option<secrecy::SecretString>,
}

/// The active key with this id, if any.
///
/// # Errors
/// Database failures.
pub async fn active_key(
    client: &impl GenericClient,
    id: Uuid,
) -> Result<Option<ActiveKey>, ApiError> {
    let row = client
        .query_opt_cached(
            "select id, tenant_name, key_hash, signing_secret from webhook_keys
             where id = $1 and revoked_at is null",
            &[&id],
        )
        .await?;
    Ok(row.map(|row| ActiveKey {
        id: row.get("id"),
        tenant_name: row.get("tenant_name"),
        hash: row.get("key_hash"),
        signing_secret: row
            .get::<_, Option<String>>("signing_secret")
            .map(secrecy::SecretString::from),
    }))
}

/// Records a signed message id for a key: `false` if it was already seen (a replay). Also
/// forgets ids older than [`MESSAGE_ID_RETENTION_SECS`].
///
/// # Errors
/// Database failures.
pub async fn record_message(
    tx: &TenantTx<'_>,
    key_id: Uuid,
    message_id: &str,
) -> Result<bool, ApiError> {
    tx.execute_cached(
        "delete from webhook_messages where received_at < now() - make_interval(secs => $1)",
        &[&(MESSAGE_ID_RETENTION_SECS as f64)],
    )
    .await?;
    let n = tx
        .execute_cached(
            "insert into webhook_messages (key_id, message_id) values ($1, $2) on conflict do nothing",
            &[&key_id, &message_id],
        )
        .await?;
    Ok(n == 1)
}

/// Notes that a key was just used.
///
/// # Errors
/// Database failures.
pub async fn touch_key(tx: &TenantTx<'_>, id: Uuid) -> Result<(), ApiError> {
    tx.execute_cached(
        "update webhook_keys set last_used_at = now() where id = $1 and tenant_name = $2",
        &[&id, &tx.tenant().as_str()],
    )
    .await?;
    Ok(())
}

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
/// The campaign's window bounds a report: one dated at or after `ends_at` is `late`; once the
/// grace period after `ends_at` has passed, every report for the campaign is `overdue`. Within
/// it, a report dated inside the window applies, also to a delivery that `expired` at the
/// end (a `sent` one counts in the ledger again from its time).
///
/// A report applies only from its delivery's release on (`sent_at >= released_at`): the
/// contact ledger takes the report's time, so an earlier one would age the contact out of the
/// cap's window before it was made. Those found but dated earlier are `early`.
///
/// The reports not updated are found with `not in` over `updated`, which PostgreSQL runs as a
/// hashed subplan: an anti join of two CTE scans (each estimated at one row) was planned as a
/// nested loop comparing every report with every updated one, 500,000 comparisons for 1,000
/// reports.
pub const APPLY_REPORTS_SQL: &str = "with report as (
         select * from unnest($1::int4[], $2::int4[], $3::uuid[], $4::text[],
                              $5::timestamptz[], $6::text[], $7::text[])
           as r(index, campaign_id, customer_id, status, sent_at, provider_message_id,
                failure_reason)
     ),
     judged as (
         select r.*, c.status in ('active', 'paused', 'completed') as open,
                r.sent_at >= c.ends_at as late,
                now() > c.ends_at + make_interval(days => $9) as overdue, c.channel
         from report r
         join campaigns c on c.id = r.campaign_id and c.tenant_name = $8
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
         returning r.index, r.campaign_id, r.customer_id, r.status, r.sent_at, r.channel
     ),
     freed as (
         delete from customer_contacts l using updated u
         where u.status = 'failed' and l.campaign_id = u.campaign_id
           and l.customer_id = u.customer_id and l.tenant_name = $8
     ),
     counted as (
         insert into customer_contacts (campaign_id, customer_id, tenant_name, channel,
                                        contact_at)
         select campaign_id, customer_id, $8, channel, sent_at from updated
         where status = 'sent'
         on conflict (campaign_id, customer_id) do update set contact_at = excluded.contact_at
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

/// Locks the delivery rows that reports name, in key order, before [`APPLY_REPORTS_SQL`]
/// runs. Parameters: `$1` campaign ids (`int4[]`), `$2` customer ids (`uuid[]`), `$3` the
/// tenant.
///
/// Why: under READ COMMITTED the report statement sees the contact ledger as of its start.
/// Two requests on one delivery wait for each other on the delivery's row, but the second
/// then judged the ledger from its old snapshot: a `failed` report could miss the ledger row
/// that a concurrent `sent` report had just re-inserted, and leave the slot taken (32
/// concurrent reports did). With the rows locked by this statement first, the report
/// statement starts after every earlier writer of those deliveries committed, so it sees
/// their ledger rows. Key order keeps two batches naming the same deliveries from
/// deadlocking.
pub const LOCK_REPORTED_SQL: &str = "select 1 from campaign_customers cc
     join unnest($1::int4[], $2::uuid[]) as r(campaign_id, customer_id)
       on cc.campaign_id = r.campaign_id and cc.customer_id = r.customer_id
     where cc.tenant_name = $3
     order by cc.campaign_id, cc.customer_id
     for update of cc";

/// Applies reports for campaigns of `tenant` (the delivery rows locked first, then one
/// statement): each updates its `campaign_customers` row unless the row records an event at
/// the same time or later (events never go back in time). A report naming another tenant's
/// campaign is answered exactly like a campaign that does not exist
/// ([`ReportOutcome::NotFound`]); one for a campaign of the tenant that is not `active`,
/// `paused` or `completed`, dated before its delivery was released or at or after the
/// campaign's end, or arriving after `grace` past that end, changes nothing. The same statement brings the contact ledger
/// (`customer_contacts`) in line with the deliveries it changed: one now `sent` counts from
/// when it was sent, one now `failed` no longer counts (a delivery it did not change was in
/// line already). Returns the outcome of each report, by index.
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
    tx.query_cached(
        LOCK_REPORTED_SQL,
        &[&campaign, &customer, &tx.tenant().as_str()],
    )
    .await?;
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
