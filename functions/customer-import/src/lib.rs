//! `customer-import`: S3 `ObjectCreated` events under the data bucket's `imports/` prefix
//! (`template.yaml`) import the object as a customer file through [`bulk::import`]; those
//! under `conversions/<tenant>/` as that tenant's conversion file, by the same path.
//!
//! Each record of the event is one object version (bucket, URL-encoded key, version id,
//! ETag, size). They are imported in turn; the invocation answers their results. A
//! refused file is a result (its result object lists the bad lines); a database or S3
//! failure is recorded as a failed attempt and fails the invocation, so Lambda's retries of
//! the asynchronous S3 event try again (the import ledger makes a repeat of a finished
//! object change nothing); the third failed attempt is a final `failed` result.

use std::time::{Duration, Instant};

use aws_lambda_events::event::s3::S3Event;
use bulk::BulkError;
use bulk::import::{ImportObject, ImportOptions, ImportStatus, import_object};
use bulk::s3::Location;
use serde::Serialize;

/// Time kept back from the Lambda deadline to roll back and write the result object: 30 s,
/// or a tenth of the time left when that is shorter (a short test timeout).
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(30);

/// What the function holds across invocations.
pub struct Importer {
    /// The platform pool (customers are shared by every tenant).
    pub pool: deadpool_postgres::Pool,
    /// The S3 client.
    pub s3: aws_sdk_s3::Client,
    /// The import's limits (`CUSTOMER_IMPORT_MAX_BYTES`,
    /// `CUSTOMER_IMPORT_MAX_DECOMPRESSED_BYTES`); each invocation sets its own deadline.
    pub options: ImportOptions,
}

/// One record's outcome: `{"object": "s3://b/imports/x.csv", "status": "imported",
/// "duplicate": false, "result": "s3://b/results/imports/x.csv.<version>.json"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordAnswer {
    /// The object.
    pub object: String,
    /// How its import ended.
    pub status: ImportStatus,
    /// True when the ledger already had this object version (nothing changed).
    pub duplicate: bool,
    /// Where its result object is.
    pub result: String,
}

/// The objects of an S3 event (records that are not `ObjectCreated:*` are skipped); keys are
/// URL-decoded as S3 event notifications encode them (`+` for a space).
pub fn objects(event: &S3Event) -> Vec<ImportObject> {
    event
        .records
        .iter()
        .filter(|r| {
            r.event_name
                .as_deref()
                .is_some_and(|name| name.starts_with("ObjectCreated:"))
        })
        .filter_map(|r| {
            let bucket = r.s3.bucket.name.clone()?;
            let key = r.s3.object.key.as_deref()?.replace('+', " ");
            let key = percent_encoding::percent_decode_str(&key)
                .decode_utf8()
                .ok()?
                .into_owned();
            Some(ImportObject {
                location: Location { bucket, key },
                version_id: r.s3.object.version_id.clone().unwrap_or_default(),
                etag: r
                    .s3
                    .object
                    .e_tag
                    .clone()
                    .unwrap_or_default()
                    .trim_matches('"')
                    .to_owned(),
                size: r.s3.object.size.and_then(|s| u64::try_from(s).ok()),
            })
        })
        .collect()
}

impl Importer {
    /// Imports every object of `event`; `deadline` is the invocation's (the import stops
    /// [`DEADLINE_MARGIN`] before it, or a tenth of the time left when shorter).
    ///
    /// # Errors
    /// [`BulkError`] from the first object whose import failed and will be retried, after
    /// every other object of the event was imported (the retried event finds those in the
    /// ledger and changes nothing).
    pub async fn handle(
        &self,
        event: &S3Event,
        deadline: Option<Instant>,
    ) -> Result<Vec<RecordAnswer>, BulkError> {
        let options = ImportOptions {
            deadline: deadline.map(|d| {
                let margin = DEADLINE_MARGIN.min(d.saturating_duration_since(Instant::now()) / 10);
                d.checked_sub(margin).unwrap_or(d)
            }),
            ..self.options
        };
        let mut answers = Vec::new();
        let mut retry = None;
        for object in objects(event) {
            match import_object(&self.pool, &self.s3, &object, options).await {
                Ok((result, handled)) => answers.push(RecordAnswer {
                    object: object.location.to_string(),
                    status: result.status,
                    duplicate: handled == bulk::import::Handled::Before,
                    result: bulk::import::result_location(&object).to_string(),
                }),
                Err(err) => {
                    retry.get_or_insert(err);
                }
            }
        }
        retry.map_or(Ok(answers), Err)
    }
}
