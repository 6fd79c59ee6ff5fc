//! Restoring an archived campaign's deliveries from S3, in one transaction.

use std::io::Read;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::SinkExt;
use serde::Serialize;
use shared::db::TenantTx;
use shared::db::archives;
use tokio::sync::mpsc;

use super::object::{decompressed, digest, open_archive};
use super::object_of;
use crate::BulkError;

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestoreReport {
    /// The campaign.
    pub campaign_id: i32,
    /// The object read.
    pub object: String,
    /// Rows in the archive.
    pub rows: i64,
    /// Rows put back (rows still in the database, if the archive was interrupted while
    /// deleting, are left as they are).
    pub restored: i64,
}

/// Lets housekeeping archive a restored campaign again (`offerctl archive release`):
/// answers whether it was held.
///
/// # Errors
/// [`BulkError::Inconsistent`] if there is no such campaign; database failures.
pub async fn release_hold(
    pool: &deadpool_postgres::Pool,
    campaign: i32,
) -> Result<bool, BulkError> {
    let mut client = pool.get().await.map_err(shared::ApiError::from)?;
    let tenant = archives::tenant_of_campaign(&client, campaign)
        .await?
        .ok_or_else(|| BulkError::Inconsistent(format!("no campaign {campaign}")))?;
    let tx = TenantTx::begin(&mut client, &tenant).await?;
    let released = archives::release_hold(&tx, campaign).await?;
    tx.commit().await?;
    Ok(released)
}

/// Brings campaign `campaign`'s archived deliveries back from S3 and removes its archive
/// row, in one transaction: the object's rows and SHA-256 must match the archive row first.
///
/// # Errors
/// [`BulkError::Inconsistent`] if the campaign has no archive or the object does not match
/// (nothing changed); database or S3 failures (nothing changed).
pub async fn restore(
    pool: &deadpool_postgres::Pool,
    s3: &aws_sdk_s3::Client,
    campaign: i32,
) -> Result<RestoreReport, BulkError> {
    let mut client = pool.get().await.map_err(shared::ApiError::from)?;
    let tenant = archives::tenant_of_campaign(&client, campaign)
        .await?
        .ok_or_else(|| BulkError::Inconsistent(format!("no campaign {campaign}")))?;
    let tx = TenantTx::begin(&mut client, &tenant).await?;
    let row = archives::get(&tx, campaign, true)
        .await?
        .ok_or_else(|| BulkError::Inconsistent(format!("campaign {campaign} has no archive")))?;
    let location = object_of(&row);
    let sink = archives::begin_restore(&tx, &row.columns).await?;
    futures_util::pin_mut!(sink);
    let (raw, hasher) = open_archive(s3, &location).await?;
    let (chunks, mut received) = mpsc::channel::<Bytes>(4);
    let hashing = Arc::clone(&hasher);
    let reading = tokio::task::spawn_blocking(move || {
        let mut reader = decompressed(raw, &hashing);
        loop {
            let mut buffer = vec![0_u8; 1 << 20];
            let n = reader.read(&mut buffer)?;
            if n == 0 {
                return Ok::<_, std::io::Error>(());
            }
            buffer.truncate(n);
            if chunks.blocking_send(Bytes::from(buffer)).is_err() {
                return Ok(());
            }
        }
    });
    while let Some(chunk) = received.recv().await {
        sink.send(chunk).await?;
    }
    reading
        .await
        .map_err(|e| BulkError::Inconsistent(format!("restore task: {e}")))?
        .map_err(BulkError::Read)?;
    let copied = sink.finish().await?;
    let sha256 = digest(&hasher);
    if i64::try_from(copied).ok() != Some(row.rows) || sha256 != row.sha256 {
        return Err(BulkError::Inconsistent(format!(
            "the archive {} does not match its record ({copied} rows, SHA-256 {sha256}; \
             expected {} rows, {}); nothing restored",
            location, row.rows, row.sha256
        )));
    }
    let restored = archives::finish_restore(&tx, campaign, &row.columns).await?;
    tx.commit().await?;
    tracing::info!(tenant = %tenant, campaign.id = campaign, rows = row.rows, restored,
        object = %location, "campaign deliveries restored");
    Ok(RestoreReport {
        campaign_id: campaign,
        object: location.to_string(),
        rows: row.rows,
        restored: i64::try_from(restored).unwrap_or(i64::MAX),
    })
}
