//! Tenant roles (`tenant_roles`) and their assignment to users (`user_tenant_roles`): the
//! four defaults every tenant starts with, custom roles a super admin defines, and the
//! members of a tenant with the roles they hold.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{CachedStatements, GenericClient, TenantTx, violated_constraint};
use crate::auth::Permission;
use crate::domain::{RoleName, TenantName, Username};
use crate::error::{ApiError, FieldError};
use crate::pagination::Page;

/// A role of a tenant with its permissions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TenantRole {
    /// The role's name.
    pub role: String,
    /// Free text.
    pub description: Option<String>,
    /// Dotted permission names (`offer.read`, …).
    pub permissions: Vec<String>,
    /// Whether it is one of the four roles created with the tenant.
    pub is_default: bool,
}

fn tenant_role(r: &tokio_postgres::Row) -> TenantRole {
    TenantRole {
        role: r.get("role"),
        description: r.get("description"),
        permissions: r.get("permissions"),
        is_default: r.get("is_default"),
    }
}

/// Dotted names of `permissions`, in the catalogue's order ([`Permission::ALL`]), each once.
pub fn permission_names(permissions: &BTreeSet<Permission>) -> Vec<String> {
    permissions.iter().map(|p| p.as_str().to_owned()).collect()
}

/// Lists a tenant's roles: the defaults first, then by name.
///
/// # Errors
/// Database failures.
pub async fn list_for_tenant(tx: &TenantTx<'_>) -> Result<Vec<TenantRole>, ApiError> {
    let tenant = tx.tenant();
    let rows = tx
        .query_cached(
            "select role, description, permissions, is_default from tenant_roles
             where tenant_name = $1 order by is_default desc, role",
            &[&tenant.as_str()],
        )
        .await?;
    Ok(rows.iter().map(tenant_role).collect())
}

/// Reads one role of a tenant. With `lock`, the row is locked against change and deletion
/// (`for share`) until the transaction ends, so what was checked against it stays true.
///
/// # Errors
/// Database failures.
pub async fn get(
    tx: &TenantTx<'_>,
    role: &RoleName,
    lock: bool,
) -> Result<Option<TenantRole>, ApiError> {
    let tenant = tx.tenant();
    select_role(
        tx.transaction(),
        tenant,
        role,
        if lock { "for share" } else { "" },
    )
    .await
}

/// One role of a tenant, read with the row lock clause `lock` (empty for none).
async fn select_role(
    client: &impl GenericClient,
    tenant: &TenantName,
    role: &RoleName,
    lock: &str,
) -> Result<Option<TenantRole>, ApiError> {
    let row = client
        .query_opt_cached(
            &format!(
                "select role, description, permissions, is_default from tenant_roles
                 where tenant_name = $1 and role = $2 {lock}"
            ),
            &[&tenant.as_str(), &role.as_str()],
        )
        .await?;
    Ok(row.as_ref().map(tenant_role))
}

/// Creates a custom role of `tenant` holding `permissions`.
///
/// # Errors
/// 409 if the tenant has a role of that name; 404 if the tenant does not exist; database
/// failures.
pub async fn create(
    tx: &TenantTx<'_>,
    role: &RoleName,
    description: Option<&str>,
    permissions: &BTreeSet<Permission>,
) -> Result<TenantRole, ApiError> {
    let tenant = tx.tenant();
    let row = tx
        .query_one_cached(
            "insert into tenant_roles (tenant_name, role, description, permissions, is_default)
             values ($1, $2, $3, $4, false)
             returning role, description, permissions, is_default",
            &[
                &tenant.as_str(),
                &role.as_str(),
                &description,
                &permission_names(permissions),
            ],
        )
        .await
        .map_err(|err| match violated_constraint(&err) {
            Some("tenant_roles_pkey") => {
                ApiError::Conflict(format!("tenant {tenant} already has a role named {role}"))
            }
            Some("tenant_roles_tenant_name_fkey") => {
                ApiError::NotFound(format!("no tenant named {tenant}"))
            }
            _ => err.into(),
        })?;
    Ok(tenant_role(&row))
}

/// Replaces a role's permissions, and its description when `description` is `Some` (`Some
/// (None)` clears it). Answers the role before and after, or `None` if it does not exist.
/// Locks the row until the transaction ends.
///
/// # Errors
/// Database failures.
pub async fn update(
    tx: &TenantTx<'_>,
    role: &RoleName,
    description: Option<Option<&str>>,
    permissions: &BTreeSet<Permission>,
) -> Result<Option<(TenantRole, TenantRole)>, ApiError> {
    let tenant = tx.tenant();
    let Some(before) = select_role(tx.transaction(), tenant, role, "for update").await? else {
        return Ok(None);
    };
    let after = tx
        .query_one_cached(
            "update tenant_roles
             set permissions = $3,
                 description = case when $4 then $5 else description end,
                 updated_at = now()
             where tenant_name = $1 and role = $2
             returning role, description, permissions, is_default",
            &[
                &tenant.as_str(),
                &role.as_str(),
                &permission_names(permissions),
                &description.is_some(),
                &description.flatten(),
            ],
        )
        .await?;
    Ok(Some((before, tenant_role(&after))))
}

/// Locks a role for deletion (`for update`: assignments of it wait) and lists who holds it.
/// `None` if the role does not exist.
///
/// # Errors
/// Database failures.
pub async fn lock_for_deletion(
    tx: &TenantTx<'_>,
    role: &RoleName,
) -> Result<Option<(TenantRole, Vec<String>)>, ApiError> {
    let tenant = tx.tenant();
    let Some(stored) = select_role(tx.transaction(), tenant, role, "for update").await? else {
        return Ok(None);
    };
    let holders = tx
        .query_cached(
            "select username from user_tenant_roles where tenant_name = $1 and role = $2
             order by username",
            &[&tenant.as_str(), &role.as_str()],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok(Some((stored, holders)))
}

/// Deletes a role and, through the schema's cascade, every assignment of it. Answers whether
/// it existed.
///
/// # Errors
/// Database failures.
pub async fn delete(tx: &TenantTx<'_>, role: &RoleName) -> Result<bool, ApiError> {
    let tenant = tx.tenant();
    let n = tx
        .execute_cached(
            "delete from tenant_roles where tenant_name = $1 and role = $2",
            &[&tenant.as_str(), &role.as_str()],
        )
        .await?;
    Ok(n == 1)
}

/// The permissions `username` holds in `tenant` through its roles, with those assignments
/// and roles locked (`for share`) until the transaction ends: a concurrent removal or
/// narrowing waits, so a check made against the answer holds at commit.
///
/// # Errors
/// Database failures.
pub async fn lock_permissions_of(
    tx: &TenantTx<'_>,
    username: &Username,
) -> Result<BTreeSet<Permission>, ApiError> {
    let tenant = tx.tenant();
    let rows = tx
        .query_cached(
            "select r.permissions
             from user_tenant_roles a
             join tenant_roles r on r.tenant_name = a.tenant_name and r.role = a.role
             where a.username = $1 and a.tenant_name = $2
             for share of a, r",
            &[&username.as_str(), &tenant.as_str()],
        )
        .await?;
    Ok(rows
        .iter()
        .flat_map(|r| r.get::<_, Vec<String>>(0))
        .filter_map(|name| name.parse().ok())
        .collect())
}

/// A user holding at least one role in a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Member {
    /// The user.
    pub username: String,
    /// Display name.
    pub full_name: Option<String>,
    /// Whether the user is a super admin (whose roles only super admins change).
    pub is_super_admin: bool,
    /// The roles held in the tenant, sorted.
    pub roles: Vec<String>,
}

/// Filters of [`list_members`]; `None` matches everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct MemberFilter<'a> {
    /// Only this user.
    pub username: Option<&'a Username>,
    /// Only the holders of this role.
    pub role: Option<&'a RoleName>,
}

/// A tenant's members by username.
///
/// # Errors
/// Database failures.
pub async fn list_members(
    tx: &TenantTx<'_>,
    filter: MemberFilter<'_>,
    page: Page,
) -> Result<Vec<Member>, ApiError> {
    let tenant = tx.tenant();
    let rows = tx
        .query_cached(
            "select u.username, u.full_name, u.is_super_admin,
                    array_agg(a.role order by a.role) as roles
             from user_tenant_roles a
             join users u on u.username = a.username
             where a.tenant_name = $1 and ($2::text is null or a.username = $2)
             group by u.username
             having $3::text is null or $3 = any (array_agg(a.role))
             order by u.username
             limit $4 offset $5",
            &[
                &tenant.as_str(),
                &filter.username.map(Username::as_str),
                &filter.role.map(RoleName::as_str),
                &page.limit,
                &page.offset,
            ],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Member {
            username: r.get("username"),
            full_name: r.get("full_name"),
            is_super_admin: r.get("is_super_admin"),
            roles: r.get("roles"),
        })
        .collect())
}

/// One role held by one user in one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Assignment {
    /// The user.
    pub username: String,
    /// The tenant.
    pub tenant_name: String,
    /// The role.
    pub role: String,
    /// Who assigned it (null if that user was deleted since).
    pub assigned_by: Option<String>,
    /// When.
    pub assigned_at: DateTime<Utc>,
}

fn assignment(row: &tokio_postgres::Row) -> Assignment {
    Assignment {
        username: row.get("username"),
        tenant_name: row.get("tenant_name"),
        role: row.get("role"),
        assigned_by: row.get("assigned_by"),
        assigned_at: row.get("assigned_at"),
    }
}

/// Assigns `roles` in `tenant` to `username`; roles already held are kept as they are.
/// Answers the roles newly assigned. Call inside a transaction.
///
/// # Errors
/// 422 naming the field when the user, the tenant, or a role of that tenant does not exist;
/// database failures.
pub async fn assign(
    tx: &TenantTx<'_>,
    username: &Username,
    roles: &[RoleName],
    assigned_by: &Username,
) -> Result<Vec<String>, ApiError> {
    let tenant = tx.tenant();
    let row = tx
        .query_one_cached(
            "select exists(select 1 from users where username = $1),
                    exists(select 1 from tenants where name = $2),
                    array(select r from unnest($3::text[]) as r
                          where not exists (select 1 from tenant_roles
                                            where tenant_name = $2 and role = r))",
            &[
                &username.as_str(),
                &tenant.as_str(),
                &roles.iter().map(RoleName::as_str).collect::<Vec<_>>(),
            ],
        )
        .await?;
    if !row.get::<_, bool>(0) {
        return Err(ApiError::invalid_field(
            "username",
            format!("no user named {username}"),
        ));
    }
    if !row.get::<_, bool>(1) {
        return Err(ApiError::invalid_field(
            "tenant_name",
            format!("no tenant named {tenant}"),
        ));
    }
    let unknown: Vec<String> = row.get(2);
    if !unknown.is_empty() {
        return Err(ApiError::Unprocessable {
            detail: format!("tenant {tenant} has no role named {}", unknown.join(", ")),
            errors: unknown
                .iter()
                .map(|r| FieldError::new("role", format!("tenant {tenant} has no role {r}")))
                .collect(),
        });
    }
    let inserted = tx
        .query_cached(
            "insert into user_tenant_roles (username, tenant_name, role, assigned_by)
             select $1, $2, r, $4 from unnest($3::text[]) as r
             on conflict do nothing
             returning role",
            &[
                &username.as_str(),
                &tenant.as_str(),
                &roles.iter().map(RoleName::as_str).collect::<Vec<_>>(),
                &assigned_by.as_str(),
            ],
        )
        .await?;
    Ok(inserted.iter().map(|r| r.get(0)).collect())
}

/// Assigns one role of `tenant` to `username` unless held already; answers whether it is
/// new. The user, the tenant and the role must exist (checked by the caller).
///
/// # Errors
/// Database failures.
pub async fn assign_one(
    tx: &TenantTx<'_>,
    username: &Username,
    role: &RoleName,
    assigned_by: &Username,
) -> Result<bool, ApiError> {
    let tenant = tx.tenant();
    let n = tx
        .execute_cached(
            "insert into user_tenant_roles (username, tenant_name, role, assigned_by)
             values ($1, $2, $3, $4)
             on conflict do nothing",
            &[
                &username.as_str(),
                &tenant.as_str(),
                &role.as_str(),
                &assigned_by.as_str(),
            ],
        )
        .await?;
    Ok(n == 1)
}

/// Filters of the assignment list; `None` matches everything.
#[derive(Debug, Default, Clone)]
pub struct AssignmentFilter {
    /// Only this user's roles.
    pub username: Option<Username>,
    /// Only roles in this tenant.
    pub tenant_name: Option<TenantName>,
    /// Only this role.
    pub role: Option<RoleName>,
}

/// Lists assignments ordered by tenant, user, role.
///
/// # Errors
/// Database failures.
pub async fn list_assignments(
    client: &impl GenericClient,
    filter: &AssignmentFilter,
    page: Page,
) -> Result<Vec<Assignment>, ApiError> {
    let rows = client
        .query_cached(
            "select username, tenant_name, role, assigned_by, assigned_at
             from user_tenant_roles
             where ($1::text is null or username = $1)
               and ($2::text is null or tenant_name = $2)
               and ($3::text is null or role = $3)
             order by tenant_name, username, role
             limit $4 offset $5",
            &[
                &filter.username.as_ref().map(Username::as_str),
                &filter.tenant_name.as_ref().map(TenantName::as_str),
                &filter.role.as_ref().map(RoleName::as_str),
                &page.limit,
                &page.offset,
            ],
        )
        .await?;
    Ok(rows.iter().map(assignment).collect())
}

/// The roles `username` holds in `tenant`, sorted.
///
/// # Errors
/// Database failures.
pub async fn roles_of(tx: &TenantTx<'_>, username: &Username) -> Result<Vec<String>, ApiError> {
    let tenant = tx.tenant();
    let rows = tx
        .query_cached(
            "select role from user_tenant_roles where username = $1 and tenant_name = $2
             order by role",
            &[&username.as_str(), &tenant.as_str()],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Removes one assignment. Answers whether it existed.
///
/// # Errors
/// Database failures.
pub async fn remove(
    tx: &TenantTx<'_>,
    username: &Username,
    role: &RoleName,
) -> Result<bool, ApiError> {
    let tenant = tx.tenant();
    let n = tx
        .execute_cached(
            "delete from user_tenant_roles where username = $1 and tenant_name = $2 and role = $3",
            &[&username.as_str(), &tenant.as_str(), &role.as_str()],
        )
        .await?;
    Ok(n == 1)
}
