//! Typed path parameters of the tenant and customer routes, each with the loader of the row
//! it names.
//!
//! A handler takes `AppPath(OfferPath { tenant_name, offer_id })` (decoded, and refused with
//! 400 before any query, by [`crate::http::AppPath`]); its annotation lists
//! `params(OfferPath)`, so the OpenAPI parameters come from the same struct. The loaders
//! answer 404 naming the row when the tenant has none (another tenant's row is the same 404:
//! the queries filter by tenant).

use serde::Deserialize;
use utoipa::IntoParams;

use uuid::Uuid;

use crate::db::campaigns::{self, Campaign};
use crate::db::customers::{self, Customer};
use crate::db::offers::{self, Offer};
use crate::db::{GenericClient, TenantExecutor};
use crate::domain::{Channel, RoleName, TenantName, Username};
use crate::error::ApiError;

/// `/tenants/{tenant_name}/…`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TenantPath {
    /// The tenant's name.
    pub tenant_name: TenantName,
}

/// 404 for user `name`.
#[must_use]
pub fn user_not_found(name: &Username) -> ApiError {
    ApiError::NotFound(format!("no user named {name}"))
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
    /// The offer, read through `client` (a transaction or read of the path's tenant), locked until the
    /// transaction ends with `for_update`.
    ///
    /// # Errors
    /// 404 if the tenant has no such offer; database failures.
    pub async fn load(
        &self,
        client: &impl TenantExecutor,
        for_update: bool,
    ) -> Result<Offer, ApiError> {
        debug_assert_eq!(client.tenant(), &self.tenant_name);
        offers::get(client, self.offer_id, for_update)
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
    /// The campaign, read through `client` (a transaction or read of the path's tenant), locked until the
    /// transaction ends with `for_update`.
    ///
    /// # Errors
    /// 404 if the tenant has no such campaign; database failures.
    pub async fn load(
        &self,
        client: &impl TenantExecutor,
        for_update: bool,
    ) -> Result<Campaign, ApiError> {
        debug_assert_eq!(client.tenant(), &self.tenant_name);
        campaigns::get(client, self.campaign_id, for_update)
            .await?
            .ok_or_else(|| campaign_not_found(self.campaign_id))
    }
}

/// `/tenants/{tenant_name}/offers/{offer_id}/versions/{version}…`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct OfferVersionPath {
    /// The tenant's name.
    pub tenant_name: TenantName,
    /// The offer's id.
    pub offer_id: i32,
    /// The version number (1, 2, …).
    pub version: i32,
}

/// `/sa/tenants/{tenant_name}/roles/{role}`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct RolePath {
    /// The tenant's name.
    pub tenant_name: TenantName,
    /// The role's name.
    pub role: RoleName,
}

/// `/tenants/{tenant_name}/members/{username}`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct MemberPath {
    /// The tenant's name.
    pub tenant_name: TenantName,
    /// The member's username.
    pub username: Username,
}

/// `/tenants/{tenant_name}/members/{username}/roles/{role}`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct MemberRolePath {
    /// The tenant's name.
    pub tenant_name: TenantName,
    /// The member's username.
    pub username: Username,
    /// The role to take away.
    pub role: RoleName,
}

/// `/customers/{customer_id}…` (the platform's customer records, super admin routes).
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct CustomerPath {
    /// The customer's id.
    pub customer_id: Uuid,
}

/// `/customers/{customer_id}/consents/{channel}`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct CustomerChannelPath {
    /// The customer's id.
    pub customer_id: Uuid,
    /// The channel.
    pub channel: Channel,
}

/// 404 for customer `id`.
#[must_use]
pub fn customer_not_found(id: Uuid) -> ApiError {
    ApiError::NotFound(format!("no customer {id}"))
}

impl CustomerPath {
    /// The customer, read through `client` (a platform connection or transaction).
    ///
    /// # Errors
    /// 404 if there is no such customer; database failures.
    pub async fn load(&self, client: &impl GenericClient) -> Result<Customer, ApiError> {
        customers::get(client, self.customer_id)
            .await?
            .ok_or_else(|| customer_not_found(self.customer_id))
    }
}
