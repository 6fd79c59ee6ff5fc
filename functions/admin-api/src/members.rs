//! `/tenants/{tenant_name}/members…`: a tenant's own admins manage who holds which of its
//! roles, and read its access audit trail (also `/sa/tenants/{tenant_name}/access-audit-logs`
//! for super admins).
//!
//! Every route needs `tenant.members.manage` in the tenant of the path (the default `admin`
//! role has it). The rules, checked inside the transaction that makes the change, with the
//! rows they read locked until it commits (so a concurrent narrowing of the caller's roles
//! or promotion of the target waits):
//! * only existing users and roles of this tenant (anything else is 404, as if absent);
//! * only a role whose every permission the caller holds in this tenant, to assign or to
//!   remove (403 otherwise): nobody widens anyone's access, their own included, beyond their
//!   own, and nobody strips a role broader than their own;
//! * never the roles of a super admin: those are the super admins' to change, and such a
//!   user is answered exactly as an unknown one (404), so the routes reveal nobody's status;
//! * never users, super admins or roles themselves: those stay under `/sa/...`.
//!
//! Every change is one entry of the tenant's access audit trail, in the same transaction.

use shared::http::created;
use shared::paths::user_not_found;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use shared::auth::{Permission, Principal};
use shared::db::access_audit::{self, AccessEntry, AccessFilter};
use shared::db::roles::{self, Member, MemberFilter, TenantRole};
use shared::db::{TenantTx, in_tenant, tenants, users};
use shared::domain::{AccessAction, RoleName, Username};
use shared::extract::SuperAdmin;
use shared::http::{AppJson, AppPath, AppQuery};
use shared::openapi::{Forbidden, NotFound};
use shared::pagination::Page;
use shared::paths::{MemberPath, MemberRolePath, TenantPath};
use shared::{ApiError, AppState};
use utoipa::{IntoParams, ToSchema};

use crate::assignments::UserTenantRoles;

/// `GET /tenants/{tenant_name}/members` filters.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct MemberQuery {
    /// Only the holders of this role.
    role: Option<RoleName>,
}

/// List a tenant's members.
///
/// `GET /tenants/{tenant_name}/members?role=`: every user holding a role in the tenant, with
/// those roles, by username.
#[utoipa::path(
    get,
    path = "/tenants/{tenant_name}/members",
    tag = "members",
    params(TenantPath, MemberQuery, Page),
    responses(
        (status = 200, description = "The tenant's members by username.", body = Vec<Member>),
        (status = 403, response = Forbidden),
    )
)]
pub(crate) async fn list_members(
    State(state): State<AppState>,
    principal: Principal,
    AppPath(TenantPath {
        tenant_name: tenant,
    }): AppPath<TenantPath>,
    AppQuery(query): AppQuery<MemberQuery>,
    page: Page,
) -> Result<AppJson<Vec<Member>>, ApiError> {
    principal.require(&tenant, Permission::TenantMembersManage)?;
    let members = in_tenant(&state.pool, &tenant, async |tx| {
        let filter = MemberFilter {
            username: None,
            role: query.role.as_ref(),
        };
        let members = roles::list_members(tx, filter, page).await?;
        Ok(members)
    })
    .await?;
    Ok(AppJson(members))
}

/// Read one member.
///
/// `GET /tenants/{tenant_name}/members/{username}`: the user's roles in the tenant; 404 if
/// the user holds none there.
#[utoipa::path(
    get,
    path = "/tenants/{tenant_name}/members/{username}",
    tag = "members",
    params(MemberPath),
    responses(
        (status = 200, description = "The member with its roles in the tenant.", body = Member),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
    )
)]
pub(crate) async fn get_member(
    State(state): State<AppState>,
    principal: Principal,
    AppPath(MemberPath {
        tenant_name: tenant,
        username,
    }): AppPath<MemberPath>,
) -> Result<AppJson<Member>, ApiError> {
    principal.require(&tenant, Permission::TenantMembersManage)?;
    let member = in_tenant(&state.pool, &tenant, async |tx| {
        let filter = MemberFilter {
            username: Some(&username),
            role: None,
        };
        let member = roles::list_members(
            tx,
            filter,
            Page {
                limit: 1,
                offset: 0,
            },
        )
        .await?
        .pop();
        Ok(member)
    })
    .await?;
    member
        .map(AppJson)
        .ok_or_else(|| ApiError::NotFound(format!("{username} holds no role in tenant {tenant}")))
}

/// The checks of one change to `target`'s holding of `role` by `actor` (module docs), made
/// in `tx` with the rows read locked. Answers the role.
async fn authorize_change(
    tx: &TenantTx<'_>,
    actor: &Username,
    target: &Username,
    role: &RoleName,
    verb: &str,
) -> Result<TenantRole, ApiError> {
    let tenant = tx.tenant();
    let stored = roles::get(tx, role, true)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("tenant {tenant} has no role named {role}")))?;
    // Re-read under lock: what the caller held when the request began may have changed.
    let held = roles::lock_permissions_of(tx, actor).await?;
    if !held.contains(&Permission::TenantMembersManage) {
        return Err(ApiError::Forbidden(format!(
            "your roles in tenant {tenant} do not grant {}",
            Permission::TenantMembersManage
        )));
    }
    // A stored permission this build does not know counts as lacking: nobody grants what
    // cannot be checked.
    let lacking: Vec<&str> = stored
        .permissions
        .iter()
        .filter(|name| {
            name.parse::<Permission>()
                .map_or(true, |permission| !held.contains(&permission))
        })
        .map(String::as_str)
        .collect();
    if !lacking.is_empty() {
        return Err(ApiError::Forbidden(format!(
            "you cannot {verb} role {role}: it carries permissions you do not hold in tenant \
             {tenant} ({})",
            lacking.join(", ")
        )));
    }
    match users::lock_is_super_admin(tx, target).await? {
        None => Err(user_not_found(target)),
        // Answered exactly like an unknown user: a tenant admin learns nothing of who the
        // platform's super admins are.
        Some(true) => Err(user_not_found(target)),
        Some(false) => Ok(stored),
    }
}

/// `POST /tenants/{tenant_name}/members` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AssignMemberRole {
    /// An existing user (a super admin is answered as unknown).
    username: Username,
    /// A role of this tenant whose every permission the caller holds here.
    role: RoleName,
}

/// Assign a role to a user.
///
/// `POST /tenants/{tenant_name}/members` `{"username", "role"}`: gives an existing user a
/// role of this tenant; 201 if new, 200 if held already (retries are harmless). 403 for a
/// role carrying a permission the caller lacks here; 404 for an unknown user (or a super
/// admin, answered the same) or a role this tenant does not have.
#[utoipa::path(
    post,
    path = "/tenants/{tenant_name}/members",
    tag = "members",
    params(TenantPath),
    request_body = AssignMemberRole,
    responses(
        (status = 200, description = "The role was held already; nothing changed.", body = UserTenantRoles),
        (status = 201, description = "Assigned; the roles the user now holds in the tenant. `Location` names the member.", body = UserTenantRoles),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
    )
)]
pub(crate) async fn assign_member_role(
    State(state): State<AppState>,
    principal: Principal,
    AppPath(TenantPath {
        tenant_name: tenant,
    }): AppPath<TenantPath>,
    AppJson(body): AppJson<AssignMemberRole>,
) -> Result<Response, ApiError> {
    principal.require(&tenant, Permission::TenantMembersManage)?;
    let actor = &principal.username;
    let (new, held) = in_tenant(&state.pool, &tenant, async |tx| {
        let role = authorize_change(tx, actor, &body.username, &body.role, "assign").await?;
        let new = roles::assign_one(tx, &body.username, &body.role, actor).await?;
        if new {
            record_membership(tx, AccessAction::RoleAssigned, actor, &body.username, &role).await?;
        }
        let held = roles::roles_of(tx, &body.username).await?;
        Ok((new, held))
    })
    .await?;
    let view = UserTenantRoles {
        username: body.username.to_string(),
        tenant_name: tenant.to_string(),
        roles: held,
    };
    if new {
        tracing::info!(user.name = %actor, target.user = %body.username, tenant.name = %tenant, role = %body.role, "member role assigned");
        Ok(created(
            format!("/tenants/{tenant}/members/{}", body.username),
            view,
        ))
    } else {
        Ok(AppJson(view).into_response())
    }
}

/// The access audit entry of one assignment or removal of `role` (its permissions now).
async fn record_membership(
    tx: &TenantTx<'_>,
    action: AccessAction,
    actor: &Username,
    target: &Username,
    role: &TenantRole,
) -> Result<(), ApiError> {
    access_audit::record_memberships(
        tx,
        action,
        target,
        std::slice::from_ref(&role.role),
        actor,
        None,
    )
    .await
    .map(drop)
}

/// Remove a role from a member.
///
/// `DELETE /tenants/{tenant_name}/members/{username}/roles/{role}`: takes the role away
/// (204); it stops working on the user's next request. 403 for a role carrying a permission
/// the caller lacks here; 404 if the user does not hold it or is unknown (or a super admin,
/// answered the same).
#[utoipa::path(
    delete,
    path = "/tenants/{tenant_name}/members/{username}/roles/{role}",
    tag = "members",
    params(MemberRolePath),
    responses(
        (status = 204, description = "Removed; it stops working on the user's next request."),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
    )
)]
pub(crate) async fn remove_member_role(
    State(state): State<AppState>,
    principal: Principal,
    AppPath(MemberRolePath {
        tenant_name: tenant,
        username,
        role,
    }): AppPath<MemberRolePath>,
) -> Result<StatusCode, ApiError> {
    principal.require(&tenant, Permission::TenantMembersManage)?;
    let actor = &principal.username;
    in_tenant(&state.pool, &tenant, async |tx| {
        let stored = authorize_change(tx, actor, &username, &role, "remove").await?;
        if !roles::remove(tx, &username, &role).await? {
            return Err(ApiError::NotFound(format!(
                "{username} holds no role {role} in tenant {tenant}"
            )));
        }
        record_membership(tx, AccessAction::RoleRemoved, actor, &username, &stored).await?;
        Ok(())
    })
    .await?;
    tracing::info!(user.name = %actor, target.user = %username, tenant.name = %tenant, role = %role, "member role removed");
    Ok(StatusCode::NO_CONTENT)
}

/// Access audit trail filters.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AccessAuditQuery {
    /// Only changes to this user's roles.
    username: Option<Username>,
    /// Only changes concerning this role.
    role: Option<RoleName>,
}

impl AccessAuditQuery {
    fn filter(&self) -> AccessFilter<'_> {
        AccessFilter {
            target: self.username.as_ref(),
            role: self.role.as_ref().map(RoleName::as_str),
        }
    }
}

/// Read the tenant's access audit trail.
///
/// `GET /tenants/{tenant_name}/access-audit-logs?username=&role=`: every change to the
/// tenant's roles and their holders (who, what, when), oldest first.
#[utoipa::path(
    get,
    path = "/tenants/{tenant_name}/access-audit-logs",
    tag = "members",
    params(TenantPath, AccessAuditQuery, Page),
    responses(
        (status = 200, description = "The tenant's access changes, oldest first.", body = Vec<AccessEntry>),
        (status = 403, response = Forbidden),
    )
)]
pub(crate) async fn list_access_audit_logs(
    State(state): State<AppState>,
    principal: Principal,
    AppPath(TenantPath {
        tenant_name: tenant,
    }): AppPath<TenantPath>,
    AppQuery(query): AppQuery<AccessAuditQuery>,
    page: Page,
) -> Result<AppJson<Vec<AccessEntry>>, ApiError> {
    principal.require(&tenant, Permission::TenantMembersManage)?;
    let entries = in_tenant(&state.pool, &tenant, async |tx| {
        let entries = access_audit::list(tx, query.filter(), page).await?;
        Ok(entries)
    })
    .await?;
    Ok(AppJson(entries))
}

/// Read a tenant's access audit trail (super admin).
///
/// `GET /sa/tenants/{tenant_name}/access-audit-logs?username=&role=`: as the tenant's admins
/// see it; 404 for an unknown tenant.
#[utoipa::path(
    get,
    path = "/sa/tenants/{tenant_name}/access-audit-logs",
    tag = "admin",
    params(TenantPath, AccessAuditQuery, Page),
    responses(
        (status = 200, description = "The tenant's access changes, oldest first.", body = Vec<AccessEntry>),
        (status = 404, response = NotFound),
    )
)]
pub(crate) async fn list_tenant_access_audit_logs(
    State(state): State<AppState>,
    _: SuperAdmin,
    AppPath(TenantPath {
        tenant_name: tenant,
    }): AppPath<TenantPath>,
    AppQuery(query): AppQuery<AccessAuditQuery>,
    page: Page,
) -> Result<AppJson<Vec<AccessEntry>>, ApiError> {
    let entries = in_tenant(&state.platform, &tenant, async |tx| {
        tenants::require(tx).await?;
        access_audit::list(tx, query.filter(), page).await
    })
    .await?;
    Ok(AppJson(entries))
}
