//! An offer's approved versions (`offer_versions`): each approval freezes the working copy
//! as the next numbered version, which campaigns pin.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::{OFFER_COLUMNS, Offer, offer};
use crate::db::{CachedStatements, TenantTx};
use crate::domain::Username;
use crate::error::ApiError;
use crate::pagination::Page;

/// An approved version of an offer: immutable.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct OfferVersion {
    /// The offer.
    pub offer_id: i32,
    /// 1, 2, … in approval order.
    pub version: i32,
    /// The approved content.
    #[schema(value_type = Object)]
    pub data: Value,
    /// The maker's notes, as approved.
    pub comments: Option<String>,
    /// Who created or changed the content since the previous version.
    pub authors: Vec<String>,
    /// The checker who approved it.
    pub approved_by: String,
    /// When.
    pub approved_at: DateTime<Utc>,
    /// The checker's comment.
    pub approval_comment: Option<String>,
}

const VERSION_COLUMNS: &str = "offer_id, version_number, data, comments, authors, approved_by, \
                               approved_at, approval_comment";

fn offer_version(row: &tokio_postgres::Row) -> OfferVersion {
    OfferVersion {
        offer_id: row.get("offer_id"),
        version: row.get("version_number"),
        data: row.get("data"),
        comments: row.get("comments"),
        authors: row.get("authors"),
        approved_by: row.get("approved_by"),
        approved_at: row.get("approved_at"),
        approval_comment: row.get("approval_comment"),
    }
}

/// Approves the working copy of offer `id` (locked by the caller): freezes it as the next
/// version (live + 1) with its `authors`, makes that version live, and bumps `version`.
/// Answers the offer and the new version.
///
/// # Errors
/// 409 if a concurrent approval took the same number first; database failures.
pub async fn approve(
    tx: &TenantTx<'_>,
    id: i32,
    approver: &Username,
    comment: Option<&str>,
    authors: &[String],
) -> Result<(Offer, OfferVersion), ApiError> {
    let version = tx
        .query_one_cached(
            &format!(
                "insert into offer_versions (tenant_name, offer_id, version_number, data, comments,
                                             authors, approved_by, approval_comment)
                 select tenant_name, id, coalesce(live_version, 0) + 1, data, comments, $3, $4, $5
                 from offers where tenant_name = $1 and id = $2
                 returning {VERSION_COLUMNS}"
            ),
            &[
                &tx.tenant().as_str(),
                &id,
                &authors,
                &approver.as_str(),
                &comment,
            ],
        )
        .await
        .map_err(|err| match crate::db::violated_constraint(&err) {
            Some("offer_versions_pkey") => ApiError::Conflict(format!(
                "another version of offer {id} was approved at the same moment; reload it"
            )),
            _ => err.into(),
        })?;
    let version = offer_version(&version);
    let row = tx
        .query_one_cached(
            &format!(
                "update offers set status = 'approved', live_version = $3,
                                   draft_base_version = null, version = version + 1
                 where tenant_name = $1 and id = $2 returning {OFFER_COLUMNS}"
            ),
            &[&tx.tenant().as_str(), &id, &version.version],
        )
        .await?;
    Ok((offer(&row)?, version))
}

/// An offer's approved versions, oldest first.
///
/// # Errors
/// Database failures.
pub async fn versions(
    tx: &TenantTx<'_>,
    id: i32,
    page: Page,
) -> Result<Vec<OfferVersion>, ApiError> {
    let rows = tx
        .query_cached(
            &format!(
                "select {VERSION_COLUMNS} from offer_versions
                 where tenant_name = $1 and offer_id = $2
                 order by version_number limit $3 offset $4"
            ),
            &[&tx.tenant().as_str(), &id, &page.limit, &page.offset],
        )
        .await?;
    Ok(rows.iter().map(offer_version).collect())
}

/// One approved version of an offer.
///
/// # Errors
/// Database failures.
pub async fn version(
    tx: &TenantTx<'_>,
    id: i32,
    number: i32,
) -> Result<Option<OfferVersion>, ApiError> {
    let row = tx
        .query_opt_cached(
            &format!(
                "select {VERSION_COLUMNS} from offer_versions
                 where tenant_name = $1 and offer_id = $2 and version_number = $3"
            ),
            &[&tx.tenant().as_str(), &id, &number],
        )
        .await?;
    Ok(row.as_ref().map(offer_version))
}
