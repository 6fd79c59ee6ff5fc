//! The bulk customer import: a CSV file (plain or gzip-compressed) of any size, streamed into
//! `COPY` and applied with one set-based upsert by e-mail, all rows or none.
//!
//! One code path serves `POST /customers/import` (a body of at most 6 MB),
//! `offerctl import-customers FILE` and the S3 import (`bulk::import`, files of gigabytes):
//! a parser thread reads the file through a [`Read`] and sends valid rows as COPY data in
//! chunks of [`COPY_CHUNK_BYTES`] over a channel of [`COPY_CHANNEL_SLOTS`] slots, so the
//! import holds at most a few megabytes of the file at a time, whatever its size. Rows
//! land in a temporary staging table (dropped at commit); repeated e-mails are found there
//! by one query, and the upsert leaves rows already as in the file untouched (importing a
//! file twice changes nothing). A bad line does not stop the reading: every line is
//! checked, the first [`MAX_REPORTED_IMPORT_ERRORS`] problems are kept and all counted,
//! and the caller's transaction is rolled back.

use std::io::{BufRead, BufReader, Read};
use std::sync::LazyLock;
use std::time::Instant;

use bytes::Bytes;
use chrono::NaiveDate;
use futures_util::SinkExt;
use serde::Serialize;
use serde_json::{Map, Number, Value};
use tokio::sync::mpsc;

use super::customers::{CustomerRecord, RECORD_COLUMNS};
use crate::domain::{Channel, ConsentStatus};
use crate::error::{ApiError, FieldError};

/// Most problems listed in one refused import (the count covers all of them).
pub const MAX_REPORTED_IMPORT_ERRORS: usize = 100;
/// Bytes of COPY data per message to PostgreSQL: the streaming buffer's unit.
pub const COPY_CHUNK_BYTES: usize = 1 << 20;
/// Chunks in flight between the parser thread and the COPY (bounds the memory an import
/// holds: about `COPY_CHANNEL_SLOTS + 2` chunks, plus the reader's own buffers).
pub const COPY_CHANNEL_SLOTS: usize = 4;
/// Bytes read from the source at a time (and sniffed for the gzip magic number).
const READ_BUFFER_BYTES: usize = 256 * 1024;

/// What an import did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ImportProblem {
    /// 1-based line number in the file.
    pub line: u64,
    /// The offending column, if one.
    pub column: Option<String>,
    /// What is wrong.
    pub reason: String,
}

impl ImportProblem {
    /// The problem's JSON pointer into the file: `/lines/{line}/{column}` or `/lines/{line}`.
    pub fn pointer(&self) -> String {
        match &self.column {
            Some(column) => format!("/lines/{}/{column}", self.line),
            None => format!("/lines/{}", self.line),
        }
    }
}

/// Why an import was refused as a whole (nothing was written once the caller rolls back).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The header or some rows are invalid: `total` problems, the first
    /// [`MAX_REPORTED_IMPORT_ERRORS`] of them (by line) in `problems`.
    #[error("{total} problem(s) in the file; nothing was imported")]
    Invalid {
        /// How many problems the file has.
        total: u64,
        /// The first of them, by line.
        problems: Vec<ImportProblem>,
    },
    /// The import could not finish before its deadline (the S3 import's Lambda timeout).
    #[error("the import did not finish in its time ({rows} rows read); nothing was imported")]
    OutOfTime {
        /// Data rows read when time ran out.
        rows: u64,
    },
    /// Reading the source failed for a reason that is not the file's content (the
    /// connection to S3 broke, say): retrying may succeed.
    #[error("reading the file failed: {0}")]
    Read(std::io::Error),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] ApiError),
}

impl From<tokio_postgres::Error> for ImportError {
    fn from(err: tokio_postgres::Error) -> Self {
        Self::Database(err.into())
    }
}

impl ImportError {
    fn header(reason: String) -> Self {
        Self::Invalid {
            total: 1,
            problems: vec![ImportProblem {
                line: 1,
                column: None,
                reason,
            }],
        }
    }
}

impl From<ImportError> for ApiError {
    fn from(err: ImportError) -> Self {
        match err {
            ImportError::Database(err) => err,
            ImportError::Read(err) => ApiError::internal(err),
            ImportError::OutOfTime { .. } => ApiError::internal(err.to_string()),
            ImportError::Invalid { total, problems } => ApiError::Unprocessable {
                detail: format!(
                    "{total} problem(s) in the file (first {} listed); nothing was imported",
                    problems.len()
                ),
                errors: problems
                    .into_iter()
                    .map(|p| FieldError {
                        pointer: p.pointer(),
                        detail: format!("line {}: {}", p.line, p.reason),
                    })
                    .collect(),
            },
        }
    }
}

/// [`import_csv`] in a transaction of its own on `pool`, committed when the import succeeds.
///
/// # Errors
/// As [`import_csv`].
pub async fn import<R: Read + Send + 'static>(
    pool: &deadpool_postgres::Pool,
    source: R,
    deadline: Option<Instant>,
) -> Result<ImportSummary, ImportError> {
    let mut client = pool.get().await.map_err(ApiError::from)?;
    let tx = client.transaction().await?;
    let summary = import_csv(&tx, source, deadline).await?;
    tx.commit().await?;
    Ok(summary)
}

/// Imports a customer CSV file read from `source` inside the caller's transaction `tx`
/// (commit it to keep the rows; any error leaves the caller to roll back, and then nothing
/// was written). The file may be gzip-compressed (detected by its magic number, `1f 8b`;
/// concatenated members are read in turn).
///
/// The header names `customers` columns ([`RECORD_COLUMNS`]) in any order; `full_name` and
/// `email` are required. An `attributes` column holds a JSON object; the consent columns of
/// [`CONSENT_COLUMNS`] set consents (source `csv import`); any other column is copied into
/// `attributes` under its header name (empty cells skipped). Empty cells are NULL;
/// `is_active` takes `true`/`false` (empty: true). A repeated e-mail is an error.
///
/// `deadline`, if given, is when the import must be done by: reading stops when it passes,
/// and the database's `statement_timeout` is set to the time left for the statements after
/// the COPY ([`ImportError::OutOfTime`]).
///
/// # Errors
/// [`ImportError::Invalid`] listing the file's problems; [`ImportError::OutOfTime`];
/// [`ImportError::Read`] if the source failed; database failures.
pub async fn import_csv<R: Read + Send + 'static>(
    tx: &deadpool_postgres::Transaction<'_>,
    source: R,
    deadline: Option<Instant>,
) -> Result<ImportSummary, ImportError> {
    tx.batch_execute(&format!(
        "create temporary table customer_import (
             line bigint, full_name text, email text, phone text, dob date, gender text,
             kyc_status text, segment text, occupation text, annual_income numeric,
             credit_score integer, state text, city text, pin_code text, marital_status text,
             account_age_months integer, preferred_language text, is_active boolean,
             attributes jsonb, {}
         ) on commit drop",
        CONSENT_COLUMNS
            .iter()
            .map(|(column, _)| format!("{column} text"))
            .collect::<Vec<_>>()
            .join(", ")
    ))
    .await?;
    let sink = tx
        .copy_in(&format!(
            "copy customer_import (line, {}, {}) from stdin (format csv)",
            RECORD_COLUMNS.join(", "),
            CONSENT_COLUMNS.map(|(column, _)| column).join(", ")
        ))
        .await?;
    futures_util::pin_mut!(sink);
    let (chunks, mut received) = mpsc::channel::<Bytes>(COPY_CHANNEL_SLOTS);
    let parser = tokio::task::spawn_blocking(move || parse(source, &chunks));
    loop {
        let next = match deadline {
            Some(deadline) => {
                match tokio::time::timeout_at(deadline.into(), received.recv()).await {
                    Ok(next) => next,
                    Err(_) => {
                        // Dropping the receiver stops the parser at its next chunk; dropping
                        // the sink unfinished aborts the COPY.
                        drop(received);
                        let rows = match parser.await {
                            Ok(Ok(parsed)) => parsed.rows,
                            _ => 0,
                        };
                        return Err(ImportError::OutOfTime { rows });
                    }
                }
            }
            None => received.recv().await,
        };
        match next {
            Some(chunk) => sink.send(chunk).await?,
            None => break,
        }
    }
    let parsed = parser.await.map_err(ApiError::internal)??;
    sink.finish().await?;
    let (repeats, duplicates) = duplicate_problems(tx).await?;
    if parsed.total_problems + repeats > 0 {
        return Err(ImportError::Invalid {
            total: parsed.total_problems + repeats,
            problems: merge_by_line(parsed.problems, duplicates),
        });
    }
    if let Some(deadline) = deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ImportError::OutOfTime { rows: parsed.rows });
        }
        tx.batch_execute(&format!(
            "set local statement_timeout = {}",
            left.as_millis()
        ))
        .await?;
    }
    apply(tx, parsed.rows).await.map_err(|err| {
        if deadline.is_some()
            && err.code() == Some(&tokio_postgres::error::SqlState::QUERY_CANCELED)
        {
            ImportError::OutOfTime { rows: parsed.rows }
        } else {
            err.into()
        }
    })
}

/// The upsert and the consents, from the filled staging table.
async fn apply(
    tx: &deadpool_postgres::Transaction<'_>,
    rows: u64,
) -> Result<ImportSummary, tokio_postgres::Error> {
    let row = tx.query_one(UPSERT_SQL.as_str(), &[]).await?;
    let inserted = u64::try_from(row.get::<_, i64>(0)).unwrap_or(0);
    let updated = u64::try_from(row.get::<_, i64>(1)).unwrap_or(0);
    let consents = tx.query_one(CONSENTS_SQL.as_str(), &[]).await?;
    Ok(ImportSummary {
        rows,
        inserted,
        updated,
        unchanged: rows.saturating_sub(inserted + updated),
        consents_changed: u64::try_from(consents.get::<_, i64>(0)).unwrap_or(0),
    })
}

/// Inserts new customers and updates those whose fields differ, in file order; answers
/// `(inserted, updated)`.
static UPSERT_SQL: LazyLock<String> = LazyLock::new(|| {
    let list = |prefix: &str| {
        RECORD_COLUMNS
            .iter()
            .map(|c| format!("{prefix}{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let assignments = RECORD_COLUMNS
        .iter()
        .map(|c| format!("{c} = excluded.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let columns = list("");
    let current = list("customers.");
    let incoming = list("excluded.");
    format!(
        "with upserted as (
           insert into customers ({columns})
           select {columns} from customer_import order by line
           on conflict (email) do update set {assignments}, updated_at = now()
           where ({current}) is distinct from ({incoming})
           returning (xmax = 0) as inserted)
         select count(*) filter (where inserted), count(*) filter (where not inserted)
         from upserted"
    )
});

/// The staging table's consent cells applied through [`super::consents::change_sql`]
/// (source `csv import`); answers how many changed.
static CONSENTS_SQL: LazyLock<String> = LazyLock::new(|| {
    let values = CONSENT_COLUMNS
        .iter()
        .map(|(column, channel)| format!("('{}', i.{column})", channel.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    super::consents::change_sql(
        &format!(
            "select c.id as customer_id, w.channel, w.status
             from customer_import i join customers c on c.email = i.email
             cross join lateral (values {values}) as w(channel, status)
             where w.status is not null"
        ),
        "'csv import'",
        "null",
    )
});

/// The lines whose e-mail an earlier line already has: how many, and the first
/// [`MAX_REPORTED_IMPORT_ERRORS`] of them by line (a file of millions of repeats is not
/// read into memory).
async fn duplicate_problems(
    tx: &deadpool_postgres::Transaction<'_>,
) -> Result<(u64, Vec<ImportProblem>), ImportError> {
    let any = tx
        .query_one(
            "select exists (select 1 from customer_import group by email having count(*) > 1)",
            &[],
        )
        .await?;
    if !any.get::<_, bool>(0) {
        return Ok((0, Vec::new()));
    }
    let limit = i64::try_from(MAX_REPORTED_IMPORT_ERRORS).unwrap_or(i64::MAX);
    let rows = tx
        .query(
            "select count(*) over (), line, email, first from (
                 select line, email, min(line) over (partition by email) as first
                 from customer_import) d
             where line <> first order by line limit $1",
            &[&limit],
        )
        .await?;
    let total = rows
        .first()
        .map_or(0, |row| u64::try_from(row.get::<_, i64>(0)).unwrap_or(0));
    let problems = rows
        .iter()
        .map(|row| ImportProblem {
            line: u64::try_from(row.get::<_, i64>(1)).unwrap_or(0),
            column: Some("email".into()),
            reason: format!(
                "{:?} is also on line {}",
                row.get::<_, String>(2),
                row.get::<_, i64>(3)
            ),
        })
        .collect();
    Ok((total, problems))
}

/// The first [`MAX_REPORTED_IMPORT_ERRORS`] of two line-ordered problem lists, by line.
fn merge_by_line(mut a: Vec<ImportProblem>, b: Vec<ImportProblem>) -> Vec<ImportProblem> {
    a.extend(b);
    a.sort_by_key(|p| p.line);
    a.truncate(MAX_REPORTED_IMPORT_ERRORS);
    a
}

/// What the parser thread found.
struct Parsed {
    rows: u64,
    total_problems: u64,
    problems: Vec<ImportProblem>,
}

/// The parser thread: reads `source`, checks every row and sends the valid ones as COPY data
/// chunks (line number first, then [`RECORD_COLUMNS`], then [`CONSENT_COLUMNS`]).
fn parse<R: Read>(source: R, chunks: &mpsc::Sender<Bytes>) -> Result<Parsed, ImportError> {
    let mut buffered = BufReader::with_capacity(READ_BUFFER_BYTES, source);
    let gzip = buffered
        .fill_buf()
        .map_err(ImportError::Read)?
        .starts_with(&[0x1f, 0x8b]);
    let input: Box<dyn Read> = if gzip {
        Box::new(flate2::bufread::MultiGzDecoder::new(buffered))
    } else {
        Box::new(buffered)
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(input);
    let headers = match reader.headers() {
        Ok(headers) => headers.clone(),
        Err(err) => {
            return Err(match classify(err, 1) {
                ReadFailure::Row(problem) | ReadFailure::Broken(problem) => {
                    ImportError::header(problem.reason)
                }
                ReadFailure::Source(err) => ImportError::Read(err),
            });
        }
    };
    let names: Vec<String> = headers.iter().map(|h| h.trim().to_owned()).collect();
    for (i, name) in names.iter().enumerate() {
        if names[..i].contains(name) {
            return Err(ImportError::header(format!(
                "column {name:?} appears twice"
            )));
        }
    }
    for required in ["full_name", "email"] {
        if !names.iter().any(|n| n == required) {
            return Err(ImportError::header(format!(
                "the header has no {required} column"
            )));
        }
    }
    let mut parsed = Parsed {
        rows: 0,
        total_problems: 0,
        problems: Vec::new(),
    };
    let report = |parsed: &mut Parsed, problem: ImportProblem| {
        parsed.total_problems += 1;
        if parsed.problems.len() < MAX_REPORTED_IMPORT_ERRORS {
            parsed.problems.push(problem);
        }
    };
    let chunk_writer =
        || csv::Writer::from_writer(Vec::with_capacity(COPY_CHUNK_BYTES + 64 * 1024));
    let mut writer = chunk_writer();
    let mut row = csv::StringRecord::new();
    loop {
        let line = reader.position().line();
        match reader.read_record(&mut row) {
            Ok(false) => break,
            Ok(true) => {}
            Err(err) => match classify(err, line) {
                ReadFailure::Row(problem) => {
                    parsed.rows += 1;
                    report(&mut parsed, problem);
                    continue;
                }
                ReadFailure::Broken(problem) => {
                    report(&mut parsed, problem);
                    break;
                }
                ReadFailure::Source(err) => return Err(ImportError::Read(err)),
            },
        }
        parsed.rows += 1;
        let line = row.position().map_or(line, csv::Position::line);
        let mut row_problems = Vec::new();
        for (name, field) in names.iter().zip(row.iter()) {
            if field.contains('\0') {
                row_problems.push((
                    name.clone(),
                    "must not contain the NUL character (U+0000)".into(),
                ));
            }
        }
        let (record, consents) = parse_row(&names, &row, &mut row_problems);
        for (column, reason) in record.problems() {
            row_problems.push((column.to_owned(), reason));
        }
        if record.email.is_none() {
            row_problems.push((
                "email".into(),
                "is required: imports match customers by e-mail".into(),
            ));
        }
        let staged = if row_problems.is_empty() {
            Some(copy_cells(line, &record, &consents))
        } else {
            // A bad row still takes part in the repeated e-mail check: its line and e-mail
            // alone (the file is refused, so it never reaches the upsert).
            record
                .email
                .as_ref()
                .filter(|email| !email.contains('\0'))
                .map(|email| email_only_cells(line, email))
        };
        if let Some(cells) = staged {
            writer.write_record(cells).map_err(ApiError::internal)?;
            if writer.get_ref().len() >= COPY_CHUNK_BYTES {
                let chunk = std::mem::replace(&mut writer, chunk_writer())
                    .into_inner()
                    .map_err(|e| ApiError::internal(e.to_string()))?;
                if chunks.blocking_send(Bytes::from(chunk)).is_err() {
                    // The COPY side stopped (out of time, or the database failed): it
                    // reports why.
                    return Ok(parsed);
                }
            }
        }
        for (column, reason) in row_problems {
            report(
                &mut parsed,
                ImportProblem {
                    line,
                    column: Some(column),
                    reason,
                },
            );
        }
    }
    let rest = writer
        .into_inner()
        .map_err(|e| ApiError::internal(e.to_string()))?;
    if !rest.is_empty() {
        // A closed channel means the COPY side stopped; it reports why.
        let _ = chunks.blocking_send(Bytes::from(rest));
    }
    Ok(parsed)
}

/// A CSV read error, sorted.
enum ReadFailure {
    /// A bad row (invalid UTF-8, a wrong number of fields): reading goes on.
    Row(ImportProblem),
    /// The file's bytes cannot be read on (a corrupt or truncated gzip stream).
    Broken(ImportProblem),
    /// The source failed, not the file (the connection broke): retrying may succeed.
    Source(std::io::Error),
}

fn classify(err: csv::Error, line: u64) -> ReadFailure {
    let line = err.position().map_or(line, csv::Position::line);
    if let csv::ErrorKind::Io(io) = err.kind() {
        use std::io::ErrorKind::{InvalidData, InvalidInput, UnexpectedEof};
        return if matches!(io.kind(), InvalidData | InvalidInput | UnexpectedEof) {
            ReadFailure::Broken(ImportProblem {
                line,
                column: None,
                reason: format!("the file cannot be read from here on: {io}"),
            })
        } else {
            match err.into_kind() {
                csv::ErrorKind::Io(io) => ReadFailure::Source(io),
                _ => ReadFailure::Source(std::io::Error::other("unreadable source")),
            }
        };
    }
    ReadFailure::Row(ImportProblem {
        line,
        column: None,
        reason: format!("unreadable row: {err}"),
    })
}

/// The consent columns an import may carry, with their channel: each cell `opted_in` (or
/// `yes`, `true`, `1`), `opted_out` (or `no`, `false`, `0`), `unknown`, or empty (no change).
pub const CONSENT_COLUMNS: [(&str, Channel); 4] = [
    ("consent_email", Channel::Email),
    ("consent_sms", Channel::Sms),
    ("consent_push", Channel::Push),
    ("consent_call", Channel::Call),
];

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

/// COPY cells for a bad row: its line and e-mail, every other cell NULL.
fn email_only_cells(line: u64, email: &str) -> Vec<String> {
    let mut cells = vec![String::new(); 1 + RECORD_COLUMNS.len() + CONSENT_COLUMNS.len()];
    cells[0] = line.to_string();
    if let Some(at) = RECORD_COLUMNS.iter().position(|c| *c == "email") {
        cells[1 + at] = email.to_owned();
    }
    cells
}

/// A record as CSV cells for COPY (empty = NULL), line number first, its consent cells
/// last (in [`CONSENT_COLUMNS`] order; a channel the row leaves alone is NULL).
fn copy_cells(line: u64, r: &CustomerRecord, consents: &[(Channel, ConsentStatus)]) -> Vec<String> {
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
    .into_iter()
    .chain(CONSENT_COLUMNS.iter().map(|(_, channel)| {
        consents
            .iter()
            .rev()
            .find(|(c, _)| c == channel)
            .map(|(_, status)| status.as_str().to_owned())
            .unwrap_or_default()
    }))
    .collect()
}
