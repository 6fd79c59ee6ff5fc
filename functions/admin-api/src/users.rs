//! `/sa/users`: accounts — creating, listing, changing (super admin or not), setting a
//! password, deleting.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use secrecy::SecretString;
use serde::Deserialize;
use shared::auth::password::check_policy;
use shared::db::{access_audit, in_platform, users};
use shared::domain::Username;
use shared::extract::SuperAdmin;
use shared::http::MAX_TEXT_CHARS;
use shared::http::created;
use shared::http::{AppJson, AppPath, AppQuery, check_length, nullable};
use shared::openapi::Conflict;
use shared::pagination::Page;
use shared::paths::user_not_found;
use shared::{ApiError, AppState};
use utoipa::{IntoParams, ToSchema};

/// `POST /sa/users` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateUser {
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
    request_body = CreateUser,
    responses(
        (status = 201, description = "Created; `Location` names it.", body = users::User),
        (status = 409, response = Conflict),
    )
)]
pub(crate) async fn create_user(
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
pub(crate) struct UserFilter {
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
    params(UserFilter, Page),
    responses(
        (status = 200, description = "Users by username.", body = Vec<users::User>),
    )
)]
pub(crate) async fn list_users(
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
    params(("username" = Username, Path, description = "The user's username.")),
    responses(
        (status = 200, description = "The user.", body = users::User),
    )
)]
pub(crate) async fn get_user(
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
pub(crate) struct UpdateUser {
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
    params(("username" = Username, Path, description = "The user's username.")),
    request_body = UpdateUser,
    responses(
        (status = 200, description = "The updated user.", body = users::User),
        (status = 409, response = Conflict),
    )
)]
pub(crate) async fn update_user(
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
    let user = in_platform(&state.platform, async |tx| {
        if body.is_super_admin == Some(false) {
            keep_a_super_admin(tx, &username, "demote").await?;
        }
        users::update(tx, &username, full_name, body.is_super_admin)
            .await?
            .ok_or_else(|| user_not_found(&username))
    })
    .await?;
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
pub(crate) struct SetPassword {
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
    params(("username" = Username, Path, description = "The user's username.")),
    request_body = SetPassword,
    responses(
        (status = 204, description = "Set; the user's earlier tokens stop working."),
        (status = 409, response = Conflict),
    )
)]
pub(crate) async fn set_user_password(
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
/// `DELETE /sa/users/{username}`: deletes a user and its role assignments (204; each removal
/// is recorded in the tenant's access audit trail). 409 for
/// oneself, the only super admin, or a user named as the author of records; 404 if absent.
#[utoipa::path(
    delete,
    path = "/sa/users/{username}",
    tag = "admin",
    params(("username" = Username, Path, description = "The user's username.")),
    responses(
        (status = 204, description = "Deleted, with its role assignments."),
        (status = 409, response = Conflict),
    )
)]
pub(crate) async fn delete_user(
    State(state): State<AppState>,
    SuperAdmin(admin): SuperAdmin,
    AppPath(username): AppPath<Username>,
) -> Result<StatusCode, ApiError> {
    if username == admin.username {
        return Err(ApiError::Conflict(
            "you cannot delete your own account".into(),
        ));
    }
    in_platform(&state.platform, async |tx| {
        keep_a_super_admin(tx, &username, "delete").await?;
        // The roles go with the user: each tenant's access audit trail says so.
        access_audit::record_user_removals(tx, &username, &admin.username, "user deleted").await?;
        if !users::delete(tx, &username).await? {
            return Err(user_not_found(&username));
        }
        Ok(())
    })
    .await?;
    tracing::info!(user.name = %admin.username, target.user = %username, "user deleted");
    Ok(StatusCode::NO_CONTENT)
}
