//! The access audit trail of a tenant (`tenant_access_audit_logs`, migration V009): every
//! change to its roles and to who holds them, whoever made it (a super admin or a tenant
//! member holding `tenant.members.manage`). Entries are appended in the transaction that
//! made the change, so a change and its record commit or vanish together; the API role may
//! not update or delete them.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{CachedStatements, GenericClient, TenantTx};
use crate::domain::{AccessAction, Username};
use crate::error::ApiError;
use crate::pagination::Page;

/// One entry to append.
#[derive(Debug, Clone)]
pub struct NewAccessEntry<'a> {
    /// What changed.
    pub action: AccessAction,
    /// Who changed it.
    pub performed_by: &'a Username,
    /// Whose roles changed (assignments and removals only).
    pub target: Option<&'a Username>,
    /// The role concerned.
    pub role: &'a str,
    /// The role's permissions before a role change.
    pub old_permissions: Option<&'a [String]>,
    /// The role's permissions after a role change, or at an assignment or removal.
    pub new_permissions: Option<&'a [String]>,
    /// Why, when the change was a consequence of another (`role deleted`, `user deleted`).
    pub reason: Option<&'a str>,
}

/// Appends one entry; call in the transaction that made the change.
///
/// # Errors
/// Database failures.
pub async fn record(tx: &TenantTx<'_>, entry: &NewAccessEntry<'_>) -> Result<(), ApiError> {
    tx.execute_cached(
        "insert into tenant_access_audit_logs
                 (tenant_name, action, performed_by, target_username, role, old_permissions,
                  new_permissions, reason)
             values ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            &tx.tenant().as_str(),
            &entry.action.as_str(),
            &entry.performed_by.as_str(),
            &entry.target.map(Username::as_str),
            &entry.role,
            &entry.old_permissions,
            &entry.new_permissions,
            &entry.reason,
        ],
    )
    .await?;
    Ok(())
}

/// One entry per role of `roles` that `tenant` has: `action` (an assignment or a removal) of
/// that role for `target` by `performed_by`, with the role's permissions at that moment.
/// Call in the transaction that made the change, before a role's deletion.
///
/// # Errors
/// Database failures.
pub async fn record_memberships(
    tx: &TenantTx<'_>,
    action: AccessAction,
    target: &Username,
    roles: &[String],
    performed_by: &Username,
    reason: Option<&str>,
) -> Result<u64, ApiError> {
    Ok(tx
        .execute_cached(
            "insert into tenant_access_audit_logs
                 (tenant_name, action, performed_by, target_username, role, new_permissions,
                  reason)
             select tenant_name, $2, $3, $4, role, permissions, $6
             from tenant_roles
             where tenant_name = $1 and role = any ($5::text[])
             order by role",
            &[
                &tx.tenant().as_str(),
                &action.as_str(),
                &performed_by.as_str(),
                &target.as_str(),
                &roles,
                &reason,
            ],
        )
        .await?)
}

/// Records the removal of every assignment of `role` in the transaction's tenant (before a
/// role is deleted with its assignments): one `role_removed` entry per holder, with the
/// permissions the role carried. Answers how many.
///
/// # Errors
/// Database failures.
pub async fn record_role_removals(
    tx: &TenantTx<'_>,
    role: &str,
    performed_by: &Username,
    reason: &str,
) -> Result<u64, ApiError> {
    insert_removals(
        tx.transaction(),
        (None, Some(tx.tenant().as_str()), Some(role)),
        performed_by,
        reason,
    )
    .await
}

/// Records the removal of every role `user` holds, in every tenant (before the user is
/// deleted): platform work, on a transaction that sees every tenant. Answers how many.
///
/// # Errors
/// Database failures.
pub async fn record_user_removals(
    client: &impl GenericClient,
    user: &Username,
    performed_by: &Username,
    reason: &str,
) -> Result<u64, ApiError> {
    insert_removals(
        client,
        (Some(user.as_str()), None, None),
        performed_by,
        reason,
    )
    .await
}

/// The one statement of both removals: every assignment matching (user, tenant, role), each
/// `None` matching all.
async fn insert_removals(
    client: &impl GenericClient,
    (username, tenant, role): (Option<&str>, Option<&str>, Option<&str>),
    performed_by: &Username,
    reason: &str,
) -> Result<u64, ApiError> {
    Ok(client
        .execute_cached(
            "insert into tenant_access_audit_logs
                 (tenant_name, action, performed_by, target_username, role, new_permissions,
                  reason)
             select a.tenant_name, 'role_removed', $4, a.username, a.role, r.permissions, $5
             from user_tenant_roles a
             join tenant_roles r using (tenant_name, role)
             where ($1::text is null or a.username = $1)
               and ($2::text is null or a.tenant_name = $2)
               and ($3::text is null or a.role = $3)
             order by a.tenant_name, a.role, a.username",
            &[&username, &tenant, &role, &performed_by.as_str(), &reason],
        )
        .await?)
}

/// One entry of the access audit trail as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AccessEntry {
    /// Increasing with time.
    pub id: i64,
    /// The tenant.
    pub tenant_name: String,
    /// What changed.
    pub action: AccessAction,
    /// Who changed it (the name it had then).
    pub performed_by: String,
    /// Whose roles changed (assignments and removals).
    pub target_username: Option<String>,
    /// The role concerned.
    pub role: String,
    /// The role's permissions before a role change.
    pub old_permissions: Option<Vec<String>>,
    /// The role's permissions after a role change, or at an assignment or removal.
    pub new_permissions: Option<Vec<String>>,
    /// Why, when the change followed from another.
    pub reason: Option<String>,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// Filters of [`list`]; `None` matches everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct AccessFilter<'a> {
    /// Only changes to this user's roles.
    pub target: Option<&'a Username>,
    /// Only changes concerning this role.
    pub role: Option<&'a str>,
}

/// A tenant's access audit trail, oldest first.
///
/// # Errors
/// Database failures; 500 for an action this build does not know (a newer schema).
pub async fn list(
    tx: &TenantTx<'_>,
    filter: AccessFilter<'_>,
    page: Page,
) -> Result<Vec<AccessEntry>, ApiError> {
    let rows = tx
        .query_cached(
            "select id, tenant_name, action, performed_by, target_username, role,
                    old_permissions, new_permissions, reason, created_at
             from tenant_access_audit_logs
             where tenant_name = $1
               and ($2::text is null or target_username = $2)
               and ($3::text is null or role = $3)
             order by id
             limit $4 offset $5",
            &[
                &tx.tenant().as_str(),
                &filter.target.map(Username::as_str),
                &filter.role,
                &page.limit,
                &page.offset,
            ],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let action: &str = r.get("action");
            Ok(AccessEntry {
                id: r.get("id"),
                tenant_name: r.get("tenant_name"),
                action: AccessAction::parse(action).map_err(ApiError::internal)?,
                performed_by: r.get("performed_by"),
                target_username: r.get("target_username"),
                role: r.get("role"),
                old_permissions: r.get("old_permissions"),
                new_permissions: r.get("new_permissions"),
                reason: r.get("reason"),
                created_at: r.get("created_at"),
            })
        })
        .collect()
}
