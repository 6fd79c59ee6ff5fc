//! Webhook keys (`webhook_keys`): the API keys delivery providers authenticate with, each
//! bound to one tenant, and the Standard Webhooks message ids seen under them
//! (`webhook_messages`, so a replayed signed request changes nothing).

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{CachedStatements, GenericClient, TenantTx, violated_constraint};
use crate::domain::{TenantName, Username};
use crate::error::ApiError;

/// How long a signed message id is remembered, in seconds: the 5-minute signature window
/// plus margin for clock skew.
pub const MESSAGE_ID_RETENTION_SECS: i64 = 15 * 60;

/// A webhook key as listed (never its secret parts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct WebhookKey {
    /// Public id (also inside the key).
    pub id: Uuid,
    /// What it is for (e.g. the provider's name).
    pub name: String,
    /// The tenant whose campaigns it may report on; `null` for a key made before keys were
    /// tenant-scoped and not yet bound (refused until bound with `offerctl webhook-key
    /// assign`).
    pub tenant_name: Option<String>,
    /// Whether requests must carry a Standard Webhooks signature.
    pub signed: bool,
    /// Who created it.
    pub created_by: Option<String>,
    /// When.
    pub created_at: DateTime<Utc>,
    /// Last accepted request.
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

const KEY_COLUMNS: &str = "id, name, tenant_name, signing_secret is not null as signed, created_by, created_at, last_used_at, revoked_at";

fn key(row: &tokio_postgres::Row) -> WebhookKey {
    WebhookKey {
        id: row.get("id"),
        name: row.get("name"),
        tenant_name: row.get("tenant_name"),
        signed: row.get("signed"),
        created_by: row.get("created_by"),
        created_at: row.get("created_at"),
        last_used_at: row.get("last_used_at"),
        revoked_at: row.get("revoked_at"),
    }
}

/// 404 for a key naming a tenant that does not exist; other errors as they are.
fn unknown_tenant(err: tokio_postgres::Error, tenant: &TenantName) -> ApiError {
    match violated_constraint(&err) {
        Some("webhook_keys_tenant_name_fkey") => ApiError::NotFound(format!("no tenant {tenant}")),
        _ => err.into(),
    }
}

/// Stores a new key of `tenant` (its hash, and the signing secret if any).
///
/// # Errors
/// 404 if the tenant does not exist; database failures.
#[allow(clippy::too_many_arguments)]
pub async fn insert_key(
    client: &impl GenericClient,
    id: Uuid,
    tenant: &TenantName,
    name: &str,
    hash: &[u8],
    signing_secret: Option<&str>,
    created_by: Option<&Username>,
) -> Result<WebhookKey, ApiError> {
    let row = client
        .query_one_cached(
            &format!(
                "insert into webhook_keys (id, name, key_hash, signing_secret, created_by, tenant_name)
                 values ($1, $2, $3, $4, $5, $6) returning {KEY_COLUMNS}"
            ),
            &[
                &id,
                &name,
                &hash,
                &signing_secret,
                &created_by.map(Username::as_str),
                &tenant.as_str(),
            ],
        )
        .await
        .map_err(|err| unknown_tenant(err, tenant))?;
    Ok(key(&row))
}

/// Every key (or only `tenant`'s), newest first.
///
/// # Errors
/// Database failures.
pub async fn list_keys(
    client: &impl GenericClient,
    tenant: Option<&TenantName>,
) -> Result<Vec<WebhookKey>, ApiError> {
    let rows = client
        .query_cached(
            &format!(
                "select {KEY_COLUMNS} from webhook_keys
                 where ($1::text is null or tenant_name = $1)
                 order by created_at desc, id"
            ),
            &[&tenant.map(TenantName::as_str)],
        )
        .await?;
    Ok(rows.iter().map(key).collect())
}

/// Binds a key made before keys were tenant-scoped to `tenant` (V006 left it unbound).
///
/// # Errors
/// 404 if there is no such key or tenant; 409 if the key is already bound (a key never
/// moves between tenants: revoke it and issue a new one); database failures.
pub async fn assign_tenant(
    client: &impl GenericClient,
    id: Uuid,
    tenant: &TenantName,
) -> Result<WebhookKey, ApiError> {
    // One statement: of two concurrent assignments, exactly one binds the key.
    let bound = client
        .query_opt_cached(
            &format!(
                "update webhook_keys set tenant_name = $2
                 where id = $1 and tenant_name is null returning {KEY_COLUMNS}"
            ),
            &[&id, &tenant.as_str()],
        )
        .await
        .map_err(|err| unknown_tenant(err, tenant))?;
    if let Some(row) = bound {
        return Ok(key(&row));
    }
    let current = client
        .query_opt_cached("select tenant_name from webhook_keys where id = $1", &[&id])
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no webhook key {id}")))?;
    let owner: Option<String> = current.get(0);
    Err(ApiError::Conflict(format!(
        "webhook key {id} already belongs to tenant {}",
        owner.unwrap_or_default()
    )))
}

/// Revokes a key (idempotent); `false` if there is no such key.
///
/// # Errors
/// Database failures.
pub async fn revoke_key(client: &impl GenericClient, id: Uuid) -> Result<bool, ApiError> {
    let n = client
        .execute_cached(
            "update webhook_keys set revoked_at = coalesce(revoked_at, now()) where id = $1",
            &[&id],
        )
        .await?;
    Ok(n == 1)
}

/// What authentication needs of an active (unrevoked) key.
#[derive(Debug, Clone)]
pub struct ActiveKey {
    /// The key's id.
    pub id: Uuid,
    /// Its tenant; `None` for an unbound key made before keys were tenant-scoped.
    pub tenant_name: Option<String>,
    /// SHA-256 of the key.
    pub hash: Vec<u8>,
    /// The signing secret, when requests must be signed.
    pub signing_secret: Option<secrecy::SecretString>,
}

/// The active key with this id, if any.
///
/// # Errors
/// Database failures.
pub async fn active_key(
    client: &impl GenericClient,
    id: Uuid,
) -> Result<Option<ActiveKey>, ApiError> {
    let row = client
        .query_opt_cached(
            "select id, tenant_name, key_hash, signing_secret from webhook_keys
             where id = $1 and revoked_at is null",
            &[&id],
        )
        .await?;
    Ok(row.map(|row| ActiveKey {
        id: row.get("id"),
        tenant_name: row.get("tenant_name"),
        hash: row.get("key_hash"),
        signing_secret: row
            .get::<_, Option<String>>("signing_secret")
            .map(secrecy::SecretString::from),
    }))
}

/// Records a signed message id for a key: `false` if it was already seen (a replay). Also
/// forgets ids older than [`MESSAGE_ID_RETENTION_SECS`].
///
/// # Errors
/// Database failures.
pub async fn record_message(
    tx: &TenantTx<'_>,
    key_id: Uuid,
    message_id: &str,
) -> Result<bool, ApiError> {
    tx.execute_cached(
        "delete from webhook_messages where received_at < now() - make_interval(secs => $1)",
        &[&(MESSAGE_ID_RETENTION_SECS as f64)],
    )
    .await?;
    let n = tx
        .execute_cached(
            "insert into webhook_messages (key_id, message_id) values ($1, $2) on conflict do nothing",
            &[&key_id, &message_id],
        )
        .await?;
    Ok(n == 1)
}

/// Notes that a key was just used.
///
/// # Errors
/// Database failures.
pub async fn touch_key(tx: &TenantTx<'_>, id: Uuid) -> Result<(), ApiError> {
    tx.execute_cached(
        "update webhook_keys set last_used_at = now() where id = $1 and tenant_name = $2",
        &[&id, &tx.tenant().as_str()],
    )
    .await?;
    Ok(())
}
