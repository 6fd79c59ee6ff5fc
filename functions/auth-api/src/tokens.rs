//! Sign-in (`POST /auth/token`), password changes and the caller's own account.

use axum::extract::{FromRequest, Request, State};
use axum::http::header;
use chrono::Utc;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use shared::auth::Principal;
use shared::auth::password::check_policy;
use shared::auth::token::IssuedToken;
use shared::db::login_throttle::{self, Subjects};
use shared::db::users;
use shared::domain::Username;
use shared::extract::Account;
use shared::extract::ClientAddress;
use shared::http::{AppJson, decode_json, read_body};
use shared::openapi::TooManyRequests;
use shared::{ApiError, AppState};
use utoipa::ToSchema;

/// `POST /auth/token` body as JSON: `{"username", "password"}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct JsonCredentials {
    username: String,
    password: String,
}

/// `POST /auth/token` body as the OAuth2 password grant form (RFC 6749 §4.3.2). `scope`,
/// `client_id` and `client_secret` are accepted (Swagger UI and OAuth clients send them) and
/// ignored: there are no scopes or registered clients.
#[derive(Deserialize, ToSchema)]
pub(crate) struct PasswordGrantForm {
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
pub(crate) struct Credentials {
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

const BAD_CREDENTIALS: &str = "invalid username or password";

/// Checks `password` for `username` from `client` under the sign-in throttle
/// ([`shared::db::login_throttle`]): 429 with `Retry-After` while this attempt is refused,
/// 401 on failure (counted). An unknown or malformed username takes exactly the path of a
/// known one with a wrong password: the same throttle reads and writes, one argon2
/// verification of the same cost (against a dummy hash), the same answer. The database
/// connection is released while argon2 runs.
async fn authenticate(
    state: &AppState,
    username: &str,
    password: SecretString,
    client: &ClientAddress,
) -> Result<Username, ApiError> {
    let subjects = Subjects::new(username, &client.0);
    let parsed = Username::parse(username).ok();
    let (counters, record) = {
        let db = state.platform.get().await?;
        let counters = login_throttle::counters(&db, &subjects).await?;
        let record = match &parsed {
            Some(u) => users::login_record(&db, u).await?,
            None => None,
        };
        (counters, record)
    };
    if let Some(retry_after_secs) = counters.refusal(Utc::now()) {
        tracing::warn!(client.address = %client.0, outcome = "throttled", "sign-in attempt");
        return Err(ApiError::TooManyRequests { retry_after_secs });
    }
    let exists = record.is_some();
    let matches = state
        .passwords
        .verify(password, record.map(|r| r.password_hash))
        .await?;
    let db = state.platform.get().await?;
    match parsed {
        Some(username) if matches => {
            login_throttle::record_success(&db, &subjects).await?;
            tracing::info!(user.name = %username, client.address = %client.0, outcome = "success", "sign-in attempt");
            Ok(username)
        }
        _ => {
            login_throttle::record_failure(&db, &subjects).await?;
            // A name that is no account is logged as its digest, never as typed.
            match parsed.as_ref().filter(|_| exists) {
                Some(known) => tracing::warn!(user.name = %known, known_user = true,
                    client.address = %client.0, outcome = "bad_credentials", "sign-in attempt"),
                None => tracing::warn!(user.digest = %subjects.account_digest(),
                    known_user = false, client.address = %client.0, outcome = "bad_credentials",
                    "sign-in attempt"),
            }
            Err(ApiError::Unauthorized(BAD_CREDENTIALS))
        }
    }
}

/// Sign in (password grant).
///
/// `POST /auth/token`: signs in. 200 with `{access_token, token_type: "bearer", expires_in}`;
/// 401 for an unknown user or a wrong password (same body); 429 with `Retry-After` while the
/// sign-in throttle refuses this username from this client, or this client
/// ([`shared::db::login_throttle`] gives the thresholds). Answers carry `Cache-Control:
/// no-store` (RFC 6749 §5.1).
#[utoipa::path(
    post,
    path = "/auth/token",
    tag = "auth",
    security(()),
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
pub(crate) async fn create_token(
    State(state): State<AppState>,
    client: ClientAddress,
    credentials: Credentials,
) -> Result<AppJson<IssuedToken>, ApiError> {
    let username =
        authenticate(&state, &credentials.username, credentials.password, &client).await?;
    let client = state.platform.get().await?;
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
pub(crate) struct ChangePassword {
    current_password: String,
    /// 12 to 128 characters; not the username, not a common password.
    #[schema(min_length = 12, max_length = 128)]
    new_password: String,
}

/// A confirmation message.
#[derive(Serialize, ToSchema)]
pub(crate) struct Message {
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
    request_body = ChangePassword,
    responses(
        (status = 200, description = "Changed; sign in again.", body = Message),
        (status = 429, response = TooManyRequests),
    )
)]
pub(crate) async fn change_password(
    State(state): State<AppState>,
    client: ClientAddress,
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
        &client,
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
    users::set_password(&state.platform.get().await?, &username, &hash, Utc::now()).await?;
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
    responses((status = 200, description = "The caller's account.", body = users::User))
)]
pub(crate) async fn get_current_user(Account(account): Account) -> AppJson<users::User> {
    AppJson(account)
}

/// One entry of `GET /users/me/tenants`.
#[derive(Serialize, ToSchema)]
pub(crate) struct TenantRoles {
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
    responses(
        (status = 200, description = "The caller's roles per tenant, by tenant name.", body = Vec<TenantRoles>)
    )
)]
pub(crate) async fn list_current_user_tenants(principal: Principal) -> AppJson<Vec<TenantRoles>> {
    AppJson(
        principal
            .roles_by_tenant()
            .into_iter()
            .map(|(tenant_name, roles)| TenantRoles { tenant_name, roles })
            .collect(),
    )
}
