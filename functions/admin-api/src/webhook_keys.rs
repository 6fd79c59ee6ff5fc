//! `/sa/webhook-keys`: the API keys (and optional signing secrets) of the delivery
//! webhook, each bound to one tenant.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use shared::auth::api_key;
use shared::db::webhook_keys::{self, WebhookKey};
use shared::domain::{TenantName, Username};
use shared::extract::SuperAdmin;
use shared::http::created;
use shared::http::{AppJson, AppPath, AppQuery};
use shared::openapi::NotFound;
use shared::{ApiError, AppState};
use utoipa::{IntoParams, ToSchema};

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
    let key = webhook_keys::insert_key(
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
pub(crate) struct CreateWebhookKey {
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
    request_body = CreateWebhookKey,
    responses(
        (status = 201, description = "Created; the key (and signing secret) are shown this once.", body = IssuedWebhookKey),
        (status = 404, response = NotFound),
    )
)]
pub(crate) async fn create_webhook_key(
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
    params(WebhookKeyFilter),
    responses(
        (status = 200, description = "Every key (or the tenant's), newest first, without secrets.", body = Vec<WebhookKey>),
    )
)]
pub(crate) async fn list_webhook_keys(
    State(state): State<AppState>,
    _: SuperAdmin,
    AppQuery(filter): AppQuery<WebhookKeyFilter>,
) -> Result<AppJson<Vec<WebhookKey>>, ApiError> {
    Ok(AppJson(
        webhook_keys::list_keys(&state.platform.get().await?, filter.tenant_name.as_ref()).await?,
    ))
}

/// `GET /sa/webhook-keys` query.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct WebhookKeyFilter {
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
    params(("key_id" = uuid::Uuid, Path, description = "The key's id.")),
    responses(
        (status = 204, description = "Revoked (or already revoked)."),
    )
)]
pub(crate) async fn revoke_webhook_key(
    State(state): State<AppState>,
    SuperAdmin(admin): SuperAdmin,
    AppPath(id): AppPath<uuid::Uuid>,
) -> Result<StatusCode, ApiError> {
    if !webhook_keys::revoke_key(&state.platform.get().await?, id).await? {
        return Err(ApiError::NotFound(format!("no webhook key {id}")));
    }
    tracing::info!(user.name = %admin.username, webhook.key_id = %id, "webhook key revoked");
    Ok(StatusCode::NO_CONTENT)
}
