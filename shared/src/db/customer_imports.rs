//! The import ledger (`customer_imports`, migrations V017 and V021): one row per object
//! version (bucket, key, version id, ETag) the S3 import has seen, holding its status, its
//! result JSON and, for a `failed` import, how many attempts it took and when it may be
//! tried again (`retry_after`; none once the attempts are spent). The platform's customer
//! records span tenants, so these are platform statements.

use serde_json::Value;

use super::{CachedStatements, GenericClient};
use crate::error::ApiError;

/// One object version: the ledger's key.
#[derive(Debug, Clone, Copy)]
pub struct ObjectVersion<'a> {
    /// The bucket.
    pub bucket: &'a str,
    /// The key.
    pub key: &'a str,
    /// The S3 version id (empty for an unversioned bucket).
    pub version_id: &'a str,
    /// The ETag.
    pub etag: &'a str,
}

/// Claims `object` for an import in the caller's transaction (a row with an empty result,
/// or the row of a failed attempt that may be retried): the number of this attempt, or
/// `None` when another import holds or finished it (a concurrent duplicate waits on the
/// row until that import's transaction ends, then finds it).
///
/// # Errors
/// Database failures.
pub async fn claim(
    client: &impl GenericClient,
    object: ObjectVersion<'_>,
) -> Result<Option<i32>, ApiError> {
    Ok(client
        .query_opt_cached(
            "insert into customer_imports (bucket, key, version_id, etag, status, result)
             values ($1, $2, $3, $4, 'imported', '{}')
             on conflict (bucket, key, version_id, etag) do update
             set status = 'imported', result = '{}', retry_after = null,
                 attempts = customer_imports.attempts + 1
             where customer_imports.status = 'failed'
               and customer_imports.retry_after is not null
             returning attempts",
            &[
                &object.bucket,
                &object.key,
                &object.version_id,
                &object.etag,
            ],
        )
        .await?
        .map(|row| row.get(0)))
}

/// The recorded result JSON of `object`, if an import finished it (a failed attempt that
/// will be retried is not finished).
///
/// # Errors
/// Database failures.
pub async fn result(
    client: &impl GenericClient,
    object: ObjectVersion<'_>,
) -> Result<Option<Value>, ApiError> {
    Ok(client
        .query_opt_cached(
            "select result from customer_imports
             where bucket = $1 and key = $2 and version_id = $3 and etag = $4
               and result <> '{}' and (status <> 'failed' or retry_after is null)",
            &[
                &object.bucket,
                &object.key,
                &object.version_id,
                &object.etag,
            ],
        )
        .await?
        .map(|row| row.get(0)))
}

/// Records `object`'s `status` and `result` (the claimed row in the import's transaction,
/// or a new row for a refusal).
///
/// # Errors
/// Database failures.
pub async fn record(
    client: &impl GenericClient,
    object: ObjectVersion<'_>,
    status: &str,
    result: &Value,
) -> Result<(), ApiError> {
    client
        .execute_cached(
            "insert into customer_imports (bucket, key, version_id, etag, status, result)
             values ($1, $2, $3, $4, $5, $6)
             on conflict (bucket, key, version_id, etag) do update
             set status = excluded.status, result = excluded.result, finished_at = now(),
                 retry_after = null,
                 attempts = customer_imports.attempts
                     + (customer_imports.status = 'failed')::integer",
            &[
                &object.bucket,
                &object.key,
                &object.version_id,
                &object.etag,
                &status,
                result,
            ],
        )
        .await?;
    Ok(())
}

/// Where a failed import of an object version stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailedAttempts {
    /// Attempts that failed so far.
    pub attempts: i32,
    /// When it may be tried again; `None` once the attempts are spent.
    pub retry_after: Option<chrono::DateTime<chrono::Utc>>,
}

/// The failed attempts recorded for `object`, if its import failed and is not finished.
///
/// # Errors
/// Database failures.
pub async fn failed_attempts(
    client: &impl GenericClient,
    object: ObjectVersion<'_>,
) -> Result<Option<FailedAttempts>, ApiError> {
    Ok(client
        .query_opt_cached(
            "select attempts, retry_after from customer_imports
             where bucket = $1 and key = $2 and version_id = $3 and etag = $4
               and status = 'failed'",
            &[
                &object.bucket,
                &object.key,
                &object.version_id,
                &object.etag,
            ],
        )
        .await?
        .map(|row| FailedAttempts {
            attempts: row.get(0),
            retry_after: row.get(1),
        }))
}

/// Records a failed attempt at `object`: status `failed`, `attempts` so far, its `result`,
/// and `retry_after` (none when no attempt is left). A finished row (any other status) is
/// left as it is.
///
/// # Errors
/// Database failures.
pub async fn record_failure(
    client: &impl GenericClient,
    object: ObjectVersion<'_>,
    attempts: i32,
    retry_after: Option<chrono::DateTime<chrono::Utc>>,
    result: &Value,
) -> Result<(), ApiError> {
    client
        .execute_cached(
            "insert into customer_imports
                 (bucket, key, version_id, etag, status, result, attempts, retry_after)
             values ($1, $2, $3, $4, 'failed', $5, $6, $7)
             on conflict (bucket, key, version_id, etag) do update
             set result = excluded.result, attempts = excluded.attempts,
                 retry_after = excluded.retry_after, finished_at = now()
             where customer_imports.status = 'failed'",
            &[
                &object.bucket,
                &object.key,
                &object.version_id,
                &object.etag,
                result,
                &attempts,
                &retry_after,
            ],
        )
        .await?;
    Ok(())
}

/// Makes a failed import of `object` due again (`retry_after` now), whatever its attempts;
/// its next failure is final again. `false` when `object` has no failed import.
///
/// # Errors
/// Database failures.
pub async fn allow_retry(
    client: &impl GenericClient,
    object: ObjectVersion<'_>,
) -> Result<bool, ApiError> {
    Ok(client
        .execute_cached(
            "update customer_imports set retry_after = now()
             where bucket = $1 and key = $2 and version_id = $3 and etag = $4
               and status = 'failed'",
            &[
                &object.bucket,
                &object.key,
                &object.version_id,
                &object.etag,
            ],
        )
        .await?
        == 1)
}
