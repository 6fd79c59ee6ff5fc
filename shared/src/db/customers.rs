//! The `customers` table: validated records, keyset-paginated lists, and the bulk CSV import
//! (COPY into a staging table, then one set-based upsert by e-mail).
//!
//! Customers are not tenant data: every tenant's campaigns select from the same customer
//! base, so only super admins (or a trusted import process) reach these functions.

use std::collections::HashMap;

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use futures_util::SinkExt;
use serde::Serialize;
use serde_json::{Map, Number, Value};
use uuid::Uuid;

use super::{CachedStatements, GenericClient};
use crate::criteria::{GENDERS, KYC_STATUSES, MARITAL_STATUSES};
use crate::domain::{Channel, ConsentStatus};
use crate::error::{ApiError, FieldError};

/// Longest text column value accepted, in characters.
pub const MAX_TEXT_CHARS: usize = 200;
/// Most problems listed in one failed import (the count covers all of them).
pub const MAX_REPORTED_IMPORT_ERRORS: usize = 100;

/// Rows per COPY data message of an import.
const COPY_CHUNK_ROWS: usize = 5_000;

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

/// What an import did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ImportSummary {
    /// Data rows in the file.
    pub rows: u64,
    /// New customers.
    pub inserted: u64,
    /// Existing customers (same e-mail) whose fields changed.
    pub updated: u64,
    /// Existing customers already exactly as in the file.
    pub unchanged: u64,
    /// Consents changed by the file's consent columns (`consent_email`, …).
    pub consents_changed: u64,
}

/// One bad row of an import: its line in the file (the header is line 1), the column if one
/// is to blame, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ImportProblem {
    /// 1-based line number in the file.
    pub line: u64,
    /// The offending column, if one.
    pub column: Option<String>,
    /// What is wrong.
    pub reason: String,
}

/// Why an import was refused as a whole (nothing was written).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The header or some rows are invalid; every problem is listed.
    #[error("{} problem(s) in the file; nothing was imported", .0.len())]
    Invalid(Vec<ImportProblem>),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] ApiError),
}

impl From<ImportError> for ApiError {
    fn from(err: ImportError) -> Self {
        match err {
            ImportError::Database(err) => err,
            ImportError::Invalid(problems) => {
                let total = problems.len();
                ApiError::Unprocessable {
                    detail: format!(
                        "{total} problem(s) in the file (first {} listed); nothing was imported",
                        total.min(MAX_REPORTED_IMPORT_ERRORS)
                    ),
                    errors: problems
                        .into_iter()
                        .take(MAX_REPORTED_IMPORT_ERRORS)
                        .map(|p| FieldError {
                            pointer: match &p.column {
                                Some(column) => format!("/lines/{}/{column}", p.line),
                                None => format!("/lines/{}", p.line),
                            },
                            detail: format!("line {}: {}", p.line, p.reason),
                        })
                        .collect(),
                }
            }
        }
    }
}

/// Parses and validates a whole CSV file into records, or lists every problem.
///
/// The header names `customers` columns ([`RECORD_COLUMNS`]) in any order; `full_name` and
/// `email` are required. An `attributes` column holds a JSON object; any other column is
/// copied into `attributes` under its header name (empty cells skipped). Empty cells are
/// NULL; `is_active` takes `true`/`false` (empty: true). A repeated e-mail is an error.
///
/// # Errors
/// [`ImportError::Invalid`] with every problem found.
pub fn parse_csv(data: &[u8]) -> Result<Vec<(u64, CustomerRecord)>, ImportError> {
    parse_csv_with_consents(data).map(|(records, _)| records)
}

/// The consent columns an import may carry, with their channel: each cell `opted_in` (or
/// `yes`, `true`, `1`), `opted_out` (or `no`, `false`, `0`), `unknown`, or empty (no change).
pub const CONSENT_COLUMNS: [(&str, Channel); 4] = [
    ("consent_email", Channel::Email),
    ("consent_sms", Channel::Sms),
    ("consent_push", Channel::Push),
    ("consent_call", Channel::Call),
];

/// Consents of an import: `(e-mail, channel, status)` for every non-empty consent cell.
pub type ImportedConsents = Vec<(String, Channel, ConsentStatus)>;

/// As [`parse_csv`], also answering the consent cells of [`CONSENT_COLUMNS`].
///
/// # Errors
/// [`ImportError::Invalid`] with every problem found (bad consent cells included).
pub fn parse_csv_with_consents(
    data: &[u8],
) -> Result<(Vec<(u64, CustomerRecord)>, ImportedConsents), ImportError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(data);
    let header_problem = |reason: String| {
        ImportError::Invalid(vec![ImportProblem {
            line: 1,
            column: None,
            reason,
        }])
    };
    let headers = reader
        .headers()
        .map_err(|e| header_problem(format!("unreadable header: {e}")))?
        .clone();
    let mut seen = HashMap::new();
    for (i, name) in headers.iter().enumerate() {
        if seen.insert(name.trim().to_owned(), i).is_some() {
            return Err(header_problem(format!("column {name:?} appears twice")));
        }
    }
    for required in ["full_name", "email"] {
        if !seen.contains_key(required) {
            return Err(header_problem(format!(
                "the header has no {required} column"
            )));
        }
    }
    let names: Vec<String> = headers.iter().map(|h| h.trim().to_owned()).collect();
    let mut problems = Vec::new();
    let mut records = Vec::new();
    let mut consents = Vec::new();
    let mut emails: HashMap<String, u64> = HashMap::new();
    for result in reader.records() {
        let row = match result {
            Ok(row) => row,
            Err(err) => {
                let line = err.position().map_or(0, csv::Position::line);
                problems.push(ImportProblem {
                    line,
                    column: None,
                    reason: format!("unreadable row: {err}"),
                });
                continue;
            }
        };
        let line = row.position().map_or(0, csv::Position::line);
        let mut row_problems = Vec::new();
        for (name, field) in names.iter().zip(row.iter()) {
            if field.contains('\0') {
                row_problems.push((
                    name.clone(),
                    "must not contain the NUL character (U+0000)".into(),
                ));
            }
        }
        let (record, row_consents) = parse_row(&names, &row, &mut row_problems);
        for (column, reason) in record.problems() {
            row_problems.push((column.to_owned(), reason));
        }
        if let Some(email) = &record.email {
            if let Some(first) = emails.insert(email.clone(), line) {
                row_problems.push(("email".into(), format!("{email:?} is also on line {first}")));
            }
        } else {
            row_problems.push((
                "email".into(),
                "is required: imports match customers by e-mail".into(),
            ));
        }
        if row_problems.is_empty() {
            if let Some(email) = &record.email {
                consents.extend(row_consents.into_iter().map(|(c, k)| (email.clone(), c, k)));
            }
            records.push((line, record));
        }
        problems.extend(
            row_problems
                .into_iter()
                .map(|(column, reason)| ImportProblem {
                    line,
                    column: Some(column),
                    reason,
                }),
        );
    }
    if problems.is_empty() {
        Ok((records, consents))
    } else {
        Err(ImportError::Invalid(problems))
    }
}

/// One CSV row as a record and its consent cells; problems of individual cells go to
/// `problems`.
fn parse_row(
    names: &[String],
    row: &csv::StringRecord,
    problems: &mut Vec<(String, String)>,
) -> (CustomerRecord, Vec<(Channel, ConsentStatus)>) {
    let mut consents = Vec::new();
    let mut record = CustomerRecord {
        full_name: String::new(),
        email: None,
        phone: None,
        dob: None,
        gender: None,
        kyc_status: None,
        segment: None,
        occupation: None,
        annual_income: None,
        credit_score: None,
        state: None,
        city: None,
        pin_code: None,
        marital_status: None,
        account_age_months: None,
        preferred_language: None,
        is_active: true,
        attributes: Map::new(),
    };
    let mut extra = Map::new();
    for (name, cell) in names.iter().zip(row.iter()) {
        let cell = cell.trim();
        let text = (!cell.is_empty()).then(|| cell.to_owned());
        let mut bad = |reason: &str| problems.push((name.clone(), format!("{cell:?} {reason}")));
        match name.as_str() {
            "full_name" => record.full_name = cell.to_owned(),
            "email" => record.email = text,
            "phone" => record.phone = text,
            "gender" => record.gender = text,
            "kyc_status" => record.kyc_status = text,
            "segment" => record.segment = text,
            "occupation" => record.occupation = text,
            "state" => record.state = text,
            "city" => record.city = text,
            "pin_code" => record.pin_code = text,
            "marital_status" => record.marital_status = text,
            "preferred_language" => record.preferred_language = text,
            "dob" => match text.map(|t| NaiveDate::parse_from_str(&t, "%Y-%m-%d")) {
                None => {}
                Some(Ok(date)) => record.dob = Some(date),
                Some(Err(_)) => bad("is not a date (YYYY-MM-DD)"),
            },
            "annual_income" => match text.map(|t| t.parse::<Number>()) {
                None => {}
                Some(Ok(n)) => record.annual_income = Some(n),
                Some(Err(_)) => bad("is not a number"),
            },
            "credit_score" | "account_age_months" => match text.map(|t| t.parse::<i32>()) {
                None => {}
                Some(Ok(n)) if name == "credit_score" => record.credit_score = Some(n),
                Some(Ok(n)) => record.account_age_months = Some(n),
                Some(Err(_)) => bad("is not a whole number"),
            },
            "is_active" => match cell.to_ascii_lowercase().as_str() {
                "" | "true" | "t" | "1" | "yes" => record.is_active = true,
                "false" | "f" | "0" | "no" => record.is_active = false,
                _ => bad("is not true or false"),
            },
            "attributes" => match text.map(|t| serde_json::from_str::<Value>(&t)) {
                None => {}
                Some(Ok(Value::Object(map))) => record.attributes = map,
                Some(_) => bad("is not a JSON object"),
            },
            other => {
                if let Some((_, channel)) = CONSENT_COLUMNS.iter().find(|(c, _)| *c == other) {
                    match cell.to_ascii_lowercase().as_str() {
                        "" => {}
                        "opted_in" | "yes" | "true" | "1" => {
                            consents.push((*channel, ConsentStatus::OptedIn));
                        }
                        "opted_out" | "no" | "false" | "0" => {
                            consents.push((*channel, ConsentStatus::OptedOut));
                        }
                        "unknown" => consents.push((*channel, ConsentStatus::Unknown)),
                        _ => bad("is not opted_in, opted_out or unknown"),
                    }
                } else if let Some(text) = text {
                    extra.insert(name.clone(), Value::String(text));
                }
            }
        }
    }
    record.attributes.extend(extra);
    (record, consents)
}

/// Records the consents of an import (by the customers' e-mails, after [`import`] wrote
/// them) with source `csv import`; answers how many changed.
///
/// # Errors
/// Database failures.
pub async fn import_consents(
    client: &impl GenericClient,
    consents: &ImportedConsents,
    recorded_by: Option<&str>,
) -> Result<u64, ApiError> {
    if consents.is_empty() {
        return Ok(0);
    }
    let emails: Vec<&str> = consents.iter().map(|c| c.0.as_str()).collect();
    let rows = client
        .query_cached(
            "select e.n, c.id from unnest($1::text[]) with ordinality as e(email, n)
             join customers c on c.email = e.email",
            &[&emails],
        )
        .await?;
    let mut entries = Vec::with_capacity(consents.len());
    for row in &rows {
        let n: i64 = row.get(0);
        let index = usize::try_from(n - 1).map_err(ApiError::internal)?;
        if let Some((_, channel, status)) = consents.get(index) {
            entries.push((row.get::<_, Uuid>(1), *channel, *status));
        }
    }
    super::consents::set_many(client, &entries, "csv import", recorded_by).await
}

/// Imports validated records: COPY into a temporary staging table, then one upsert by
/// e-mail that leaves identical rows untouched (so importing a file twice changes nothing).
/// Run it inside a transaction: the staging table lives until the commit.
///
/// # Errors
/// Database failures (the caller's transaction then writes nothing).
pub async fn import(
    tx: &deadpool_postgres::Transaction<'_>,
    records: &[(u64, CustomerRecord)],
) -> Result<ImportSummary, ApiError> {
    tx.batch_execute(
        "create temporary table customer_import (
             line bigint, full_name text, email text, phone text, dob date, gender text,
             kyc_status text, segment text, occupation text, annual_income numeric,
             credit_score integer, state text, city text, pin_code text, marital_status text,
             account_age_months integer, preferred_language text, is_active boolean,
             attributes jsonb
         ) on commit drop",
    )
    .await?;
    let sink = tx
        .copy_in(&format!(
            "copy customer_import (line, {}) from stdin (format csv)",
            RECORD_COLUMNS.join(", ")
        ))
        .await?;
    futures_util::pin_mut!(sink);
    for chunk in records.chunks(COPY_CHUNK_ROWS) {
        let mut writer = csv::Writer::from_writer(Vec::with_capacity(1 << 20));
        for (line, record) in chunk {
            writer
                .write_record(copy_cells(*line, record))
                .map_err(ApiError::internal)?;
        }
        let bytes = writer
            .into_inner()
            .map_err(|e| ApiError::internal(e.to_string()))?;
        sink.send(Bytes::from(bytes)).await?;
    }
    sink.finish().await?;
    let assignments = RECORD_COLUMNS
        .iter()
        .map(|c| format!("{c} = excluded.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let current = RECORD_COLUMNS
        .iter()
        .map(|c| format!("customers.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let incoming = RECORD_COLUMNS
        .iter()
        .map(|c| format!("excluded.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let columns = RECORD_COLUMNS.join(", ");
    let row = tx
        .query_one(
            &format!(
                "with upserted as (
                   insert into customers ({columns})
                   select {columns} from customer_import order by line
                   on conflict (email) do update set {assignments}, updated_at = now()
                   where ({current}) is distinct from ({incoming})
                   returning (xmax = 0) as inserted)
                 select count(*) filter (where inserted), count(*) filter (where not inserted)
                 from upserted"
            ),
            &[],
        )
        .await?;
    let inserted = u64::try_from(row.get::<_, i64>(0)).unwrap_or(0);
    let updated = u64::try_from(row.get::<_, i64>(1)).unwrap_or(0);
    let rows = records.len() as u64;
    Ok(ImportSummary {
        rows,
        inserted,
        updated,
        unchanged: rows - inserted - updated,
        consents_changed: 0,
    })
}

/// A record as CSV cells for COPY (empty = NULL), line number first.
fn copy_cells(line: u64, r: &CustomerRecord) -> Vec<String> {
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let int = |v: Option<i32>| v.map(|n| n.to_string()).unwrap_or_default();
    vec![
        line.to_string(),
        r.full_name.clone(),
        text(&r.email),
        text(&r.phone),
        r.dob.map(|d| d.to_string()).unwrap_or_default(),
        text(&r.gender),
        text(&r.kyc_status),
        text(&r.segment),
        text(&r.occupation),
        r.annual_income
            .as_ref()
            .map(Number::to_string)
            .unwrap_or_default(),
        int(r.credit_score),
        text(&r.state),
        text(&r.city),
        text(&r.pin_code),
        text(&r.marital_status),
        int(r.account_age_months),
        text(&r.preferred_language),
        r.is_active.to_string(),
        Value::Object(r.attributes.clone()).to_string(),
    ]
}
