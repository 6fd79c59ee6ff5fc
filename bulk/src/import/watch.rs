//! Imports without an event: the object version a key holds now, the local bucket watcher
//! of `offerctl serve`, and a retry allowed by hand.

use shared::db::customer_imports;

use super::{ImportObject, ImportOptions, ImportResult, import_object, reason};
use crate::BulkError;
use crate::s3::{self, Location};

pub use shared::db::customer_import::{CONVERSIONS_PREFIX, IMPORTS_PREFIX};

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

/// Imports every object under [`IMPORTS_PREFIX`] and [`CONVERSIONS_PREFIX`] of `bucket` that
/// the ledger does not have
/// finished (what S3 events do in AWS; `offerctl serve` polls a local bucket with it),
/// skipping a failed one until its `retry_after`. One object's failure does not stop the
/// others: it is logged (and recorded, [`import_object`]) and the next key is taken. Answers
/// the results of the objects imported (or finally failed) now.
///
/// # Errors
/// [`BulkError::S3`] when the bucket cannot be listed.
pub async fn import_new(
    pool: &deadpool_postgres::Pool,
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    options: ImportOptions,
) -> Result<Vec<ImportResult>, BulkError> {
    let mut results = Vec::new();
    let mut keys = s3::list(s3, bucket, IMPORTS_PREFIX).await?;
    keys.extend(s3::list(s3, bucket, CONVERSIONS_PREFIX).await?);
    for key in keys {
        let location = Location {
            bucket: bucket.to_owned(),
            key,
        };
        match import_if_due(pool, s3, &location, options).await {
            Ok(Some(result)) => results.push(result),
            Ok(None) => {}
            Err(err) => tracing::warn!(object = %location, error = %reason(&err),
                "import from the bucket failed; going on with the next key"),
        }
    }
    Ok(results)
}

/// The current version of `location` imported, unless the ledger has it finished or its
/// failed attempt's `retry_after` has not come.
async fn import_if_due(
    pool: &deadpool_postgres::Pool,
    s3: &aws_sdk_s3::Client,
    location: &Location,
    options: ImportOptions,
) -> Result<Option<ImportResult>, BulkError> {
    let object = current_object(s3, location).await?;
    let due = {
        let client = pool.get().await.map_err(shared::ApiError::from)?;
        customer_imports::due(&client, object.ledger_key()).await?
    };
    if !due {
        return Ok(None);
    }
    Ok(Some(import_object(pool, s3, &object, options).await?.0))
}

/// Makes a finally failed import of `object` due for one more attempt (`offerctl
/// import-customers --retry`); `false` when it is not a failed one.
///
/// # Errors
/// [`BulkError::Database`].
pub async fn allow_retry(
    pool: &deadpool_postgres::Pool,
    object: &ImportObject,
) -> Result<bool, BulkError> {
    let client = pool.get().await.map_err(shared::ApiError::from)?;
    Ok(customer_imports::allow_retry(&client, object.ledger_key()).await?)
}
