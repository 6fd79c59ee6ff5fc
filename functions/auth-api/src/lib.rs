//! `auth-api`: sign-in and the caller's own account.
//!
//! | route | what |
//! |---|---|
//! | `POST /auth/token` | password sign-in (JSON or the OAuth2 password form, RFC 6749 §4.3) → access token |
//! | `POST /auth/change-password` | change one's own password; every earlier token stops working |
//! | `GET /users/me` | the caller's account |
//! | `GET /users/me/tenants` | the caller's roles per tenant |

use std::time::Duration;

use axum::Router;
use axum::extract::{FromRequest, Request, State};
use axum::http::Method;
use axum::http::header;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use shared::auth::Principal;
use shared::auth::password::check_policy;
use shared::auth::token::IssuedToken;
use shared::db::users::{self, LoginRecord};
use shared::domain::Username;
use shared::http::Routes;
use shared::http::{AppJson, decode_json, read_body};
use shared::openapi::TooManyRequests;
use shared::{ApiError, AppState};
use utoipa::{OpenApi, ToSchema};

/// Failed sign-ins allowed per account inside [`THROTTLE_WINDOW`] before it answers 429.
pub const MAX_FAILED_LOGINS: i32 = 10;
/// The login throttle's window.
pub const THROTTLE_WINDOW: Duration = Duration::from_secs(15 * 60);

/// The routes of this function (checked against `template.yaml`).
pub fn routes() -> Routes<AppState> {
    Routes::new()
        .route(Method::POST, "/auth/token", token)
        .route(Method::POST, "/auth/change-password", change_password)
        .route(Method::GET, "/users/me", me)
        .route(Method::GET, "/users/me/tenants", my_tenants)
}

/// The router of this function.
pub fn router() -> Router<AppState> {
    routes().into_router()
}

/// The OpenAPI description of this function's routes.
#[derive(OpenApi)]
#[openapi(paths(token, change_password, me, my_tenants))]
struct ApiDoc;

/// The OpenAPI description of this function's routes (merged by
/// [`shared::openapi::document`]).
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// `POST /auth/token` body as JSON: `{"username", "password"}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct JsonCredentials {
    username: String,
    password: String,
}

/// `POST /auth/token` body as the OAuth2 password grant form (RFC 6749 §4.3.2). `scope`,
/// `client_id` and `client_secret` are accepted (Swagger UI and OAuth clients send them) and
/// ignored: there are no scopes or registered clients.
#[derive(Deserialize, ToSchema)]
struct PasswordGrantForm {
    /// `password`, or absent.
    #[schema(pattern = "^password$")]
    grant_type: Option<String>,
    username: String,
    password: String,
    #[serde(rename = "scope")]
    _scope: Option<String>,
    #[serde(rename = "client_id")]
    _client_id: Option<String>,
    #[serde(rename = "client_secret")]
    _client_secret: Option<String>,
}

/// Credentials from either body format.
struct Credentials {
    username: String,
    password: SecretString,
}

impl<S: Send + Sync> FromRequest<S> for Credentials {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase())
            .unwrap_or_default();
        let body = read_body(req).await?;
        match content_type.as_str() {
            "application/json" => {
                let JsonCredentials { username, password } = decode_json(&body)?;
                Ok(Self {
                    username,
                    password: SecretString::from(password),
                })
            }
            "application/x-www-form-urlencoded" => {
                let form: PasswordGrantForm =
                    serde_urlencoded::from_bytes(&body).map_err(|_| ApiError::BadRequest {
                        detail: "the form needs username and password (grant_type=password)".into(),
                        errors: Vec::new(),
                    })?;
                if form.grant_type.as_deref().is_some_and(|g| g != "password") {
                    return Err(ApiError::invalid_field(
                        "grant_type",
                        "only the password grant is supported",
                    ));
                }
                Ok(Self {
                    username: form.username,
                    password: SecretString::from(form.password),
                })
            }
            _ => Err(ApiError::UnsupportedMediaType(
                "expected application/json or application/x-www-form-urlencoded".into(),
            )),
        }
    }
}

/// Seconds until the throttle lets `record` try again, if it is throttled at `now`.
fn throttled_for(record: &LoginRecord, now: DateTime<Utc>) -> Option<u64> {
    let started = record.failed_login_window_started_at?;
    let reopens = started + THROTTLE_WINDOW;
    (record.failed_login_count >= MAX_FAILED_LOGINS && reopens > now)
        .then(|| u64::try_from((reopens - now).num_seconds()).unwrap_or(0) + 1)
}

const BAD_CREDENTIALS: &str = "invalid username or password";

/// Checks `password` for `username` under the throttle: 429 while throttled, 401 (the same
/// answer for an unknown user and a wrong password) on failure, counting the failure.
/// The database connection is released while argon2 runs.
async fn authenticate(
    state: &AppState,
    username: &str,
    password: SecretString,
) -> Result<Username, ApiError> {
    let username = Username::parse(username).ok();
    let record = match &username {
        Some(u) => users::login_record(&state.pool.get().await?, u).await?,
        None => None,
    };
    if let Some(retry_after_secs) = record.as_ref().and_then(|r| throttled_for(r, Utc::now())) {
        tracing::warn!(user.name = ?username.as_ref().map(Username::as_str), outcome = "throttled", "sign-in attempt");
        return Err(ApiError::TooManyRequests { retry_after_secs });
    }
    let exists = record.is_some();
    let matches = state
        .passwords
        .verify(password, record.map(|r| r.password_hash))
        .await?;
    match username {
        Some(username) if matches => {
            users::clear_failed_logins(&state.pool.get().await?, &username).await?;
            tracing::info!(user.name = %username, outcome = "success", "sign-in attempt");
            Ok(username)
        }
        username => {
            if let (Some(u), true) = (&username, exists) {
                users::record_failed_login(&state.pool.get().await?, u, THROTTLE_WINDOW).await?;
            }
            tracing::warn!(user.name = ?username.as_ref().map(Username::as_str), known_user = exists, outcome = "bad_credentials", "sign-in attempt");
            Err(ApiError::Unauthorized(BAD_CREDENTIALS))
        }
    }
}

/// Sign in (password grant).
///
/// `POST /auth/token`: signs in. 200 with `{access_token, token_type: "bearer", expires_in}`;
/// 401 for an unknown user or a wrong password (same body); 429 with `Retry-After` after
/// [`MAX_FAILED_LOGINS`] failures within [`THROTTLE_WINDOW`].
#[utoipa::path(
    post,
    path = "/auth/token",
    tag = "auth",
    request_body(content(
        (JsonCredentials = "application/json"),
        (PasswordGrantForm = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "Signed in (RFC 6749 §5.1).", body = IssuedToken),
        (status = 401, response = shared::openapi::Unauthorized),
        (status = 429, response = TooManyRequests),
    )
)]
async fn token(
    State(state): State<AppState>,
    credentials: Credentials,
) -> Result<AppJson<IssuedToken>, ApiError> {
    let username = authenticate(&state, &credentials.username, credentials.password).await?;
    let client = state.pool.get().await?;
    let record = users::load_principal(&client, &username)
        .await?
        .ok_or(ApiError::Unauthorized(BAD_CREDENTIALS))?;
    let principal = record.principal;
    let token = state.tokens.issue(
        principal.username.as_str(),
        principal.is_super_admin,
        principal.roles_by_tenant(),
        Utc::now(),
    )?;
    Ok(AppJson(token))
}

/// `POST /auth/change-password` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ChangePassword {
    current_password: String,
    /// 12 to 128 characters; not the username, not a common password.
    #[schema(min_length = 12, max_length = 128)]
    new_password: String,
}

/// A confirmation message.
#[derive(Serialize, ToSchema)]
struct Message {
    message: &'static str,
}

/// Change your password.
///
/// `POST /auth/change-password`: 200 when changed; 401 if `current_password` is wrong
/// (counted by the login throttle); 422 if `new_password` breaks the policy. Every token
/// issued before the change, including the caller's, stops working.
#[utoipa::path(
    post,
    path = "/auth/change-password",
    tag = "auth",
    security(("bearer" = [])),
    request_body = ChangePassword,
    responses(
        (status = 200, description = "Changed; sign in again.", body = Message),
        (status = 429, response = TooManyRequests),
    )
)]
async fn change_password(
    State(state): State<AppState>,
    principal: Principal,
    AppJson(body): AppJson<ChangePassword>,
) -> Result<AppJson<Message>, ApiError> {
    let username = principal.username;
    check_policy(&body.new_password, username.as_str())
        .map_err(|reason| ApiError::invalid_field("new_password", reason))?;
    if body.new_password == body.current_password {
        return Err(ApiError::invalid_field(
            "new_password",
            "must differ from the current password",
        ));
    }
    authenticate(
        &state,
        username.as_str(),
        SecretString::from(body.current_password),
    )
    .await
    .map_err(|err| match err {
        ApiError::Unauthorized(_) => ApiError::Unauthorized("current password is wrong"),
        other => other,
    })?;
    let hash = state
        .passwords
        .hash(SecretString::from(body.new_password))
        .await?;
    users::set_password(&state.pool.get().await?, &username, &hash, Utc::now()).await?;
    tracing::info!(user.name = %username, "password changed; earlier tokens revoked");
    Ok(AppJson(Message {
        message: "password changed; sign in again with the new password",
    }))
}

/// Your account.
///
/// `GET /users/me`: the caller's account (`username`, `full_name`, `is_super_admin`,
/// `created_at`, `updated_at`).
#[utoipa::path(
    get,
    path = "/users/me",
    tag = "auth",
    security(("bearer" = [])),
    responses((status = 200, description = "The caller's account.", body = users::User))
)]
async fn me(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<AppJson<users::User>, ApiError> {
    let client = state.pool.get().await?;
    users::get(&client, &principal.username)
        .await?
        .map(AppJson)
        .ok_or(ApiError::Unauthorized("invalid or expired token"))
}

/// One entry of `GET /users/me/tenants`.
#[derive(Serialize, ToSchema)]
struct TenantRoles {
    tenant_name: String,
    roles: Vec<String>,
}

/// Your roles per tenant.
///
/// `GET /users/me/tenants`: `[{tenant_name, roles: [...]}]`, by tenant name.
#[utoipa::path(
    get,
    path = "/users/me/tenants",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's roles per tenant, by tenant name.", body = Vec<TenantRoles>)
    )
)]
async fn my_tenants(principal: Principal) -> AppJson<Vec<TenantRoles>> {
    AppJson(
        principal
            .roles_by_tenant()
            .into_iter()
            .map(|(tenant_name, roles)| TenantRoles { tenant_name, roles })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(count: i32, started_secs_ago: i64, now: DateTime<Utc>) -> LoginRecord {
        LoginRecord {
            password_hash: String::new(),
            failed_login_count: count,
            failed_login_window_started_at: Some(now - chrono::Duration::seconds(started_secs_ago)),
        }
    }

    #[test]
    fn throttle_applies_from_the_tenth_failure_until_the_window_ends() {
        let now = Utc::now();
        assert_eq!(throttled_for(&record(9, 10, now), now), None);
        assert_eq!(
            throttled_for(&record(10, 10, now), now),
            Some(15 * 60 - 10 + 1)
        );
        assert_eq!(throttled_for(&record(25, 15 * 60 + 1, now), now), None);
    }
}
