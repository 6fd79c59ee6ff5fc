//! `admin-api`: the super admin's routes — tenants, users, role assignments and the API keys
//! of the delivery webhook.
//!
//! Every route requires a super admin ([`SuperAdmin`]). Lists take `limit` (default 50, at
//! most 200) and `offset`. `PUT` changes only the fields present in the body (`null` clears
//! a nullable field). Creation answers 201 with `Location`; deletion 204.

use axum::Router;
use axum::extract::State;
use axum::http::Method;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use shared::auth::password::check_policy;
use shared::auth::{SuperAdmin, api_key};
use shared::db::roles::{self, AssignmentFilter, TenantRole};
use shared::db::webhooks::{self, WebhookKey};
use shared::db::{tenants, users};
use shared::domain::{RoleName, TenantName, Username};
use shared::http::Routes;
use shared::http::{AppJson, AppPath, AppQuery, Page, check_length, nullable};
use shared::openapi::{Conflict, NotFound};
use shared::{ApiError, AppState};
use utoipa::{IntoParams, OpenApi, ToSchema};

/// Longest description or full name accepted, in characters.
pub const MAX_TEXT_CHARS: usize = 1000;

/// The routes of this function (checked against `template.yaml`).
pub fn routes() -> Routes<AppState> {
    Routes::new()
        .route(Method::POST, "/sa/tenants", create_tenant)
        .route(Method::GET, "/sa/tenants", list_tenants)
        .route(Method::GET, "/sa/tenants/{tenant_name}", get_tenant)
        .route(Method::PUT, "/sa/tenants/{tenant_name}", update_tenant)
        .route(Method::DELETE, "/sa/tenants/{tenant_name}", delete_tenant)
        .route(
            Method::GET,
            "/sa/tenants/{tenant_name}/roles",
            list_tenant_roles,
        )
        .route(Method::POST, "/sa/users", create_user)
        .route(Method::GET, "/sa/users", list_users)
        .route(Method::GET, "/sa/users/{username}", get_user)
        .route(Method::PUT, "/sa/users/{username}", update_user)
        .route(Method::DELETE, "/sa/users/{username}", delete_user)
        .route(
            Method::POST,
            "/sa/users/{username}/change-password",
            set_user_password,
        )
        .route(Method::POST, "/sa/user-tenant-roles", assign_roles)
        .route(Method::GET, "/sa/user-tenant-roles", list_assignments)
        .route(Method::DELETE, "/sa/user-tenant-roles", remove_role)
        .route(Method::POST, "/sa/webhook-keys", create_webhook_key)
        .route(Method::GET, "/sa/webhook-keys", list_webhook_keys)
        .route(
            Method::DELETE,
            "/sa/webhook-keys/{key_id}",
            revoke_webhook_key,
        )
}

/// The router of this function.
pub fn router() -> Router<AppState> {
    routes().into_router()
}

#[derive(OpenApi)]
#[openapi(paths(
    create_tenant,
    list_tenants,
    get_tenant,
    update_tenant,
    delete_tenant,
    list_tenant_roles,
    create_user,
    list_users,
    get_user,
    update_user,
    set_user_password,
    delete_user,
    assign_roles,
    list_assignments,
    remove_role,
    create_webhook_key,
    list_webhook_keys,
    revoke_webhook_key,
))]
struct ApiDoc;

/// The OpenAPI description of this function's routes (merged by
/// [`shared::openapi::document`]).
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

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

// ---------------------------------------------------------------------------------------
// Tenants

/// `POST /sa/tenants` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateTenant {
    name: TenantName,
    /// Free text, at most 1,000 characters.
    #[schema(max_length = 1000)]
    description: Option<String>,
    /// A JSON Schema every offer's `data` must satisfy.
    #[schema(value_type = Option<Object>)]
    offer_schema: Option<serde_json::Value>,
    /// Whether offers need a checker's approval (default true).
    require_maker_checker: Option<bool>,
}

/// 422 unless `schema` is a JSON object that compiles as a JSON Schema.
fn check_offer_schema(schema: Option<&serde_json::Value>) -> Result<(), ApiError> {
    let Some(schema) = schema else {
        return Ok(());
    };
    if !schema.is_object() {
        return Err(ApiError::invalid_field(
            "offer_schema",
            "must be a JSON Schema object",
        ));
    }
    jsonschema::validator_for(schema).map(drop).map_err(|err| {
        ApiError::invalid_field("offer_schema", format!("is not a valid JSON Schema: {err}"))
    })
}

/// A tenant with its roles.
#[derive(Serialize, ToSchema)]
struct TenantView {
    #[serde(flatten)]
    tenant: tenants::Tenant,
    roles: Vec<TenantRole>,
}

/// Create a tenant.
///
/// `POST /sa/tenants`: creates a tenant and its four default roles (201). 409 if the name is
/// taken; 422 for a name outside `^[a-z][a-z0-9_]{1,49}$`.
#[utoipa::path(
    post,
    path = "/sa/tenants",
    tag = "admin",
    security(("bearer" = [])),
    request_body = CreateTenant,
    responses(
        (status = 201, description = "Created, with its four default roles; `Location` names it.", body = TenantView),
        (status = 409, response = Conflict),
    )
)]
async fn create_tenant(
    State(state): State<AppState>,
    SuperAdmin(admin): SuperAdmin,
    AppJson(body): AppJson<CreateTenant>,
) -> Result<Response, ApiError> {
    check_length("description", body.description.as_deref(), MAX_TEXT_CHARS)?;
    check_offer_schema(body.offer_schema.as_ref())?;
    let fields = tenants::TenantFields {
        description: Some(body.description.as_deref()),
        offer_schema: Some(body.offer_schema.as_ref()),
        require_maker_checker: body.require_maker_checker,
    };
    let mut client = state.platform.get().await?;
    let tx = client.transaction().await?;
    let tenant = tenants::create(&tx, &body.name, &fields, &admin.username).await?;
    let roles = roles::list_for_tenant(&tx, &body.name).await?;
    tx.commit().await?;
    tracing::info!(user.name = %admin.username, tenant.name = %body.name, "tenant created");
    Ok(created(
        format!("/sa/tenants/{}", body.name),
        TenantView { tenant, roles },
    ))
}

/// List tenants.
///
/// `GET /sa/tenants`: tenants by name.
#[utoipa::path(
    get,
    path = "/sa/tenants",
    tag = "admin",
    security(("bearer" = [])),
    params(Page),
    responses(
        (status = 200, description = "Tenants by name.", body = Vec<tenants::Tenant>),
    )
)]
async fn list_tenants(
    State(state): State<AppState>,
    _: SuperAdmin,
    page: Page,
) -> Result<AppJson<Vec<tenants::Tenant>>, ApiError> {
    Ok(AppJson(
        tenants::list(&state.platform.get().await?, page).await?,
    ))
}

/// Read a tenant and its roles.
///
/// `GET /sa/tenants/{tenant_name}`: the tenant with its roles; 404 if absent.
#[utoipa::path(
    get,
    path = "/sa/tenants/{tenant_name}",
    tag = "admin",
    security(("bearer" = [])),
    params(("tenant_name" = TenantName, Path, description = "The tenant's name.")),
    responses(
        (status = 200, description = "The tenant with its roles.", body = TenantView),
    )
)]
async fn get_tenant(
    State(state): State<AppState>,
    _: SuperAdmin,
    AppPath(name): AppPath<TenantName>,
) -> Result<AppJson<TenantView>, ApiError> {
    let client = state.platform.get().await?;
    let tenant = tenants::get(&client, &name)
        .await?
        .ok_or_else(|| tenant_not_found(&name))?;
    let roles = roles::list_for_tenant(&client, &name).await?;
    Ok(AppJson(TenantView { tenant, roles }))
}

/// `PUT /sa/tenants/{tenant_name}` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct UpdateTenant {
    /// Free text, at most 1,000 characters; `null` clears it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 1000)]
    description: Option<Option<String>>,
    /// A JSON Schema for offers' `data`; `null` removes it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Object>)]
    offer_schema: Option<Option<serde_json::Value>>,
    /// Whether offers need a checker's approval.
    require_maker_checker: Option<bool>,
}

/// Update a tenant.
///
/// `PUT /sa/tenants/{tenant_name}`: changes the description, the offer schema (existing
/// offers are not re-validated; the schema applies to every later write) or the
/// maker-checker switch; 404 if absent.
#[utoipa::path(
    put,
    path = "/sa/tenants/{tenant_name}",
    tag = "admin",
    security(("bearer" = [])),
    params(("tenant_name" = TenantName, Path, description = "The tenant's name.")),
    request_body = UpdateTenant,
    responses(
        (status = 200, description = "The updated tenant.", body = tenants::Tenant),
    )
)]
async fn update_tenant(
    State(state): State<AppState>,
    SuperAdmin(admin): SuperAdmin,
    AppPath(name): AppPath<TenantName>,
    AppJson(body): AppJson<UpdateTenant>,
) -> Result<AppJson<tenants::Tenant>, ApiError> {
    let fields = tenants::TenantFields {
        description: body.description.as_ref().map(|d| d.as_deref()),
        offer_schema: body.offer_schema.as_ref().map(|s| s.as_ref()),
        require_maker_checker: body.require_maker_checker,
    };
    check_length("description", fields.description.flatten(), MAX_TEXT_CHARS)?;
    check_offer_schema(fields.offer_schema.flatten())?;
    let tenant = tenants::update(&state.platform.get().await?, &name, &fields)
        .await?
        .ok_or_else(|| tenant_not_found(&name))?;
    tracing::info!(user.name = %admin.username, tenant.name = %name, "tenant updated");
    Ok(AppJson(tenant))
}

/// Delete a tenant and everything in it.
///
/// `DELETE /sa/tenants/{tenant_name}`: deletes the tenant with its roles, assignments,
/// offers and campaigns (204); 404 if absent.
#[utoipa::path(
    delete,
    path = "/sa/tenants/{tenant_name}",
    tag = "admin",
    security(("bearer" = [])),
    params(("tenant_name" = TenantName, Path, description = "The tenant's name.")),
    responses(
        (status = 204, description = "Deleted, with its roles, assignments, offers and campaigns."),
    )
)]
async fn delete_tenant(
    State(state): State<AppState>,
    SuperAdmin(admin): SuperAdmin,
    AppPath(name): AppPath<TenantName>,
) -> Result<StatusCode, ApiError> {
    if !tenants::delete(&state.platform.get().await?, &name).await? {
        return Err(tenant_not_found(&name));
    }
    tracing::info!(user.name = %admin.username, tenant.name = %name, "tenant deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// List a tenant's roles.
///
/// `GET /sa/tenants/{tenant_name}/roles`: the tenant's roles with their permissions.
#[utoipa::path(
    get,
    path = "/sa/tenants/{tenant_name}/roles",
    tag = "admin",
    security(("bearer" = [])),
    params(("tenant_name" = TenantName, Path, description = "The tenant's name.")),
    responses(
        (status = 200, description = "The tenant's roles with their permissions.", body = Vec<TenantRole>),
    )
)]
async fn list_tenant_roles(
    State(state): State<AppState>,
    _: SuperAdmin,
    AppPath(name): AppPath<TenantName>,
) -> Result<AppJson<Vec<TenantRole>>, ApiError> {
    let client = state.platform.get().await?;
    if tenants::get(&client, &name).await?.is_none() {
        return Err(tenant_not_found(&name));
    }
    Ok(AppJson(roles::list_for_tenant(&client, &name).await?))
}

// ---------------------------------------------------------------------------------------
// Users

/// `POST /sa/users` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateUser {
    username: Username,
    /// 12 to 128 characters; not the username, not a common password.
    #[schema(min_length = 12, max_length = 128)]
    password: String,
    /// At most 1,000 characters.
    #[schema(max_length = 1000)]
    full_name: Option<String>,
    /// Default false.
    #[serde(default)]
    is_super_admin: bool,
}

/// Create a user.
///
/// `POST /sa/users`: creates a user (201). 409 if the username is taken; 422 if the password
/// breaks the policy.
#[utoipa::path(
    post,
    path = "/sa/users",
    tag = "admin",
    security(("bearer" = [])),
    request_body = CreateUser,
    responses(
        (status = 201, description = "Created; `Location` names it.", body = users::User),
        (status = 409, response = Conflict),
    )
)]
async fn create_user(
    State(state): State<AppState>,
    SuperAdmin(admin): SuperAdmin,
    AppJson(body): AppJson<CreateUser>,
) -> Result<Response, ApiError> {
    check_length("full_name", body.full_name.as_deref(), MAX_TEXT_CHARS)?;
    check_policy(&body.password, body.username.as_str())
        .map_err(|reason| ApiError::invalid_field("password", reason))?;
    let hash = state
        .passwords
        .hash(SecretString::from(body.password))
        .await?;
    let user = users::create(
        &state.platform.get().await?,
        &users::NewUser {
            username: &body.username,
            password_hash: &hash,
            full_name: body.full_name.as_deref(),
            is_super_admin: body.is_super_admin,
        },
    )
    .await?;
    tracing::info!(user.name = %admin.username, target.user = %body.username, is_super_admin = body.is_super_admin, "user created");
    Ok(created(format!("/sa/users/{}", body.username), user))
}

/// `GET /sa/users` filters.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct UserFilter {
    /// Only super admins (`true`) or only other users (`false`).
    is_super_admin: Option<bool>,
}

/// List users.
///
/// `GET /sa/users`: users by username, optionally `?is_super_admin=true|false`.
#[utoipa::path(
    get,
    path = "/sa/users",
    tag = "admin",
    security(("bearer" = [])),
    params(UserFilter, Page),
    responses(
        (status = 200, description = "Users by username.", body = Vec<users::User>),
    )
)]
async fn list_users(
    State(state): State<AppState>,
    _: SuperAdmin,
    AppQuery(filter): AppQuery<UserFilter>,
    page: Page,
) -> Result<AppJson<Vec<users::User>>, ApiError> {
    Ok(AppJson(
        users::list(&state.platform.get().await?, filter.is_super_admin, page).await?,
    ))
}

/// Read a user.
///
/// `GET /sa/users/{username}`; 404 if absent.
#[utoipa::path(
    get,
    path = "/sa/users/{username}",
    tag = "admin",
    security(("bearer" = [])),
    params(("username" = Username, Path, description = "The user's username.")),
    responses(
        (status = 200, description = "The user.", body = users::User),
    )
)]
async fn get_user(
    State(state): State<AppState>,
    _: SuperAdmin,
    AppPath(username): AppPath<Username>,
) -> Result<AppJson<users::User>, ApiError> {
    users::get(&state.platform.get().await?, &username)
        .await?
        .map(AppJson)
        .ok_or_else(|| user_not_found(&username))
}

/// `PUT /sa/users/{username}` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct UpdateUser {
    /// At most 1,000 characters; `null` clears it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 1000)]
    full_name: Option<Option<String>>,
    /// Grants or withdraws super admin.
    is_super_admin: Option<bool>,
}

/// Update a user.
///
/// `PUT /sa/users/{username}`: changes `full_name` and/or `is_super_admin`. 409 if it would
/// leave no super admin, or for demoting oneself; 404 if absent.
#[utoipa::path(
    put,
    path = "/sa/users/{username}",
    tag = "admin",
    security(("bearer" = [])),
    params(("username" = Username, Path, description = "The user's username.")),
    request_body = UpdateUser,
    responses(
        (status = 200, description = "The updated user.", body = users::User),
        (status = 409, response = Conflict),
    )
)]
async fn update_user(
    State(state): State<AppState>,
    SuperAdmin(admin): SuperAdmin,
    AppPath(username): AppPath<Username>,
    AppJson(body): AppJson<UpdateUser>,
) -> Result<AppJson<users::User>, ApiError> {
    if username == admin.username && body.is_super_admin == Some(false) {
        return Err(ApiError::Conflict(
            "you cannot demote yourself; another super admin must".into(),
        ));
    }
    let full_name = body.full_name.as_ref().map(|n| n.as_deref());
    check_length("full_name", full_name.flatten(), MAX_TEXT_CHARS)?;
    let mut client = state.platform.get().await?;
    let tx = client.transaction().await?;
    if body.is_super_admin == Some(false) {
        keep_a_super_admin(&tx, &username, "demote").await?;
    }
    let user = users::update(&tx, &username, full_name, body.is_super_admin)
        .await?
        .ok_or_else(|| user_not_found(&username))?;
    tx.commit().await?;
    tracing::info!(user.name = %admin.username, target.user = %username, "user updated");
    Ok(AppJson(user))
}

/// 409 if `username` is the only super admin (the rows stay locked until the transaction
/// ends, so two concurrent demotions cannot both pass).
async fn keep_a_super_admin(
    tx: &impl shared::db::GenericClient,
    username: &Username,
    action: &str,
) -> Result<(), ApiError> {
    let admins = users::lock_super_admins(tx).await?;
    if admins.len() == 1 && admins[0] == username.as_str() {
        return Err(ApiError::Conflict(format!(
            "cannot {action} {username}: it is the only super admin"
        )));
    }
    Ok(())
}

/// `POST /sa/users/{username}/change-password` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SetPassword {
    /// 12 to 128 characters; not the username, not a common password.
    #[schema(min_length = 12, max_length = 128)]
    new_password: String,
}

/// Set a user's password.
///
/// `POST /sa/users/{username}/change-password`: sets a user's password (204) and revokes
/// every token issued to that user before; 422 if the password breaks the policy; 409 for
/// one's own account (that takes the current password: `POST /auth/change-password`).
#[utoipa::path(
    post,
    path = "/sa/users/{username}/change-password",
    tag = "admin",
    security(("bearer" = [])),
    params(("username" = Username, Path, description = "The user's username.")),
    request_body = SetPassword,
    responses(
        (status = 204, description = "Set; the user's earlier tokens stop working."),
        (status = 409, response = Conflict),
    )
)]
async fn set_user_password(
    State(state): State<AppState>,
    SuperAdmin(admin): SuperAdmin,
    AppPath(username): AppPath<Username>,
    AppJson(body): AppJson<SetPassword>,
) -> Result<StatusCode, ApiError> {
    if username == admin.username {
        return Err(ApiError::Conflict(
            "set your own password with POST /auth/change-password, which asks for the current one"
                .into(),
        ));
    }
    check_policy(&body.new_password, username.as_str())
        .map_err(|reason| ApiError::invalid_field("new_password", reason))?;
    if users::get(&state.platform.get().await?, &username)
        .await?
        .is_none()
    {
        return Err(user_not_found(&username));
    }
    let hash = state
        .passwords
        .hash(SecretString::from(body.new_password))
        .await?;
    if !users::set_password(&state.platform.get().await?, &username, &hash, Utc::now()).await? {
        return Err(user_not_found(&username));
    }
    tracing::info!(user.name = %admin.username, target.user = %username, "password set by super admin; earlier tokens revoked");
    Ok(StatusCode::NO_CONTENT)
}

/// Delete a user.
///
/// `DELETE /sa/users/{username}`: deletes a user and its role assignments (204). 409 for
/// oneself, the only super admin, or a user named as the author of records; 404 if absent.
#[utoipa::path(
    delete,
    path = "/sa/users/{username}",
    tag = "admin",
    security(("bearer" = [])),
    params(("username" = Username, Path, description = "The user's username.")),
    responses(
        (status = 204, description = "Deleted, with its role assignments."),
        (status = 409, response = Conflict),
    )
)]
async fn delete_user(
    State(state): State<AppState>,
    SuperAdmin(admin): SuperAdmin,
    AppPath(username): AppPath<Username>,
) -> Result<StatusCode, ApiError> {
    if username == admin.username {
        return Err(ApiError::Conflict(
            "you cannot delete your own account".into(),
        ));
    }
    let mut client = state.platform.get().await?;
    let tx = client.transaction().await?;
    keep_a_super_admin(&tx, &username, "delete").await?;
    if !users::delete(&tx, &username).await? {
        return Err(user_not_found(&username));
    }
    tx.commit().await?;
    tracing::info!(user.name = %admin.username, target.user = %username, "user deleted");
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------------------
// Role assignments

/// `POST /sa/user-tenant-roles` body: `role` (one) or `roles` (several), not both.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct AssignRoles {
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
struct UserTenantRoles {
    username: String,
    tenant_name: String,
    roles: Vec<String>,
}

/// Assign roles in a tenant.
///
/// `POST /sa/user-tenant-roles`: assigns roles; 201 if any is new, 200 if all were held
/// already (retries are harmless). 422 naming the field for an unknown user, tenant or role.
#[utoipa::path(
    post,
    path = "/sa/user-tenant-roles",
    tag = "admin",
    security(("bearer" = [])),
    request_body = AssignRoles,
    responses(
        (status = 200, description = "Every role was held already; nothing changed.", body = UserTenantRoles),
        (status = 201, description = "Assigned; the roles the user now holds in the tenant.", body = UserTenantRoles),
    )
)]
async fn assign_roles(
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
    let mut client = state.platform.get().await?;
    let tx = client.transaction().await?;
    let inserted = roles::assign(
        &tx,
        &body.username,
        &body.tenant_name,
        &wanted,
        &admin.username,
    )
    .await?;
    let held = roles::roles_of(&tx, &body.username, &body.tenant_name).await?;
    tx.commit().await?;
    tracing::info!(user.name = %admin.username, target.user = %body.username, tenant.name = %body.tenant_name, roles = ?wanted, "roles assigned");
    let view = UserTenantRoles {
        username: body.username.to_string(),
        tenant_name: body.tenant_name.to_string(),
        roles: held,
    };
    if inserted > 0 {
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
struct AssignmentQuery {
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
    security(("bearer" = [])),
    params(AssignmentQuery, Page),
    responses(
        (status = 200, description = "Assignments by tenant, user and role.", body = Vec<roles::Assignment>),
    )
)]
async fn list_assignments(
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
struct RemoveRole {
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
    security(("bearer" = [])),
    request_body = RemoveRole,
    responses(
        (status = 204, description = "Removed; it stops working on the user's next request."),
        (status = 404, response = NotFound),
    )
)]
async fn remove_role(
    State(state): State<AppState>,
    SuperAdmin(admin): SuperAdmin,
    AppJson(body): AppJson<RemoveRole>,
) -> Result<StatusCode, ApiError> {
    let removed = roles::remove(
        &state.platform.get().await?,
        &body.username,
        &body.tenant_name,
        &body.role,
    )
    .await?;
    if !removed {
        return Err(ApiError::NotFound(format!(
            "{} holds no role {} in tenant {}",
            body.username, body.role, body.tenant_name
        )));
    }
    tracing::info!(user.name = %admin.username, target.user = %body.username, tenant.name = %body.tenant_name, role = %body.role, "role removed");
    Ok(StatusCode::NO_CONTENT)
}

/// A webhook key as created: the listing fields plus the secrets, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedWebhookKey {
    /// The stored key.
    #[serde(flatten)]
    pub key: WebhookKey,
    /// The API key to send in `X-API-Key`.
    #[serde(rename = "key")]
    pub api_key: String,
    /// The Standard Webhooks signing secret (`whsec_…`), if requests must be signed.
    pub signing_secret: Option<String>,
}

/// Creates a webhook key of `tenant` named `name` (1–100 characters), with a signing secret
/// if `signed`. Used by `POST /sa/webhook-keys` and `offerctl webhook-key create`.
///
/// # Errors
/// 422 for a bad name; 404 for an unknown tenant; 500 if the OS has no randomness; database
/// failures.
pub async fn issue_webhook_key(
    client: &impl shared::db::GenericClient,
    tenant: &TenantName,
    name: &str,
    signed: bool,
    created_by: Option<&Username>,
) -> Result<IssuedWebhookKey, ApiError> {
    let chars = name.trim().chars().count();
    if chars == 0 || name.chars().count() > 100 {
        return Err(ApiError::invalid_field(
            "name",
            "must be 1 to 100 characters",
        ));
    }
    let new = api_key::generate().map_err(|e| ApiError::internal(e.to_string()))?;
    let signing_secret = if signed {
        Some(api_key::generate_signing_secret().map_err(|e| ApiError::internal(e.to_string()))?)
    } else {
        None
    };
    let key = webhooks::insert_key(
        client,
        new.id,
        tenant,
        name,
        &new.hash,
        signing_secret.as_ref().map(ExposeSecret::expose_secret),
        created_by,
    )
    .await?;
    Ok(IssuedWebhookKey {
        key,
        api_key: new.key.expose_secret().to_owned(),
        signing_secret: signing_secret.map(|s| s.expose_secret().to_owned()),
    })
}

/// `POST /sa/webhook-keys` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateWebhookKey {
    /// The tenant whose campaigns the key may report on (only those).
    #[schema(value_type = String, pattern = "^[a-z][a-z0-9_]{1,49}$")]
    tenant_name: TenantName,
    /// 1 to 100 characters, not only spaces.
    #[schema(min_length = 1, max_length = 100, pattern = "\\S")]
    name: String,
    /// Whether requests must carry a Standard Webhooks signature (default false).
    #[serde(default)]
    signed: bool,
}

/// Create a webhook key.
///
/// `POST /sa/webhook-keys` `{"tenant_name", "name", "signed"?}`: 201 with the key (and
/// signing secret) shown once; only the key's hash is stored. The key reports on that
/// tenant's campaigns only; 404 if the tenant does not exist.
#[utoipa::path(
    post,
    path = "/sa/webhook-keys",
    tag = "admin",
    security(("bearer" = [])),
    request_body = CreateWebhookKey,
    responses(
        (status = 201, description = "Created; the key (and signing secret) are shown this once.", body = IssuedWebhookKey),
        (status = 404, response = NotFound),
    )
)]
async fn create_webhook_key(
    State(state): State<AppState>,
    SuperAdmin(admin): SuperAdmin,
    AppJson(body): AppJson<CreateWebhookKey>,
) -> Result<Response, ApiError> {
    let client = state.platform.get().await?;
    let issued = issue_webhook_key(
        &client,
        &body.tenant_name,
        &body.name,
        body.signed,
        Some(&admin.username),
    )
    .await?;
    tracing::info!(user.name = %admin.username, webhook.key_id = %issued.key.id, tenant.name = %body.tenant_name, signed = body.signed, "webhook key created");
    Ok(created(
        format!("/sa/webhook-keys/{}", issued.key.id),
        issued,
    ))
}

/// List webhook keys.
///
/// `GET /sa/webhook-keys?tenant_name=`: every key (or one tenant's), newest first, without
/// secrets.
#[utoipa::path(
    get,
    path = "/sa/webhook-keys",
    tag = "admin",
    security(("bearer" = [])),
    params(WebhookKeyFilter),
    responses(
        (status = 200, description = "Every key (or the tenant's), newest first, without secrets.", body = Vec<WebhookKey>),
    )
)]
async fn list_webhook_keys(
    State(state): State<AppState>,
    _: SuperAdmin,
    AppQuery(filter): AppQuery<WebhookKeyFilter>,
) -> Result<AppJson<Vec<WebhookKey>>, ApiError> {
    Ok(AppJson(
        webhooks::list_keys(&state.platform.get().await?, filter.tenant_name.as_ref()).await?,
    ))
}

/// `GET /sa/webhook-keys` query.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct WebhookKeyFilter {
    /// Only this tenant's keys.
    #[param(value_type = Option<String>, pattern = "^[a-z][a-z0-9_]{1,49}$")]
    tenant_name: Option<TenantName>,
}

/// Revoke a webhook key.
///
/// `DELETE /sa/webhook-keys/{key_id}`: revokes the key (204, idempotent); 404 if absent.
#[utoipa::path(
    delete,
    path = "/sa/webhook-keys/{key_id}",
    tag = "admin",
    security(("bearer" = [])),
    params(("key_id" = uuid::Uuid, Path, description = "The key's id.")),
    responses(
        (status = 204, description = "Revoked (or already revoked)."),
    )
)]
async fn revoke_webhook_key(
    State(state): State<AppState>,
    SuperAdmin(admin): SuperAdmin,
    AppPath(id): AppPath<uuid::Uuid>,
) -> Result<StatusCode, ApiError> {
    if !webhooks::revoke_key(&state.platform.get().await?, id).await? {
        return Err(ApiError::NotFound(format!("no webhook key {id}")));
    }
    tracing::info!(user.name = %admin.username, webhook.key_id = %id, "webhook key revoked");
    Ok(StatusCode::NO_CONTENT)
}
