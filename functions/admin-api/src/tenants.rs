//! `/sa/tenants`: creating, reading, changing and deleting tenants (a tenant is created with
//! its four default roles).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use shared::db::roles::{self, TenantRole};
use shared::db::{in_tenant, tenants};
use shared::domain::TenantName;
use shared::extract::SuperAdmin;
use shared::http::MAX_TEXT_CHARS;
use shared::http::created;
use shared::http::{AppJson, AppPath, check_length, nullable};
use shared::openapi::Conflict;
use shared::pagination::Page;
use shared::paths::TenantPath;
use shared::{ApiError, AppState};
use utoipa::ToSchema;

/// `POST /sa/tenants` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateTenant {
    name: TenantName,
    /// Free text, at most 1,000 characters.
    #[schema(max_length = 1000)]
    description: Option<String>,
    /// A JSON Schema every offer's `data` must satisfy.
    #[schema(value_type = Option<Object>)]
    offer_schema: Option<serde_json::Value>,
    /// Whether offers need a checker's approval (default true).
    require_maker_checker: Option<bool>,
    /// Whether customers who never said yes or no to a channel may be contacted through it
    /// (default false: only an explicit opt-in counts).
    unknown_consent_allowed: Option<bool>,
    /// The IANA time zone its campaigns' dates are days in (default `UTC`), e.g.
    /// `Asia/Kolkata`.
    #[schema(example = "Europe/London")]
    time_zone: Option<String>,
    /// Days the deliveries of its completed campaigns stay in the database after a
    /// campaign's end before housekeeping archives them to S3 (1–3650, default 400).
    #[schema(minimum = 1, maximum = 3650)]
    retention_days: Option<i32>,
}

/// 422 on `retention_days` outside 1–3650.
fn check_retention(days: Option<i32>) -> Result<(), ApiError> {
    match days {
        Some(days) if !(1..=3650).contains(&days) => Err(ApiError::invalid_field(
            "retention_days",
            "must be 1 to 3650 days",
        )),
        _ => Ok(()),
    }
}

/// 422 on `time_zone` unless it names a zone of the database's IANA zone database.
async fn check_time_zone(
    client: &impl shared::db::GenericClient,
    time_zone: Option<&str>,
) -> Result<(), ApiError> {
    let Some(zone) = time_zone else {
        return Ok(());
    };
    if zone.len() > 64 || !tenants::is_time_zone(client, zone).await? {
        return Err(ApiError::invalid_field(
            "time_zone",
            "is not an IANA time zone name (e.g. UTC, Europe/London, Asia/Kolkata)",
        ));
    }
    Ok(())
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
pub(crate) struct TenantView {
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
    request_body = CreateTenant,
    responses(
        (status = 201, description = "Created, with its four default roles; `Location` names it.", body = TenantView),
        (status = 409, response = Conflict),
    )
)]
pub(crate) async fn create_tenant(
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
        unknown_consent_allowed: body.unknown_consent_allowed,
        time_zone: body.time_zone.as_deref(),
        retention_days: body.retention_days,
    };
    check_retention(fields.retention_days)?;
    check_time_zone(&state.platform.get().await?, fields.time_zone).await?;
    let (tenant, roles) = in_tenant(&state.platform, &body.name, async |tx| {
        let tenant = tenants::create(tx, &fields, &admin.username).await?;
        Ok((tenant, roles::list_for_tenant(tx).await?))
    })
    .await?;
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
    params(Page),
    responses(
        (status = 200, description = "Tenants by name.", body = Vec<tenants::Tenant>),
    )
)]
pub(crate) async fn list_tenants(
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
    params(TenantPath),
    responses(
        (status = 200, description = "The tenant with its roles.", body = TenantView),
    )
)]
pub(crate) async fn get_tenant(
    State(state): State<AppState>,
    _: SuperAdmin,
    AppPath(TenantPath { tenant_name }): AppPath<TenantPath>,
) -> Result<AppJson<TenantView>, ApiError> {
    let (tenant, roles) = in_tenant(&state.platform, &tenant_name, async |tx| {
        Ok((
            tenants::require(tx).await?,
            roles::list_for_tenant(tx).await?,
        ))
    })
    .await?;
    Ok(AppJson(TenantView { tenant, roles }))
}

/// `PUT /sa/tenants/{tenant_name}` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateTenant {
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
    /// Whether unknown consent counts as consent (for selections made from now on).
    unknown_consent_allowed: Option<bool>,
    /// The IANA time zone its campaigns' dates are days in; the windows of campaigns not yet
    /// completed follow it.
    #[schema(example = "Europe/London")]
    time_zone: Option<String>,
    /// Days its completed campaigns' deliveries stay in the database after their end
    /// (1–3650).
    #[schema(minimum = 1, maximum = 3650)]
    retention_days: Option<i32>,
}

/// Update a tenant.
///
/// `PUT /sa/tenants/{tenant_name}`: changes the description, the offer schema (existing
/// offers are not re-validated; the schema applies to every later write), the
/// maker-checker switch, the consent default, the time zone (422 for a name that is not
/// an IANA zone; the windows of campaigns not yet completed follow it) or the retention of
/// completed campaigns' deliveries (`retention_days`, 1–3650); 404 if absent.
#[utoipa::path(
    put,
    path = "/sa/tenants/{tenant_name}",
    tag = "admin",
    params(TenantPath),
    request_body = UpdateTenant,
    responses(
        (status = 200, description = "The updated tenant.", body = tenants::Tenant),
    )
)]
pub(crate) async fn update_tenant(
    State(state): State<AppState>,
    SuperAdmin(admin): SuperAdmin,
    AppPath(TenantPath { tenant_name: name }): AppPath<TenantPath>,
    AppJson(body): AppJson<UpdateTenant>,
) -> Result<AppJson<tenants::Tenant>, ApiError> {
    let fields = tenants::TenantFields {
        description: body.description.as_ref().map(|d| d.as_deref()),
        offer_schema: body.offer_schema.as_ref().map(|s| s.as_ref()),
        require_maker_checker: body.require_maker_checker,
        unknown_consent_allowed: body.unknown_consent_allowed,
        time_zone: body.time_zone.as_deref(),
        retention_days: body.retention_days,
    };
    check_retention(fields.retention_days)?;
    check_length("description", fields.description.flatten(), MAX_TEXT_CHARS)?;
    check_offer_schema(fields.offer_schema.flatten())?;
    check_time_zone(&state.platform.get().await?, fields.time_zone).await?;
    let tenant = in_tenant(&state.platform, &name, async |tx| {
        tenants::update(tx, &fields)
            .await?
            .ok_or_else(|| tenants::not_found(&name))
    })
    .await?;
    tracing::info!(user.name = %admin.username, tenant.name = %name, "tenant updated");
    Ok(AppJson(tenant))
}

/// Delete a tenant and everything in it.
///
/// `DELETE /sa/tenants/{tenant_name}`: deletes the tenant with its roles, assignments,
/// offers and campaigns (204); 404 if absent; 409 while the platform's contact ledger holds
/// contacts its campaigns made (they count against every tenant's contact cap).
#[utoipa::path(
    delete,
    path = "/sa/tenants/{tenant_name}",
    tag = "admin",
    params(TenantPath),
    responses(
        (status = 204, description = "Deleted, with its roles, assignments, offers and campaigns."),
        (status = 409, response = Conflict),
    )
)]
pub(crate) async fn delete_tenant(
    State(state): State<AppState>,
    SuperAdmin(admin): SuperAdmin,
    AppPath(TenantPath { tenant_name: name }): AppPath<TenantPath>,
) -> Result<StatusCode, ApiError> {
    if !tenants::delete(&state.platform.get().await?, &name).await? {
        return Err(tenants::not_found(&name));
    }
    tracing::info!(user.name = %admin.username, tenant.name = %name, "tenant deleted");
    Ok(StatusCode::NO_CONTENT)
}
