//! `admin-api`: who may do what. The super admin's routes — tenants, users, role
//! assignments, roles and the API keys of the delivery webhook — and the routes through
//! which a tenant's own admins manage its members.
//!
//! Every `/sa/...` route requires a super admin ([`shared::auth::SuperAdmin`]); the
//! `/tenants/{tenant_name}/members...` and `/tenants/{tenant_name}/access-audit-logs` routes
//! require `tenant.members.manage` in that tenant. Lists take `limit` (default 50, at most
//! 200) and `offset`. `PUT` changes only the fields present in the body (`null` clears a
//! nullable field). Creation answers 201 with `Location`; deletion 204.
//!
//! One module per resource holds its handlers and bodies (the shape of the Rust package
//! registry's controllers): [`tenants`], [`users`], [`assignments`], [`roles`], [`members`]
//! and [`webhook_keys`]; this file keeps the route table and the OpenAPI export.

use axum::Router;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use shared::domain::{TenantName, Username};
use shared::http::{AppJson, Routes};
use shared::{ApiError, AppState};
use utoipa::OpenApi;

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
pub fn routes() -> Routes<AppState> {
    Routes::new()
        .route(Method::POST, "/sa/tenants", tenants::create_tenant)
        .route(Method::GET, "/sa/tenants", tenants::list_tenants)
        .route(
            Method::GET,
            "/sa/tenants/{tenant_name}",
            tenants::get_tenant,
        )
        .route(
            Method::PUT,
            "/sa/tenants/{tenant_name}",
            tenants::update_tenant,
        )
        .route(
            Method::DELETE,
            "/sa/tenants/{tenant_name}",
            tenants::delete_tenant,
        )
        .route(Method::GET, "/sa/permissions", roles::list_permissions)
        .route(
            Method::GET,
            "/sa/contact-policy",
            contact_policy::get_contact_policy,
        )
        .route(
            Method::PUT,
            "/sa/contact-policy",
            contact_policy::set_contact_policy,
        )
        .route(
            Method::DELETE,
            "/sa/contact-policy",
            contact_policy::clear_contact_policy,
        )
        .route(
            Method::POST,
            "/sa/tenants/{tenant_name}/roles",
            roles::create_role,
        )
        .route(
            Method::GET,
            "/sa/tenants/{tenant_name}/roles",
            roles::list_tenant_roles,
        )
        .route(
            Method::GET,
            "/sa/tenants/{tenant_name}/roles/{role}",
            roles::get_role,
        )
        .route(
            Method::PUT,
            "/sa/tenants/{tenant_name}/roles/{role}",
            roles::update_role,
        )
        .route(
            Method::DELETE,
            "/sa/tenants/{tenant_name}/roles/{role}",
            roles::delete_role,
        )
        .route(
            Method::GET,
            "/sa/tenants/{tenant_name}/access-audit-logs",
            members::platform_access_audit,
        )
        .route(Method::POST, "/sa/users", users::create_user)
        .route(Method::GET, "/sa/users", users::list_users)
        .route(Method::GET, "/sa/users/{username}", users::get_user)
        .route(Method::PUT, "/sa/users/{username}", users::update_user)
        .route(Method::DELETE, "/sa/users/{username}", users::delete_user)
        .route(
            Method::POST,
            "/sa/users/{username}/change-password",
            users::set_user_password,
        )
        .route(
            Method::POST,
            "/sa/user-tenant-roles",
            assignments::assign_roles,
        )
        .route(
            Method::GET,
            "/sa/user-tenant-roles",
            assignments::list_assignments,
        )
        .route(
            Method::DELETE,
            "/sa/user-tenant-roles",
            assignments::remove_role,
        )
        .route(
            Method::POST,
            "/sa/webhook-keys",
            webhook_keys::create_webhook_key,
        )
        .route(
            Method::GET,
            "/sa/webhook-keys",
            webhook_keys::list_webhook_keys,
        )
        .route(
            Method::DELETE,
            "/sa/webhook-keys/{key_id}",
            webhook_keys::revoke_webhook_key,
        )
        .route(
            Method::GET,
            "/tenants/{tenant_name}/members",
            members::list_members,
        )
        .route(
            Method::POST,
            "/tenants/{tenant_name}/members",
            members::assign_member_role,
        )
        .route(
            Method::GET,
            "/tenants/{tenant_name}/members/{username}",
            members::get_member,
        )
        .route(
            Method::DELETE,
            "/tenants/{tenant_name}/members/{username}/roles/{role}",
            members::remove_member_role,
        )
        .route(
            Method::GET,
            "/tenants/{tenant_name}/access-audit-logs",
            members::tenant_access_audit,
        )
}

/// The router of this function.
pub fn router() -> Router<AppState> {
    routes().into_router()
}

#[derive(OpenApi)]
#[openapi(paths(
    tenants::create_tenant,
    tenants::list_tenants,
    tenants::get_tenant,
    tenants::update_tenant,
    tenants::delete_tenant,
    roles::list_permissions,
    contact_policy::get_contact_policy,
    contact_policy::set_contact_policy,
    contact_policy::clear_contact_policy,
    roles::create_role,
    roles::list_tenant_roles,
    roles::get_role,
    roles::update_role,
    roles::delete_role,
    members::platform_access_audit,
    users::create_user,
    users::list_users,
    users::get_user,
    users::update_user,
    users::set_user_password,
    users::delete_user,
    assignments::assign_roles,
    assignments::list_assignments,
    assignments::remove_role,
    webhook_keys::create_webhook_key,
    webhook_keys::list_webhook_keys,
    webhook_keys::revoke_webhook_key,
    members::list_members,
    members::get_member,
    members::assign_member_role,
    members::remove_member_role,
    members::tenant_access_audit,
))]
struct ApiDoc;

/// The OpenAPI description of this function's routes (merged by
/// [`shared::openapi::document`]).
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
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
