//! The import ledger (`customer_imports`, migrations V017, V021 and V024): one row per object
//! version (bucket, key, version id, ETag) the S3 import has seen, holding its status
//! (`importing` while a file in parts is staged and merged), its
//! result JSON and, for a `failed` import, how many attempts it took and when it may be
//! tried again (`retry_after`; none once the attempts are spent). The platform's customer
//! records span tenants, so these are platform statements.

use serde_json::Value;
use tokio_postgres::types::ToSql;

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

impl ObjectVersion<'_> {
    /// The key as the statements' first four parameters: bucket, key, version id, ETag.
    fn params(&self) -> [&(dyn ToSql + Sync); 4] {
        [&self.bucket, &self.key, &self.version_id, &self.etag]
    }
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
            &object.params(),
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
            &object.params(),
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
            &[&object.params()[..], &[&status, result]].concat(),
        )
        .await?;
    Ok(())
}

/// The attempts the ledger counts for `object` (1 when it has no row).
///
/// # Errors
/// Database failures.
pub async fn attempts(
    client: &impl GenericClient,
    object: ObjectVersion<'_>,
) -> Result<u32, ApiError> {
    Ok(client
        .query_opt_cached(
            "select attempts from customer_imports
             where bucket = $1 and key = $2 and version_id = $3 and etag = $4",
            &object.params(),
        )
        .await?
        .map_or(1, |row| u32::try_from(row.get::<_, i32>(0)).unwrap_or(1)))
}

/// How many attempts at `object` failed so far (0 when none did, or its import finished).
///
/// # Errors
/// Database failures.
pub async fn failed_attempts(
    client: &impl GenericClient,
    object: ObjectVersion<'_>,
) -> Result<i32, ApiError> {
    Ok(client
        .query_opt_cached(
            "select attempts from customer_imports
             where bucket = $1 and key = $2 and version_id = $3 and etag = $4
               and status = 'failed'",
            &object.params(),
        )
        .await?
        .map_or(0, |row| row.get(0)))
}

/// Whether `object` is due for an import: the ledger has no row for it, or only a failed
/// attempt whose `retry_after` has come (one finished, or failed for good, is not).
///
/// # Errors
/// Database failures.
pub async fn due(client: &impl GenericClient, object: ObjectVersion<'_>) -> Result<bool, ApiError> {
    Ok(client
        .query_one_cached(
            "select not exists (
                 select 1 from customer_imports
                 where bucket = $1 and key = $2 and version_id = $3 and etag = $4
                   and not (status = 'failed' and coalesce(retry_after <= now(), false)))",
            &object.params(),
        )
        .await?
        .get(0))
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
            &[&object.params()[..], &[result, &attempts, &retry_after]].concat(),
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
            &object.params(),
        )
        .await?
        == 1)
}
