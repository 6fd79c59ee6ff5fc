//! The request principal: who is calling, with the roles and permissions the database holds
//! for them now, and the permission check every handler makes. The extractor that builds it
//! for each request is in the `extract` module.

use std::collections::{BTreeMap, BTreeSet};

use crate::auth::Permission;
use crate::domain::{RoleName, TenantName, Username};
use crate::error::ApiError;

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
