//! `/sa/tenants/{tenant_name}/roles` and `/sa/permissions`: the permission catalogue and each
//! tenant's roles — the four defaults (changeable, never deletable) and custom ones a super
//! admin defines. Every change is recorded in the tenant's access audit trail and takes
//! effect on the next request of every holder (roles are re-read per request).

use shared::http::MAX_TEXT_CHARS;
use shared::http::created;
use std::collections::BTreeSet;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use shared::auth::{DefaultRole, Permission};
use shared::db::access_audit::{self, NewAccessEntry};
use shared::db::roles::{self, TenantRole};
use shared::db::{TenantTx, in_tenant, tenants};
use shared::domain::{AccessAction, RoleName, TenantName, Username};
use shared::extract::SuperAdmin;
use shared::http::{AppJson, AppPath, AppQuery, check_length, nullable};
use shared::openapi::{Conflict, NotFound};
use shared::paths::{RolePath, TenantPath};
use shared::{ApiError, AppState};
use utoipa::{IntoParams, ToSchema};

/// Most entries a role's `permissions` list may have (duplicates count).
pub const MAX_PERMISSION_ENTRIES: usize = 100;

/// One permission of the catalogue.
#[derive(Serialize, ToSchema)]
pub(crate) struct PermissionInfo {
    /// The dotted name roles list.
    name: Permission,
    /// What it allows, in one line.
    description: &'static str,
}

/// List the permission catalogue.
///
/// `GET /sa/permissions`: every permission a role may hold, with its meaning, in a stable
/// order.
#[utoipa::path(
    get,
    path = "/sa/permissions",
    tag = "admin",
    responses(
        (status = 200, description = "Every permission, with a one-line meaning.", body = Vec<PermissionInfo>),
    )
)]
pub(crate) async fn list_permissions(_: SuperAdmin) -> AppJson<Vec<PermissionInfo>> {
    AppJson(
        Permission::ALL
            .into_iter()
            .map(|name| PermissionInfo {
                name,
                description: name.description(),
            })
            .collect(),
    )
}

/// The permission set of a request: 422 naming `permissions` when it is empty or too long
/// (unknown names were refused while reading the body, naming their index).
fn permission_set(permissions: &[Permission]) -> Result<BTreeSet<Permission>, ApiError> {
    if permissions.is_empty() {
        return Err(ApiError::invalid_field(
            "permissions",
            "must list at least one permission (GET /sa/permissions lists them)",
        ));
    }
    if permissions.len() > MAX_PERMISSION_ENTRIES {
        return Err(ApiError::invalid_field(
            "permissions",
            format!("must have at most {MAX_PERMISSION_ENTRIES} entries"),
        ));
    }
    Ok(permissions.iter().copied().collect())
}

/// `POST /sa/tenants/{tenant_name}/roles` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateRole {
    /// `^[a-z][a-z0-9_]{1,49}$`, not a default role's name.
    name: RoleName,
    /// Free text, at most 1,000 characters.
    #[schema(max_length = 1000)]
    description: Option<String>,
    /// 1 to 100 names from `GET /sa/permissions` (duplicates are ignored).
    #[schema(min_items = 1, max_items = 100)]
    permissions: Vec<Permission>,
}

/// Create a custom role.
///
/// `POST /sa/tenants/{tenant_name}/roles`: a role holding `permissions` (201). 409 if the
/// tenant has a role of that name or it is a default role's name; 422 for an empty list or
/// an unknown permission (naming its index); 404 for an unknown tenant.
#[utoipa::path(
    post,
    path = "/sa/tenants/{tenant_name}/roles",
    tag = "admin",
    params(TenantPath),
    request_body = CreateRole,
    responses(
        (status = 201, description = "Created; `Location` names it.", body = TenantRole),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
    )
)]
pub(crate) async fn create_role(
    State(state): State<AppState>,
    SuperAdmin(admin): SuperAdmin,
    AppPath(TenantPath {
        tenant_name: tenant,
    }): AppPath<TenantPath>,
    AppJson(body): AppJson<CreateRole>,
) -> Result<Response, ApiError> {
    check_length("description", body.description.as_deref(), MAX_TEXT_CHARS)?;
    let permissions = permission_set(&body.permissions)?;
    if DefaultRole::ALL
        .iter()
        .any(|d| d.name() == body.name.as_str())
    {
        return Err(ApiError::Conflict(format!(
            "{} is the name of a default role; choose another name",
            body.name
        )));
    }
    let role = in_tenant(&state.platform, &tenant, async |tx| {
        let role = roles::create(tx, &body.name, body.description.as_deref(), &permissions).await?;
        let entry = NewAccessEntry {
            action: AccessAction::RoleCreated,
            performed_by: &admin.username,
            target: None,
            role: &role.role,
            old_permissions: None,
            new_permissions: Some(&role.permissions),
            reason: None,
        };
        access_audit::record(tx, &entry).await?;
        Ok(role)
    })
    .await?;
    tracing::info!(user.name = %admin.username, tenant.name = %tenant, role = %body.name, permissions = ?role.permissions, "role created");
    Ok(created(
        format!("/sa/tenants/{tenant}/roles/{}", body.name),
        role,
    ))
}

/// List a tenant's roles.
///
/// `GET /sa/tenants/{tenant_name}/roles`: the tenant's roles with their permissions, the
/// defaults first.
#[utoipa::path(
    get,
    path = "/sa/tenants/{tenant_name}/roles",
    tag = "admin",
    params(TenantPath),
    responses(
        (status = 200, description = "The tenant's roles with their permissions.", body = Vec<TenantRole>),
    )
)]
pub(crate) async fn list_tenant_roles(
    State(state): State<AppState>,
    _: SuperAdmin,
    AppPath(TenantPath { tenant_name }): AppPath<TenantPath>,
) -> Result<AppJson<Vec<TenantRole>>, ApiError> {
    let roles = in_tenant(&state.platform, &tenant_name, async |tx| {
        tenants::require(tx).await?;
        roles::list_for_tenant(tx).await
    })
    .await?;
    Ok(AppJson(roles))
}

fn role_not_found(tenant: &TenantName, role: &RoleName) -> ApiError {
    ApiError::NotFound(format!("tenant {tenant} has no role named {role}"))
}

/// Read a role.
///
/// `GET /sa/tenants/{tenant_name}/roles/{role}`; 404 if the tenant or the role is absent.
#[utoipa::path(
    get,
    path = "/sa/tenants/{tenant_name}/roles/{role}",
    tag = "admin",
    params(RolePath),
    responses(
        (status = 200, description = "The role with its permissions.", body = TenantRole),
        (status = 404, response = NotFound),
    )
)]
pub(crate) async fn get_role(
    State(state): State<AppState>,
    _: SuperAdmin,
    AppPath(RolePath { tenant_name, role }): AppPath<RolePath>,
) -> Result<AppJson<TenantRole>, ApiError> {
    in_tenant(&state.platform, &tenant_name, async |tx| {
        roles::get(tx, &role, false).await
    })
    .await?
    .map(AppJson)
    .ok_or_else(|| role_not_found(&tenant_name, &role))
}

/// `PUT /sa/tenants/{tenant_name}/roles/{role}` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateRole {
    /// Free text, at most 1,000 characters; `null` clears it, absent keeps it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 1000)]
    description: Option<Option<String>>,
    /// The role's whole new permission set: 1 to 100 names from `GET /sa/permissions`.
    #[schema(min_items = 1, max_items = 100)]
    permissions: Vec<Permission>,
}

/// Replace a role's permissions.
///
/// `PUT /sa/tenants/{tenant_name}/roles/{role}`: replaces the permissions (and the
/// description when given) of a custom or default role; every holder has exactly the new set
/// from its next request. 422 for an empty list or an unknown permission; 404 if absent.
#[utoipa::path(
    put,
    path = "/sa/tenants/{tenant_name}/roles/{role}",
    tag = "admin",
    params(RolePath),
    request_body = UpdateRole,
    responses(
        (status = 200, description = "The role as it is now.", body = TenantRole),
        (status = 404, response = NotFound),
    )
)]
pub(crate) async fn update_role(
    State(state): State<AppState>,
    SuperAdmin(admin): SuperAdmin,
    AppPath(RolePath {
        tenant_name: tenant,
        role,
    }): AppPath<RolePath>,
    AppJson(body): AppJson<UpdateRole>,
) -> Result<AppJson<TenantRole>, ApiError> {
    let description = body.description.as_ref().map(|d| d.as_deref());
    check_length("description", description.flatten(), MAX_TEXT_CHARS)?;
    let permissions = permission_set(&body.permissions)?;
    let after = in_tenant(&state.platform, &tenant, async |tx| {
        let (before, after) = roles::update(tx, &role, description, &permissions)
            .await?
            .ok_or_else(|| role_not_found(&tenant, &role))?;
        let entry = NewAccessEntry {
            action: AccessAction::RoleUpdated,
            performed_by: &admin.username,
            target: None,
            role: &after.role,
            old_permissions: Some(&before.permissions),
            new_permissions: Some(&after.permissions),
            reason: None,
        };
        access_audit::record(tx, &entry).await?;
        Ok(after)
    })
    .await?;
    tracing::info!(user.name = %admin.username, tenant.name = %tenant, role = %role, permissions = ?after.permissions, "role updated");
    Ok(AppJson(after))
}

/// `DELETE /sa/tenants/{tenant_name}/roles/{role}` query.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeleteRoleQuery {
    /// Also remove every assignment of the role (default false: 409 while it is assigned).
    #[serde(default)]
    remove_assignments: bool,
}

/// Delete a custom role.
///
/// `DELETE /sa/tenants/{tenant_name}/roles/{role}?remove_assignments=`: deletes a custom role
/// (204). 409 while anyone holds it, unless `remove_assignments=true` (then every assignment
/// goes too, each recorded in the access audit trail); 409 for a default role; 404 if absent.
#[utoipa::path(
    delete,
    path = "/sa/tenants/{tenant_name}/roles/{role}",
    tag = "admin",
    params(RolePath, DeleteRoleQuery),
    responses(
        (status = 204, description = "Deleted (with its assignments, if asked)."),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
    )
)]
pub(crate) async fn delete_role(
    State(state): State<AppState>,
    SuperAdmin(admin): SuperAdmin,
    AppPath(RolePath {
        tenant_name: tenant,
        role,
    }): AppPath<RolePath>,
    AppQuery(query): AppQuery<DeleteRoleQuery>,
) -> Result<StatusCode, ApiError> {
    let removed = in_tenant(&state.platform, &tenant, async |tx| {
        delete_in(tx, &admin.username, &role, query.remove_assignments).await
    })
    .await?;
    tracing::info!(user.name = %admin.username, tenant.name = %tenant, role = %role, assignments_removed = removed, "role deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// The deletion of `role` by `admin` in the transaction's tenant, with its audit entries:
/// 404 if absent, 409 for a default role or, unless `remove_assignments`, one anyone holds.
/// Answers how many assignments went with it.
async fn delete_in(
    tx: &TenantTx<'_>,
    admin: &Username,
    role: &RoleName,
    remove_assignments: bool,
) -> Result<usize, ApiError> {
    let tenant = tx.tenant();
    let (stored, holders) = roles::lock_for_deletion(tx, role)
        .await?
        .ok_or_else(|| role_not_found(tenant, role))?;
    if stored.is_default {
        return Err(ApiError::Conflict(format!(
            "{role} is a default role: change its permissions instead of deleting it"
        )));
    }
    if !holders.is_empty() && !remove_assignments {
        let shown = holders
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        let more = if holders.len() > 10 { ", …" } else { "" };
        return Err(ApiError::Conflict(format!(
            "role {role} is held by {} user(s) ({shown}{more}); remove those assignments \
             first or pass remove_assignments=true",
            holders.len(),
        )));
    }
    access_audit::record_role_removals(tx, role.as_str(), admin, "role deleted").await?;
    let entry = NewAccessEntry {
        action: AccessAction::RoleDeleted,
        performed_by: admin,
        target: None,
        role: &stored.role,
        old_permissions: Some(&stored.permissions),
        new_permissions: None,
        reason: None,
    };
    access_audit::record(tx, &entry).await?;
    roles::delete(tx, role).await?;
    Ok(holders.len())
}
