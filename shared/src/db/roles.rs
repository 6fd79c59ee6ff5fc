//! Tenant roles (`tenant_roles`) and their assignment to users (`user_tenant_roles`).

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::GenericClient;
use crate::domain::{RoleName, TenantName, Username};
use crate::error::{ApiError, FieldError};
use crate::http::Page;

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

/// Lists a tenant's roles by name.
///
/// # Errors
/// Database failures.
pub async fn list_for_tenant(
    client: &impl GenericClient,
    tenant: &TenantName,
) -> Result<Vec<TenantRole>, ApiError> {
    let rows = client
        .query(
            "select role, description, permissions, is_default from tenant_roles
             where tenant_name = $1 order by is_default desc, role",
            &[&tenant.as_str()],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| TenantRole {
            role: r.get(0),
            description: r.get(1),
            permissions: r.get(2),
            is_default: r.get(3),
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
/// Answers how many assignments are new. Call inside a transaction.
///
/// # Errors
/// 422 naming the field when the user, the tenant, or a role of that tenant does not exist;
/// database failures.
pub async fn assign(
    client: &impl GenericClient,
    username: &Username,
    tenant: &TenantName,
    roles: &[RoleName],
    assigned_by: &Username,
) -> Result<u64, ApiError> {
    let row = client
        .query_one(
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
    let inserted = client
        .execute(
            "insert into user_tenant_roles (username, tenant_name, role, assigned_by)
             select $1, $2, r, $4 from unnest($3::text[]) as r
             on conflict do nothing",
            &[
                &username.as_str(),
                &tenant.as_str(),
                &roles.iter().map(RoleName::as_str).collect::<Vec<_>>(),
                &assigned_by.as_str(),
            ],
        )
        .await?;
    Ok(inserted)
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
        .query(
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
pub async fn roles_of(
    client: &impl GenericClient,
    username: &Username,
    tenant: &TenantName,
) -> Result<Vec<String>, ApiError> {
    let rows = client
        .query(
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
    client: &impl GenericClient,
    username: &Username,
    tenant: &TenantName,
    role: &RoleName,
) -> Result<bool, ApiError> {
    let n = client
        .execute(
            "delete from user_tenant_roles where username = $1 and tenant_name = $2 and role = $3",
            &[&username.as_str(), &tenant.as_str(), &role.as_str()],
        )
        .await?;
    Ok(n == 1)
}
