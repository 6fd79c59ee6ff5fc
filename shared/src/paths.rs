//! Typed path parameters of the tenant routes, each with the loader of the row it names.
//!
//! A handler takes `AppPath(OfferPath { tenant_name, offer_id })` (decoded, and refused with
//! 400 before any query, by [`crate::http::AppPath`]); its annotation lists
//! `params(OfferPath)`, so the OpenAPI parameters come from the same struct. The loaders
//! answer 404 naming the row when the tenant has none (another tenant's row is the same 404:
//! the queries filter by tenant).

use serde::Deserialize;
use utoipa::IntoParams;

use crate::db::Executor;
use crate::db::campaigns::{self, Campaign};
use crate::db::offers::{self, Offer};
use crate::domain::TenantName;
use crate::error::ApiError;

/// `/tenants/{tenant_name}/…`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TenantPath {
    /// The tenant's name.
    pub tenant_name: TenantName,
}

/// `/tenants/{tenant_name}/offers/{offer_id}…`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct OfferPath {
    /// The tenant's name.
    pub tenant_name: TenantName,
    /// The offer's id.
    pub offer_id: i32,
}

/// 404 for offer `id`.
#[must_use]
pub fn offer_not_found(id: i32) -> ApiError {
    ApiError::NotFound(format!("no offer {id} in this tenant"))
}

impl OfferPath {
    /// The offer, read through `client` (a tenant transaction or read), locked until the
    /// transaction ends with `for_update`.
    ///
    /// # Errors
    /// 404 if the tenant has no such offer; database failures.
    pub async fn load(&self, client: &impl Executor, for_update: bool) -> Result<Offer, ApiError> {
        offers::get(client, &self.tenant_name, self.offer_id, for_update)
            .await?
            .ok_or_else(|| offer_not_found(self.offer_id))
    }
}

/// `/tenants/{tenant_name}/campaigns/{campaign_id}…`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct CampaignPath {
    /// The tenant's name.
    pub tenant_name: TenantName,
    /// The campaign's id.
    pub campaign_id: i32,
}

/// 404 for campaign `id`.
#[must_use]
pub fn campaign_not_found(id: i32) -> ApiError {
    ApiError::NotFound(format!("no campaign {id} in this tenant"))
}

impl CampaignPath {
    /// The campaign, read through `client` (a tenant transaction or read), locked until the
    /// transaction ends with `for_update`.
    ///
    /// # Errors
    /// 404 if the tenant has no such campaign; database failures.
    pub async fn load(
        &self,
        client: &impl Executor,
        for_update: bool,
    ) -> Result<Campaign, ApiError> {
        campaigns::get(client, &self.tenant_name, self.campaign_id, for_update)
            .await?
            .ok_or_else(|| campaign_not_found(self.campaign_id))
    }
}
