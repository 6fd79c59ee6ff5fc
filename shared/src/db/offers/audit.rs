//! An offer's audit trail (`offer_audit_logs`): every change, who made it and the snapshot
//! after it, written in the transaction of the change.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::db::{CachedStatements, TenantTx};
use crate::domain::Username;
use crate::error::ApiError;
use crate::pagination::Page;

/// What an audit row records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    /// The offer was created.
    Create,
    /// Its content changed.
    Update,
    /// Its status changed (submit, approve, reject).
    StatusChange,
    /// Someone commented.
    Comment,
    /// It was deleted.
    Delete,
    /// It was retired (all versions).
    Retire,
}

impl AuditAction {
    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::StatusChange => "status_change",
            Self::Comment => "comment",
            Self::Delete => "delete",
            Self::Retire => "retire",
        }
    }
}

/// One audit row to write.
#[derive(Debug)]
pub struct AuditRecord<'a> {
    /// What happened.
    pub action: AuditAction,
    /// Who did it.
    pub performed_by: &'a Username,
    /// The offer before (see [`Offer::snapshot`]).
    pub old_data: Option<Value>,
    /// The offer after.
    pub new_data: Option<Value>,
    /// A comment or reason.
    pub comment: Option<&'a str>,
}

/// The newest audit row of an offer (e.g. the comment just written).
///
/// # Errors
/// 404 if there is none; database failures.
pub async fn last_audit_entry(tx: &TenantTx<'_>, offer_id: i32) -> Result<AuditEntry, ApiError> {
    let row = tx
        .query_opt_cached(
            &format!(
                "select {AUDIT_COLUMNS} from offer_audit_logs
                 where tenant_name = $1 and offer_id = $2 order by id desc limit 1"
            ),
            &[&tx.tenant().as_str(), &offer_id],
        )
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no audit entry for offer {offer_id}")))?;
    Ok(audit_entry(&row))
}

const AUDIT_COLUMNS: &str =
    "id, offer_id, action, performed_by, old_data, new_data, comment, created_at";

fn audit_entry(r: &tokio_postgres::Row) -> AuditEntry {
    AuditEntry {
        id: r.get(0),
        offer_id: r.get(1),
        action: r.get(2),
        performed_by: r.get(3),
        old_data: r.get(4),
        new_data: r.get(5),
        comment: r.get(6),
        created_at: r.get(7),
    }
}

/// Appends an audit row; call in the transaction that made the change.
///
/// # Errors
/// Database failures.
pub async fn audit(
    tx: &TenantTx<'_>,
    offer_id: i32,
    record: AuditRecord<'_>,
) -> Result<(), ApiError> {
    tx.execute_cached(
        "insert into offer_audit_logs
                 (tenant_name, offer_id, action, performed_by, old_data, new_data, comment)
             values ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &tx.tenant().as_str(),
            &offer_id,
            &record.action.as_str(),
            &record.performed_by.as_str(),
            &record.old_data,
            &record.new_data,
            &record.comment,
        ],
    )
    .await?;
    Ok(())
}

/// An audit row as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// Sequence number.
    pub id: i32,
    /// The offer.
    pub offer_id: i32,
    /// `create`, `update`, `status_change`, `comment`, `delete` or `retire`.
    pub action: String,
    /// Who.
    pub performed_by: Option<String>,
    /// Before.
    pub old_data: Option<Value>,
    /// After.
    pub new_data: Option<Value>,
    /// Comment or reason.
    pub comment: Option<String>,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// An offer's audit trail, oldest first (it outlives the offer).
///
/// # Errors
/// Database failures.
pub async fn audit_trail(
    tx: &TenantTx<'_>,
    offer_id: i32,
    page: Page,
) -> Result<Vec<AuditEntry>, ApiError> {
    let rows = tx
        .query_cached(
            &format!(
                "select {AUDIT_COLUMNS} from offer_audit_logs
                 where tenant_name = $1 and offer_id = $2
                 order by id limit $3 offset $4"
            ),
            &[&tx.tenant().as_str(), &offer_id, &page.limit, &page.offset],
        )
        .await?;
    Ok(rows.iter().map(audit_entry).collect())
}
