//! The import ledger (`customer_imports`, migration V017): one row per object version
//! (bucket, key, version id, ETag) the S3 import has seen, holding its status and its result
//! JSON. The platform's customer records span tenants, so these are platform statements.

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

/// Claims `object` for an import in the caller's transaction (a row with an empty result):
/// `false` when another import holds or finished it (a concurrent duplicate waits on the
/// row until that import's transaction ends, then finds it).
///
/// # Errors
/// Database failures.
pub async fn claim(
    client: &impl GenericClient,
    object: ObjectVersion<'_>,
) -> Result<bool, ApiError> {
    Ok(client
        .execute_cached(
            "insert into customer_imports (bucket, key, version_id, etag, status, result)
             values ($1, $2, $3, $4, 'imported', '{}') on conflict do nothing",
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

/// The recorded result JSON of `object`, if an import finished it.
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
               and result <> '{}'",
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
             set status = excluded.status, result = excluded.result, finished_at = now()",
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
