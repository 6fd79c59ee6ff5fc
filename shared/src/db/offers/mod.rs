//! The `offers` aggregate, its approved versions (`offer_versions`) and its audit trail
//! (`offer_audit_logs`). Every function here filters by tenant in SQL; writes run inside a
//! tenant transaction together with their audit row.
//!
//! An offer row holds the working copy (its `status` is that copy's place in the workflow);
//! every approval freezes the copy as the next numbered [`OfferVersion`], which campaigns
//! pin. Editing an approved offer opens a new draft on top of the live version, which stays
//! unchanged until that draft is approved.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use super::{CachedStatements, TenantExecutor, TenantTx};
use crate::domain::{OfferStatus, Username};
use crate::error::ApiError;
use crate::pagination::Page;

mod audit;
mod versions;

pub use audit::{AuditAction, AuditEntry, AuditRecord, audit, audit_trail, last_audit_entry};
pub use versions::{OfferVersion, approve, version, versions};

/// An offer as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Offer {
    /// Identifier (unique across tenants).
    pub id: i32,
    /// Owning tenant.
    pub tenant_name: String,
    /// Workflow status.
    pub status: OfferStatus,
    /// Tenant-specific attributes (a JSON object).
    #[schema(value_type = Object)]
    pub data: Value,
    /// The maker's notes.
    pub comments: Option<String>,
    /// Who created it.
    pub created_by: Option<String>,
    /// Who last changed its content (maker–checker).
    pub last_edited_by: Option<String>,
    /// Optimistic-concurrency version of the working copy, sent as the `ETag` (not an
    /// approved version number: see `live_version`).
    pub version: i32,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// The approved version new campaigns get (null until the first approval).
    pub live_version: Option<i32>,
    /// Whether a draft of changes to the live version is pending (being written, submitted
    /// or rejected); its content is `data`, while campaigns keep the live version's.
    pub draft_pending: bool,
    /// The live version the pending draft was opened from.
    pub draft_base_version: Option<i32>,
    /// When it was retired (no new campaigns, no edits), if it was.
    pub retired_at: Option<DateTime<Utc>>,
    /// Who retired it.
    pub retired_by: Option<String>,
    /// Why.
    pub retirement_reason: Option<String>,
}

/// Whether offer `id` was retired, its row locked until the transaction ends so it cannot be
/// retired meanwhile (a campaign's first start and the scheduler's start ask it);
/// `false` for an offer the tenant no longer has.
///
/// # Errors
/// Database failures.
pub async fn retired(tx: &TenantTx<'_>, id: i32) -> Result<bool, ApiError> {
    Ok(get(tx, id, true)
        .await?
        .is_some_and(|offer| offer.version_for_campaigns() == Err(NoNewCampaigns::Retired)))
}

/// Why an offer takes no new campaigns (see [`Offer::version_for_campaigns`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoNewCampaigns {
    /// It was retired.
    Retired,
    /// It has no approved version yet.
    NotApproved,
}

impl Offer {
    /// 409 for a retired offer: it takes no edits and no workflow steps.
    ///
    /// # Errors
    /// [`ApiError::Conflict`] naming when it was retired.
    pub fn ensure_not_retired(&self) -> Result<(), ApiError> {
        match self.retired_at {
            Some(at) => Err(ApiError::Conflict(format!(
                "offer {} was retired at {}; it takes no further changes",
                self.id,
                at.to_rfc3339()
            ))),
            None => Ok(()),
        }
    }

    /// The rule "an offer takes new campaigns only if it is approved and not retired",
    /// written once: the approved version a new campaign pins (the live one), or why
    /// none. Creating a campaign, activating one (its first release), the scheduler's start
    /// and moving a campaign to another version all ask it.
    ///
    /// # Errors
    /// [`NoNewCampaigns`] saying why.
    pub fn version_for_campaigns(&self) -> Result<i32, NoNewCampaigns> {
        if self.retired_at.is_some() {
            return Err(NoNewCampaigns::Retired);
        }
        self.live_version.ok_or(NoNewCampaigns::NotApproved)
    }

    /// The snapshot written to the audit trail.
    pub fn snapshot(&self) -> Value {
        json!({
            "status": self.status,
            "data": self.data,
            "comments": self.comments,
            "version": self.version,
            "live_version": self.live_version,
            "draft_base_version": self.draft_base_version,
        })
    }
}

const OFFER_COLUMNS: &str = "id, tenant_name, status, data, comments, created_by, last_edited_by, \
                             version, created_at, updated_at, live_version, draft_base_version, \
                             retired_at, retired_by, retirement_reason";

/// The names of [`OFFER_COLUMNS`], in order: [`offer`] reads the columns by position (a
/// lookup by name compares every column name, per value and row, which showed in profiles
/// of the offers list). Debug builds check the names on every row read.
const OFFER_COLUMN_NAMES: [&str; 15] = [
    "id",
    "tenant_name",
    "status",
    "data",
    "comments",
    "created_by",
    "last_edited_by",
    "version",
    "created_at",
    "updated_at",
    "live_version",
    "draft_base_version",
    "retired_at",
    "retired_by",
    "retirement_reason",
];

fn offer(row: &tokio_postgres::Row) -> Result<Offer, ApiError> {
    debug_assert!(
        super::columns_are(row, &OFFER_COLUMN_NAMES),
        "an offer row's columns are OFFER_COLUMNS"
    );
    let status: &str = row.get(2);
    let status = OfferStatus::parse(status).map_err(ApiError::internal)?;
    let live_version: Option<i32> = row.get(10);
    Ok(Offer {
        id: row.get(0),
        tenant_name: row.get(1),
        status,
        data: row.get(3),
        comments: row.get(4),
        created_by: row.get(5),
        last_edited_by: row.get(6),
        version: row.get(7),
        created_at: row.get(8),
        updated_at: row.get(9),
        live_version,
        draft_pending: live_version.is_some() && status != OfferStatus::Approved,
        draft_base_version: row.get(11),
        retired_at: row.get(12),
        retired_by: row.get(13),
        retirement_reason: row.get(14),
    })
}

/// Inserts a draft offer.
///
/// # Errors
/// Database failures.
pub async fn insert(
    tx: &TenantTx<'_>,
    data: &Value,
    comments: Option<&str>,
    created_by: &Username,
) -> Result<Offer, ApiError> {
    let row = tx
        .query_one_cached(
            &format!(
                "insert into offers (tenant_name, status, data, comments, created_by, last_edited_by)
                 values ($1, 'draft', $2, $3, $4, $4) returning {OFFER_COLUMNS}"
            ),
            &[&tx.tenant().as_str(), data, &comments, &created_by.as_str()],
        )
        .await?;
    offer(&row)
}

/// Reads one offer of `tenant`; with `for_update` the row stays locked until the
/// transaction ends.
///
/// # Errors
/// Database failures.
pub async fn get(
    client: &impl TenantExecutor,
    id: i32,
    for_update: bool,
) -> Result<Option<Offer>, ApiError> {
    let lock = if for_update { "for update" } else { "" };
    let row = client
        .row_opt(
            &format!(
                "select {OFFER_COLUMNS} from offers where tenant_name = $1 and id = $2 {lock}"
            ),
            &[&client.tenant().as_str(), &id],
        )
        .await?;
    row.as_ref().map(offer).transpose()
}

/// Filters of the offer list.
#[derive(Debug, Default, Clone)]
pub struct OfferFilter {
    /// Only this status.
    pub status: Option<OfferStatus>,
    /// Only offers created by this user.
    pub created_by: Option<Username>,
    /// `true`: only offers campaigns can run (a live version, not retired), whatever their
    /// working copy's status; `false`: only the others.
    pub live: Option<bool>,
}

/// Lists a tenant's offers, newest first.
///
/// # Errors
/// Database failures.
pub async fn list(
    client: &impl TenantExecutor,
    filter: &OfferFilter,
    page: Page,
) -> Result<Vec<Offer>, ApiError> {
    let rows = client
        .rows(
            &format!(
                "select {OFFER_COLUMNS} from offers
                 where tenant_name = $1
                   and ($2::text is null or status = $2)
                   and ($3::text is null or created_by = $3)
                   and ($6::bool is null
                        or (live_version is not null and retired_at is null) = $6)
                 order by created_at desc, id desc
                 limit $4 offset $5"
            ),
            &[
                &client.tenant().as_str(),
                &filter.status.map(OfferStatus::as_str),
                &filter.created_by.as_ref().map(Username::as_str),
                &page.limit,
                &page.offset,
                &filter.live,
            ],
        )
        .await?;
    rows.iter().map(offer).collect()
}

/// Replaces an offer's working copy, sets its status, editor and the live version the
/// draft builds on (`draft_base`), and bumps its `version`.
///
/// # Errors
/// Database failures.
#[allow(clippy::too_many_arguments)]
pub async fn update_content(
    tx: &TenantTx<'_>,
    id: i32,
    data: &Value,
    comments: Option<&str>,
    status: OfferStatus,
    editor: &Username,
    draft_base: Option<i32>,
) -> Result<Offer, ApiError> {
    let row = tx
        .query_one_cached(
            &format!(
                "update offers set data = $3, comments = $4, status = $5, last_edited_by = $6,
                                   draft_base_version = $7, version = version + 1
                 where tenant_name = $1 and id = $2 returning {OFFER_COLUMNS}"
            ),
            &[
                &tx.tenant().as_str(),
                &id,
                data,
                &comments,
                &status.as_str(),
                &editor.as_str(),
                &draft_base,
            ],
        )
        .await?;
    offer(&row)
}

/// Retires offer `id` (locked by the caller): no new campaigns, no edits; bumps `version`.
///
/// # Errors
/// Database failures.
pub async fn retire(
    tx: &TenantTx<'_>,
    id: i32,
    by: &Username,
    reason: &str,
) -> Result<Offer, ApiError> {
    let row = tx
        .query_one_cached(
            &format!(
                "update offers set retired_at = now(), retired_by = $3, retirement_reason = $4,
                                   version = version + 1
                 where tenant_name = $1 and id = $2 returning {OFFER_COLUMNS}"
            ),
            &[&tx.tenant().as_str(), &id, &by.as_str(), &reason],
        )
        .await?;
    offer(&row)
}

/// Moves an offer to `status` and bumps its version.
///
/// # Errors
/// Database failures.
pub async fn set_status(
    tx: &TenantTx<'_>,
    id: i32,
    status: OfferStatus,
) -> Result<Offer, ApiError> {
    let row = tx
        .query_one_cached(
            &format!(
                "update offers set status = $3, version = version + 1
                 where tenant_name = $1 and id = $2 returning {OFFER_COLUMNS}"
            ),
            &[&tx.tenant().as_str(), &id, &status.as_str()],
        )
        .await?;
    offer(&row)
}

/// Everyone who created or changed the offer's content since its last approval (every
/// `create` and `update` entry of its audit trail after the latest entry that approved it),
/// plus its creator and last editor: the people the maker–checker rule bars from reviewing
/// it. Read from the audit trail, so co-authors count even when someone else edited last.
///
/// # Errors
/// Database failures.
pub async fn content_authors(tx: &TenantTx<'_>, id: i32) -> Result<Vec<String>, ApiError> {
    let rows = tx
        .query_cached(
            "with trail as (
                 select id, action, performed_by, new_data from offer_audit_logs
                 where tenant_name = $1 and offer_id = $2
             )
             select performed_by as author from trail
             where action in ('create', 'update') and performed_by is not null
               and id > coalesce((select max(id) from trail
                                  where action = 'status_change'
                                    and new_data->>'status' = 'approved'), 0)
             union
             select unnest(array[created_by, last_edited_by]) from offers
             where tenant_name = $1 and id = $2",
            &[&tx.tenant().as_str(), &id],
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|row| row.get::<_, Option<String>>("author"))
        .collect())
}

/// Whether a campaign with status `active` uses the offer.
///
/// # Errors
/// Database failures.
pub async fn has_active_campaign(tx: &TenantTx<'_>, id: i32) -> Result<bool, ApiError> {
    let row = tx
        .query_one_cached(
            "select exists(select 1 from campaigns
                           where tenant_name = $1 and offer_id = $2 and status = 'active')",
            &[&tx.tenant().as_str(), &id],
        )
        .await?;
    Ok(row.get(0))
}

/// Deletes an offer (its audit trail stays).
///
/// # Errors
/// Database failures.
pub async fn delete(tx: &TenantTx<'_>, id: i32) -> Result<(), ApiError> {
    tx.execute_cached(
        "delete from offers where tenant_name = $1 and id = $2",
        &[&tx.tenant().as_str(), &id],
    )
    .await?;
    Ok(())
}

/// The tenant's offer schema and maker–checker switch.
///
/// # Errors
/// Database failures.
pub async fn tenant_rules(tx: &TenantTx<'_>) -> Result<(Option<Value>, bool), ApiError> {
    let row = tx
        .query_opt_cached(
            "select offer_schema, require_maker_checker from tenants where name = $1",
            &[&tx.tenant().as_str()],
        )
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no tenant named {}", tx.tenant())))?;
    Ok((row.get(0), row.get(1)))
}
