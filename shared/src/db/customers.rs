//! The `customers` table: validated records and keyset-paginated lists (the bulk CSV import
//! is `customer_import`).
//!
//! Customers are not tenant data: every tenant's campaigns select from the same customer
//! base, so only super admins (or a trusted import process) reach these functions.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::{Map, Number, Value};
use uuid::Uuid;

use super::{CachedStatements, GenericClient};
use crate::criteria::{GENDERS, KYC_STATUSES, MARITAL_STATUSES};
use crate::error::{ApiError, FieldError};

/// Longest text column value accepted, in characters.
pub const MAX_TEXT_CHARS: usize = 200;

/// A customer as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Customer {
    /// Identifier.
    pub id: Uuid,
    /// The validated fields.
    #[serde(flatten)]
    pub record: CustomerRecord,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// The writable fields of a customer, validated by `CustomerRecord::problems`. `None` is
/// SQL NULL.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CustomerRecord {
    /// Full name (required, 1–200 characters).
    pub full_name: String,
    /// E-mail address, unique across customers; the key of imports.
    pub email: Option<String>,
    /// Phone number.
    pub phone: Option<String>,
    /// Date of birth.
    pub dob: Option<NaiveDate>,
    /// `male`, `female` or `other`.
    pub gender: Option<String>,
    /// `verified`, `pending` or `rejected`.
    pub kyc_status: Option<String>,
    /// Product segment (e.g. card category: `blue`, `gold`).
    pub segment: Option<String>,
    /// Occupation.
    pub occupation: Option<String>,
    /// Yearly income as an exact decimal number, ≥ 0.
    #[schema(value_type = Option<f64>, minimum = 0)]
    pub annual_income: Option<Number>,
    /// Credit score, 300–900.
    pub credit_score: Option<i32>,
    /// State or province.
    pub state: Option<String>,
    /// City.
    pub city: Option<String>,
    /// Postal code.
    pub pin_code: Option<String>,
    /// `single`, `married`, `divorced` or `widowed`.
    pub marital_status: Option<String>,
    /// Months since the account was opened, ≥ 0.
    pub account_age_months: Option<i32>,
    /// Preferred language (e.g. `en`).
    pub preferred_language: Option<String>,
    /// Inactive customers are left out of campaigns unless the criteria ask for them.
    pub is_active: bool,
    /// Source fields without a column (a JSON object).
    #[schema(value_type = Object)]
    pub attributes: Map<String, Value>,
}

/// The writable columns, in the order of every statement here (`attributes` last).
pub const RECORD_COLUMNS: [&str; 18] = [
    "full_name",
    "email",
    "phone",
    "dob",
    "gender",
    "kyc_status",
    "segment",
    "occupation",
    "annual_income",
    "credit_score",
    "state",
    "city",
    "pin_code",
    "marital_status",
    "account_age_months",
    "preferred_language",
    "is_active",
    "attributes",
];

impl CustomerRecord {
    /// Every problem of the record as `(field, reason)`; empty when it may be stored.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        let name_len = self.full_name.trim().chars().count();
        if name_len == 0 || self.full_name.chars().count() > MAX_TEXT_CHARS {
            problems.push((
                "full_name",
                format!("must be 1 to {MAX_TEXT_CHARS} characters"),
            ));
        }
        if let Some(email) = &self.email {
            let valid = email.len() <= 254
                && !email.chars().any(char::is_whitespace)
                && email
                    .split_once('@')
                    .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'));
            if !valid {
                problems.push(("email", "must be an e-mail address".into()));
            }
        }
        let texts = [
            ("phone", &self.phone),
            ("segment", &self.segment),
            ("occupation", &self.occupation),
            ("state", &self.state),
            ("city", &self.city),
            ("pin_code", &self.pin_code),
            ("preferred_language", &self.preferred_language),
        ];
        for (field, value) in texts {
            if value
                .as_ref()
                .is_some_and(|v| v.chars().count() > MAX_TEXT_CHARS)
            {
                problems.push((
                    field,
                    format!("must be at most {MAX_TEXT_CHARS} characters"),
                ));
            }
        }
        let enums = [
            ("gender", &self.gender, GENDERS),
            ("kyc_status", &self.kyc_status, KYC_STATUSES),
            ("marital_status", &self.marital_status, MARITAL_STATUSES),
        ];
        for (field, value, allowed) in enums {
            if let Some(value) = value
                && !allowed.contains(&value.as_str())
            {
                problems.push((
                    field,
                    format!("{value:?} is not one of {}", allowed.join(", ")),
                ));
            }
        }
        if let Some(income) = &self.annual_income
            && income.as_f64().is_none_or(|v| v < 0.0)
        {
            problems.push(("annual_income", "must be a number ≥ 0".into()));
        }
        if let Some(score) = self.credit_score
            && !(300..=900).contains(&score)
        {
            problems.push(("credit_score", "must be between 300 and 900".into()));
        }
        if self.account_age_months.is_some_and(|m| m < 0) {
            problems.push(("account_age_months", "must be ≥ 0".into()));
        }
        if let Some(dob) = self.dob
            && (dob < NaiveDate::from_ymd_opt(1900, 1, 1).unwrap_or(dob)
                || dob > Utc::now().date_naive())
        {
            problems.push(("dob", "must be a date between 1900-01-01 and today".into()));
        }
        problems
    }

    /// 422 naming every problem, or the record.
    ///
    /// # Errors
    /// [`ApiError::Unprocessable`] with one field error per problem.
    pub fn validated(self) -> Result<Self, ApiError> {
        let problems = self.problems();
        if problems.is_empty() {
            return Ok(self);
        }
        Err(ApiError::Unprocessable {
            detail: format!("the customer has {} invalid field(s)", problems.len()),
            errors: problems
                .into_iter()
                .map(|(field, reason)| FieldError::new(field, reason))
                .collect(),
        })
    }
}

/// The output columns of every read (`annual_income` as exact text).
const OUTPUT: &str = "id, full_name, email, phone, dob, gender, kyc_status, segment, occupation, \
     annual_income::text as annual_income, credit_score, state, city, pin_code, marital_status, \
     account_age_months, preferred_language, coalesce(is_active, true) as is_active, attributes, \
     created_at, updated_at";

/// `$1…$18` of [`RECORD_COLUMNS`], with the casts that type them.
const RECORD_PLACEHOLDERS: &str = "$1, $2, $3, $4, $5, $6, $7, $8, $9::text::numeric, $10, $11, $12, \
     $13, $14, $15, $16, $17, $18";
fn customer(row: &tokio_postgres::Row) -> Result<Customer, ApiError> {
    let income: Option<String> = row.get("annual_income");
    let annual_income = income
        .map(|text| serde_json::from_str::<Number>(&text))
        .transpose()
        .map_err(ApiError::internal)?;
    let attributes = match row.get::<_, Value>("attributes") {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    Ok(Customer {
        id: row.get("id"),
        record: CustomerRecord {
            full_name: row.get("full_name"),
            email: row.get("email"),
            phone: row.get("phone"),
            dob: row.get("dob"),
            gender: row.get("gender"),
            kyc_status: row.get("kyc_status"),
            segment: row.get("segment"),
            occupation: row.get("occupation"),
            annual_income,
            credit_score: row.get("credit_score"),
            state: row.get("state"),
            city: row.get("city"),
            pin_code: row.get("pin_code"),
            marital_status: row.get("marital_status"),
            account_age_months: row.get("account_age_months"),
            preferred_language: row.get("preferred_language"),
            is_active: row.get("is_active"),
            attributes,
        },
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    })
}

fn duplicate_email(err: tokio_postgres::Error) -> ApiError {
    if super::violated_constraint(&err) == Some("customers_email_key") {
        ApiError::Conflict("another customer has this email".into())
    } else {
        err.into()
    }
}

/// A record's values in [`RECORD_COLUMNS`] order.
fn record_params<'a>(
    record: &'a CustomerRecord,
    income: &'a Option<String>,
    attributes: &'a Value,
) -> [&'a (dyn tokio_postgres::types::ToSql + Sync); 18] {
    [
        &record.full_name,
        &record.email,
        &record.phone,
        &record.dob,
        &record.gender,
        &record.kyc_status,
        &record.segment,
        &record.occupation,
        income,
        &record.credit_score,
        &record.state,
        &record.city,
        &record.pin_code,
        &record.marital_status,
        &record.account_age_months,
        &record.preferred_language,
        &record.is_active,
        attributes,
    ]
}

/// Inserts a customer.
///
/// # Errors
/// 409 if the e-mail is taken; database failures.
pub async fn insert(
    client: &impl GenericClient,
    record: &CustomerRecord,
) -> Result<Customer, ApiError> {
    let income = record.annual_income.as_ref().map(Number::to_string);
    let attributes = Value::Object(record.attributes.clone());
    let row = client
        .query_one_cached(
            &format!(
                "insert into customers ({}) values ({RECORD_PLACEHOLDERS}) returning {OUTPUT}",
                RECORD_COLUMNS.join(", ")
            ),
            &record_params(record, &income, &attributes),
        )
        .await
        .map_err(duplicate_email)?;
    customer(&row)
}

/// Replaces every writable field of customer `id`; `None` if there is none.
///
/// # Errors
/// 409 if the e-mail is taken by another customer; database failures.
pub async fn replace(
    client: &impl GenericClient,
    id: Uuid,
    record: &CustomerRecord,
) -> Result<Option<Customer>, ApiError> {
    let income = record.annual_income.as_ref().map(Number::to_string);
    let attributes = Value::Object(record.attributes.clone());
    let mut params = record_params(record, &income, &attributes).to_vec();
    params.push(&id);
    let row = client
        .query_opt_cached(
            &format!(
                "update customers set ({}, updated_at) = ({RECORD_PLACEHOLDERS}, now())
                 where id = $19 returning {OUTPUT}",
                RECORD_COLUMNS.join(", ")
            ),
            &params,
        )
        .await
        .map_err(duplicate_email)?;
    row.as_ref().map(customer).transpose()
}

/// Reads one customer.
///
/// # Errors
/// Database failures.
pub async fn get(client: &impl GenericClient, id: Uuid) -> Result<Option<Customer>, ApiError> {
    let row = client
        .query_opt_cached(
            &format!("select {OUTPUT} from customers where id = $1"),
            &[&id],
        )
        .await?;
    row.as_ref().map(customer).transpose()
}

/// Deletes one customer (and, by cascade, its campaign deliveries); whether it existed.
///
/// # Errors
/// Database failures.
pub async fn delete(client: &impl GenericClient, id: Uuid) -> Result<bool, ApiError> {
    Ok(client
        .execute_cached("delete from customers where id = $1", &[&id])
        .await?
        == 1)
}

/// Filters of the customer list; each is an exact match.
#[derive(Debug, Default, Clone)]
pub struct CustomerFilter {
    /// `segment`.
    pub segment: Option<String>,
    /// `kyc_status`.
    pub kyc_status: Option<String>,
    /// `state`.
    pub state: Option<String>,
    /// `city`.
    pub city: Option<String>,
    /// `is_active`.
    pub is_active: Option<bool>,
    /// `email`.
    pub email: Option<String>,
}

/// One page of customers in id order, after `after` (keyset pagination: the cost of a page
/// does not grow with its depth).
///
/// # Errors
/// Database failures.
pub async fn list(
    client: &impl GenericClient,
    filter: &CustomerFilter,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Customer>, ApiError> {
    let rows = client
        .query_cached(
            &format!(
                "select {OUTPUT} from customers
                 where ($1::uuid is null or id > $1)
                   and ($2::text is null or segment = $2)
                   and ($3::text is null or kyc_status = $3)
                   and ($4::text is null or state = $4)
                   and ($5::text is null or city = $5)
                   and ($6::bool is null or coalesce(is_active, true) = $6)
                   and ($7::text is null or email = $7)
                 order by id
                 limit $8"
            ),
            &[
                &after,
                &filter.segment,
                &filter.kyc_status,
                &filter.state,
                &filter.city,
                &filter.is_active,
                &filter.email,
                &limit,
            ],
        )
        .await?;
    rows.iter().map(customer).collect()
}
