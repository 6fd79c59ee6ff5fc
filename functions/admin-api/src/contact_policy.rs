//! `/sa/contact-policy`: the platform-wide contact cap — at most N contacts per customer per
//! rolling D days across every tenant and channel, optionally tighter per channel. It is
//! applied when a campaign's deliveries are released (`shared::db::campaigns::release`).

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value};
use shared::db::consents::{self, ContactPolicy};
use shared::domain::Channel;
use shared::extract::SuperAdmin;
use shared::http::AppJson;
use shared::openapi::NotFound;
use shared::{ApiError, AppState};
use utoipa::ToSchema;

/// Largest `max_contacts` (and channel limit) accepted.
pub const MAX_CONTACTS_LIMIT: i32 = 1000;

/// `PUT /sa/contact-policy` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetContactPolicy {
    /// Contacts per customer per window, all channels together: 1 to 1,000.
    #[schema(minimum = 1, maximum = 1000)]
    max_contacts: i32,
    /// The rolling window, in days: 1 to 366.
    #[schema(minimum = 1, maximum = 366)]
    window_days: i32,
    /// Tighter limits per channel (`email`, `sms`, `push`, `call`), each 1 to
    /// `max_contacts`, e.g. `{"sms": 1}`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    channel_limits: Option<Map<String, Value>>,
}

/// Validates a policy: 422 naming the field.
fn checked(body: SetContactPolicy) -> Result<ContactPolicy, ApiError> {
    if !(1..=MAX_CONTACTS_LIMIT).contains(&body.max_contacts) {
        return Err(ApiError::invalid_field(
            "max_contacts",
            format!("must be 1 to {MAX_CONTACTS_LIMIT}"),
        ));
    }
    if !(1..=366).contains(&body.window_days) {
        return Err(ApiError::invalid_field("window_days", "must be 1 to 366"));
    }
    let limits = body.channel_limits.unwrap_or_default();
    for (channel, limit) in &limits {
        let field = format!("channel_limits/{}", shared::error::pointer_token(channel));
        if Channel::parse(channel).is_err() {
            return Err(ApiError::invalid_field(
                &field,
                "is not a channel (email, sms, push, call)",
            ));
        }
        let ok = limit
            .as_i64()
            .is_some_and(|n| n >= 1 && n <= i64::from(body.max_contacts));
        if !ok {
            return Err(ApiError::invalid_field(
                &field,
                "must be a whole number from 1 to max_contacts",
            ));
        }
    }
    Ok(ContactPolicy {
        max_contacts: body.max_contacts,
        window_days: body.window_days,
        channel_limits: Value::Object(limits),
        updated_by: None,
        updated_at: None,
    })
}

/// Read the contact policy.
///
/// `GET /sa/contact-policy`: the cap in force; 404 when there is none (no cap).
#[utoipa::path(
    get,
    path = "/sa/contact-policy",
    tag = "admin",
    responses(
        (status = 200, description = "The cap in force.", body = ContactPolicy),
        (status = 404, response = NotFound),
    )
)]
pub(crate) async fn get_contact_policy(
    State(state): State<AppState>,
    _: SuperAdmin,
) -> Result<AppJson<ContactPolicy>, ApiError> {
    consents::policy(&state.platform.get().await?)
        .await?
        .map(AppJson)
        .ok_or_else(|| {
            ApiError::NotFound("no contact policy is set: contacts are not capped".into())
        })
}

/// Set the contact policy.
///
/// `PUT /sa/contact-policy` `{"max_contacts", "window_days", "channel_limits"?}`: the cap for
/// every release from now on (deliveries released before keep counting as contacts). 422
/// naming the field for a value out of range or an unknown channel.
#[utoipa::path(
    put,
    path = "/sa/contact-policy",
    tag = "admin",
    request_body = SetContactPolicy,
    responses(
        (status = 200, description = "The cap now in force.", body = ContactPolicy),
    )
)]
pub(crate) async fn set_contact_policy(
    State(state): State<AppState>,
    SuperAdmin(admin): SuperAdmin,
    AppJson(body): AppJson<SetContactPolicy>,
) -> Result<AppJson<ContactPolicy>, ApiError> {
    let policy = checked(body)?;
    let stored =
        consents::set_policy(&state.platform.get().await?, &policy, &admin.username).await?;
    tracing::info!(user.name = %admin.username, max_contacts = stored.max_contacts,
        window_days = stored.window_days, channel_limits = %stored.channel_limits,
        "contact policy set");
    Ok(AppJson(stored))
}

/// Remove the contact policy.
///
/// `DELETE /sa/contact-policy`: contacts are no longer capped (204); 404 if none was set.
#[utoipa::path(
    delete,
    path = "/sa/contact-policy",
    tag = "admin",
    responses(
        (status = 204, description = "Removed: releases are no longer capped."),
        (status = 404, response = NotFound),
    )
)]
pub(crate) async fn clear_contact_policy(
    State(state): State<AppState>,
    SuperAdmin(admin): SuperAdmin,
) -> Result<StatusCode, ApiError> {
    if !consents::clear_policy(&state.platform.get().await?).await? {
        return Err(ApiError::NotFound("no contact policy is set".into()));
    }
    tracing::info!(user.name = %admin.username, "contact policy removed");
    Ok(StatusCode::NO_CONTENT)
}
