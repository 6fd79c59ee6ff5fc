//! `/sa/user-tenant-roles`: the super admin's view of who holds which role in which
//! tenant — assigning, listing and removing, each change recorded in the tenant's access
//! audit trail.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use shared::db::roles::{self, AssignmentFilter};
use shared::db::{access_audit, in_tenant};
use shared::domain::{AccessAction, RoleName, TenantName, Username};
use shared::extract::SuperAdmin;
use shared::http::created;
use shared::http::{AppJson, AppQuery};
use shared::openapi::NotFound;
use shared::pagination::Page;
use shared::{ApiError, AppState};
use utoipa::{IntoParams, ToSchema};

/// `POST /sa/user-tenant-roles` body: `role` (one) or `roles` (several), not both.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AssignRoles {
    username: Username,
    tenant_name: TenantName,
    /// One role (give `role` or `roles`, not both).
    role: Option<RoleName>,
    /// 1 to 50 roles.
    #[schema(min_items = 1, max_items = 50)]
    roles: Option<Vec<RoleName>>,
}

/// The roles a user holds in a tenant after an assignment.
#[derive(Serialize, ToSchema)]
pub(crate) struct UserTenantRoles {
    pub(crate) username: String,
    pub(crate) tenant_name: String,
    pub(crate) roles: Vec<String>,
}

/// Assign roles in a tenant.
///
/// `POST /sa/user-tenant-roles`: assigns roles; 201 if any is new, 200 if all were held
/// already (retries are harmless). 422 naming the field for an unknown user, tenant or role.
#[utoipa::path(
    post,
    path = "/sa/user-tenant-roles",
    tag = "admin",
    request_body = AssignRoles,
    responses(
        (status = 200, description = "Every role was held already; nothing changed.", body = UserTenantRoles),
        (status = 201, description = "Assigned; the roles the user now holds in the tenant.", body = UserTenantRoles),
    )
)]
pub(crate) async fn assign_roles(
    State(state): State<AppState>,
    SuperAdmin(admin): SuperAdmin,
    AppJson(body): AppJson<AssignRoles>,
) -> Result<Response, ApiError> {
    let wanted: Vec<RoleName> = match (body.role, body.roles) {
        (Some(role), None) => vec![role],
        (None, Some(roles)) if !roles.is_empty() && roles.len() <= 50 => roles,
        (None, Some(_)) => {
            return Err(ApiError::invalid_field("roles", "must list 1 to 50 roles"));
        }
        _ => {
            return Err(ApiError::invalid_field(
                "role",
                "give exactly one of role or roles",
            ));
        }
    };
    let (inserted, held) = in_tenant(&state.platform, &body.tenant_name, async |tx| {
        let inserted = roles::assign(tx, &body.username, &wanted, &admin.username).await?;
        access_audit::record_memberships(
            tx,
            AccessAction::RoleAssigned,
            &body.username,
            &inserted,
            &admin.username,
            None,
        )
        .await?;
        let held = roles::roles_of(tx, &body.username).await?;
        Ok((inserted, held))
    })
    .await?;
    tracing::info!(user.name = %admin.username, target.user = %body.username, tenant.name = %body.tenant_name, roles = ?wanted, "roles assigned");
    let view = UserTenantRoles {
        username: body.username.to_string(),
        tenant_name: body.tenant_name.to_string(),
        roles: held,
    };
    if !inserted.is_empty() {
        Ok(created(
            format!(
                "/sa/user-tenant-roles?username={}&tenant_name={}",
                body.username, body.tenant_name
            ),
            view,
        ))
    } else {
        Ok(AppJson(view).into_response())
    }
}

/// `GET /sa/user-tenant-roles` filters.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AssignmentQuery {
    username: Option<Username>,
    tenant_name: Option<TenantName>,
    role: Option<RoleName>,
}

/// List role assignments.
///
/// `GET /sa/user-tenant-roles?username=&tenant_name=&role=`: assignments by tenant, user,
/// role.
#[utoipa::path(
    get,
    path = "/sa/user-tenant-roles",
    tag = "admin",
    params(AssignmentQuery, Page),
    responses(
        (status = 200, description = "Assignments by tenant, user and role.", body = Vec<roles::Assignment>),
    )
)]
pub(crate) async fn list_assignments(
    State(state): State<AppState>,
    _: SuperAdmin,
    AppQuery(query): AppQuery<AssignmentQuery>,
    page: Page,
) -> Result<AppJson<Vec<roles::Assignment>>, ApiError> {
    let filter = AssignmentFilter {
        username: query.username,
        tenant_name: query.tenant_name,
        role: query.role,
    };
    Ok(AppJson(
        roles::list_assignments(&state.platform.get().await?, &filter, page).await?,
    ))
}

/// `DELETE /sa/user-tenant-roles` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RemoveRole {
    username: Username,
    tenant_name: TenantName,
    role: RoleName,
}

/// Remove a role assignment.
///
/// `DELETE /sa/user-tenant-roles`: removes one assignment (204); it stops working on the
/// user's next request. 404 if the user does not hold that role.
#[utoipa::path(
    delete,
    path = "/sa/user-tenant-roles",
    tag = "admin",
    request_body = RemoveRole,
    responses(
        (status = 204, description = "Removed; it stops working on the user's next request."),
        (status = 404, response = NotFound),
    )
)]
pub(crate) async fn remove_role(
    State(state): State<AppState>,
    SuperAdmin(admin): SuperAdmin,
    AppJson(body): AppJson<RemoveRole>,
) -> Result<StatusCode, ApiError> {
    in_tenant(&state.platform, &body.tenant_name, async |tx| {
        if !roles::remove(tx, &body.username, &body.role).await? {
            return Err(ApiError::NotFound(format!(
                "{} holds no role {} in tenant {}",
                body.username, body.role, body.tenant_name
            )));
        }
        access_audit::record_memberships(
            tx,
            AccessAction::RoleRemoved,
            &body.username,
            &[body.role.to_string()],
            &admin.username,
            None,
        )
        .await
    })
    .await?;
    tracing::info!(user.name = %admin.username, target.user = %body.username, tenant.name = %body.tenant_name, role = %body.role, "role removed");
    Ok(StatusCode::NO_CONTENT)
}
