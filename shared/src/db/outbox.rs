//! The campaign job outbox (`campaign_outbox`, migration V008): queue messages written in the
//! transaction of the change that needs them, then sent and deleted by the relay
//! (the relay). This is the transactional outbox pattern: a message exists if and only
//! if its transaction committed, so a crash between a commit and the queue loses nothing.

use uuid::Uuid;

use super::{CachedStatements, GenericClient, TenantTx};
use crate::domain::TenantName;
use crate::error::ApiError;
use crate::queue::{CampaignJob, IdRange, JobStep};

/// Writes the plan message (no range) of job `job_id` of campaign `campaign_id`.
///
/// # Errors
/// Database failures.
pub async fn add_plan(tx: &TenantTx<'_>, campaign_id: i32, job_id: Uuid) -> Result<(), ApiError> {
    insert_plan(tx.transaction(), campaign_id, tx.tenant().as_str(), job_id).await
}

/// [`add_plan`] for the relay's re-drive, which works across tenants on a platform
/// transaction and names the job's tenant itself.
///
/// # Errors
/// Database failures.
pub(crate) async fn insert_plan(
    client: &impl GenericClient,
    campaign_id: i32,
    tenant: &str,
    job_id: Uuid,
) -> Result<(), ApiError> {
    client
        .execute_cached(
            "insert into campaign_outbox (campaign_id, tenant_name, job_id) values ($1, $2, $3)",
            &[&campaign_id, &tenant, &job_id],
        )
        .await?;
    Ok(())
}

/// Writes one range message per range of `0..count` of job `job_id` that has not finished
/// (has no `campaign_processing_ranges` row); returns how many it wrote. For a fresh split
/// that is all of them; for a re-driven job, the ones still missing.
///
/// # Errors
/// Database failures.
pub async fn add_unfinished_ranges(
    client: &impl GenericClient,
    campaign_id: i32,
    tenant: &str,
    job_id: Uuid,
    count: i32,
) -> Result<u64, ApiError> {
    Ok(client
        .execute_cached(
            "insert into campaign_outbox (campaign_id, tenant_name, job_id, range_index, range_count)
             select $1, $2, $3, i, $4
             from generate_series(0, $4 - 1) i
             where not exists (select 1 from campaign_processing_ranges r
                               where r.campaign_id = $1 and r.job_id = $3 and r.range_index = i)
             order by i",
            &[&campaign_id, &tenant, &job_id, &count],
        )
        .await?)
}

/// Writes the release message of the first range of `0..count` of release job `job_id` that
/// has not been released (has no `campaign_release_ranges` row); returns how many it wrote
/// (0 when every range is released). A release job's ranges run one after another, each
/// writing the next one's message in its own transaction, so no two wait on the release
/// lock together.
///
/// # Errors
/// Database failures.
pub async fn add_next_release_range(
    client: &impl GenericClient,
    campaign_id: i32,
    tenant: &str,
    job_id: Uuid,
    count: i32,
) -> Result<u64, ApiError> {
    Ok(client
        .execute_cached(
            "insert into campaign_outbox (campaign_id, tenant_name, job_id, range_index,
                                          range_count, step)
             select $1, $2, $3, min(i), $4, 'release'
             from generate_series(0, $4 - 1) i
             where not exists (select 1 from campaign_release_ranges r
                               where r.campaign_id = $1 and r.job_id = $3 and r.range_index = i)
             having min(i) is not null",
            &[&campaign_id, &tenant, &job_id, &count],
        )
        .await?)
}

/// Takes up to `limit` unsent messages, oldest first (only those of job `job`, if given):
/// deletes them and returns them as jobs. Rows another relay holds are skipped (`SKIP
/// LOCKED`). Run it in a transaction and commit only after the queue accepted the messages;
/// a rollback (or a crash) leaves them for the next relay.
///
/// # Errors
/// Database failures; a row whose tenant name no longer parses (it cannot happen for rows
/// this module wrote) is an internal error.
pub async fn take(
    client: &impl GenericClient,
    job: Option<Uuid>,
    limit: i64,
) -> Result<Vec<CampaignJob>, ApiError> {
    let rows = client
        .query_cached(
            "with taken as (
                 delete from campaign_outbox where id in (
                     select id from campaign_outbox where ($1::uuid is null or job_id = $1)
                     order by id limit $2 for update skip locked)
                 returning id, campaign_id, tenant_name, job_id, range_index, range_count, step)
             select campaign_id, tenant_name, job_id, range_index, range_count, step
             from taken order by id",
            &[&job, &limit],
        )
        .await?;
    rows.iter()
        .map(|row| {
            let tenant: String = row.get("tenant_name");
            let range = match (
                row.get::<_, Option<i32>>("range_index"),
                row.get::<_, Option<i32>>("range_count"),
            ) {
                (Some(index), Some(count)) => Some(IdRange {
                    index: u32::try_from(index).map_err(ApiError::internal)?,
                    count: u32::try_from(count).map_err(ApiError::internal)?,
                }),
                _ => None,
            };
            Ok(CampaignJob {
                campaign_id: row.get("campaign_id"),
                tenant_name: TenantName::parse(&tenant).map_err(ApiError::internal)?,
                job_id: row.get("job_id"),
                range,
                step: match row.get::<_, &str>("step") {
                    "release" => JobStep::Release,
                    _ => JobStep::Select,
                },
            })
        })
        .collect()
}

/// Number of unsent messages (of job `job`, if given).
///
/// # Errors
/// Database failures.
pub async fn pending(client: &impl GenericClient, job: Option<Uuid>) -> Result<i64, ApiError> {
    Ok(client
        .query_one_cached(
            "select count(*) from campaign_outbox where ($1::uuid is null or job_id = $1)",
            &[&job],
        )
        .await?
        .get(0))
}
