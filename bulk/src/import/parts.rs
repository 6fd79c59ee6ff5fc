//! Customer files too large for one invocation, imported in parts through the queue.
//!
//! A file is split when its object is larger than the part size (`CUSTOMER_IMPORT_PART_BYTES`,
//! [`ImportOptions::part_bytes`]), or, gzip-compressed, larger than a
//! [`GZIP_RATIO`]th of it. Steps, and what a kill (`kill -9`, a timeout) at each leaves:
//!
//! 1. **Plan** (the S3 event's invocation): one pass over the decompressed file
//!    ([`split`]), held to the import's limits, finds the header and cuts the rest at record
//!    boundaries into parts of about the part size. A plain file's parts are byte ranges of
//!    the object, read later with range GETs pinned to its version and ETag; a gzip file is
//!    decompressed once, here, into plain part objects under [`PARTS_PREFIX`] (a gzip
//!    stream cannot be entered in its middle, and decompressing from the start for every
//!    part would cost the square of the parts). One transaction then claims the ledger row
//!    (`importing`), writes the job, its parts and one queue message per part (the outbox).
//!    A kill before the commit leaves at most part objects, which the retried event
//!    overwrites; after it, the relay sends the messages.
//! 2. **Stage** (a message per part, the campaign processor): one transaction locks the
//!    part, reads the header and the part's bytes through the whole file's parser (its
//!    rules, messages and limits, lines numbered as in the file), copies its rows into the
//!    staged rows, records the part's rows and problems and, for the last part, writes the
//!    merge's message. A kill rolls it all back and the redelivered message stages the part
//!    again; a duplicate finds it staged.
//! 3. **Merge** (the merge's message): when any part had a problem, or an e-mail repeats
//!    across the file, nothing is applied: the result names the first 100 lines. Otherwise
//!    the staged rows are applied in batches of [`MERGE_BATCH_ROWS`] by line, each its own
//!    transaction that upserts them, deletes them and advances the job: a kill loses at most
//!    the batch in flight, which the redelivered message applies again, and no row is applied
//!    twice. A merge that has used its time writes the next merge's message in its last
//!    batch's transaction. The last transaction records the result in the ledger.
//!
//! Readers may see part of a file during the merge (the applied batches); the file is
//! either refused whole, or in the end applied whole.

use std::io::{Cursor, Read};
use std::time::{Duration, Instant};

use chrono::Utc;
use shared::db::customer_import::parts::{self as staged, Driver, Job, NewPart};
use shared::db::customer_import::split::{self, PartBytes};
use shared::db::customer_import::{FileKind, ImportError};
use shared::db::customer_imports;
use shared::queue::ImportJob;
use tokio::sync::mpsc;

use super::{
    Applied, ImportObject, ImportOptions, ImportResult, ImportStatus, open_pinned, past_limit,
    record, write_result,
};
use crate::s3::{self, Location, Upload};
use crate::{BulkError, peak_rss_bytes};

/// Where a gzip file's plain parts are written: `import-parts/<key>.<version>/<n>.csv`
/// (outside `imports/`, so they raise no import event), deleted when the import ends.
pub const PARTS_PREFIX: &str = "import-parts/";
/// A gzip object is split when larger than the part size divided by this (customer CSV
/// compresses about 4–10 times; a file that compresses more is still planned in parts if
/// its compressed size passes the mark, and otherwise imported whole within the limits).
pub const GZIP_RATIO: u64 = 16;
/// Staged rows applied per merge transaction.
pub const MERGE_BATCH_ROWS: i64 = 50_000;
/// How long one merge message works before it leaves the rest to the next: 60 s, half the
/// processor's Lambda timeout.
pub const MERGE_BUDGET: Duration = Duration::from_secs(60);

/// Whether `object` is imported in parts: its size passes the part size (a plain file) or a
/// [`GZIP_RATIO`]th of it (`compressed`).
#[must_use]
pub fn splits(size: u64, compressed: bool, part_bytes: u64) -> bool {
    let mark = if compressed {
        part_bytes / GZIP_RATIO
    } else {
        part_bytes
    };
    size > mark
}

/// Step 1: plans `object` in parts; `Applied::Planned` with its job, or the refusal of a
/// file that fails its header or limits (nothing written but, perhaps, part objects).
pub(super) async fn plan(
    pool: &deadpool_postgres::Pool,
    s3: &aws_sdk_s3::Client,
    object: &ImportObject,
    kind: &FileKind,
    options: ImportOptions,
    result: &mut ImportResult,
) -> Result<Applied, BulkError> {
    let started = Instant::now();
    let reader = match open_pinned(s3, object, options.max_bytes, result).await? {
        Ok(reader) => reader,
        Err(refusal) => return Ok(Applied::Refused(refusal)),
    };
    let (sender, received) = mpsc::channel::<PartBytes>(4);
    let limits = options.limits;
    let part_bytes = options.part_bytes;
    let file_kind = kind.clone();
    let splitter = tokio::task::spawn_blocking(move || {
        let mut sink = |bytes: PartBytes| sender.blocking_send(bytes).is_ok();
        split::split(reader, &file_kind, limits, part_bytes, Some(&mut sink))
    });
    let written = write_parts(s3, object, received).await;
    let split = splitter
        .await
        .map_err(|e| BulkError::Inconsistent(e.to_string()))?;
    let (file, written) = match (split, written) {
        (Ok(file), Ok(written)) => (file, written),
        // The writer failed first (S3), which stopped the pass: say why.
        (Ok(_) | Err(ImportError::Read(_)), Err(err)) => return Err(err),
        (Err(err), _) => return refused(err),
    };
    let parts: Vec<NewPart> = file
        .parts
        .iter()
        .enumerate()
        .map(|(i, bounds)| match (file.compressed, written.get(i)) {
            (true, Some((key, etag, len))) => NewPart {
                source: Some((key.clone(), etag.clone())),
                start: 0,
                end: *len,
                first_line: bounds.first_line,
            },
            // An empty last part of a gzip file has no object: nothing to read.
            (true, None) => NewPart {
                source: None,
                start: 0,
                end: 0,
                first_line: bounds.first_line,
            },
            (false, _) => NewPart {
                source: None,
                start: bounds.start,
                end: bounds.end,
                first_line: bounds.first_line,
            },
        })
        .collect();
    let mut client = pool.get().await.map_err(shared::ApiError::from)?;
    let tx = client.transaction().await?;
    let Some(attempt) = customer_imports::claim(&tx, object.ledger_key()).await? else {
        drop(tx);
        return super::already_done(pool, object).await;
    };
    let id = staged::create_job(
        &tx,
        object.ledger_key(),
        file.compressed,
        &file.header,
        file.bytes,
        &parts,
        options.driver,
    )
    .await?;
    result.attempts = u32::try_from(attempt).unwrap_or(1);
    result.status = ImportStatus::Importing;
    result.parts = Some(u32::try_from(parts.len()).unwrap_or(u32::MAX));
    result.detail = format!(
        "{} decompressed bytes planned in {} parts of about {part_bytes} bytes; they are \
         staged, then applied, and this result is replaced when the import ends",
        file.bytes,
        parts.len()
    );
    // An `importing` result's duration is the plan's.
    super::finish(result, started);
    record(&tx, object, result).await?;
    tx.commit().await?;
    Ok(Applied::Planned(id))
}

/// The refusal of a file the plan's pass found bad (as the whole file's import refuses it).
fn refused(err: ImportError) -> Result<Applied, BulkError> {
    match err {
        ImportError::Invalid { total, problems } => {
            Ok(Applied::Refused(super::rejected(total, problems)))
        }
        ImportError::TooLarge(limit) => Ok(Applied::Refused(past_limit(limit))),
        ImportError::OutOfTime { .. } => Err(BulkError::Inconsistent(
            "the plan has no deadline of its own".into(),
        )),
        ImportError::Read(err) => Err(BulkError::Read(err)),
        ImportError::Database(err) => Err(err.into()),
    }
}

/// Writes a gzip file's parts as plain objects as the pass hands them over; answers each
/// part's key, ETag and length. (A plain file's pass hands over nothing.)
async fn write_parts(
    s3: &aws_sdk_s3::Client,
    object: &ImportObject,
    mut received: mpsc::Receiver<PartBytes>,
) -> Result<Vec<(String, String, u64)>, BulkError> {
    let base = super::result_location(object)
        .key
        .replacen(super::RESULTS_PREFIX, PARTS_PREFIX, 1)
        .trim_end_matches(".json")
        .to_owned();
    let mut written = Vec::new();
    let mut current: Option<(usize, Upload<'_>, u64)> = None;
    while let Some(bytes) = received.recv().await {
        if current
            .as_ref()
            .is_none_or(|(part, _, _)| *part != bytes.part)
        {
            if let Some((_, upload, len)) = current.take() {
                let key = upload_key(&upload);
                written.push((key, upload.complete().await?.etag, len));
            }
            let location = Location {
                bucket: object.location.bucket.clone(),
                key: format!("{base}/{:05}.csv", bytes.part),
            };
            current = Some((
                bytes.part,
                Upload::start(s3, location, "text/csv").await?,
                0,
            ));
        }
        if let Some((_, upload, len)) = current.as_mut() {
            upload.write(&bytes.data).await?;
            *len += bytes.data.len() as u64;
        }
    }
    if let Some((_, upload, len)) = current.take() {
        let key = upload_key(&upload);
        written.push((key, upload.complete().await?.etag, len));
    }
    Ok(written)
}

fn upload_key(upload: &Upload<'_>) -> String {
    upload.location().key.clone()
}

/// Step 2: stages part `part` of job `id` (nothing when it is staged already or the job is
/// gone); answers whether every part is staged now.
///
/// # Errors
/// [`BulkError`]: the message is redelivered and stages the part again.
pub async fn stage(
    pool: &deadpool_postgres::Pool,
    s3: &aws_sdk_s3::Client,
    id: i64,
    part: i32,
    options: ImportOptions,
) -> Result<bool, BulkError> {
    let started = Instant::now();
    let mut client = pool.get().await.map_err(shared::ApiError::from)?;
    let tx = client.transaction().await?;
    let Some(bounds) = staged::lock_part(&tx, id, part).await? else {
        return Ok(false);
    };
    if bounds.staged {
        return Ok(false);
    }
    let Some(job) = staged::load_job(&tx, id, false).await? else {
        return Ok(false);
    };
    let bytes = match &bounds.source {
        Some((key, etag)) => {
            let location = Location {
                bucket: job.bucket.clone(),
                key: key.clone(),
            };
            s3::open_range(s3, &location, None, Some(etag), bounds.start, bounds.end).await?
        }
        None => {
            let location = Location {
                bucket: job.bucket.clone(),
                key: job.key.clone(),
            };
            let version = Some(job.version_id.as_str());
            let etag = Some(job.etag.as_str());
            s3::open_range(s3, &location, version, etag, bounds.start, bounds.end).await?
        }
    };
    // The reader counts the header's lines, then the part's: number them as in the file.
    let header_lines = job.header.iter().filter(|&&b| b == b'\n').count() as u64;
    let line_offset = bounds.first_line.saturating_sub(1 + header_lines);
    let source = Cursor::new(job.header.clone()).chain(bytes);
    let kind = kind_of(&job)?;
    let found = staged::stage_part(&tx, id, &kind, source, options.limits, line_offset)
        .await
        .map_err(import_failure)?;
    let all = staged::record_staged(&tx, id, part, &found, options.driver).await?;
    tx.commit().await?;
    tracing::info!(
        import = id,
        part,
        rows = found.rows,
        problems = found.problems_total,
        all_staged = all,
        duration_ms = started.elapsed().as_millis(),
        "customer import part staged"
    );
    Ok(all)
}

/// A staging or merge failure that is not a problem of the file.
fn import_failure(err: ImportError) -> BulkError {
    match err {
        ImportError::Read(err) => BulkError::Read(err),
        ImportError::Database(err) => err.into(),
        other => {
            BulkError::Inconsistent(format!("a part failed what the plan had passed: {other}"))
        }
    }
}

/// How a merge message ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Merged {
    /// The import ended: its result.
    Finished(Box<ImportResult>),
    /// It used its time; the next merge's message is written.
    Continued,
    /// Nothing to do: the job is gone, finished, or not every part is staged.
    Idle,
}

/// Step 3: merges job `id`: refuses the file if any part had a problem, or applies its
/// staged rows in batches, for at most `budget` (none: to the end). A merge message of a
/// finished job writes its result object again (the merge that ended it may have been
/// killed before writing it).
///
/// # Errors
/// [`BulkError`]: the message is redelivered and the merge goes on where it stopped.
pub async fn merge(
    pool: &deadpool_postgres::Pool,
    s3: &aws_sdk_s3::Client,
    id: i64,
    budget: Option<Duration>,
) -> Result<Merged, BulkError> {
    let started = Instant::now();
    let mut client = pool.get().await.map_err(shared::ApiError::from)?;
    {
        let tx = client.transaction().await?;
        let Some(job) = staged::load_job(&tx, id, true).await? else {
            return Ok(Merged::Idle);
        };
        if job.state == "finished" {
            // Ended, perhaps by a merge killed before it wrote the result object (this is
            // its redelivered message): write it again from the ledger.
            drop(tx);
            let object = object_of(&job);
            if let Some(result) = super::recorded(pool, &object).await? {
                write_result(s3, &object, &result).await?;
            }
            return Ok(Merged::Idle);
        }
        if job.parts_staged < job.parts {
            return Ok(Merged::Idle);
        }
        if job.state == "staging" {
            let (total, problems) = staged::problems(&tx, id, &kind_of(&job)?)
                .await
                .map_err(import_failure)?;
            if total > 0 {
                let refusal = super::rejected(total, problems);
                let mut result = job_result(&job, ImportStatus::Rejected);
                result.detail = refusal.detail;
                result.problems_total = refusal.problems_total;
                result.problems = refusal.problems;
                return end(s3, tx, &job, result).await;
            }
            staged::start_merge(&tx, id).await?;
        }
        tx.commit().await?;
    }
    loop {
        let tx = client.transaction().await?;
        let Some(job) = staged::load_job(&tx, id, true).await? else {
            return Ok(Merged::Idle);
        };
        if job.state == "finished" {
            return Ok(Merged::Idle);
        }
        let kind = kind_of(&job)?;
        let Some(batch) =
            staged::merge_batch(&tx, id, &kind, job.merged_through, MERGE_BATCH_ROWS).await?
        else {
            let rows = staged::rows(&tx, id).await?;
            let mut result = job_result(&job, ImportStatus::Imported);
            let summary = shared::db::customer_import::ImportSummary {
                rows,
                inserted: job.inserted,
                updated: job.updated,
                unchanged: rows.saturating_sub(job.inserted + job.updated),
                consents_changed: job.consents_changed,
            };
            result.summary = Some(summary);
            result.detail = super::applied_detail(&kind, &summary, Some(job.parts));
            return end(s3, tx, &job, result).await;
        };
        staged::advance(&tx, id, &batch).await?;
        let out_of_time = budget.is_some_and(|b| started.elapsed() >= b);
        if out_of_time {
            staged::add_merge_message(&tx, id).await?;
        }
        tx.commit().await?;
        if out_of_time {
            tracing::info!(
                import = id,
                through = batch.through,
                "customer import merge continues in the next message"
            );
            return Ok(Merged::Continued);
        }
    }
}

/// The kind of job's file, by its key (which its plan accepted).
fn kind_of(job: &Job) -> Result<FileKind, BulkError> {
    FileKind::of_key(&job.key).map_err(BulkError::Inconsistent)
}

/// The object version a job imports.
fn object_of(job: &Job) -> ImportObject {
    ImportObject {
        location: Location {
            bucket: job.bucket.clone(),
            key: job.key.clone(),
        },
        version_id: job.version_id.clone(),
        etag: job.etag.clone(),
        size: None,
    }
}

/// The result of a finished job (counts and problems filled in by the caller).
fn job_result(job: &Job, status: ImportStatus) -> ImportResult {
    let mut result = super::blank_result(&object_of(job));
    result.status = status;
    result.parts = Some(u32::try_from(job.parts).unwrap_or(u32::MAX));
    result.bytes = job.bytes;
    result
}

/// Records `result` in the ledger and ends the job in `tx`, commits, then writes the result
/// object and deletes the part objects.
async fn end(
    s3: &aws_sdk_s3::Client,
    tx: deadpool_postgres::Transaction<'_>,
    job: &Job,
    mut result: ImportResult,
) -> Result<Merged, BulkError> {
    let object = object_of(job);
    // The import's duration runs from its plan, in another invocation.
    let elapsed = (Utc::now() - job.started_at).to_std().unwrap_or_default();
    result.duration_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
    result.peak_rss_bytes = peak_rss_bytes();
    result.finished_at = Utc::now();
    result.attempts = customer_imports::attempts(&tx, object.ledger_key()).await?;
    record(&tx, &object, &result).await?;
    let part_objects = staged::part_objects(&tx, job.id).await?;
    staged::finish(&tx, job.id).await?;
    tx.commit().await?;
    write_result(s3, &object, &result).await?;
    for key in part_objects {
        let location = Location {
            bucket: job.bucket.clone(),
            key,
        };
        if let Err(err) = s3::delete(s3, &location).await {
            tracing::warn!(object = %location, error = %err, "a part object could not be deleted; the bucket's lifecycle rule removes it");
        }
    }
    super::emit_metrics(&result);
    tracing::info!(object = %object.location, status = result.status.as_str(),
        parts = job.parts, rows = result.summary.map(|s| s.rows),
        problems = result.problems_total, duration_ms = result.duration_ms,
        "customer import in parts");
    Ok(Merged::Finished(Box::new(result)))
}

/// Runs every step of job `id` left to do in this process, in order (`offerctl
/// import-customers s3://…`, and a planned import resumed by hand): the parts not staged,
/// then the merge to its end. Answers the import's result.
///
/// # Errors
/// [`BulkError`] from the first step that failed (run it again to go on).
pub async fn run_job(
    pool: &deadpool_postgres::Pool,
    s3: &aws_sdk_s3::Client,
    id: i64,
    options: ImportOptions,
) -> Result<Option<ImportResult>, BulkError> {
    let unstaged = {
        let client = pool.get().await.map_err(shared::ApiError::from)?;
        staged::unstaged(&client, id).await?
    };
    for part in unstaged {
        stage(pool, s3, id, part, options).await?;
    }
    match merge(pool, s3, id, None).await? {
        Merged::Finished(result) => Ok(Some(*result)),
        Merged::Continued | Merged::Idle => Ok(None),
    }
}

/// Handles one queue message of a split import: stages its part, or merges for at most
/// [`MERGE_BUDGET`]. The messages it leads to (the merge's, a continued merge's) are in the
/// outbox; the caller sends them.
///
/// # Errors
/// [`BulkError`]: report the message failed so that the queue redelivers it.
pub async fn handle(
    pool: &deadpool_postgres::Pool,
    s3: &aws_sdk_s3::Client,
    job: ImportJob,
    options: ImportOptions,
) -> Result<(), BulkError> {
    let options = ImportOptions {
        driver: Driver::Queue,
        ..options
    };
    match job.part {
        Some(part) => {
            stage(pool, s3, job.import_id, part, options).await?;
        }
        None => {
            merge(pool, s3, job.import_id, Some(MERGE_BUDGET)).await?;
        }
    }
    Ok(())
}
