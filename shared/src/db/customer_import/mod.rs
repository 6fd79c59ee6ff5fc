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

use std::io::Read;
use std::sync::LazyLock;
use std::time::Instant;

use bytes::Bytes;
use futures_util::SinkExt;
use serde::Serialize;
use tokio::sync::mpsc;

use super::customers::RECORD_COLUMNS;
use crate::error::{ApiError, FieldError};

pub mod conversions;
pub mod kind;
mod limits;
pub mod parts;
mod reader;
pub mod split;

pub use kind::{CONVERSIONS_PREFIX, FileKind, IMPORTS_PREFIX};
pub use limits::{Boundary, ImportLimit, ImportLimits, LimitExceeded};
pub use reader::CONSENT_COLUMNS;
use reader::{Numbering, parse};

/// Most problems listed in one refused import (the count covers all of them).
pub const MAX_REPORTED_IMPORT_ERRORS: usize = 100;
/// Bytes of COPY data per message to PostgreSQL: the streaming buffer's unit.
pub const COPY_CHUNK_BYTES: usize = 1 << 20;
/// Chunks in flight between the parser thread and the COPY (bounds the memory an import
/// holds: about `COPY_CHANNEL_SLOTS + 2` chunks, plus the reader's own buffers).
pub const COPY_CHANNEL_SLOTS: usize = 4;
/// Bytes read from the source at a time (and sniffed for the gzip magic number).
pub(crate) const READ_BUFFER_BYTES: usize = 256 * 1024;

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
    /// The file passed one of its [`ImportLimits`] (reading stopped there).
    #[error("{} (limit {}); nothing was imported", .0.describe(), .0.limit.as_str())]
    TooLarge(LimitExceeded),
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
            ImportError::TooLarge(_) => ApiError::PayloadTooLarge(err.to_string()),
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
    limits: ImportLimits,
    deadline: Option<Instant>,
) -> Result<ImportSummary, ImportError> {
    let mut client = pool.get().await.map_err(ApiError::from)?;
    let tx = client.transaction().await?;
    let summary = import_csv(&tx, source, limits, deadline).await?;
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
/// The decompressed file is held to `limits` as it is read: the first byte past one stops
/// the reading ([`ImportError::TooLarge`]), so a small gzip file expanding to a huge line
/// or cell never grows the import's memory.
///
/// `deadline`, if given, is when the import must be done by: reading stops when it passes,
/// and the database's `statement_timeout` is set to the time left for the statements after
/// the COPY ([`ImportError::OutOfTime`]).
///
/// # Errors
/// [`ImportError::Invalid`] listing the file's problems; [`ImportError::TooLarge`];
/// [`ImportError::OutOfTime`]; [`ImportError::Read`] if the source failed; database
/// failures.
pub async fn import_csv<R: Read + Send + 'static>(
    tx: &deadpool_postgres::Transaction<'_>,
    source: R,
    limits: ImportLimits,
    deadline: Option<Instant>,
) -> Result<ImportSummary, ImportError> {
    let sink = begin_staging(tx).await?;
    let parsed = stream(sink, source, limits, FileKind::Customers, deadline).await?;
    let (repeats, duplicates) = duplicate_problems(tx, None).await?;
    if parsed.total_problems + repeats > 0 {
        return Err(ImportError::Invalid {
            total: parsed.total_problems + repeats,
            problems: merge_by_line(parsed.problems, duplicates),
        });
    }
    time_left(tx, deadline, parsed.rows).await?;
    apply(tx, parsed.rows)
        .await
        .map_err(|err| out_of_time(err, deadline, parsed.rows))
}

/// Imports a data file of `kind` read from `source` inside the caller's transaction `tx`
/// (commit it to keep the rows): a customer file as [`import_csv`], a tenant's conversion
/// file as [`conversions`] describes (`inserted` counts the conversions recorded,
/// `unchanged` the rows whose `event_id` was already recorded or came earlier in the file).
///
/// # Errors
/// As [`import_csv`]; a conversion naming a customer or an offer the tenant does not have is
/// one of the file's problems ([`ImportError::Invalid`]).
pub async fn import_file<R: Read + Send + 'static>(
    tx: &deadpool_postgres::Transaction<'_>,
    kind: &FileKind,
    source: R,
    limits: ImportLimits,
    deadline: Option<Instant>,
) -> Result<ImportSummary, ImportError> {
    let FileKind::Conversions { tenant } = kind else {
        return import_csv(tx, source, limits, deadline).await;
    };
    crate::db::tx::set_tenant(tx, tenant).await?;
    tx.batch_execute(conversions::TEMPORARY_TABLE_SQL).await?;
    let sink = tx.copy_in(conversions::TEMPORARY_COPY_SQL).await?;
    let parsed = stream(sink, source, limits, kind.clone(), deadline).await?;
    let (unknown, listed) =
        unknown_references(tx, conversions::Staged::Temporary, &[&tenant.as_str()]).await?;
    if parsed.total_problems + unknown > 0 {
        return Err(ImportError::Invalid {
            total: parsed.total_problems + unknown,
            problems: merge_by_line(parsed.problems, listed),
        });
    }
    time_left(tx, deadline, parsed.rows).await?;
    let recorded = tx
        .query_one(
            conversions::insert_sql(conversions::Staged::Temporary).as_str(),
            &[&tenant.as_str()],
        )
        .await
        .map_err(|err| out_of_time(err, deadline, parsed.rows))?;
    let recorded = u64::try_from(recorded.get::<_, i64>(0)).unwrap_or(0);
    Ok(ImportSummary {
        rows: parsed.rows,
        inserted: recorded,
        updated: 0,
        unchanged: parsed.rows.saturating_sub(recorded),
        consents_changed: 0,
    })
}

/// The staged conversions naming an unknown customer or offer
/// ([`conversions::unknown_references_sql`]): how many, and the first
/// [`MAX_REPORTED_IMPORT_ERRORS`] by line. `params` are the relation's and the tenant.
async fn unknown_references(
    tx: &impl deadpool_postgres::GenericClient,
    staged: conversions::Staged,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<(u64, Vec<ImportProblem>), ImportError> {
    let limit = i64::try_from(MAX_REPORTED_IMPORT_ERRORS).unwrap_or(i64::MAX);
    let mut all = params.to_vec();
    all.push(&limit);
    let rows = tx
        .query(&conversions::unknown_references_sql(staged), &all)
        .await?;
    Ok(counted_problems(&rows, |row| (row.get(2), row.get(3))))
}

/// `(how many, the problems listed)` from rows of `(count(*) over (), line, …)`; each row's
/// column and reason by `describe`.
fn counted_problems(
    rows: &[tokio_postgres::Row],
    describe: impl Fn(&tokio_postgres::Row) -> (String, String),
) -> (u64, Vec<ImportProblem>) {
    let total = rows
        .first()
        .map_or(0, |row| u64::try_from(row.get::<_, i64>(0)).unwrap_or(0));
    let problems = rows
        .iter()
        .map(|row| {
            let (column, reason) = describe(row);
            ImportProblem {
                line: u64::try_from(row.get::<_, i64>(1)).unwrap_or(0),
                column: Some(column),
                reason,
            }
        })
        .collect();
    (total, problems)
}

/// Streams `source` through the parser thread (rows checked as `kind`'s) into the COPY
/// `sink` and finishes it; answers what the parser found.
///
/// # Errors
/// [`ImportError::OutOfTime`] when `deadline` passes first (the COPY is aborted), the
/// parser's errors, database failures.
async fn stream<R: Read + Send + 'static>(
    sink: tokio_postgres::CopyInSink<Bytes>,
    source: R,
    limits: ImportLimits,
    kind: FileKind,
    deadline: Option<Instant>,
) -> Result<reader::Parsed, ImportError> {
    futures_util::pin_mut!(sink);
    let (chunks, received) = mpsc::channel::<Bytes>(COPY_CHANNEL_SLOTS);
    let parser = tokio::task::spawn_blocking(move || {
        parse(source, limits, &kind, Numbering::default(), &chunks)
    });
    if !forward(received, sink.as_mut(), deadline).await? {
        // Out of time: dropping the receiver stopped the parser at its next chunk; dropping
        // the sink unfinished aborts the COPY.
        let rows = match parser.await {
            Ok(Ok(parsed)) => parsed.rows,
            _ => 0,
        };
        return Err(ImportError::OutOfTime { rows });
    }
    let parsed = parser.await.map_err(ApiError::internal)??;
    sink.finish().await?;
    Ok(parsed)
}

/// With a `deadline`, the database's `statement_timeout` for the rest of `tx` set to the
/// time left ([`ImportError::OutOfTime`] when none is).
async fn time_left(
    tx: &deadpool_postgres::Transaction<'_>,
    deadline: Option<Instant>,
    rows: u64,
) -> Result<(), ImportError> {
    if let Some(deadline) = deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ImportError::OutOfTime { rows });
        }
        tx.batch_execute(&format!(
            "set local statement_timeout = {}",
            left.as_millis()
        ))
        .await?;
    }
    Ok(())
}

/// A statement's failure: [`ImportError::OutOfTime`] when the deadline's timeout cancelled
/// it.
fn out_of_time(err: tokio_postgres::Error, deadline: Option<Instant>, rows: u64) -> ImportError {
    if deadline.is_some() && err.code() == Some(&tokio_postgres::error::SqlState::QUERY_CANCELED) {
        ImportError::OutOfTime { rows }
    } else {
        err.into()
    }
}

/// The staging table `customer_import` (dropped at commit) and the COPY sink its rows go
/// into: line number, [`RECORD_COLUMNS`], [`CONSENT_COLUMNS`].
async fn begin_staging(
    tx: &deadpool_postgres::Transaction<'_>,
) -> Result<tokio_postgres::CopyInSink<Bytes>, ImportError> {
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
    Ok(tx
        .copy_in(&format!(
            "copy customer_import (line, {}, {}) from stdin (format csv)",
            RECORD_COLUMNS.join(", "),
            CONSENT_COLUMNS.map(|(column, _)| column).join(", ")
        ))
        .await?)
}

/// Forwards the parser's chunks into the COPY `sink` until the parser is done (`true`) or
/// `deadline` passes (`false`; the receiver is dropped then).
async fn forward(
    mut received: mpsc::Receiver<Bytes>,
    mut sink: std::pin::Pin<&mut tokio_postgres::CopyInSink<Bytes>>,
    deadline: Option<Instant>,
) -> Result<bool, ImportError> {
    loop {
        let next = match deadline {
            Some(deadline) => {
                match tokio::time::timeout_at(deadline.into(), received.recv()).await {
                    Ok(next) => next,
                    Err(_) => return Ok(false),
                }
            }
            None => received.recv().await,
        };
        match next {
            Some(chunk) => sink.send(chunk).await?,
            None => return Ok(true),
        }
    }
}

/// The upsert and the consents, from the filled staging table.
async fn apply(
    tx: &deadpool_postgres::Transaction<'_>,
    rows: u64,
) -> Result<ImportSummary, tokio_postgres::Error> {
    let row = tx.query_one(UPSERT_SQL[0].as_str(), &[]).await?;
    let inserted = u64::try_from(row.get::<_, i64>(0)).unwrap_or(0);
    let updated = u64::try_from(row.get::<_, i64>(1)).unwrap_or(0);
    let consents = tx.query_one(CONSENTS_SQL[0].as_str(), &[]).await?;
    Ok(ImportSummary {
        rows,
        inserted,
        updated,
        unchanged: rows.saturating_sub(inserted + updated),
        consents_changed: u64::try_from(consents.get::<_, i64>(0)).unwrap_or(0),
    })
}

/// Where staged rows are: the whole file's temporary table, or one batch of a split file's
/// staged rows (`$1` the import, lines `$2 < line <= $3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Staged {
    Temporary,
    Batch,
}

impl Staged {
    /// The staged rows as a relation named `i`.
    const fn relation(self) -> &'static str {
        match self {
            Self::Temporary => "customer_import i",
            Self::Batch => {
                "(select * from customer_import_rows
                  where import_id = $1 and line > $2 and line <= $3) i"
            }
        }
    }
}

/// Inserts new customers and updates those whose fields differ, in file order; answers
/// `(inserted, updated)`. One statement per [`Staged`] source.
static UPSERT_SQL: LazyLock<[String; 2]> =
    LazyLock::new(|| [Staged::Temporary, Staged::Batch].map(upsert_sql));

fn upsert_sql(staged: Staged) -> String {
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
    let source = staged.relation();
    format!(
        "with upserted as (
           insert into customers ({columns})
           select {columns} from {source} order by line
           on conflict (email) do update set {assignments}, updated_at = now()
           where ({current}) is distinct from ({incoming})
           returning (xmax = 0) as inserted)
         select count(*) filter (where inserted), count(*) filter (where not inserted)
         from upserted"
    )
}

/// The staged consent cells applied through [`super::consents::change_sql`] (source `csv
/// import`); answers how many changed. One statement per [`Staged`] source.
static CONSENTS_SQL: LazyLock<[String; 2]> =
    LazyLock::new(|| [Staged::Temporary, Staged::Batch].map(consents_sql));

fn consents_sql(staged: Staged) -> String {
    let source = staged.relation();
    let values = CONSENT_COLUMNS
        .iter()
        .map(|(column, channel)| format!("('{}', i.{column})", channel.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    // Rows without a consent cell are left out before the join to customers (most files
    // carry none): one e-mail probe per row saved.
    let any = CONSENT_COLUMNS
        .iter()
        .map(|(column, _)| format!("i.{column}"))
        .collect::<Vec<_>>()
        .join(", ");
    super::consents::change_sql(
        &format!(
            "select c.id as customer_id, w.channel, w.status
             from {source} join customers c on c.email = i.email
             cross join lateral (values {values}) as w(channel, status)
             where coalesce({any}) is not null and w.status is not null"
        ),
        "'csv import'",
        "null",
    )
}

/// The lines whose e-mail an earlier line already has: how many, and the first
/// [`MAX_REPORTED_IMPORT_ERRORS`] of them by line (a file of millions of repeats is not
/// read into memory). The rows are the temporary table's, or with `import_id` every staged
/// row of that split file's import.
async fn duplicate_problems(
    tx: &impl deadpool_postgres::GenericClient,
    import_id: Option<i64>,
) -> Result<(u64, Vec<ImportProblem>), ImportError> {
    let source = match import_id {
        None => "(select line, email from customer_import where $1::bigint is null)",
        Some(_) => "(select line, email from customer_import_rows where import_id = $1)",
    };
    let any = tx
        .query_one(
            &format!("select exists (select 1 from {source} s group by email having count(*) > 1)"),
            &[&import_id],
        )
        .await?;
    if !any.get::<_, bool>(0) {
        return Ok((0, Vec::new()));
    }
    let limit = i64::try_from(MAX_REPORTED_IMPORT_ERRORS).unwrap_or(i64::MAX);
    let rows = tx
        .query(
            &format!(
                "select count(*) over (), line, email, first from (
                     select line, email, min(line) over (partition by email) as first
                     from {source} s) d
                 where line <> first order by line limit $2"
            ),
            &[&import_id, &limit],
        )
        .await?;
    Ok(counted_problems(&rows, |row| {
        (
            "email".into(),
            format!(
                "{:?} is also on line {}",
                row.get::<_, String>(2),
                row.get::<_, i64>(3)
            ),
        )
    }))
}

/// The first [`MAX_REPORTED_IMPORT_ERRORS`] of two line-ordered problem lists, by line.
fn merge_by_line(mut a: Vec<ImportProblem>, b: Vec<ImportProblem>) -> Vec<ImportProblem> {
    a.extend(b);
    a.sort_by_key(|p| p.line);
    a.truncate(MAX_REPORTED_IMPORT_ERRORS);
    a
}
