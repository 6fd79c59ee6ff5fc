//! Archives of completed campaigns' deliveries (`campaign_archives`, migration V017) and the
//! contact ledger's pruning: every statement housekeeping (`bulk::archive`) runs. Each
//! statement about one campaign runs in a [`TenantTx`] of its tenant and filters by it, so
//! row-level security is the second wall here too, not the only one.

use std::str::FromStr;

use tokio_postgres::{CopyInSink, CopyOutStream};

use super::campaigns::deliveries::DeliveryRows;
use super::{CachedStatements, GenericClient, TenantTx};
use crate::domain::TenantName;
use crate::error::ApiError;

/// Where an archive stands (`campaign_archives.state`); no row at all means nothing was
/// exported yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveState {
    /// The object and its manifest are written; not verified yet.
    Exported,
    /// S3's checksum and size of the object matched the export's: the deliveries are being
    /// deleted in batches.
    Deleting,
    /// Every delivery is deleted; the object holds them.
    Archived,
}

impl ArchiveState {
    /// The stored name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Exported => "exported",
            Self::Deleting => "deleting",
            Self::Archived => "archived",
        }
    }
}

impl FromStr for ArchiveState {
    type Err = ApiError;

    fn from_str(name: &str) -> Result<Self, ApiError> {
        match name {
            "exported" => Ok(Self::Exported),
            "deleting" => Ok(Self::Deleting),
            "archived" => Ok(Self::Archived),
            other => Err(ApiError::internal(format!("unknown archive state {other}"))),
        }
    }
}

/// A campaign's archive row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveRecord {
    /// The bucket holding the object.
    pub bucket: String,
    /// The object's key (`archive/<tenant>/<campaign>.csv.gz`).
    pub key: String,
    /// Delivery rows in it.
    pub rows: i64,
    /// SHA-256 of its uncompressed CSV, hexadecimal.
    pub sha256: String,
    /// The object's checksum as S3 reports it for a multipart upload with SHA-256
    /// (`<base64 SHA-256 of the parts' SHA-256s>-<parts>`, V028); `None` for an archive
    /// exported before V028.
    pub object_checksum: Option<String>,
    /// The object's size in bytes (compressed); `None` before V028.
    pub object_bytes: Option<i64>,
    /// The CSV's columns, in order.
    pub columns: Vec<String>,
    /// Where it stands.
    pub state: ArchiveState,
    /// While `deleting`: the high end of the last customer-id slice deleted (V023), none
    /// before the first.
    pub deleted_through: Option<uuid::Uuid>,
}

/// A new archive row: the export's figures.
#[derive(Debug, Clone)]
pub struct NewArchive<'a> {
    /// The bucket.
    pub bucket: &'a str,
    /// The object's key.
    pub key: &'a str,
    /// The manifest's key.
    pub manifest_key: &'a str,
    /// Delivery rows exported.
    pub rows: i64,
    /// SHA-256 of the CSV.
    pub sha256: &'a str,
    /// The object's composite checksum ([`ArchiveRecord::object_checksum`]).
    pub object_checksum: &'a str,
    /// The object's size in bytes.
    pub object_bytes: i64,
    /// The CSV's columns.
    pub columns: &'a [String],
    /// The campaign's delivery counts at export (JSON).
    pub summary: &'a serde_json::Value,
    /// The counts its results are computed from, at export (JSON of
    /// [`crate::db::results::ResultCounts`]): final, since a campaign is archived only after
    /// its conversion window closed.
    pub results: &'a serde_json::Value,
}

/// Completed campaigns past their tenant's `retention_days` (and `report_grace_days`, and
/// their own conversion window, so that the results kept with the archive are final) whose
/// deliveries are not archived yet, oldest end first, at most `limit`: platform work across
/// tenants, on a connection that sees every tenant.
///
/// # Errors
/// Database failures; a stored tenant name that does not parse.
pub async fn due(
    client: &impl GenericClient,
    report_grace_days: i32,
    limit: i64,
) -> Result<Vec<(TenantName, i32)>, ApiError> {
    let rows = client
        .query_cached(
            "select c.tenant_name, c.id from campaigns c
             join tenants t on t.name = c.tenant_name
             left join campaign_archives a
               on a.campaign_id = c.id and a.tenant_name = c.tenant_name
             where c.status = 'completed' and not c.archive_held
               and c.ends_at < now() - make_interval(days => greatest(t.retention_days, $1))
               and c.ends_at + make_interval(days => c.conversion_window_days) < now()
               and (a.state is null or a.state <> 'archived')
             order by c.ends_at, c.id
             limit $2",
            &[&report_grace_days, &limit],
        )
        .await?;
    tenant_campaigns(&rows)
}

/// Campaign `campaign`'s archive row, if it has one; with `lock`, locked until the
/// transaction ends.
///
/// # Errors
/// Database failures.
pub async fn get(
    tx: &TenantTx<'_>,
    campaign: i32,
    lock: bool,
) -> Result<Option<ArchiveRecord>, ApiError> {
    let sql = if lock {
        "select bucket, key, rows, sha256, columns, state, deleted_through, object_checksum,
                object_bytes
         from campaign_archives where campaign_id = $1 and tenant_name = $2 for update"
    } else {
        "select bucket, key, rows, sha256, columns, state, deleted_through, object_checksum,
                object_bytes
         from campaign_archives where campaign_id = $1 and tenant_name = $2"
    };
    let row = tx
        .query_opt_cached(sql, &[&campaign, &tx.tenant().as_str()])
        .await?;
    row.map(|row| {
        Ok(ArchiveRecord {
            bucket: row.get(0),
            key: row.get(1),
            rows: row.get(2),
            sha256: row.get(3),
            object_checksum: row.get(7),
            object_bytes: row.get(8),
            columns: row.get(4),
            state: row.get::<_, &str>(5).parse()?,
            deleted_through: row.get(6),
        })
    })
    .transpose()
}

/// Records an export (state `exported`).
///
/// # Errors
/// Database failures.
pub async fn insert(
    tx: &TenantTx<'_>,
    campaign: i32,
    new: &NewArchive<'_>,
) -> Result<(), ApiError> {
    tx.execute_cached(
        "insert into campaign_archives
             (campaign_id, tenant_name, bucket, key, manifest_key, rows, sha256, columns,
              summary, results, object_checksum, object_bytes, state)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'exported')",
        &[
            &campaign,
            &tx.tenant().as_str(),
            &new.bucket,
            &new.key,
            &new.manifest_key,
            &new.rows,
            &new.sha256,
            &new.columns,
            new.summary,
            new.results,
            &new.object_checksum,
            &new.object_bytes,
        ],
    )
    .await?;
    Ok(())
}

/// Moves the archive from `from` to `to` (`archived` also stamps `archived_at`); answers
/// whether it was in `from`.
///
/// # Errors
/// Database failures.
pub async fn advance(
    tx: &TenantTx<'_>,
    campaign: i32,
    from: ArchiveState,
    to: ArchiveState,
) -> Result<bool, ApiError> {
    let n = tx
        .execute_cached(
            "update campaign_archives
             set state = $4,
                 archived_at = case when $4 = 'archived' then now() else archived_at end
             where campaign_id = $1 and tenant_name = $2 and state = $3",
            &[
                &campaign,
                &tx.tenant().as_str(),
                &from.as_str(),
                &to.as_str(),
            ],
        )
        .await?;
    Ok(n == 1)
}

/// Removes the archive row (an export that did not verify, or a restore).
///
/// # Errors
/// Database failures.
pub async fn remove(tx: &TenantTx<'_>, campaign: i32) -> Result<(), ApiError> {
    tx.execute_cached(
        "delete from campaign_archives where campaign_id = $1 and tenant_name = $2",
        &[&campaign, &tx.tenant().as_str()],
    )
    .await?;
    Ok(())
}

/// Whether campaign `campaign` is still `completed` and not held by a restore: the state
/// [`due`] archives from, in which nothing adds, changes or removes its delivery rows (the
/// processor selects only for active campaigns, reports past the grace period are refused).
/// The verification asks it instead of counting the rows again: at 10,000,000 customers
/// that count read the campaign's rows a second time (1.6 s of an 11.4 s archive).
///
/// # Errors
/// Database failures.
pub async fn still_completed(tx: &TenantTx<'_>, campaign: i32) -> Result<bool, ApiError> {
    Ok(tx
        .query_opt_cached(
            "select status = 'completed' and not archive_held from campaigns
             where id = $1 and tenant_name = $2",
            &[&campaign, &tx.tenant().as_str()],
        )
        .await?
        .is_some_and(|row| row.get(0)))
}

/// Deletes the delivery rows of archived campaign `campaign` whose customer id lies in
/// `low..=high` (one slice of the id space, [`crate::queue::IdRange`]), and records `high`
/// as the archive's `deleted_through` (V023), in the caller's transaction; answers how many.
/// A slice is a range of the primary key: the delete reads exactly its rows, never the
/// index entries of slices deleted before it.
///
/// # Errors
/// Database failures.
pub async fn delete_deliveries(
    tx: &TenantTx<'_>,
    campaign: i32,
    (low, high): (uuid::Uuid, uuid::Uuid),
) -> Result<u64, ApiError> {
    let deleted = tx
        .execute_cached(
            "delete from campaign_customers
             where campaign_id = $1 and tenant_name = $2 and customer_id between $3 and $4",
            &[&campaign, &tx.tenant().as_str(), &low, &high],
        )
        .await?;
    tx.execute_cached(
        "update campaign_archives set deleted_through = $3
         where campaign_id = $1 and tenant_name = $2",
        &[&campaign, &tx.tenant().as_str(), &high],
    )
    .await?;
    Ok(deleted)
}

/// `campaign_customers`' columns, in table order (the catalog's names, never request text).
///
/// # Errors
/// Database failures.
pub async fn delivery_columns(tx: &TenantTx<'_>) -> Result<Vec<String>, ApiError> {
    let rows = tx
        .query_cached(
            "select attname::text from pg_attribute
             where attrelid = 'campaign_customers'::regclass and attnum > 0 and not attisdropped
             order by attnum",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Column names as quoted SQL identifiers, comma-separated.
fn quoted(columns: &[String]) -> String {
    columns
        .iter()
        .map(|c| format!("\"{}\"", c.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Copies campaign `campaign`'s delivery rows, by customer id, into a temporary table
/// ([`DeliveryRows::Staged`], dropped when the transaction ends) and analyzes it, so that
/// an export reads the rows from `campaign_customers` once: its summary, its results and
/// its CSV then read this compact copy. At 10,000,000 customers each read of an archived
/// campaign's 1,000,000 rows through the table took about 1.6 s, and the export read them
/// three times (docs/performance.md).
///
/// Needs a transaction that may write (temporary tables only are written here).
///
/// # Errors
/// Database failures.
pub async fn stage_deliveries(tx: &TenantTx<'_>, campaign: i32) -> Result<(), ApiError> {
    tx.batch_execute(
        "create temporary table archived_deliveries
             (like campaign_customers including defaults) on commit drop",
    )
    .await?;
    // The campaign's rows by the primary key `(campaign_id, customer_id)`, already in key
    // order. On its own statistics PostgreSQL read them with a scan of the whole table and
    // a sort: at 10,000,000 customers 4.65 s for a campaign's 1,000,000 rows of a 4.6 GB
    // table, against 0.96 s through the key (a campaign's rows are written together, so
    // the key's range covers few pages). Both settings are reset right after it.
    tx.batch_execute("set local enable_seqscan = off; set local enable_sort = off")
        .await?;
    tx.execute_cached(
        "insert into pg_temp.archived_deliveries
             select * from campaign_customers
             where campaign_id = $1 and tenant_name = $2 order by customer_id",
        &[&campaign, &tx.tenant().as_str()],
    )
    .await?;
    tx.batch_execute(
        "set local enable_seqscan to default; set local enable_sort to default;
         analyze pg_temp.archived_deliveries",
    )
    .await?;
    Ok(())
}

/// Streams the staged delivery rows ([`stage_deliveries`]) out as CSV with a header
/// (`columns`, from [`delivery_columns`]), in the order they were staged: by customer id
/// (a temporary table filled once and never updated is read back in its insertion order;
/// the archive tests check the object's order).
///
/// # Errors
/// Database failures.
pub async fn copy_staged_out(
    tx: &TenantTx<'_>,
    columns: &[String],
) -> Result<CopyOutStream, ApiError> {
    Ok(tx
        .copy_out(&format!(
            "copy (select {} from {}) to stdout (format csv, header)",
            quoted(columns),
            DeliveryRows::Staged.table()
        ))
        .await?)
}

/// Opens the restore of an archive: a staging table dropped at commit, and the `COPY` sink
/// its CSV (with the header `columns`) goes into.
///
/// # Errors
/// Database failures.
pub async fn begin_restore(
    tx: &TenantTx<'_>,
    columns: &[String],
) -> Result<CopyInSink<bytes::Bytes>, ApiError> {
    tx.batch_execute(
        "create temporary table restored_deliveries
             (like campaign_customers including defaults) on commit drop",
    )
    .await?;
    Ok(tx
        .copy_in(&format!(
            "copy restored_deliveries ({}) from stdin (format csv, header match)",
            quoted(columns)
        ))
        .await?)
}

/// Puts the staged rows of campaign `campaign` back (rows still present are kept as they
/// are), removes its archive row and holds the campaign from housekeeping
/// (`archive_held`, V020: the next run would otherwise archive it again); answers how many
/// came back.
///
/// # Errors
/// Database failures.
pub async fn finish_restore(
    tx: &TenantTx<'_>,
    campaign: i32,
    columns: &[String],
) -> Result<u64, ApiError> {
    let columns = quoted(columns);
    let restored = tx
        .execute(
            &format!(
                "insert into campaign_customers ({columns})
                 select {columns} from restored_deliveries
                 where campaign_id = $1 and tenant_name = $2
                 on conflict do nothing"
            ),
            &[&campaign, &tx.tenant().as_str()],
        )
        .await?;
    remove(tx, campaign).await?;
    tx.execute_cached(
        "update campaigns set archive_held = true where id = $1 and tenant_name = $2",
        &[&campaign, &tx.tenant().as_str()],
    )
    .await?;
    Ok(restored)
}

/// Lets housekeeping archive campaign `campaign` again (clears `archive_held`); answers
/// whether it was held.
///
/// # Errors
/// Database failures.
pub async fn release_hold(tx: &TenantTx<'_>, campaign: i32) -> Result<bool, ApiError> {
    Ok(tx
        .execute_cached(
            "update campaigns set archive_held = false
             where id = $1 and tenant_name = $2 and archive_held",
            &[&campaign, &tx.tenant().as_str()],
        )
        .await?
        == 1)
}

/// Campaigns whose contact-ledger rows no policy can count any more: ended more than
/// `window_days + report_grace_days` days ago (platform work across tenants).
///
/// # Errors
/// Database failures.
pub async fn prunable_campaigns(
    client: &impl GenericClient,
    window_days: i32,
    report_grace_days: i32,
) -> Result<Vec<(TenantName, i32)>, ApiError> {
    let rows = client
        .query_cached(
            "select tenant_name, id from campaigns
             where ends_at < now() - make_interval(days => $1::int + $2::int)
             order by id",
            &[&window_days, &report_grace_days],
        )
        .await?;
    tenant_campaigns(&rows)
}

/// Deletes at most `batch` contact-ledger rows of campaign `campaign` that no longer count
/// under a window of `window_days` (`contact_counts`, V022: an unsettled row counts until
/// its `open_until` is older than the window); answers how many.
///
/// # Errors
/// Database failures.
pub async fn prune_contacts(
    tx: &TenantTx<'_>,
    campaign: i32,
    window_days: i32,
    batch: i64,
) -> Result<u64, ApiError> {
    Ok(tx
        .execute_cached(
            "delete from customer_contacts
             where campaign_id = $1 and tenant_name = $2 and customer_id in (
                 select customer_id from customer_contacts
                 where campaign_id = $1 and tenant_name = $2
                   and not contact_counts(contact_at, open_until, settled, $3)
                 limit $4)",
            &[&campaign, &tx.tenant().as_str(), &window_days, &batch],
        )
        .await?)
}

/// The tenant of campaign `campaign`, if it exists (an operator's restore names only the
/// campaign): platform work, on a connection that sees every tenant.
///
/// # Errors
/// Database failures; a stored tenant name that does not parse.
pub async fn tenant_of_campaign(
    client: &impl GenericClient,
    campaign: i32,
) -> Result<Option<TenantName>, ApiError> {
    client
        .query_opt_cached(
            "select tenant_name from campaigns where id = $1",
            &[&campaign],
        )
        .await?
        .map(|row| TenantName::parse(row.get::<_, &str>(0)).map_err(ApiError::internal))
        .transpose()
}

/// Rows of (tenant name, campaign id) as parsed pairs.
fn tenant_campaigns(rows: &[tokio_postgres::Row]) -> Result<Vec<(TenantName, i32)>, ApiError> {
    rows.iter()
        .map(|row| {
            let tenant = TenantName::parse(row.get::<_, &str>(0)).map_err(ApiError::internal)?;
            Ok((tenant, row.get(1)))
        })
        .collect()
}
