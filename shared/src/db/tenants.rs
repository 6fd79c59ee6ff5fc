//! The `tenants` aggregate. Creating a tenant creates its default roles in the same
//! transaction; deleting one removes everything scoped to it (roles, assignments, offers,
//! campaigns) through the schema's cascades.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{CachedStatements, GenericClient, TenantTx, violated_constraint};
use crate::auth::DefaultRole;
use crate::domain::{TenantName, Username};
use crate::error::ApiError;
use crate::pagination::Page;

/// A tenant as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Tenant {
    /// Primary key, e.g. `credit_card`.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// JSON Schema every offer's `data` in the tenant must satisfy (`null`: any object).
    pub offer_schema: Option<serde_json::Value>,
    /// Whether nobody may approve or reject an offer they created or last edited.
    pub require_maker_checker: bool,
    /// Whether a customer who never said yes or no to a channel may be contacted through it
    /// (default false: only an explicit opt-in counts, the GDPR-safe choice).
    pub unknown_consent_allowed: bool,
    /// The IANA time zone its campaigns' dates are days in (default `UTC`): a campaign runs
    /// from the start of `start_date` to the end of `end_date` there.
    pub time_zone: String,
    /// Days the deliveries of its completed campaigns stay in the database after a
    /// campaign's end (1–3650, default 400); housekeeping then archives them to S3.
    pub retention_days: i32,
    /// The super admin who created it.
    pub created_by: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

const TENANT_COLUMNS: &str = "name, description, offer_schema, require_maker_checker, \
                              unknown_consent_allowed, time_zone, retention_days, created_by, created_at, \
                              updated_at";

fn tenant(row: &tokio_postgres::Row) -> Tenant {
    Tenant {
        name: row.get("name"),
        description: row.get("description"),
        offer_schema: row.get("offer_schema"),
        require_maker_checker: row.get("require_maker_checker"),
        unknown_consent_allowed: row.get("unknown_consent_allowed"),
        time_zone: row.get("time_zone"),
        retention_days: row.get("retention_days"),
        created_by: row.get("created_by"),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    }
}

/// The settable fields of a tenant. In an update, `None` keeps a field and `Some(None)`
/// clears a nullable one.
#[derive(Debug, Default, Clone)]
pub struct TenantFields<'a> {
    /// Free text.
    pub description: Option<Option<&'a str>>,
    /// JSON Schema for offer data (already checked to compile).
    pub offer_schema: Option<Option<&'a serde_json::Value>>,
    /// The maker-checker switch.
    pub require_maker_checker: Option<bool>,
    /// Whether unknown consent counts as consent.
    pub unknown_consent_allowed: Option<bool>,
    /// The IANA time zone (checked with [`is_time_zone`]).
    pub time_zone: Option<&'a str>,
    /// Days its completed campaigns' deliveries are kept (1–3650).
    pub retention_days: Option<i32>,
}

/// Whether `name` is a time zone name of PostgreSQL's zone database (`pg_timezone_names`,
/// the IANA names: `UTC`, `Asia/Kolkata`, `America/New_York`…), the database that turns the
/// tenant's campaign dates into instants.
///
/// # Errors
/// Database failures.
pub async fn is_time_zone(client: &impl GenericClient, name: &str) -> Result<bool, ApiError> {
    let row = client
        .query_one_cached(
            "select exists (select 1 from pg_timezone_names where name = $1)",
            &[&name],
        )
        .await?;
    Ok(row.get(0))
}

/// Inserts the transaction's tenant and its default roles ([`DefaultRole`]).
///
/// # Errors
/// 409 if the name is taken; database failures.
pub async fn create(
    tx: &TenantTx<'_>,
    fields: &TenantFields<'_>,
    created_by: &Username,
) -> Result<Tenant, ApiError> {
    let name = tx.tenant();
    let row = tx
        .query_one_cached(
            &format!(
                "insert into tenants (name, description, offer_schema, require_maker_checker,
                                      created_by, unknown_consent_allowed, time_zone,
                                      retention_days)
                 values ($1, $2, $3, coalesce($4, true), $5, coalesce($6, false),
                         coalesce($7, 'UTC'), coalesce($8, 400))
                 returning {TENANT_COLUMNS}"
            ),
            &[
                &name.as_str(),
                &fields.description.flatten(),
                &fields.offer_schema.flatten(),
                &fields.require_maker_checker,
                &created_by.as_str(),
                &fields.unknown_consent_allowed,
                &fields.time_zone,
                &fields.retention_days,
            ],
        )
        .await
        .map_err(|err| match violated_constraint(&err) {
            Some("tenants_pkey") => ApiError::Conflict(format!("tenant {name} already exists")),
            _ => err.into(),
        })?;
    let roles: Vec<&str> = DefaultRole::ALL.iter().map(|r| r.name()).collect();
    let descriptions: Vec<&str> = DefaultRole::ALL.iter().map(|r| r.description()).collect();
    // One text[] per role, joined with ',' and split in SQL (PostgreSQL has no arrays of
    // arrays of different lengths).
    let permissions: Vec<String> = DefaultRole::ALL
        .iter()
        .map(|r| {
            r.permissions()
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    tx.execute_cached(
        "insert into tenant_roles (tenant_name, role, description, permissions, is_default)
             select $1, r.role, r.description, string_to_array(r.permissions, ','), true
             from unnest($2::text[], $3::text[], $4::text[]) as r(role, description, permissions)",
        &[&name.as_str(), &roles, &descriptions, &permissions],
    )
    .await?;
    Ok(tenant(&row))
}

/// 404 for tenant `name` (super-admin routes, which see every tenant).
#[must_use]
pub fn not_found(name: &TenantName) -> ApiError {
    ApiError::NotFound(format!("no tenant named {name}"))
}

/// The transaction's own tenant: work a super admin does on one tenant's rows runs in a
/// [`TenantTx`] of it and starts here.
///
/// # Errors
/// 404 ([`not_found`]) if there is no such tenant; database failures.
pub async fn require(tx: &TenantTx<'_>) -> Result<Tenant, ApiError> {
    get(tx.transaction(), tx.tenant())
        .await?
        .ok_or_else(|| not_found(tx.tenant()))
}

/// Reads tenant `name`, if there is one.
///
/// # Errors
/// Database failures.
pub async fn get(
    client: &impl GenericClient,
    name: &TenantName,
) -> Result<Option<Tenant>, ApiError> {
    let row = client
        .query_opt_cached(
            &format!("select {TENANT_COLUMNS} from tenants where name = $1"),
            &[&name.as_str()],
        )
        .await?;
    Ok(row.as_ref().map(tenant))
}

/// Lists tenants by name.
///
/// # Errors
/// Database failures.
pub async fn list(client: &impl GenericClient, page: Page) -> Result<Vec<Tenant>, ApiError> {
    let rows = client
        .query_cached(
            &format!("select {TENANT_COLUMNS} from tenants order by name limit $1 offset $2"),
            &[&page.limit, &page.offset],
        )
        .await?;
    Ok(rows.iter().map(tenant).collect())
}

/// Changes the fields present in `fields`; with a time zone it also recomputes the instants
/// of the tenant's unfinished campaigns, so call it in a transaction.
///
/// # Errors
/// Database failures.
pub async fn update(
    tx: &TenantTx<'_>,
    fields: &TenantFields<'_>,
) -> Result<Option<Tenant>, ApiError> {
    let name = tx.tenant();
    let row = tx
        .query_opt_cached(
            &format!(
                "update tenants set
                    description = case when $2 then $3 else description end,
                    offer_schema = case when $4 then $5 else offer_schema end,
                    require_maker_checker = coalesce($6, require_maker_checker),
                    unknown_consent_allowed = coalesce($7, unknown_consent_allowed),
                    time_zone = coalesce($8, time_zone),
                    retention_days = coalesce($9, retention_days),
                    updated_at = now()
                 where name = $1 returning {TENANT_COLUMNS}"
            ),
            &[
                &name.as_str(),
                &fields.description.is_some(),
                &fields.description.flatten(),
                &fields.offer_schema.is_some(),
                &fields.offer_schema.flatten(),
                &fields.require_maker_checker,
                &fields.unknown_consent_allowed,
                &fields.time_zone,
                &fields.retention_days,
            ],
        )
        .await?;
    if row.is_some() && fields.time_zone.is_some() {
        // Only drafts' instants follow the zone (V016's trigger recomputes them on a write of
        // their dates). A campaign that left draft keeps the window it was scheduled or
        // started with: moving it under a running campaign ended one eight hours before
        // its own release (third review, finding 2).
        tx.execute_cached(
            "update campaigns set start_date = start_date
                 where tenant_name = $1 and status = 'draft'",
            &[&name.as_str()],
        )
        .await?;
    }
    Ok(row.as_ref().map(tenant))
}

/// Deletes a tenant with everything scoped to it. Answers whether it existed.
///
/// # Errors
/// 409 while the contact ledger holds contacts of its campaigns (the ledger never loses a row
/// to a deletion: migration V014); database failures.
pub async fn delete(client: &impl GenericClient, name: &TenantName) -> Result<bool, ApiError> {
    let n = client
        .execute_cached("delete from tenants where name = $1", &[&name.as_str()])
        .await
        .map_err(|err| match super::violated_constraint(&err) {
            Some("customer_contacts_tenant_name_fkey" | "customer_contacts_campaign_id_fkey") => {
                ApiError::Conflict(format!(
                    "tenant {name} has contacts in the platform's contact ledger (its \
                     campaigns released deliveries); it cannot be deleted while they count \
                     against the contact cap"
                ))
            }
            _ => err.into(),
        })?;
    Ok(n == 1)
}
