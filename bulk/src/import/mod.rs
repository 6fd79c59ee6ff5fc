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
//!
//! A file larger than the part size ([`ImportOptions::part_bytes`]) takes the steps of
//! [`parts`] instead of 3: planned here, its parts staged and merged by queue messages.
//! Its result object says `importing` until they end.

pub mod parts;
mod result;
mod watch;

pub use result::{ImportResult, ImportStatus, RESULTS_PREFIX, ResultProblem, result_location};
use result::{
    Refusal, applied_detail, emit_metrics, finish, past_limit, refusal, rejected, too_large,
};
pub use watch::{CONVERSIONS_PREFIX, IMPORTS_PREFIX, allow_retry, current_object, import_new};

use shared::db::customer_imports::{self, ObjectVersion};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use shared::db::customer_import::parts::{self as staged, Driver};
use shared::db::customer_import::{self, FileKind, ImportError, ImportLimits};

use crate::BulkError;
use crate::s3::{self, Location, S3Error};

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
    /// What the object holds, by its key ([`FileKind::of_key`]).
    ///
    /// # Errors
    /// Why its key names no kind.
    pub fn kind(&self) -> Result<FileKind, String> {
        FileKind::of_key(&self.location.key)
    }

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
    /// The decompressed file's limits (env `CUSTOMER_IMPORT_MAX_DECOMPRESSED_BYTES` for the
    /// whole file); a file past one is refused (`too_large`, naming it).
    pub limits: ImportLimits,
    /// When the import must be done by (the Lambda deadline less a margin): reading stops
    /// there and the file is refused (`timed_out`).
    pub deadline: Option<Instant>,
    /// How often, and when, a failed attempt is tried again.
    pub retry: ImportRetry,
    /// Decompressed bytes per part of a file imported in parts ([`parts`]); env
    /// `CUSTOMER_IMPORT_PART_BYTES`, default
    /// [`shared::config::ImportConfig::DEFAULT_PART_BYTES`].
    pub part_bytes: u64,
    /// Who runs a planned file's parts: the queue (the function), or this process
    /// (`offerctl import-customers s3://…`).
    pub driver: Driver,
}

/// The retries of an import that failed for a reason not in its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportRetry {
    /// Attempts in all, the first included: [`ImportRetry::MAX_ATTEMPTS`] (the function's
    /// event is retried twice by Lambda, `template.yaml`'s `MaximumRetryAttempts: 2`).
    pub max_attempts: i32,
    /// The wait after the first failed attempt, doubled after each further one (the bucket
    /// watcher's; Lambda's retries of an event keep their own pace, about 1 then 2 minutes).
    pub backoff: Duration,
}

impl ImportRetry {
    /// Attempts in all: 3.
    pub const MAX_ATTEMPTS: i32 = 3;
    /// The first wait: 60 s.
    pub const BACKOFF: Duration = Duration::from_secs(60);

    /// When attempt `attempts` + 1 may start, after `attempts` failed ones: `None` when
    /// none is left.
    #[must_use]
    pub fn after(self, attempts: i32) -> Option<DateTime<Utc>> {
        (attempts < self.max_attempts).then(|| {
            let doubling = u32::try_from(attempts.saturating_sub(1).clamp(0, 16)).unwrap_or(0);
            let wait = self.backoff.saturating_mul(1 << doubling);
            Utc::now() + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX)
        })
    }
}

impl Default for ImportRetry {
    fn default() -> Self {
        Self {
            max_attempts: Self::MAX_ATTEMPTS,
            backoff: Self::BACKOFF,
        }
    }
}

impl ImportOptions {
    /// From the environment (`CUSTOMER_IMPORT_MAX_BYTES`,
    /// `CUSTOMER_IMPORT_MAX_DECOMPRESSED_BYTES`, `CUSTOMER_IMPORT_PART_BYTES`) and a
    /// deadline; parts driven by the queue.
    ///
    /// # Errors
    /// [`shared::config::ConfigError`] naming the variable if it is not a positive number.
    pub fn from_env(deadline: Option<Instant>) -> Result<Self, shared::config::ConfigError> {
        let config = shared::config::ImportConfig::from_lookup(shared::config::env)?;
        Ok(Self {
            max_bytes: config.max_bytes,
            limits: ImportLimits::with_file_bytes(config.max_decompressed_bytes),
            deadline,
            retry: ImportRetry::default(),
            part_bytes: config.part_bytes,
            driver: Driver::Queue,
        })
    }
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

/// Imports one object version (the steps of the module documentation); answers its result
/// and whether this call did it.
///
/// An attempt that fails for a reason not in the file (the database or S3 failed, or
/// PostgreSQL refused a value) is recorded in the ledger as `failed` with its reason, and
/// its result object is written: while attempts are left ([`ImportRetry`]) the error is
/// answered, so that the caller tries again (Lambda retries the event; the watcher waits
/// for the row's `retry_after`); the last failed attempt is a final `failed` result (and
/// the `ImportsFailed` alarm's metric).
///
/// # Errors
/// [`BulkError`] when the attempt failed and will be retried, or when even its failure
/// could not be recorded (the database is down); a refused file is a result, not an error.
pub async fn import_object(
    pool: &deadpool_postgres::Pool,
    s3: &aws_sdk_s3::Client,
    object: &ImportObject,
    options: ImportOptions,
) -> Result<(ImportResult, Handled), BulkError> {
    let started = Instant::now();
    if let Some(result) = recorded(pool, object).await? {
        if result.status == ImportStatus::Importing && options.driver == Driver::Inline {
            return resume(pool, s3, object, options, result).await;
        }
        write_result(s3, object, &result).await?;
        return Ok((result, Handled::Before));
    }
    let mut result = blank_result(object);
    match attempt(pool, s3, object, options, &mut result, started).await {
        Ok(None) => {}
        Ok(Some(done)) => {
            write_result(s3, object, &done).await?;
            return Ok((done, Handled::Before));
        }
        Err(err) => return failed(pool, s3, object, options.retry, result, started, err).await,
    }
    if result.parts.is_some() {
        // In parts: the plan's `importing` result, or (run here) the merge's, which wrote
        // its result object and metrics.
        if result.status == ImportStatus::Importing {
            write_result(s3, object, &result).await?;
            tracing::info!(object = %object.location, parts = result.parts,
                bytes = result.bytes, duration_ms = result.duration_ms, "customer import planned in parts");
        }
        return Ok((result, Handled::Now));
    }
    write_result(s3, object, &result).await?;
    emit_metrics(&result);
    tracing::info!(object = %object.location, status = result.status.as_str(),
        rows = result.summary.map(|s| s.rows), problems = result.problems_total,
        duration_ms = result.duration_ms, "customer import");
    Ok((result, Handled::Now))
}

/// A planned import run on in this process ([`Driver::Inline`]): its parts left and its
/// merge; answers the final result (or the `importing` one when its job is gone).
async fn resume(
    pool: &deadpool_postgres::Pool,
    s3: &aws_sdk_s3::Client,
    object: &ImportObject,
    options: ImportOptions,
    importing: ImportResult,
) -> Result<(ImportResult, Handled), BulkError> {
    let job = {
        let client = pool.get().await.map_err(shared::ApiError::from)?;
        staged::job_of(&client, object.ledger_key()).await?
    };
    let finished = match job {
        Some(id) => parts::run_job(pool, s3, id, options).await?,
        None => None,
    };
    match finished {
        Some(result) => Ok((result, Handled::Now)),
        None => Ok((
            recorded(pool, object).await?.unwrap_or(importing),
            Handled::Before,
        )),
    }
}

/// A result with nothing found yet.
fn blank_result(object: &ImportObject) -> ImportResult {
    let kind = object.kind().ok();
    ImportResult {
        kind: kind.as_ref().map_or("unknown", FileKind::as_str).to_owned(),
        tenant: kind
            .as_ref()
            .and_then(FileKind::tenant)
            .map(|t| t.as_str().to_owned()),
        bucket: object.location.bucket.clone(),
        key: object.location.key.clone(),
        version_id: object.version_id.clone(),
        etag: object.etag.clone(),
        status: ImportStatus::Imported,
        detail: String::new(),
        limit: None,
        integrity: None,
        attempts: 1,
        parts: None,
        summary: None,
        problems_total: 0,
        problems: Vec::new(),
        bytes: object.size.unwrap_or(0),
        duration_ms: 0,
        peak_rss_bytes: None,
        finished_at: Utc::now(),
    }
}

/// One attempt: the import's transaction, or a refusal recorded; `Some` with the result of
/// a concurrent delivery that finished the object first.
async fn attempt(
    pool: &deadpool_postgres::Pool,
    s3: &aws_sdk_s3::Client,
    object: &ImportObject,
    options: ImportOptions,
    result: &mut ImportResult,
    started: Instant,
) -> Result<Option<ImportResult>, BulkError> {
    let outcome = match known_kind(pool, object).await? {
        Err(detail) => Applied::Refused(refusal(ImportStatus::Rejected, detail)),
        Ok(_) if object.size.is_some_and(|size| size > options.max_bytes) => {
            Applied::Refused(too_large(object.size.unwrap_or(0), options.max_bytes))
        }
        Ok(kind) if in_parts(s3, object, options).await? => {
            parts::plan(pool, s3, object, &kind, options, result).await?
        }
        Ok(kind) => apply(pool, s3, object, &kind, options, result, started).await?,
    };
    match outcome {
        Applied::Planned(id) => {
            if options.driver == Driver::Inline
                && let Some(done) = parts::run_job(pool, s3, id, options).await?
            {
                *result = done;
            }
            Ok(None)
        }
        Applied::Done => Ok(None),
        Applied::AlreadyDone(done) => Ok(Some(*done)),
        Applied::Refused(refusal) => {
            result.status = refusal.status;
            result.detail = refusal.detail;
            result.limit = refusal.limit.map(str::to_owned);
            result.problems_total = refusal.problems_total;
            result.problems = refusal.problems;
            finish(result, started);
            // The import's own transaction was rolled back; record the refusal.
            let client = pool.get().await.map_err(shared::ApiError::from)?;
            record(&client, object, result).await?;
            Ok(None)
        }
    }
}

/// What `object` holds ([`ImportObject::kind`]); a conversion file's tenant must exist. The
/// inner `Err` says why the file is refused.
async fn known_kind(
    pool: &deadpool_postgres::Pool,
    object: &ImportObject,
) -> Result<Result<FileKind, String>, BulkError> {
    let kind = match object.kind() {
        Ok(kind) => kind,
        Err(reason) => return Ok(Err(format!("{reason}; nothing was imported"))),
    };
    if let Some(tenant) = kind.tenant() {
        let client = pool.get().await.map_err(shared::ApiError::from)?;
        if shared::db::tenants::get(&client, tenant).await?.is_none() {
            return Ok(Err(format!(
                "the key names tenant {:?}, which does not exist; nothing was imported",
                tenant.as_str()
            )));
        }
    }
    Ok(Ok(kind))
}

/// A failed attempt: recorded in the ledger (with the time of the next attempt, or none when
/// none is left) and in the result object; answers `err` while attempts are left, the final
/// `failed` result when not. When the ledger cannot be written either, `err` as it is.
async fn failed(
    pool: &deadpool_postgres::Pool,
    s3: &aws_sdk_s3::Client,
    object: &ImportObject,
    retry: ImportRetry,
    mut result: ImportResult,
    started: Instant,
    err: BulkError,
) -> Result<(ImportResult, Handled), BulkError> {
    let Ok(client) = pool.get().await else {
        return Err(err);
    };
    let Ok(before) = customer_imports::failed_attempts(&client, object.ledger_key()).await else {
        return Err(err);
    };
    let attempts = before + 1;
    let retry_after = retry.after(attempts);
    result.status = ImportStatus::Failed;
    result.attempts = u32::try_from(attempts).unwrap_or(u32::MAX);
    result.detail = format!(
        "the import failed (attempt {attempts} of {}): {}; nothing was imported; {}",
        retry.max_attempts,
        reason(&err),
        match retry_after {
            Some(at) => format!("it is tried again after {}", at.to_rfc3339()),
            None => "no attempt is left: mend the cause, then upload the file again or run \
                     offerctl import-customers --retry s3://…"
                .into(),
        }
    );
    finish(&mut result, started);
    let json = serde_json::to_value(&result)
        .map_err(|e| BulkError::Inconsistent(format!("result not serialisable: {e}")))?;
    if customer_imports::record_failure(&client, object.ledger_key(), attempts, retry_after, &json)
        .await
        .is_err()
    {
        return Err(err);
    }
    if let Err(write) = write_result(s3, object, &result).await {
        tracing::warn!(object = %object.location, error = %write,
            "the failed import's result object could not be written");
    }
    tracing::error!(object = %object.location, attempts, retried = retry_after.is_some(),
        error = %reason(&err), "customer import failed");
    if retry_after.is_some() {
        return Err(err);
    }
    emit_metrics(&result);
    Ok((result, Handled::Now))
}

/// An error and its causes, one after the other.
fn reason(err: &BulkError) -> String {
    let mut text = err.to_string();
    let mut cause = std::error::Error::source(err);
    while let Some(next) = cause {
        let line = next.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        cause = next.source();
    }
    text
}

/// Whether `object` is imported in parts ([`parts::splits`]): a gzip object's first bytes
/// are read to tell (one small range GET), only when its size could be split either way.
async fn in_parts(
    s3: &aws_sdk_s3::Client,
    object: &ImportObject,
    options: ImportOptions,
) -> Result<bool, BulkError> {
    let Some(size) = object.size else {
        return Ok(false);
    };
    if !parts::splits(size, true, options.part_bytes) {
        return Ok(false);
    }
    if parts::splits(size, false, options.part_bytes) {
        return Ok(true);
    }
    let reader = s3::open_range(
        s3,
        &object.location,
        Some(&object.version_id),
        Some(&object.etag),
        0,
        2,
    )
    .await?;
    let first = tokio::task::spawn_blocking(move || {
        let mut first = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(reader, 2), &mut first).map(|_| first)
    })
    .await
    .map_err(|e| BulkError::Inconsistent(e.to_string()))?
    .map_err(BulkError::Read)?;
    Ok(first.starts_with(&[0x1f, 0x8b]))
}

/// What the import's transaction did.
enum Applied {
    /// Planned in parts: the job's id.
    Planned(i64),
    /// Imported and committed.
    Done,
    /// A concurrent delivery of the same event imported it first.
    AlreadyDone(Box<ImportResult>),
    /// The file was refused; the transaction rolled back.
    Refused(Refusal),
}

/// Step 3: the import's transaction.
async fn apply(
    pool: &deadpool_postgres::Pool,
    s3: &aws_sdk_s3::Client,
    object: &ImportObject,
    kind: &FileKind,
    options: ImportOptions,
    result: &mut ImportResult,
    started: Instant,
) -> Result<Applied, BulkError> {
    let mut client = pool.get().await.map_err(shared::ApiError::from)?;
    let tx = client.transaction().await?;
    let Some(attempt) = customer_imports::claim(&tx, object.ledger_key()).await? else {
        drop(tx);
        return already_done(pool, object).await;
    };
    result.attempts = u32::try_from(attempt).unwrap_or(1);
    let reader = match open_pinned(s3, object, options.max_bytes, result).await? {
        Ok(reader) => reader,
        Err(refusal) => return Ok(Applied::Refused(refusal)),
    };
    match customer_import::import_file(&tx, kind, reader, options.limits, options.deadline).await {
        Ok(summary) => {
            result.summary = Some(summary);
            result.detail = applied_detail(kind, &summary, None);
            finish(result, started);
            record(&tx, object, result).await?;
            tx.commit().await?;
            Ok(Applied::Done)
        }
        Err(ImportError::Invalid { total, problems }) => {
            Ok(Applied::Refused(rejected(total, problems)))
        }
        Err(ImportError::TooLarge(limit)) => Ok(Applied::Refused(past_limit(limit))),
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

/// A duplicate event imported (or planned) the object meanwhile: the claim's insert waited
/// for its commit. Its recorded result.
async fn already_done(
    pool: &deadpool_postgres::Pool,
    object: &ImportObject,
) -> Result<Applied, BulkError> {
    let done = recorded(pool, object)
        .await?
        .ok_or_else(|| BulkError::Inconsistent("the import ledger row vanished".into()))?;
    Ok(Applied::AlreadyDone(Box::new(done)))
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
            result.integrity = Some(version.integrity.as_str().to_owned());
            // Said once per import, here, rather than by the SDK per response.
            match version.integrity {
                s3::Integrity::Checked => tracing::debug!(object = %object.location,
                    "its bytes are checked against its S3 checksum as they are read"),
                s3::Integrity::PerPart => tracing::info!(object = %object.location,
                    "uploaded in parts: its S3 checksums are per part and cannot be checked \
                     by a reader of the whole object; the read is pinned to its version and ETag"),
                s3::Integrity::Unavailable => tracing::info!(object = %object.location,
                    "it has no S3 checksum to check; the read is pinned to its version and ETag"),
            }
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
    object: &ImportObject,
    result: &ImportResult,
) -> Result<(), BulkError> {
    let body = serde_json::to_vec_pretty(result)
        .map_err(|e| BulkError::Inconsistent(format!("result not serialisable: {e}")))?;
    s3::put(s3, &result_location(object), body, "application/json").await?;
    Ok(())
}
