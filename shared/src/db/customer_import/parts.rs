//! The statements of a split file's import (migration V024): its job, its parts, its staged
//! rows (`customer_import_rows`) and its messages (`import_outbox`). `bulk::import::parts`
//! runs them; each function says which transaction it belongs in.
//!
//! - [`create_job`] writes the job, its parts and (for the queue) one message per part, in
//!   the planning transaction.
//! - [`stage_part`] validates one part with the whole file's parser and copies its rows,
//!   good and bad (a bad row's line and e-mail alone), into the staged rows;
//!   [`record_staged`] marks the part and answers whether it was the last.
//! - [`problems`] gathers every part's problems and the e-mails repeated across parts.
//! - [`merge_batch`] applies the next batch of staged rows by line and deletes them, in the
//!   caller's transaction, which also advances the job ([`advance`]): a batch is applied
//!   once, whatever kills or redeliveries happen around it.

use std::io::Read;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc;

use super::super::customer_imports::ObjectVersion;
use super::super::{CachedStatements, GenericClient};
use super::conversions::{self, Staged};
use super::kind::FileKind;
use super::reader::{Numbering, parse};
use super::{
    CONSENT_COLUMNS, CONSENTS_SQL, COPY_CHANNEL_SLOTS, ImportError, ImportLimits, ImportProblem,
    MAX_REPORTED_IMPORT_ERRORS, UPSERT_SQL, duplicate_problems, forward, unknown_references,
};
use crate::db::customers::RECORD_COLUMNS;
use crate::error::ApiError;
use crate::queue::ImportJob;

/// A part as planned: where its bytes are and the file line it begins on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPart {
    /// The object holding its bytes when not the file itself (a gzip file's plain part),
    /// with that object's ETag.
    pub source: Option<(String, String)>,
    /// First byte in its source, inclusive.
    pub start: u64,
    /// Last byte, exclusive.
    pub end: u64,
    /// File line of its first byte.
    pub first_line: u64,
}

/// How a job is to be driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// Through the queue: one message per part now, the merge's when the last is staged.
    Queue,
    /// By the caller, in this process (`offerctl import-customers s3://…`): no messages.
    Inline,
}

/// Writes the job of `object` with its `parts` (replacing an earlier job of the same
/// object version, from a failed attempt) and, for [`Driver::Queue`], a message per part;
/// answers the job's id. Run it in the transaction that claims the ledger row.
///
/// # Errors
/// Database failures.
pub async fn create_job(
    tx: &impl GenericClient,
    object: ObjectVersion<'_>,
    compressed: bool,
    header: &[u8],
    bytes: u64,
    parts: &[NewPart],
    driver: Driver,
) -> Result<i64, ApiError> {
    tx.execute_cached(
        "delete from customer_import_jobs
         where bucket = $1 and key = $2 and version_id = $3 and etag = $4",
        &[
            &object.bucket,
            &object.key,
            &object.version_id,
            &object.etag,
        ],
    )
    .await?;
    let count = i32::try_from(parts.len()).map_err(ApiError::internal)?;
    let id: i64 = tx
        .query_one_cached(
            "insert into customer_import_jobs
                 (bucket, key, version_id, etag, compressed, header, bytes, parts)
             values ($1, $2, $3, $4, $5, $6, $7, $8) returning id",
            &[
                &object.bucket,
                &object.key,
                &object.version_id,
                &object.etag,
                &compressed,
                &header,
                &signed(bytes)?,
                &count,
            ],
        )
        .await?
        .get(0);
    let keys: Vec<Option<&str>> = parts
        .iter()
        .map(|p| p.source.as_ref().map(|(key, _)| key.as_str()))
        .collect();
    let etags: Vec<Option<&str>> = parts
        .iter()
        .map(|p| p.source.as_ref().map(|(_, etag)| etag.as_str()))
        .collect();
    let starts = parts
        .iter()
        .map(|p| signed(p.start))
        .collect::<Result<Vec<_>, _>>()?;
    let ends = parts
        .iter()
        .map(|p| signed(p.end))
        .collect::<Result<Vec<_>, _>>()?;
    let lines = parts
        .iter()
        .map(|p| signed(p.first_line))
        .collect::<Result<Vec<_>, _>>()?;
    tx.execute_cached(
        "insert into customer_import_parts
             (import_id, part, source_key, source_etag, start_byte, end_byte, first_line)
         select $1, n - 1, k, e, s, t, l
         from unnest($2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[])
              with ordinality as p(k, e, s, t, l, n)",
        &[&id, &keys, &etags, &starts, &ends, &lines],
    )
    .await?;
    if driver == Driver::Queue {
        tx.execute_cached(
            "insert into import_outbox (import_id, part)
             select $1, part from customer_import_parts where import_id = $1 order by part",
            &[&id],
        )
        .await?;
    }
    Ok(id)
}

fn signed(n: u64) -> Result<i64, ApiError> {
    i64::try_from(n).map_err(ApiError::internal)
}

/// A job as its steps read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Its id.
    pub id: i64,
    /// The object version's bucket, key, version id and ETag.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// Version id.
    pub version_id: String,
    /// ETag.
    pub etag: String,
    /// The header line's bytes.
    pub header: Vec<u8>,
    /// Decompressed bytes of the file.
    pub bytes: u64,
    /// Parts planned.
    pub parts: i32,
    /// Parts staged.
    pub parts_staged: i32,
    /// `staging`, `merging` or `finished`.
    pub state: String,
    /// Rows up to this line are applied.
    pub merged_through: i64,
    /// Counts so far.
    pub inserted: u64,
    /// Counts so far.
    pub updated: u64,
    /// Counts so far.
    pub consents_changed: u64,
    /// When it was planned.
    pub started_at: chrono::DateTime<chrono::Utc>,
}

/// The columns [`job`] reads, in its order.
macro_rules! job_columns {
    () => {
        "id, bucket, key, version_id, etag, header, bytes, parts, parts_staged, state, \
         merged_through, inserted, updated, consents_changed, started_at"
    };
}

fn job(row: &tokio_postgres::Row) -> Job {
    let unsigned = |i: usize| u64::try_from(row.get::<_, i64>(i)).unwrap_or(0);
    Job {
        id: row.get(0),
        bucket: row.get(1),
        key: row.get(2),
        version_id: row.get(3),
        etag: row.get(4),
        header: row.get(5),
        bytes: unsigned(6),
        parts: row.get(7),
        parts_staged: row.get(8),
        state: row.get(9),
        merged_through: row.get(10),
        inserted: unsigned(11),
        updated: unsigned(12),
        consents_changed: unsigned(13),
        started_at: row.get(14),
    }
}

/// The job `id`, locked for the caller's transaction when `lock` (a concurrent step of the
/// same job waits).
///
/// # Errors
/// Database failures.
pub async fn load_job(
    client: &impl GenericClient,
    id: i64,
    lock: bool,
) -> Result<Option<Job>, ApiError> {
    let sql = if lock {
        concat!(
            "select ",
            job_columns!(),
            " from customer_import_jobs where id = $1 for update"
        )
    } else {
        concat!(
            "select ",
            job_columns!(),
            " from customer_import_jobs where id = $1"
        )
    };
    Ok(client.query_opt_cached(sql, &[&id]).await?.map(|r| job(&r)))
}

/// The job of an object version, if it has one.
///
/// # Errors
/// Database failures.
pub async fn job_of(
    client: &impl GenericClient,
    object: ObjectVersion<'_>,
) -> Result<Option<i64>, ApiError> {
    Ok(client
        .query_opt_cached(
            "select id from customer_import_jobs
             where bucket = $1 and key = $2 and version_id = $3 and etag = $4",
            &[
                &object.bucket,
                &object.key,
                &object.version_id,
                &object.etag,
            ],
        )
        .await?
        .map(|r| r.get(0)))
}

/// One part as its staging reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// Its index.
    pub part: i32,
    /// Where its bytes are, when not in the file itself: key and ETag.
    pub source: Option<(String, String)>,
    /// First byte, inclusive.
    pub start: u64,
    /// Last byte, exclusive.
    pub end: u64,
    /// File line of its first byte.
    pub first_line: u64,
    /// Whether it is staged.
    pub staged: bool,
}

/// Part `part` of job `id`, locked for the caller's transaction (a duplicate delivery of
/// the same part waits, then finds it staged).
///
/// # Errors
/// Database failures.
pub async fn lock_part(
    tx: &impl GenericClient,
    id: i64,
    part: i32,
) -> Result<Option<Part>, ApiError> {
    Ok(tx
        .query_opt_cached(
            "select part, source_key, source_etag, start_byte, end_byte, first_line,
                    staged_at is not null
             from customer_import_parts where import_id = $1 and part = $2 for update",
            &[&id, &part],
        )
        .await?
        .map(|row| {
            let unsigned = |i: usize| u64::try_from(row.get::<_, i64>(i)).unwrap_or(0);
            Part {
                part: row.get(0),
                source: row
                    .get::<_, Option<String>>(1)
                    .map(|key| (key, row.get::<_, Option<String>>(2).unwrap_or_default())),
                start: unsigned(3),
                end: unsigned(4),
                first_line: unsigned(5),
                staged: row.get(6),
            }
        }))
}

/// The parts of job `id` not staged yet, in order.
///
/// # Errors
/// Database failures.
pub async fn unstaged(client: &impl GenericClient, id: i64) -> Result<Vec<i32>, ApiError> {
    Ok(client
        .query_cached(
            "select part from customer_import_parts
             where import_id = $1 and staged_at is null order by part",
            &[&id],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// What staging a part found: its data rows and its problems (all counted, the first
/// [`MAX_REPORTED_IMPORT_ERRORS`] by line kept).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagedPart {
    /// Data rows in the part.
    pub rows: u64,
    /// Problems in the part.
    pub problems_total: u64,
    /// The first of them, by line.
    pub problems: Vec<ImportProblem>,
}

/// Reads one part from `source` (the header's bytes, then the part's), checks it with the
/// whole file's rules and messages (a file of `kind`), its lines numbered from
/// `line_offset` + 1 on, and copies its rows into the staged rows of import `id`
/// (`customer_import_rows`, or a conversion file's `conversion_import_rows`), in the
/// caller's transaction.
///
/// # Errors
/// [`ImportError::TooLarge`], [`ImportError::Read`] or database failures; the part's bad
/// rows are in the answer, not errors.
pub async fn stage_part<R: Read + Send + 'static>(
    tx: &deadpool_postgres::Transaction<'_>,
    id: i64,
    kind: &FileKind,
    source: R,
    limits: ImportLimits,
    line_offset: u64,
) -> Result<StagedPart, ImportError> {
    let copy = match kind {
        FileKind::Customers => format!(
            "copy customer_import_rows (import_id, line, {}, {}) from stdin (format csv)",
            RECORD_COLUMNS.join(", "),
            CONSENT_COLUMNS.map(|(column, _)| column).join(", ")
        ),
        FileKind::Conversions { .. } => conversions::PART_COPY_SQL.to_owned(),
    };
    let sink = tx.copy_in(&copy).await?;
    let kind = kind.clone();
    futures_util::pin_mut!(sink);
    let (chunks, received) = mpsc::channel::<Bytes>(COPY_CHANNEL_SLOTS);
    let prefix = id.to_string();
    let parser = tokio::task::spawn_blocking(move || {
        let numbering = Numbering {
            line_offset,
            prefix: Some(&prefix),
        };
        parse(source, limits, &kind, numbering, &chunks)
    });
    forward(received, sink.as_mut(), None).await?;
    let parsed = parser.await.map_err(ApiError::internal)??;
    sink.finish().await?;
    Ok(StagedPart {
        rows: parsed.rows,
        problems_total: parsed.total_problems,
        problems: parsed.problems,
    })
}

/// Marks part `part` of job `id` staged with what staging found; answers whether every
/// part is staged now (then, for [`Driver::Queue`], the merge's message is written). Run it
/// in the part's staging transaction.
///
/// # Errors
/// Database failures.
pub async fn record_staged(
    tx: &impl GenericClient,
    id: i64,
    part: i32,
    staged: &StagedPart,
    driver: Driver,
) -> Result<bool, ApiError> {
    let problems = serde_json::to_value(&staged.problems).map_err(ApiError::internal)?;
    tx.execute_cached(
        "update customer_import_parts
         set staged_at = now(), rows = $3, problems_total = $4, problems = $5
         where import_id = $1 and part = $2",
        &[
            &id,
            &part,
            &signed(staged.rows)?,
            &signed(staged.problems_total)?,
            &problems,
        ],
    )
    .await?;
    let all: bool = tx
        .query_one_cached(
            "update customer_import_jobs set parts_staged = parts_staged + 1
             where id = $1 returning parts_staged = parts",
            &[&id],
        )
        .await?
        .get(0);
    if all && driver == Driver::Queue {
        add_merge_message(tx, id).await?;
    }
    Ok(all)
}

/// Writes a message to merge job `id` (the last part's, or a merge that ran out of its
/// time and leaves the rest to the next).
///
/// # Errors
/// Database failures.
pub async fn add_merge_message(tx: &impl GenericClient, id: i64) -> Result<(), ApiError> {
    tx.execute_cached(
        "insert into import_outbox (import_id, part) values ($1, null)",
        &[&id],
    )
    .await?;
    Ok(())
}

/// The data rows of every part of job `id` (the file's rows, once every part is staged).
///
/// # Errors
/// Database failures.
pub async fn rows(tx: &impl GenericClient, id: i64) -> Result<u64, ApiError> {
    let row = tx
        .query_one_cached(
            "select coalesce(sum(rows), 0)::bigint from customer_import_parts where import_id = $1",
            &[&id],
        )
        .await?;
    Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
}

/// Every staged part's problems, with those only the whole file shows (a customer file's
/// e-mails repeated across parts; a conversion file's unknown customers and offers):
/// `(problems in all, the first MAX_REPORTED_IMPORT_ERRORS by line)`.
///
/// # Errors
/// Database failures.
pub async fn problems(
    tx: &impl GenericClient,
    id: i64,
    kind: &FileKind,
) -> Result<(u64, Vec<ImportProblem>), ImportError> {
    let row = tx
        .query_one_cached(
            "select coalesce(sum(problems_total), 0)::bigint,
                    coalesce((select jsonb_agg(p)
                              from customer_import_parts q,
                                   jsonb_array_elements(q.problems) p
                              where q.import_id = $1), '[]')
             from customer_import_parts where import_id = $1",
            &[&id],
        )
        .await?;
    let total = u64::try_from(row.get::<_, i64>(0)).unwrap_or(0);
    let mut listed: Vec<ImportProblem> =
        serde_json::from_value(row.get::<_, Value>(1)).map_err(ApiError::internal)?;
    let (repeats, duplicates) = match kind {
        FileKind::Customers => duplicate_problems(tx, Some(id)).await?,
        FileKind::Conversions { tenant } => {
            unknown_references(tx, Staged::Whole, &[&id, &tenant.as_str()]).await?
        }
    };
    listed.extend(duplicates);
    listed.sort_by_key(|p| p.line);
    listed.truncate(MAX_REPORTED_IMPORT_ERRORS);
    Ok((total + repeats, listed))
}

/// A conversion file's batch insert ([`conversions::insert_sql`] over one batch).
static CONVERSIONS_INSERT_SQL: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| conversions::insert_sql(Staged::Batch));

/// One batch of the merge as applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MergedBatch {
    /// The last line applied.
    pub through: i64,
    /// Rows applied.
    pub rows: u64,
    /// New customers.
    pub inserted: u64,
    /// Customers whose fields changed.
    pub updated: u64,
    /// Consents changed.
    pub consents_changed: u64,
}

/// Applies the next `max_rows` staged rows of job `id` after line `after` and deletes them,
/// in the caller's transaction; `None` when none is left. A customer file's batch takes the
/// upsert and the consents of a whole file's import, a conversion file's the insert (in the
/// tenant's scope, set here for the rest of the transaction), both in file order.
///
/// # Errors
/// Database failures.
pub async fn merge_batch(
    tx: &deadpool_postgres::Transaction<'_>,
    id: i64,
    kind: &FileKind,
    after: i64,
    max_rows: i64,
) -> Result<Option<MergedBatch>, ApiError> {
    let table = match kind {
        FileKind::Customers => "customer_import_rows",
        FileKind::Conversions { .. } => "conversion_import_rows",
    };
    let bounds = tx
        .query_one_cached(
            &format!(
                "select max(line), count(*) from (
                     select line from {table}
                     where import_id = $1 and line > $2 order by line limit $3) b"
            ),
            &[&id, &after, &max_rows],
        )
        .await?;
    let Some(through) = bounds.get::<_, Option<i64>>(0) else {
        return Ok(None);
    };
    let unsigned = |n: i64| u64::try_from(n).unwrap_or(0);
    let rows = unsigned(bounds.get(1));
    if let FileKind::Conversions { tenant } = kind {
        crate::db::tx::set_tenant(tx, tenant).await?;
        let recorded = tx
            .query_one_cached(
                CONVERSIONS_INSERT_SQL.as_str(),
                &[&id, &after, &through, &tenant.as_str()],
            )
            .await?;
        tx.execute_cached(
            "delete from conversion_import_rows
             where import_id = $1 and line > $2 and line <= $3",
            &[&id, &after, &through],
        )
        .await?;
        return Ok(Some(MergedBatch {
            through,
            rows,
            inserted: unsigned(recorded.get(0)),
            updated: 0,
            consents_changed: 0,
        }));
    }
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [&id, &after, &through];
    let upserted = tx.query_one_cached(UPSERT_SQL[1].as_str(), &params).await?;
    let consents = tx
        .query_one_cached(CONSENTS_SQL[1].as_str(), &params)
        .await?;
    tx.execute_cached(
        "delete from customer_import_rows where import_id = $1 and line > $2 and line <= $3",
        &params,
    )
    .await?;
    Ok(Some(MergedBatch {
        through,
        rows,
        inserted: unsigned(upserted.get(0)),
        updated: unsigned(upserted.get(1)),
        consents_changed: unsigned(consents.get(0)),
    }))
}

/// Records a merged batch on job `id` (state `merging`), in the batch's transaction.
///
/// # Errors
/// Database failures.
pub async fn advance(
    tx: &impl GenericClient,
    id: i64,
    batch: &MergedBatch,
) -> Result<(), ApiError> {
    tx.execute_cached(
        "update customer_import_jobs
         set state = 'merging', merged_through = $2, inserted = inserted + $3,
             updated = updated + $4, consents_changed = consents_changed + $5
         where id = $1",
        &[
            &id,
            &batch.through,
            &signed(batch.inserted)?,
            &signed(batch.updated)?,
            &signed(batch.consents_changed)?,
        ],
    )
    .await?;
    Ok(())
}

/// Marks job `id` `merging` (every part staged without a problem).
///
/// # Errors
/// Database failures.
pub async fn start_merge(tx: &impl GenericClient, id: i64) -> Result<(), ApiError> {
    tx.execute_cached(
        "update customer_import_jobs set state = 'merging' where id = $1 and state = 'staging'",
        &[&id],
    )
    .await?;
    Ok(())
}

/// Marks job `id` `finished` and removes what is left of its staged rows (a refused file's);
/// its parts stay, as the job's record.
///
/// # Errors
/// Database failures.
pub async fn finish(tx: &impl GenericClient, id: i64) -> Result<(), ApiError> {
    tx.execute_cached(
        "update customer_import_jobs set state = 'finished' where id = $1",
        &[&id],
    )
    .await?;
    tx.execute_cached(
        "delete from customer_import_rows where import_id = $1",
        &[&id],
    )
    .await?;
    tx.execute_cached(
        "delete from conversion_import_rows where import_id = $1",
        &[&id],
    )
    .await?;
    Ok(())
}

/// The keys of the plain part objects job `id` wrote (a gzip file's), to delete once done.
///
/// # Errors
/// Database failures.
pub async fn part_objects(client: &impl GenericClient, id: i64) -> Result<Vec<String>, ApiError> {
    Ok(client
        .query_cached(
            "select source_key from customer_import_parts
             where import_id = $1 and source_key is not null order by part",
            &[&id],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// Takes up to `limit` unsent import messages, oldest first (`SKIP LOCKED`), deleting them
/// in the caller's transaction: commit only once the queue took them.
///
/// # Errors
/// Database failures.
pub async fn take_messages(
    client: &impl GenericClient,
    limit: i64,
) -> Result<Vec<ImportJob>, ApiError> {
    Ok(client
        .query_cached(
            "with taken as (
                 delete from import_outbox where id in (
                     select id from import_outbox order by id limit $1 for update skip locked)
                 returning id, import_id, part)
             select import_id, part from taken order by id",
            &[&limit],
        )
        .await?
        .iter()
        .map(|r| ImportJob {
            import_id: r.get(0),
            part: r.get(1),
        })
        .collect())
}
