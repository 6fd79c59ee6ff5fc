//! The S3 customer import: one object (a CSV file, plain or gzip-compressed) streamed from
//! S3 into [`shared::db::customer_import`], all rows or none, with a result object written
//! beside it and a ledger that makes every event for the same object version count once.
//!
//! Steps, and what a kill (`kill -9`, a Lambda timeout) at each leaves:
//!
//! 1. The ledger (`customer_imports`, keyed by bucket, key, version id and ETag) already
//!    has the object: its recorded result is written again to the result object and
//!    nothing else happens (a redelivered or duplicated event).
//! 2. An object larger than [`ImportOptions::max_bytes`] is refused (`too_large`).
//! 3. One transaction inserts the ledger row first (a concurrent duplicate waits on it, then
//!    finds it), streams the object into COPY and applies it, writes the result into the
//!    ledger row and commits. A kill before the commit leaves nothing; S3's retry of the
//!    event starts again.
//! 4. A refused file (bad lines, out of time) is rolled back, then recorded in the ledger
//!    in a transaction of its own. A kill between the two leaves nothing recorded: the retry
//!    reads the file again and refuses it again.
//! 5. The result object is written last, from the ledger's copy. A kill before it leaves
//!    the import done and recorded; the retry takes step 1 and writes it.

use shared::db::customer_imports::{self, ObjectVersion};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::db::customer_import::{self, ImportError, ImportProblem, ImportSummary};
use shared::metrics::{self, Metric};

use crate::s3::{self, Location, S3Error};
use crate::{BulkError, peak_rss_bytes};

/// Where result objects go: `results/<key>.json`.
pub const RESULTS_PREFIX: &str = "results/";

/// One object version to import, as an S3 event names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportObject {
    /// Bucket and key.
    pub location: Location,
    /// The version id (empty for an unversioned bucket).
    pub version_id: String,
    /// The ETag (quotes removed).
    pub etag: String,
    /// The size the event gives, in bytes.
    pub size: Option<u64>,
}

impl ImportObject {
    /// The ledger's key of this object version.
    fn ledger_key(&self) -> ObjectVersion<'_> {
        ObjectVersion {
            bucket: &self.location.bucket,
            key: &self.location.key,
            version_id: &self.version_id,
            etag: &self.etag,
        }
    }
}

/// Limits of one import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportOptions {
    /// Largest object imported, in bytes; a larger one is refused (`too_large`). Env
    /// `CUSTOMER_IMPORT_MAX_BYTES`, default
    /// [`shared::config::ImportConfig::DEFAULT_MAX_BYTES`].
    pub max_bytes: u64,
    /// When the import must be done by (the Lambda deadline less a margin): reading stops
    /// there and the file is refused (`timed_out`).
    pub deadline: Option<Instant>,
}

impl ImportOptions {
    /// From the environment (`CUSTOMER_IMPORT_MAX_BYTES`) and a deadline.
    ///
    /// # Errors
    /// [`shared::config::ConfigError`] naming the variable if it is not a positive number.
    pub fn from_env(deadline: Option<Instant>) -> Result<Self, shared::config::ConfigError> {
        Ok(Self {
            max_bytes: shared::config::ImportConfig::from_lookup(shared::config::env)?.max_bytes,
            deadline,
        })
    }
}

/// How an import ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportStatus {
    /// Every row was applied.
    Imported,
    /// The file has bad lines (listed); nothing was applied.
    Rejected,
    /// The object is larger than the import's limit; nothing was read.
    TooLarge,
    /// The import could not finish in its time; nothing was applied.
    TimedOut,
    /// The object changed or was deleted before it was read (a newer version has its own
    /// event); nothing was applied.
    Superseded,
}

impl ImportStatus {
    /// The ledger's name for it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Imported => "imported",
            Self::Rejected => "rejected",
            Self::TooLarge => "too_large",
            Self::TimedOut => "timed_out",
            Self::Superseded => "superseded",
        }
    }
}

/// A bad line of a refused file, as the result object lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultProblem {
    /// 1-based line (the header is line 1).
    pub line: u64,
    /// The column to blame, if one.
    pub column: Option<String>,
    /// JSON pointer into the file: `/lines/{line}/{column}`.
    pub pointer: String,
    /// What is wrong.
    pub reason: String,
}

impl From<ImportProblem> for ResultProblem {
    fn from(p: ImportProblem) -> Self {
        Self {
            pointer: p.pointer(),
            line: p.line,
            column: p.column,
            reason: p.reason,
        }
    }
}

/// The result object (`results/<key>.json`) and the ledger's copy of it:
///
/// ```json
/// {"bucket": "b", "key": "imports/customers.csv.gz", "version_id": "…", "etag": "…",
///  "status": "imported", "detail": "10127 rows: 10127 inserted, 0 updated, 0 unchanged",
///  "summary": {"rows": 10127, "inserted": 10127, "updated": 0, "unchanged": 0,
///              "consents_changed": 0},
///  "problems_total": 0, "problems": [], "bytes": 1234567, "duration_ms": 2345,
///  "peak_rss_bytes": 31457280, "finished_at": "2026-12-03T14:00:00Z"}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportResult {
    /// The object's bucket.
    pub bucket: String,
    /// The object's key.
    pub key: String,
    /// Its version id (empty: unversioned bucket).
    pub version_id: String,
    /// Its ETag.
    pub etag: String,
    /// How the import ended.
    pub status: ImportStatus,
    /// One sentence saying what happened.
    pub detail: String,
    /// The counts, when imported.
    pub summary: Option<ImportSummary>,
    /// How many problems the file has (all of them, listed or not).
    pub problems_total: u64,
    /// The first problems, by line (at most
    /// [`shared::db::customer_import::MAX_REPORTED_IMPORT_ERRORS`]).
    pub problems: Vec<ResultProblem>,
    /// The object's size in bytes.
    pub bytes: u64,
    /// How long the import took, in milliseconds.
    pub duration_ms: u64,
    /// The importing process's peak resident memory so far, in bytes (Linux `VmHWM`).
    pub peak_rss_bytes: Option<u64>,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
}

/// Whether this call did the import or found it done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// This call imported (or refused) the object.
    Now,
    /// The ledger already had the object version: nothing was changed (the result object
    /// was written again).
    Before,
}

/// The result object's place for an imported object: `results/<key>.json`, same bucket.
pub fn result_location(object: &Location) -> Location {
    Location {
        bucket: object.bucket.clone(),
        key: format!("{RESULTS_PREFIX}{}.json", object.key),
    }
}

/// Imports one object version (the steps of the module documentation); answers its result
/// and whether this call did it.
///
/// # Errors
/// [`BulkError`] when the database or S3 failed in a way a retry may mend (the caller
/// fails the invocation so S3 delivers the event again); a refused file is a result, not an
/// error.
pub async fn import_object(
    pool: &deadpool_postgres::Pool,
    s3: &aws_sdk_s3::Client,
    object: &ImportObject,
    options: ImportOptions,
) -> Result<(ImportResult, Handled), BulkError> {
    let started = Instant::now();
    if let Some(result) = recorded(pool, object).await? {
        write_result(s3, &object.location, &result).await?;
        return Ok((result, Handled::Before));
    }
    let mut result = ImportResult {
        bucket: object.location.bucket.clone(),
        key: object.location.key.clone(),
        version_id: object.version_id.clone(),
        etag: object.etag.clone(),
        status: ImportStatus::Imported,
        detail: String::new(),
        summary: None,
        problems_total: 0,
        problems: Vec::new(),
        bytes: object.size.unwrap_or(0),
        duration_ms: 0,
        peak_rss_bytes: None,
        finished_at: Utc::now(),
    };
    let outcome = if object.size.is_some_and(|size| size > options.max_bytes) {
        Applied::Refused(too_large(object.size.unwrap_or(0), options.max_bytes))
    } else {
        apply(pool, s3, object, options, &mut result, started).await?
    };
    match outcome {
        Applied::Done => {}
        Applied::AlreadyDone(done) => {
            write_result(s3, &object.location, &done).await?;
            return Ok((done, Handled::Before));
        }
        Applied::Refused((status, detail, problems_total, problems)) => {
            result.status = status;
            result.detail = detail;
            result.problems_total = problems_total;
            result.problems = problems;
            finish(&mut result, started);
            // The import's own transaction was rolled back; record the refusal.
            let client = pool.get().await.map_err(shared::ApiError::from)?;
            record(&client, object, &result).await?;
        }
    }
    write_result(s3, &object.location, &result).await?;
    emit_metrics(&result);
    tracing::info!(object = %object.location, status = result.status.as_str(),
        rows = result.summary.map(|s| s.rows), problems = result.problems_total,
        duration_ms = result.duration_ms, "customer import");
    Ok((result, Handled::Now))
}

/// A refusal: status, detail, problem count and the first problems.
type Refusal = (ImportStatus, String, u64, Vec<ResultProblem>);

fn refusal(status: ImportStatus, detail: String) -> Refusal {
    (status, detail, 0, Vec::new())
}

/// The refusal of an object of `size` bytes over the limit `max_bytes`.
fn too_large(size: u64, max_bytes: u64) -> Refusal {
    refusal(
        ImportStatus::TooLarge,
        format!(
            "the object has {size} bytes, more than this import's limit of {max_bytes} \
             (CUSTOMER_IMPORT_MAX_BYTES); split the file"
        ),
    )
}

/// What the import's transaction did.
enum Applied {
    /// Imported and committed.
    Done,
    /// A concurrent delivery of the same event imported it first.
    AlreadyDone(ImportResult),
    /// The file was refused; the transaction rolled back.
    Refused(Refusal),
}

/// Step 3: the import's transaction.
async fn apply(
    pool: &deadpool_postgres::Pool,
    s3: &aws_sdk_s3::Client,
    object: &ImportObject,
    options: ImportOptions,
    result: &mut ImportResult,
    started: Instant,
) -> Result<Applied, BulkError> {
    let mut client = pool.get().await.map_err(shared::ApiError::from)?;
    let tx = client.transaction().await?;
    if !customer_imports::claim(&tx, object.ledger_key()).await? {
        // A duplicate event imported it meanwhile (this insert waited for its commit).
        drop(tx);
        let done = recorded(pool, object)
            .await?
            .ok_or_else(|| BulkError::Inconsistent("the import ledger row vanished".into()))?;
        return Ok(Applied::AlreadyDone(done));
    }
    let reader = match open_pinned(s3, object, options.max_bytes, result).await? {
        Ok(reader) => reader,
        Err(refusal) => return Ok(Applied::Refused(refusal)),
    };
    match customer_import::import_csv(&tx, reader, options.deadline).await {
        Ok(summary) => {
            result.summary = Some(summary);
            result.detail = format!(
                "{} rows: {} inserted, {} updated, {} unchanged; {} consents changed",
                summary.rows,
                summary.inserted,
                summary.updated,
                summary.unchanged,
                summary.consents_changed
            );
            finish(result, started);
            record(&tx, object, result).await?;
            tx.commit().await?;
            Ok(Applied::Done)
        }
        Err(ImportError::Invalid { total, problems }) => Ok(Applied::Refused((
            ImportStatus::Rejected,
            format!(
                "{total} problem(s) in the file (first {} listed); nothing was imported",
                problems.len()
            ),
            total,
            problems.into_iter().map(ResultProblem::from).collect(),
        ))),
        Err(ImportError::OutOfTime { rows }) => Ok(Applied::Refused(refusal(
            ImportStatus::TimedOut,
            format!(
                "the import did not finish in its time ({rows} rows read); nothing was \
                 imported; split the file"
            ),
        ))),
        Err(ImportError::Read(err)) => Err(BulkError::Read(err)),
        Err(ImportError::Database(err)) => Err(err.into()),
    }
}

/// Opens the object version the event named (pinned to its version id and ETag) and notes
/// its size in `result`; a refusal when it is larger than `max_bytes` (`too_large`) or no
/// longer that version (`superseded`).
async fn open_pinned(
    s3: &aws_sdk_s3::Client,
    object: &ImportObject,
    max_bytes: u64,
    result: &mut ImportResult,
) -> Result<Result<impl std::io::Read + Send + 'static, Refusal>, BulkError> {
    match s3::open(
        s3,
        &object.location,
        Some(&object.version_id),
        Some(&object.etag),
    )
    .await
    {
        Ok((version, reader)) => {
            result.bytes = version.size;
            if version.size > max_bytes {
                return Ok(Err(too_large(version.size, max_bytes)));
            }
            Ok(Ok(reader))
        }
        Err(S3Error {
            status: Some(status @ (404 | 412)),
            ..
        }) => Ok(Err(refusal(
            ImportStatus::Superseded,
            if status == 404 {
                "the object version no longer exists; nothing was imported".into()
            } else {
                "the object changed before it was read; its new version is imported by \
                 its own event"
                    .into()
            },
        ))),
        Err(err) => Err(err.into()),
    }
}

fn finish(result: &mut ImportResult, started: Instant) {
    result.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    result.peak_rss_bytes = peak_rss_bytes();
    result.finished_at = Utc::now();
}

/// Where S3 events for customer files are sent from (`template.yaml`'s notification filter)
/// and what [`import_new`] watches.
pub const IMPORTS_PREFIX: &str = "imports/";

/// The object version at `location` now (HEAD), as an import names it: for
/// `offerctl import-customers s3://…` and the local watcher, which have no event.
///
/// # Errors
/// [`BulkError::S3`] (404 when there is no such object).
pub async fn current_object(
    s3: &aws_sdk_s3::Client,
    location: &Location,
) -> Result<ImportObject, BulkError> {
    let version = s3::head(s3, location).await?;
    Ok(ImportObject {
        location: location.clone(),
        version_id: version.version_id,
        etag: version.etag,
        size: Some(version.size),
    })
}

/// Imports every object under [`IMPORTS_PREFIX`] of `bucket` that the ledger does not have
/// yet (what S3 events do in AWS; `offerctl serve` polls a local bucket with it). Answers
/// the results of the objects imported now.
///
/// # Errors
/// [`BulkError`] from the first import that failed.
pub async fn import_new(
    pool: &deadpool_postgres::Pool,
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    options: ImportOptions,
) -> Result<Vec<ImportResult>, BulkError> {
    let mut results = Vec::new();
    for key in s3::list(s3, bucket, IMPORTS_PREFIX).await? {
        let location = Location {
            bucket: bucket.to_owned(),
            key,
        };
        let object = current_object(s3, &location).await?;
        if recorded(pool, &object).await?.is_none() {
            results.push(import_object(pool, s3, &object, options).await?.0);
        }
    }
    Ok(results)
}

/// The ledger's result for the object version, if it has one.
async fn recorded(
    pool: &deadpool_postgres::Pool,
    object: &ImportObject,
) -> Result<Option<ImportResult>, BulkError> {
    let client = pool.get().await.map_err(shared::ApiError::from)?;
    customer_imports::result(&client, object.ledger_key())
        .await?
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| BulkError::Inconsistent(format!("unreadable import ledger result: {e}")))
}

/// Writes the result into the ledger (the claimed row in the import's transaction, or a new
/// row for a refusal).
async fn record(
    client: &impl deadpool_postgres::GenericClient,
    object: &ImportObject,
    result: &ImportResult,
) -> Result<(), BulkError> {
    let json = serde_json::to_value(result)
        .map_err(|e| BulkError::Inconsistent(format!("result not serialisable: {e}")))?;
    customer_imports::record(client, object.ledger_key(), result.status.as_str(), &json).await?;
    Ok(())
}

async fn write_result(
    s3: &aws_sdk_s3::Client,
    object: &Location,
    result: &ImportResult,
) -> Result<(), BulkError> {
    let body = serde_json::to_vec_pretty(result)
        .map_err(|e| BulkError::Inconsistent(format!("result not serialisable: {e}")))?;
    s3::put(s3, &result_location(object), body, "application/json").await?;
    Ok(())
}

fn emit_metrics(result: &ImportResult) {
    let seconds = Duration::from_millis(result.duration_ms).as_secs_f64();
    let metrics = if result.status == ImportStatus::Imported {
        vec![
            Metric::count(metrics::IMPORTS_APPLIED, 1),
            Metric::count(
                metrics::IMPORT_ROWS,
                result.summary.map_or(0, |s| s.rows) as f64,
            ),
            Metric::seconds(metrics::IMPORT_DURATION, seconds),
        ]
    } else {
        vec![
            Metric::count(metrics::IMPORTS_REFUSED, 1),
            Metric::seconds(metrics::IMPORT_DURATION, seconds),
        ]
    };
    metrics::emit(crate::IMPORT_FUNCTION, &metrics);
}
