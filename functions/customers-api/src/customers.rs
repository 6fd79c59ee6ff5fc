//! The platform's customer records: create, list, read, replace, delete, and the CSV import
//! (`POST /customers/import`).

use axum::extract::{OriginalUri, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::{Map, Number, Value};
use shared::db::customer_import::{self, ImportLimits, ImportSummary};
use shared::db::customers::{self, Customer, CustomerFilter, CustomerRecord};
use shared::extract::SuperAdmin;
use shared::http::{AppJson, AppPath, AppQuery, created, has_media_type, read_body_limited};
use shared::openapi::Conflict;
use shared::pagination::Keyset;
use shared::paths::{CustomerPath, customer_not_found};
use shared::{ApiError, AppState};
use utoipa::{IntoParams, ToSchema};

/// Largest CSV body `POST /customers/import` accepts, in bytes (Lambda's synchronous payload
/// limit is 6 MB; larger files go through `offerctl import-customers`).
pub const MAX_IMPORT_BYTES: usize = 6 * 1024 * 1024;

/// `POST` / `PUT` body: every writable field (absent optional fields are NULL).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CustomerBody {
    /// 1 to 200 characters, not only spaces.
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    full_name: String,
    /// An e-mail address, unique among customers.
    #[schema(max_length = 254, pattern = "^[^@]+@.*\\.")]
    email: Option<String>,
    /// At most 200 characters.
    #[schema(max_length = 200)]
    phone: Option<String>,
    /// Date of birth, 1900-01-01 to today.
    dob: Option<NaiveDate>,
    /// `male`, `female` or `other`.
    #[schema(value_type = Option<String>, pattern = "^(male|female|other)$")]
    gender: Option<String>,
    /// `verified`, `pending` or `rejected`.
    #[schema(value_type = Option<String>, pattern = "^(verified|pending|rejected)$")]
    kyc_status: Option<String>,
    /// E.g. `gold`, `platinum`; at most 200 characters.
    #[schema(max_length = 200)]
    segment: Option<String>,
    /// At most 200 characters.
    #[schema(max_length = 200)]
    occupation: Option<String>,
    /// Yearly income, ≥ 0.
    #[schema(value_type = Option<f64>, minimum = 0)]
    annual_income: Option<Number>,
    /// 300 to 900.
    #[schema(minimum = 300, maximum = 900)]
    credit_score: Option<i32>,
    /// At most 200 characters.
    #[schema(max_length = 200)]
    state: Option<String>,
    /// At most 200 characters.
    #[schema(max_length = 200)]
    city: Option<String>,
    /// At most 200 characters.
    #[schema(max_length = 200)]
    pin_code: Option<String>,
    /// `single`, `married`, `divorced` or `widowed`.
    #[schema(value_type = Option<String>, pattern = "^(single|married|divorced|widowed)$")]
    marital_status: Option<String>,
    /// ≥ 0.
    #[schema(minimum = 0)]
    account_age_months: Option<i32>,
    /// At most 200 characters.
    #[schema(max_length = 200)]
    preferred_language: Option<String>,
    /// Default true; inactive customers are left out of campaigns unless the criteria name
    /// `is_active`.
    is_active: Option<bool>,
    /// Further attributes campaigns can select on as `attributes.<key>`.
    #[schema(value_type = Option<Object>)]
    attributes: Option<Map<String, Value>>,
}

impl CustomerBody {
    fn into_record(self) -> Result<CustomerRecord, ApiError> {
        CustomerRecord {
            full_name: self.full_name,
            email: self.email,
            phone: self.phone,
            dob: self.dob,
            gender: self.gender,
            kyc_status: self.kyc_status,
            segment: self.segment,
            occupation: self.occupation,
            annual_income: self.annual_income,
            credit_score: self.credit_score,
            state: self.state,
            city: self.city,
            pin_code: self.pin_code,
            marital_status: self.marital_status,
            account_age_months: self.account_age_months,
            preferred_language: self.preferred_language,
            is_active: self.is_active.unwrap_or(true),
            attributes: self.attributes.unwrap_or_default(),
        }
        .validated()
    }
}

/// Create a customer.
///
/// `POST /customers`: 201 with `Location`; 409 if the e-mail is taken.
#[utoipa::path(
    post,
    path = "/customers",
    tag = "customers",
    request_body = CustomerBody,
    responses(
        (status = 201, description = "Created; `Location` names it.", body = Customer),
        (status = 409, response = Conflict),
    )
)]
pub(crate) async fn create_customer(
    State(state): State<AppState>,
    SuperAdmin(admin): SuperAdmin,
    AppJson(body): AppJson<CustomerBody>,
) -> Result<Response, ApiError> {
    let record = body.into_record()?;
    let client = state.platform.get().await?;
    let customer = customers::insert(&client, &record).await?;
    tracing::info!(user.name = %admin.username, customer.id = %customer.id, "customer created");
    Ok(created(format!("/customers/{}", customer.id), customer))
}

/// `GET` list filters (exact matches). Text filters cannot hold U+0000, which PostgreSQL text
/// cannot either (400).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// Only this segment.
    #[param(pattern = "^[^\\u0000]*$")]
    segment: Option<String>,
    /// Only this KYC status.
    #[param(pattern = "^[^\\u0000]*$")]
    kyc_status: Option<String>,
    /// Only this state.
    #[param(pattern = "^[^\\u0000]*$")]
    state: Option<String>,
    /// Only this city.
    #[param(pattern = "^[^\\u0000]*$")]
    city: Option<String>,
    /// Only active (`true`) or inactive (`false`) customers.
    is_active: Option<bool>,
    /// Only the customer with this e-mail address.
    #[param(pattern = "^[^\\u0000]*$")]
    email: Option<String>,
}

/// List customers.
///
/// `GET /customers?segment=&kyc_status=&state=&city=&is_active=&email=&limit=&after=`: id
/// order, `Link: rel="next"` on full pages.
#[utoipa::path(
    get,
    path = "/customers",
    tag = "customers",
    params(ListQuery, Keyset),
    responses(
        (status = 200, description = "Customers in id order.", body = Vec<Customer>, headers(("Link" = String, description = "`<…?after=ID>; rel=\"next\"` on a full page (RFC 8288)."))),
    )
)]
pub(crate) async fn list_customers(
    State(state): State<AppState>,
    _: SuperAdmin,
    OriginalUri(uri): OriginalUri,
    AppQuery(query): AppQuery<ListQuery>,
    keyset: Keyset,
) -> Result<Response, ApiError> {
    let filter = CustomerFilter {
        segment: query.segment,
        kyc_status: query.kyc_status,
        state: query.state,
        city: query.city,
        is_active: query.is_active,
        email: query.email,
    };
    let client = state.platform.get().await?;
    let rows = customers::list(&client, &filter, keyset.after, keyset.limit).await?;
    Ok(keyset.respond(&uri, rows, |c| c.id))
}

/// Read a customer.
///
/// `GET /customers/{id}`.
#[utoipa::path(
    get,
    path = "/customers/{customer_id}",
    tag = "customers",
    params(CustomerPath),
    responses(
        (status = 200, description = "The customer.", body = Customer),
    )
)]
pub(crate) async fn get_customer(
    State(state): State<AppState>,
    _: SuperAdmin,
    AppPath(path): AppPath<CustomerPath>,
) -> Result<AppJson<Customer>, ApiError> {
    let client = state.platform.get().await?;
    Ok(AppJson(path.load(&client).await?))
}

/// Replace a customer.
///
/// `PUT /customers/{id}`: replaces every writable field.
#[utoipa::path(
    put,
    path = "/customers/{customer_id}",
    tag = "customers",
    params(CustomerPath),
    request_body = CustomerBody,
    responses(
        (status = 200, description = "Replaced.", body = Customer),
        (status = 409, response = Conflict),
    )
)]
pub(crate) async fn replace_customer(
    State(state): State<AppState>,
    SuperAdmin(admin): SuperAdmin,
    AppPath(CustomerPath { customer_id: id }): AppPath<CustomerPath>,
    AppJson(body): AppJson<CustomerBody>,
) -> Result<AppJson<Customer>, ApiError> {
    let record = body.into_record()?;
    let client = state.platform.get().await?;
    let customer = customers::replace(&client, id, &record)
        .await?
        .ok_or_else(|| customer_not_found(id))?;
    tracing::info!(user.name = %admin.username, customer.id = %id, "customer replaced");
    Ok(AppJson(customer))
}

/// Delete a customer.
///
/// `DELETE /customers/{id}`: also removes the customer from every campaign. 204.
#[utoipa::path(
    delete,
    path = "/customers/{customer_id}",
    tag = "customers",
    params(CustomerPath),
    responses(
        (status = 204, description = "Deleted, and removed from every campaign."),
    )
)]
pub(crate) async fn delete_customer(
    State(state): State<AppState>,
    SuperAdmin(admin): SuperAdmin,
    AppPath(CustomerPath { customer_id: id }): AppPath<CustomerPath>,
) -> Result<StatusCode, ApiError> {
    let client = state.platform.get().await?;
    if !customers::delete(&client, id).await? {
        return Err(customer_not_found(id));
    }
    tracing::info!(user.name = %admin.username, customer.id = %id, "customer deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Import customers from CSV.
///
/// `POST /customers/import` with a `text/csv` body (at most [`MAX_IMPORT_BYTES`]): all rows
/// or none. 200 with `{rows, inserted, updated, unchanged, consents_changed}` (consent
/// columns `consent_email`, `consent_sms`, `consent_push`, `consent_call`: `opted_in`,
/// `opted_out`, `unknown` or empty for no change); 422 listing every bad line;
/// 415 for another media type.
#[utoipa::path(
    post,
    path = "/customers/import",
    tag = "customers",
    request_body(content = String, content_type = "text/csv", description = "A header row naming customers columns (`full_name` and `email` required), then one customer per row."),
    responses(
        (status = 200, description = "Imported: all rows or none.", body = ImportSummary),
    )
)]
pub(crate) async fn import_customers(
    State(state): State<AppState>,
    SuperAdmin(admin): SuperAdmin,
    request: Request,
) -> Result<AppJson<ImportSummary>, ApiError> {
    if !has_media_type(request.headers(), "text/csv") {
        return Err(ApiError::UnsupportedMediaType(
            "send the file as text/csv".into(),
        ));
    }
    let body = read_body_limited(request.into_body(), MAX_IMPORT_BYTES).await?;
    let summary = customer_import::import(
        &state.platform,
        std::io::Cursor::new(body),
        ImportLimits::API,
        None,
    )
    .await?;
    tracing::info!(user.name = %admin.username, rows = summary.rows, inserted = summary.inserted,
        updated = summary.updated, "customers imported");
    Ok(AppJson(summary))
}
