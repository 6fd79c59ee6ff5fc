//! What an import says when it ends: its status, its result object (and the ledger's copy
//! of it), the refusals of a file and the metrics.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::db::customer_import::{FileKind, ImportProblem, ImportSummary, LimitExceeded};
use shared::metrics::{self, Metric};

use super::ImportObject;
use crate::peak_rss_bytes;
use crate::s3::Location;

/// Where result objects go: `results/<key>.<version>.json` ([`result_location`]).
pub const RESULTS_PREFIX: &str = "results/";

/// How an import ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportStatus {
    /// The file is being imported in parts (planned; staged and merged by queue messages);
    /// the result object is replaced when they end.
    Importing,
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
    /// The import failed for a reason not in the file (the database or S3 failed, or
    /// PostgreSQL refused a value); nothing was applied. Retried while `attempts` are left.
    Failed,
}

impl ImportStatus {
    /// The ledger's name for it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Importing => "importing",
            Self::Imported => "imported",
            Self::Rejected => "rejected",
            Self::TooLarge => "too_large",
            Self::TimedOut => "timed_out",
            Self::Superseded => "superseded",
            Self::Failed => "failed",
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

/// The result object (`results/<key>.<version>.json`) and the ledger's copy of it:
///
/// ```json
/// {"kind": "customers", "bucket": "b", "key": "imports/customers.csv.gz",
///  "version_id": "…", "etag": "…",
///  "status": "imported", "detail": "10127 rows: 10127 inserted, 0 updated, 0 unchanged",
///  "summary": {"rows": 10127, "inserted": 10127, "updated": 0, "unchanged": 0,
///              "consents_changed": 0},
///  "problems_total": 0, "problems": [], "bytes": 1234567, "duration_ms": 2345,
///  "peak_rss_bytes": 31457280, "finished_at": "2026-12-03T14:00:00Z"}
/// ```
///
/// A conversion file's (`conversions/<tenant>/…`) has `"kind": "conversions"` and its
/// `"tenant"`; its summary's `inserted` counts the conversions recorded and `unchanged` the
/// rows whose `event_id` was recorded before or came on an earlier line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportResult {
    /// What the file holds, by its key: `customers` (`imports/…`), `conversions`
    /// (`conversions/<tenant>/…`), or `unknown` (a key under neither: refused).
    #[serde(default = "customers")]
    pub kind: String,
    /// A conversion file's tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
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
    /// For `too_large`, the limit passed: `object_bytes` (`CUSTOMER_IMPORT_MAX_BYTES`),
    /// `file_bytes` (`CUSTOMER_IMPORT_MAX_DECOMPRESSED_BYTES`), `header_bytes`,
    /// `header_columns`, `record_bytes` or `field_bytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
    /// How the object's bytes were checked as read ([`crate::s3::Integrity`]): `checked` against
    /// its whole-object S3 checksum, `per_part` (a multipart upload's checksums, which a
    /// reader of the whole object cannot check) or `unavailable`; none when it was not read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integrity: Option<String>,
    /// Attempts so far, this one included (more than 1 only after failed ones).
    #[serde(default = "first_attempt")]
    pub attempts: u32,
    /// For a file imported in parts, how many.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts: Option<u32>,
    /// The counts, when imported.
    pub summary: Option<ImportSummary>,
    /// How many problems the file has (all of them, listed or not).
    pub problems_total: u64,
    /// The first problems, by line (at most
    /// [`shared::db::customer_import::MAX_REPORTED_IMPORT_ERRORS`]).
    pub problems: Vec<ResultProblem>,
    /// The object's size in bytes.
    pub bytes: u64,
    /// How long the import took, in milliseconds (from its plan, for a file in parts; the
    /// plan's own, for an `importing` result).
    pub duration_ms: u64,
    /// The importing process's peak resident memory so far, in bytes (Linux `VmHWM`).
    pub peak_rss_bytes: Option<u64>,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
}

fn customers() -> String {
    "customers".into()
}

const fn first_attempt() -> u32 {
    1
}

/// The result object's place for an object version: `results/<key>.<version>.json` in the
/// same bucket, where `<version>` is the S3 version id, or the ETag in an unversioned bucket
/// (where a new upload with other bytes has another ETag): each version's result has a key
/// of its own, so that no other version's import can overwrite it.
pub fn result_location(object: &ImportObject) -> Location {
    let version = if object.version_id.is_empty() {
        &object.etag
    } else {
        &object.version_id
    };
    Location {
        bucket: object.location.bucket.clone(),
        key: format!("{RESULTS_PREFIX}{}.{version}.json", object.location.key),
    }
}

/// Why a file was refused, as its result says it.
pub(super) struct Refusal {
    pub(super) status: ImportStatus,
    pub(super) detail: String,
    pub(super) limit: Option<&'static str>,
    pub(super) problems_total: u64,
    pub(super) problems: Vec<ResultProblem>,
}

pub(super) fn refusal(status: ImportStatus, detail: String) -> Refusal {
    Refusal {
        status,
        detail,
        limit: None,
        problems_total: 0,
        problems: Vec::new(),
    }
}

/// The refusal of a file with bad lines: `total` of them, the first `problems`.
pub(super) fn rejected(total: u64, problems: Vec<ImportProblem>) -> Refusal {
    let detail = format!(
        "{total} problem(s) in the file (first {} listed); nothing was imported",
        problems.len()
    );
    Refusal {
        problems_total: total,
        problems: problems.into_iter().map(ResultProblem::from).collect(),
        ..refusal(ImportStatus::Rejected, detail)
    }
}

/// The detail of an applied file (`parts`: of a file imported in parts).
pub(super) fn applied_detail(
    kind: &FileKind,
    summary: &ImportSummary,
    parts: Option<i32>,
) -> String {
    if let FileKind::Conversions { .. } = kind {
        return format!(
            "{} rows{}: {} conversions recorded, {} unchanged (event_id already recorded, or \
             on an earlier line)",
            summary.rows,
            parts.map(|n| format!(" in {n} parts")).unwrap_or_default(),
            summary.inserted,
            summary.unchanged
        );
    }
    format!(
        "{} rows{}: {} inserted, {} updated, {} unchanged; {} consents changed",
        summary.rows,
        parts.map(|n| format!(" in {n} parts")).unwrap_or_default(),
        summary.inserted,
        summary.updated,
        summary.unchanged,
        summary.consents_changed
    )
}

/// The object name for the whole object's limit in results (`limit`).
pub(super) const OBJECT_BYTES_LIMIT: &str = "object_bytes";

/// The refusal of an object of `size` bytes over the limit `max_bytes`.
pub(super) fn too_large(size: u64, max_bytes: u64) -> Refusal {
    Refusal {
        limit: Some(OBJECT_BYTES_LIMIT),
        ..refusal(
            ImportStatus::TooLarge,
            format!(
                "the object has {size} bytes, more than this import's limit of {max_bytes} \
                 (CUSTOMER_IMPORT_MAX_BYTES); split the file"
            ),
        )
    }
}

/// The refusal of a file that passed one of its decompressed limits.
pub(super) fn past_limit(limit: LimitExceeded) -> Refusal {
    Refusal {
        limit: Some(limit.limit.as_str()),
        ..refusal(
            ImportStatus::TooLarge,
            format!("{}; nothing was imported", limit.describe()),
        )
    }
}

pub(super) fn finish(result: &mut ImportResult, started: Instant) {
    result.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    result.peak_rss_bytes = peak_rss_bytes();
    result.finished_at = Utc::now();
}

pub(super) fn emit_metrics(result: &ImportResult) {
    let seconds = Duration::from_millis(result.duration_ms).as_secs_f64();
    let metrics = if result.status == ImportStatus::Failed {
        vec![Metric::count(metrics::IMPORTS_FAILED, 1)]
    } else if result.status == ImportStatus::Imported {
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
