//! Permissions, and the four default roles every tenant is created with.
//!
//! Handlers check a [`Permission`], never a role name: roles are rows in `tenant_roles`
//! holding a set of permissions, so a super admin can define custom roles per tenant. The
//! default mapping follows DESIGN.md ("Auth and tenancy").

use std::fmt;
use std::str::FromStr;

/// One thing a principal may do inside a tenant. Stored in `tenant_roles.permissions` by its
/// dotted name (`offer.read`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    /// `offer.read`: list and read offers.
    OfferRead,
    /// `offer.create`: create offers.
    OfferCreate,
    /// `offer.edit`: edit an offer while it is `draft` or `rejected`.
    OfferEdit,
    /// `offer.edit_any`: edit any offer that is not approved.
    OfferEditAny,
    /// `offer.submit`: submit a draft for approval.
    OfferSubmit,
    /// `offer.review`: approve or reject a submitted offer.
    OfferReview,
    /// `offer.comment`: comment on an offer.
    OfferComment,
    /// `offer.delete`: delete an unapproved offer with no active campaign.
    OfferDelete,
    /// `offer.audit`: read an offer's audit log.
    OfferAudit,
    /// `campaign.read`: list and read campaigns and their customers.
    CampaignRead,
    /// `campaign.write`: create campaigns and edit them while `draft`.
    CampaignWrite,
    /// `campaign.manage`: edit any campaign and change its status.
    CampaignManage,
    /// `campaign.delete`: delete a campaign.
    CampaignDelete,
    /// `campaign.process`: trigger customer selection for a campaign.
    CampaignProcess,
    /// `customer.contact.read`: see customers' contact details (name, e-mail, phone) in
    /// campaign customer lists.
    CustomerContactRead,
}

impl Permission {
    /// Every permission, in declaration order.
    pub const ALL: [Permission; 15] = [
        Self::OfferRead,
        Self::OfferCreate,
        Self::OfferEdit,
        Self::OfferEditAny,
        Self::OfferSubmit,
        Self::OfferReview,
        Self::OfferComment,
        Self::OfferDelete,
        Self::OfferAudit,
        Self::CampaignRead,
        Self::CampaignWrite,
        Self::CampaignManage,
        Self::CampaignDelete,
        Self::CampaignProcess,
        Self::CustomerContactRead,
    ];

    /// The stored, dotted name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::OfferRead => "offer.read",
            Self::OfferCreate => "offer.create",
            Self::OfferEdit => "offer.edit",
            Self::OfferEditAny => "offer.edit_any",
            Self::OfferSubmit => "offer.submit",
            Self::OfferReview => "offer.review",
            Self::OfferComment => "offer.comment",
            Self::OfferDelete => "offer.delete",
            Self::OfferAudit => "offer.audit",
            Self::CampaignRead => "campaign.read",
            Self::CampaignWrite => "campaign.write",
            Self::CampaignManage => "campaign.manage",
            Self::CampaignDelete => "campaign.delete",
            Self::CampaignProcess => "campaign.process",
            Self::CustomerContactRead => "customer.contact.read",
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no permission.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown permission {0:?}")]
pub struct UnknownPermission(pub String);

impl FromStr for Permission {
    type Err = UnknownPermission;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| UnknownPermission(s.to_owned()))
    }
}

/// The roles created with every tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultRole {
    /// `admin`: everything inside the tenant.
    Admin,
    /// `create`: the maker — writes offers and campaigns.
    Create,
    /// `approver`: the checker — reviews submitted offers.
    Approver,
    /// `read_only`: reads offers and campaigns.
    ReadOnly,
}

impl DefaultRole {
    /// All default roles.
    pub const ALL: [DefaultRole; 4] = [Self::Admin, Self::Create, Self::Approver, Self::ReadOnly];

    /// The role's name in `tenant_roles.role`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Create => "create",
            Self::Approver => "approver",
            Self::ReadOnly => "read_only",
        }
    }

    /// One-line description stored with the role.
    pub const fn description(self) -> &'static str {
        match self {
            Self::Admin => "Full control of the tenant's offers and campaigns",
            Self::Create => "Writes offers and campaigns (maker)",
            Self::Approver => "Approves or rejects submitted offers (checker)",
            Self::ReadOnly => "Reads offers and campaigns",
        }
    }

    /// The role's permissions (DESIGN.md, default mapping).
    pub fn permissions(self) -> Vec<Permission> {
        use Permission::*;
        match self {
            Self::Admin => Permission::ALL.to_vec(),
            Self::Create => vec![
                OfferRead,
                OfferCreate,
                OfferEdit,
                OfferSubmit,
                OfferComment,
                CampaignRead,
                CampaignWrite,
            ],
            Self::Approver => vec![OfferRead, OfferReview, CampaignRead],
            Self::ReadOnly => vec![OfferRead, CampaignRead],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in Permission::ALL {
            assert_eq!(p.as_str().parse::<Permission>(), Ok(p));
        }
        assert!("offer.approve_everything".parse::<Permission>().is_err());
    }

    #[test]
    fn default_mapping_matches_the_design_table() {
        use Permission::*;
        let has = |r: DefaultRole, p: Permission| r.permissions().contains(&p);
        // (permission, admin, create, approver, read_only)
        let table = [
            (OfferRead, true, true, true, true),
            (CampaignRead, true, true, true, true),
            (OfferCreate, true, true, false, false),
            (OfferEdit, true, true, false, false),
            (OfferSubmit, true, true, false, false),
            (OfferComment, true, true, false, false),
            (OfferEditAny, true, false, false, false),
            (OfferDelete, true, false, false, false),
            (OfferReview, true, false, true, false),
            (OfferAudit, true, false, false, false),
            (CampaignWrite, true, true, false, false),
            (CampaignManage, true, false, false, false),
            (CampaignDelete, true, false, false, false),
            (CampaignProcess, true, false, false, false),
            (CustomerContactRead, true, false, false, false),
        ];
        assert_eq!(table.len(), Permission::ALL.len());
        for (p, admin, create, approver, read_only) in table {
            assert_eq!(has(DefaultRole::Admin, p), admin, "admin {p}");
            assert_eq!(has(DefaultRole::Create, p), create, "create {p}");
            assert_eq!(has(DefaultRole::Approver, p), approver, "approver {p}");
            assert_eq!(has(DefaultRole::ReadOnly, p), read_only, "read_only {p}");
        }
    }
}
