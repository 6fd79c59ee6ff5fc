//! The request principal: who is calling, re-read from the database on every request.
//!
//! The bearer token (RFC 6750) proves identity only. Roles and permissions come from one
//! indexed query per request, so a removed role, a deleted user or a password change
//! (`users.tokens_valid_after`) takes effect on the caller's next request, whatever the token
//! says.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use chrono::Utc;

use crate::auth::Permission;
use crate::db;
use crate::domain::{RoleName, TenantName, Username};
use crate::error::ApiError;
use crate::state::AppState;

/// What the principal holds inside one tenant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantAccess {
    /// Assigned role names, sorted.
    pub roles: Vec<RoleName>,
    /// Union of those roles' permissions.
    pub permissions: BTreeSet<Permission>,
}

/// An authenticated user, as the database says now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The username (`sub`).
    pub username: Username,
    /// Display name.
    pub full_name: Option<String>,
    /// Super admins manage tenants, users and roles; inside a tenant they act only through
    /// roles assigned there.
    pub is_super_admin: bool,
    /// Roles and permissions per tenant.
    pub tenants: BTreeMap<TenantName, TenantAccess>,
}

impl Principal {
    /// Requires `permission` in `tenant`.
    ///
    /// # Errors
    /// 403 if the principal has no role in the tenant (whether or not it exists: the answer
    /// does not reveal which tenants exist) or lacks the permission there.
    pub fn require(
        &self,
        tenant: &TenantName,
        permission: Permission,
    ) -> Result<&TenantAccess, ApiError> {
        let access = self
            .tenants
            .get(tenant)
            .ok_or_else(|| ApiError::Forbidden(format!("you have no role in tenant {tenant}")))?;
        if access.permissions.contains(&permission) {
            Ok(access)
        } else {
            Err(ApiError::Forbidden(format!(
                "your roles in tenant {tenant} do not grant {permission}"
            )))
        }
    }

    /// Whether the principal holds `permission` in `tenant` (for what a response shows, not
    /// for access: use [`Principal::require`] for that).
    pub fn can(&self, tenant: &TenantName, permission: Permission) -> bool {
        self.tenants
            .get(tenant)
            .is_some_and(|access| access.permissions.contains(&permission))
    }

    /// `{tenant_name: [roles]}`, as written into tokens and `/users/me/tenants`.
    pub fn roles_by_tenant(&self) -> BTreeMap<String, Vec<String>> {
        self.tenants
            .iter()
            .map(|(tenant, access)| {
                let roles = access.roles.iter().map(|r| r.to_string()).collect();
                (tenant.to_string(), roles)
            })
            .collect()
    }
}

fn bearer_token(parts: &Parts) -> Result<&str, ApiError> {
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or(ApiError::Unauthorized("missing bearer token"))?
        .to_str()
        .map_err(|_| ApiError::Unauthorized("malformed Authorization header"))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or(ApiError::Unauthorized("malformed Authorization header"))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::Unauthorized("expected a bearer token"));
    }
    Ok(token.trim())
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(cached) = parts.extensions.get::<Principal>() {
            return Ok(cached.clone());
        }
        let token = bearer_token(parts)?;
        let now = Utc::now();
        let claims = state.tokens.verify(token, now).map_err(|err| {
            tracing::info!(error = %err, "bearer token rejected");
            ApiError::Unauthorized("invalid or expired token")
        })?;
        let username =
            Username::parse(claims.sub).map_err(|_| ApiError::Unauthorized("invalid token"))?;
        let client = state.platform.get().await?;
        let Some(record) = db::users::load_principal(&client, &username).await? else {
            return Err(ApiError::Unauthorized("invalid or expired token"));
        };
        if claims.iat_ms < record.tokens_valid_after.timestamp_millis() {
            return Err(ApiError::Unauthorized(
                "token was issued before the last password change; sign in again",
            ));
        }
        let principal = record.principal;
        tracing::Span::current().record("user.name", principal.username.as_str());
        parts.extensions.insert(principal.clone());
        parts.extensions.insert(Account(record.account));
        Ok(principal)
    }
}

/// The caller's account (`users` row, never the password hash), read by the same statement as
/// its [`Principal`]: authenticating as [`Principal`] does, with no further query.
#[derive(Debug, Clone)]
pub struct Account(pub db::users::User);

impl FromRequestParts<AppState> for Account {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Principal::from_request_parts(parts, state).await?;
        parts.extensions.get::<Account>().cloned().ok_or_else(|| {
            ApiError::internal("the principal was authenticated without its account")
        })
    }
}

/// A [`Principal`] that is a super admin; any other caller gets 403.
#[derive(Debug, Clone)]
pub struct SuperAdmin(pub Principal);

impl FromRequestParts<AppState> for SuperAdmin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal = Principal::from_request_parts(parts, state).await?;
        if principal.is_super_admin {
            Ok(SuperAdmin(principal))
        } else {
            Err(ApiError::Forbidden(
                "this operation requires a super admin".into(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal() -> Principal {
        let tenant = TenantName::parse("credit_card").expect("name");
        let access = TenantAccess {
            roles: vec![RoleName::parse("approver").expect("role")],
            permissions: [Permission::OfferRead, Permission::OfferReview].into(),
        };
        Principal {
            username: Username::parse("checker").expect("name"),
            full_name: None,
            is_super_admin: true,
            tenants: BTreeMap::from([(tenant, access)]),
        }
    }

    #[test]
    fn permissions_are_checked_per_tenant() {
        let p = principal();
        let cc = TenantName::parse("credit_card").expect("name");
        let loan = TenantName::parse("loan").expect("name");
        assert!(p.require(&cc, Permission::OfferReview).is_ok());
        assert!(matches!(
            p.require(&cc, Permission::OfferCreate),
            Err(ApiError::Forbidden(_))
        ));
        // A super admin without a role in the tenant has no access there.
        assert!(matches!(
            p.require(&loan, Permission::OfferRead),
            Err(ApiError::Forbidden(_))
        ));
    }

    #[test]
    fn roles_by_tenant_lists_role_names() {
        assert_eq!(
            principal().roles_by_tenant(),
            BTreeMap::from([("credit_card".to_string(), vec!["approver".to_string()])])
        );
    }
}
