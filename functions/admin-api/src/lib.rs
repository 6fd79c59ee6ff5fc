//! `admin-api`: who may do what. The super admin's routes — tenants, users, role
//! assignments, roles and the API keys of the delivery webhook — and the routes through
//! which a tenant's own admins manage its members.
//!
//! Every `/sa/...` route requires a super admin ([`shared::extract::SuperAdmin`]); the
//! `/tenants/{tenant_name}/members...` and `/tenants/{tenant_name}/access-audit-logs` routes
//! require `tenant.members.manage` in that tenant. Lists take `limit` (default 50, at most
//! 200) and `offset`. `PUT` changes only the fields present in the body (`null` clears a
//! nullable field). Creation answers 201 with `Location`; deletion 204.
//!
//! One module per resource holds its handlers and bodies (the shape of the Rust package
//! registry's controllers): [`tenants`], [`users`], [`assignments`], [`roles`], [`members`]
//! and [`webhook_keys`]; this file keeps the route table and the OpenAPI export.

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use shared::domain::{TenantName, Username};
use shared::http::AppJson;
use shared::{ApiError, AppState};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

mod assignments;
mod contact_policy;
mod members;
mod roles;
mod tenants;
mod users;
mod webhook_keys;

pub use webhook_keys::{IssuedWebhookKey, issue_webhook_key};

/// Longest description or full name accepted, in characters.
pub const MAX_TEXT_CHARS: usize = 1000;

/// The routes of this function (checked against `template.yaml`).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(tenants::create_tenant, tenants::list_tenants))
        .routes(routes!(
            tenants::get_tenant,
            tenants::update_tenant,
            tenants::delete_tenant
        ))
        .routes(routes!(roles::list_permissions))
        .routes(routes!(
            contact_policy::get_contact_policy,
            contact_policy::set_contact_policy,
            contact_policy::clear_contact_policy
        ))
        .routes(routes!(roles::create_role, roles::list_tenant_roles))
        .routes(routes!(
            roles::get_role,
            roles::update_role,
            roles::delete_role
        ))
        .routes(routes!(members::list_tenant_access_audit_logs))
        .routes(routes!(users::create_user, users::list_users))
        .routes(routes!(
            users::get_user,
            users::update_user,
            users::delete_user
        ))
        .routes(routes!(users::set_user_password))
        .routes(routes!(
            assignments::assign_roles,
            assignments::list_assignments,
            assignments::remove_role
        ))
        .routes(routes!(
            webhook_keys::create_webhook_key,
            webhook_keys::list_webhook_keys
        ))
        .routes(routes!(webhook_keys::revoke_webhook_key))
        .routes(routes!(members::list_members, members::assign_member_role))
        .routes(routes!(members::get_member))
        .routes(routes!(members::remove_member_role))
        .routes(routes!(members::list_access_audit_logs))
}

/// The router of this function.
pub fn router() -> Router<AppState> {
    routes().split_for_parts().0
}

/// The OpenAPI description of this function's routes (merged by
/// [`shared::openapi::document`]).
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().into_openapi()
}

/// 201 with `Location` and `body`.
fn created<T: Serialize>(location: String, body: T) -> Response {
    shared::http::with_location(
        (StatusCode::CREATED, AppJson(body)).into_response(),
        &location,
    )
}

fn tenant_not_found(name: &TenantName) -> ApiError {
    ApiError::NotFound(format!("no tenant named {name}"))
}

fn user_not_found(name: &Username) -> ApiError {
    ApiError::NotFound(format!("no user named {name}"))
}
