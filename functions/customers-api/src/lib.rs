//! `customers-api`: the customer base under `/customers`, for super admins.
//!
//! Customers are shared by every tenant's campaigns, so they are not tenant data; only a
//! super admin reads or writes them here (bulk loads also run through `offerctl
//! import-customers`). Lists page by id (`limit` / `after`, keyset pagination), because the
//! table grows to millions of rows.

use axum::Router;
use axum::extract::{OriginalUri, Request, State};
use axum::http::Method;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use deadpool_postgres::Pool;
use serde::Deserialize;
use serde_json::{Map, Number, Value};
use shared::auth::SuperAdmin;
use shared::db::customers::{self, Customer, CustomerFilter, CustomerRecord, ImportSummary};
use shared::http::Routes;
use shared::http::{
    AppJson, AppPath, AppQuery, Keyset, has_media_type, read_body_limited, with_location,
};
use shared::{ApiError, AppState};
use uuid::Uuid;

/// Largest CSV body `POST /customers/import` accepts, in bytes (Lambda's synchronous payload
/// limit is 6 MB; larger files go through `offerctl import-customers`).
pub const MAX_IMPORT_BYTES: usize = 6 * 1024 * 1024;

/// The routes of this function (checked against `template.yaml`).
pub fn routes() -> Routes<AppState> {
    Routes::new()
        .route(Method::POST, "/customers", create)
        .route(Method::GET, "/customers", list)
        .route(Method::POST, "/customers/import", import)
        .route(Method::GET, "/customers/{customer_id}", read)
        .route(Method::PUT, "/customers/{customer_id}", replace)
        .route(Method::DELETE, "/customers/{customer_id}", remove)
}

/// The router of this function.
pub fn router() -> Router<AppState> {
    routes().into_router()
}

fn not_found(id: Uuid) -> ApiError {
    ApiError::NotFound(format!("no customer {id}"))
}

/// `POST` / `PUT` body: every writable field (absent optional fields are NULL).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CustomerBody {
    full_name: String,
    email: Option<String>,
    phone: Option<String>,
    dob: Option<NaiveDate>,
    gender: Option<String>,
    kyc_status: Option<String>,
    segment: Option<String>,
    occupation: Option<String>,
    annual_income: Option<Number>,
    credit_score: Option<i32>,
    state: Option<String>,
    city: Option<String>,
    pin_code: Option<String>,
    marital_status: Option<String>,
    account_age_months: Option<i32>,
    preferred_language: Option<String>,
    is_active: Option<bool>,
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

/// `POST /customers`: 201 with `Location`; 409 if the e-mail is taken.
async fn create(
    State(state): State<AppState>,
    SuperAdmin(admin): SuperAdmin,
    AppJson(body): AppJson<CustomerBody>,
) -> Result<Response, ApiError> {
    let record = body.into_record()?;
    let client = state.pool.get().await?;
    let customer = customers::insert(&client, &record).await?;
    tracing::info!(user.name = %admin.username, customer.id = %customer.id, "customer created");
    let location = format!("/customers/{}", customer.id);
    Ok(with_location(
        (StatusCode::CREATED, AppJson(customer)).into_response(),
        &location,
    ))
}

/// `GET` list filters (exact matches).
#[derive(Deserialize)]
struct ListQuery {
    segment: Option<String>,
    kyc_status: Option<String>,
    state: Option<String>,
    city: Option<String>,
    is_active: Option<bool>,
    email: Option<String>,
}

/// `GET /customers?segment=&kyc_status=&state=&city=&is_active=&email=&limit=&after=`: id
/// order, `Link: rel="next"` on full pages.
async fn list(
    State(state): State<AppState>,
    SuperAdmin(_): SuperAdmin,
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
    let client = state.pool.get().await?;
    let rows = customers::list(&client, &filter, keyset.after, keyset.limit).await?;
    Ok(keyset.respond(&uri, rows, |c| c.id))
}

/// `GET /customers/{id}`.
async fn read(
    State(state): State<AppState>,
    SuperAdmin(_): SuperAdmin,
    AppPath(id): AppPath<Uuid>,
) -> Result<AppJson<Customer>, ApiError> {
    let client = state.pool.get().await?;
    let customer = customers::get(&client, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    Ok(AppJson(customer))
}

/// `PUT /customers/{id}`: replaces every writable field.
async fn replace(
    State(state): State<AppState>,
    SuperAdmin(admin): SuperAdmin,
    AppPath(id): AppPath<Uuid>,
    AppJson(body): AppJson<CustomerBody>,
) -> Result<AppJson<Customer>, ApiError> {
    let record = body.into_record()?;
    let client = state.pool.get().await?;
    let customer = customers::replace(&client, id, &record)
        .await?
        .ok_or_else(|| not_found(id))?;
    tracing::info!(user.name = %admin.username, customer.id = %id, "customer replaced");
    Ok(AppJson(customer))
}

/// `DELETE /customers/{id}`: also removes the customer from every campaign. 204.
async fn remove(
    State(state): State<AppState>,
    SuperAdmin(admin): SuperAdmin,
    AppPath(id): AppPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    let client = state.pool.get().await?;
    if !customers::delete(&client, id).await? {
        return Err(not_found(id));
    }
    tracing::info!(user.name = %admin.username, customer.id = %id, "customer deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /customers/import` with a `text/csv` body (at most [`MAX_IMPORT_BYTES`]): all rows
/// or none. 200 with `{rows, inserted, updated, unchanged}`; 422 listing every bad line;
/// 415 for another media type.
async fn import(
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
    let summary = import_csv(&state.pool, &body).await?;
    tracing::info!(user.name = %admin.username, rows = summary.rows, inserted = summary.inserted,
        updated = summary.updated, "customers imported");
    Ok(AppJson(summary))
}

/// Validates and imports a CSV file in one transaction (used by the endpoint and by
/// `offerctl import-customers`).
///
/// # Errors
/// 422 listing every bad line (nothing imported); database failures.
pub async fn import_csv(pool: &Pool, data: &[u8]) -> Result<ImportSummary, ApiError> {
    let records = customers::parse_csv(data)?;
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let summary = customers::import(&tx, &records).await?;
    tx.commit().await?;
    Ok(summary)
}
