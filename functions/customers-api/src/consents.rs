//! `/customers/{customer_id}/consents`: what a customer said about marketing, per channel,
//! with its history (super admins; providers opt customers out through the webhook, data
//! teams in bulk through the CSV import).

use axum::extract::State;
use serde::{Deserialize, Serialize};
use shared::db::consents::{self, Consent, ConsentChange};
use shared::db::in_platform;
use shared::domain::ConsentStatus;
use shared::extract::SuperAdmin;
use shared::http::{AppJson, AppPath, check_length};
use shared::openapi::NotFound;
use shared::pagination::Page;
use shared::paths::{CustomerChannelPath, CustomerPath};
use shared::{ApiError, AppState};
use utoipa::ToSchema;
use uuid::Uuid;

/// Longest `source` accepted, in characters.
pub const MAX_SOURCE_CHARS: usize = 200;

/// A customer's consents and their history.
#[derive(Serialize, ToSchema)]
pub(crate) struct CustomerConsents {
    /// The customer.
    customer_id: Uuid,
    /// The state per channel, every channel listed.
    channels: Vec<Consent>,
    /// The changes, newest first (`limit` / `offset`).
    history: Vec<ConsentChange>,
}

async fn view(
    client: &impl shared::db::GenericClient,
    id: Uuid,
    page: Page,
) -> Result<CustomerConsents, ApiError> {
    Ok(CustomerConsents {
        customer_id: id,
        channels: consents::current(client, id).await?,
        history: consents::history(client, id, page).await?,
    })
}

/// Read a customer's consents.
///
/// `GET /customers/{customer_id}/consents`: the state per channel (`unknown` where nothing
/// was ever recorded) and the history of changes, newest first; 404 for an unknown customer.
#[utoipa::path(
    get,
    path = "/customers/{customer_id}/consents",
    tag = "customers",
    params(CustomerPath, Page),
    responses(
        (status = 200, description = "The consents and their history.", body = CustomerConsents),
        (status = 404, response = NotFound),
    )
)]
pub(crate) async fn list_customer_consents(
    State(state): State<AppState>,
    _: SuperAdmin,
    AppPath(path): AppPath<CustomerPath>,
    page: Page,
) -> Result<AppJson<CustomerConsents>, ApiError> {
    let client = state.platform.get().await?;
    let customer = path.load(&client).await?;
    Ok(AppJson(view(&client, customer.id, page).await?))
}

/// `PUT /customers/{customer_id}/consents/{channel}` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetConsent {
    /// `opted_in`, `opted_out`, or `unknown` (forget what was recorded).
    status: ConsentStatus,
    /// Where it comes from, at most 200 characters (default `api`), e.g. `branch form 2026-11`.
    #[schema(max_length = 200)]
    source: Option<String>,
}

/// Record a customer's consent for a channel.
///
/// `PUT /customers/{customer_id}/consents/{channel}`: records the state (a change is appended
/// to the history; the same state again changes nothing) and answers the consents; it
/// applies to selections made from now on. 404 for an unknown customer.
#[utoipa::path(
    put,
    path = "/customers/{customer_id}/consents/{channel}",
    tag = "customers",
    params(CustomerChannelPath),
    request_body = SetConsent,
    responses(
        (status = 200, description = "The consents and their history after the change.", body = CustomerConsents),
        (status = 404, response = NotFound),
    )
)]
pub(crate) async fn set_customer_consent(
    State(state): State<AppState>,
    SuperAdmin(admin): SuperAdmin,
    AppPath(CustomerChannelPath {
        customer_id: id,
        channel,
    }): AppPath<CustomerChannelPath>,
    AppJson(body): AppJson<SetConsent>,
) -> Result<AppJson<CustomerConsents>, ApiError> {
    check_length("source", body.source.as_deref(), MAX_SOURCE_CHARS)?;
    let source = match body.source.as_deref().map(str::trim) {
        None => "api",
        Some("") => return Err(ApiError::invalid_field("source", "must not be empty")),
        Some(text) => text,
    };
    let answer = in_platform(&state.platform, async |tx| {
        CustomerPath { customer_id: id }.load(tx).await?;
        consents::set(tx, id, channel, body.status, source, &admin.username).await?;
        let first_page = Page {
            limit: 50,
            offset: 0,
        };
        view(tx, id, first_page).await
    })
    .await?;
    tracing::info!(user.name = %admin.username, customer.id = %id, channel = %channel,
        status = %body.status, "consent recorded");
    Ok(AppJson(answer))
}
