//! The route table of `admin-api`: every handler of the crate, by path, and the OpenAPI
//! description built from their annotations.

use axum::Router;
use shared::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::{assignments, contact_policy, members, roles, tenants, users, webhook_keys};

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
