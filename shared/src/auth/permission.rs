//! Permissions, and the four default roles every tenant is created with.
//!
//! Handlers check a [`Permission`], never a role name: roles are rows in `tenant_roles`
//! holding a set of permissions, so a super admin can define custom roles per tenant. The
//! default mapping is [`DefaultRole::permissions`] (docs/security.md, "Authentication and
//! authorisation").

use std::fmt;
use std::str::FromStr;

/// One thing a principal may do inside a tenant. Stored in `tenant_roles.permissions`, and
/// written in JSON, by its dotted name (`offer.read`); reading an unknown name fails with a
/// message naming it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, utoipa::ToSchema,
)]
pub enum Permission {
    /// `offer.read`: list and read offers.
    #[serde(rename = "offer.read")]
    OfferRead,
    /// `offer.create`: create offers.
    #[serde(rename = "offer.create")]
    OfferCreate,
    /// `offer.edit`: edit an offer while it is `draft` or `rejected`.
    #[serde(rename = "offer.edit")]
    OfferEdit,
    /// `offer.edit_any`: edit any offer that is not approved.
    #[serde(rename = "offer.edit_any")]
    OfferEditAny,
    /// `offer.submit`: submit a draft for approval.
    #[serde(rename = "offer.submit")]
    OfferSubmit,
    /// `offer.review`: approve or reject a submitted offer.
    #[serde(rename = "offer.review")]
    OfferReview,
    /// `offer.comment`: comment on an offer.
    #[serde(rename = "offer.comment")]
    OfferComment,
    /// `offer.delete`: delete an unapproved offer with no active campaign.
    #[serde(rename = "offer.delete")]
    OfferDelete,
    /// `offer.audit`: read an offer's audit log.
    #[serde(rename = "offer.audit")]
    OfferAudit,
    /// `campaign.read`: list and read campaigns and their customers.
    #[serde(rename = "campaign.read")]
    CampaignRead,
    /// `campaign.write`: create campaigns and edit them while `draft`.
    #[serde(rename = "campaign.write")]
    CampaignWrite,
    /// `campaign.manage`: edit any campaign and change its status.
    #[serde(rename = "campaign.manage")]
    CampaignManage,
    /// `campaign.delete`: delete a campaign.
    #[serde(rename = "campaign.delete")]
    CampaignDelete,
    /// `campaign.process`: trigger customer selection for a campaign.
    #[serde(rename = "campaign.process")]
    CampaignProcess,
    /// `customer.contact.read`: see customers' contact details (name, e-mail, phone) in
    /// campaign customer lists.
    #[serde(rename = "customer.contact.read")]
    CustomerContactRead,
    /// `tenant.members.manage`: list the tenant's members, assign and remove their roles
    /// (never a role carrying a permission the caller lacks), read the access audit trail.
    #[serde(rename = "tenant.members.manage")]
    TenantMembersManage,
    /// `conversion.write`: record conversions (what the bank's systems saw customers do)
    /// for the tenant's campaign results.
    #[serde(rename = "conversion.write")]
    ConversionWrite,
}

impl Permission {
    /// Every permission, in declaration order.
    pub const ALL: [Permission; 17] = [
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
        Self::TenantMembersManage,
        Self::ConversionWrite,
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
            Self::TenantMembersManage => "tenant.members.manage",
            Self::ConversionWrite => "conversion.write",
        }
    }

    /// What the permission allows, in one line (`GET /sa/permissions`).
    pub const fn description(self) -> &'static str {
        match self {
            Self::OfferRead => "List and read the tenant's offers",
            Self::OfferCreate => "Create offers",
            Self::OfferEdit => "Edit an offer while it is draft or rejected",
            Self::OfferEditAny => "Edit any offer that is not approved",
            Self::OfferSubmit => "Submit a draft offer for approval",
            Self::OfferReview => "Approve or reject a submitted offer (checker)",
            Self::OfferComment => "Comment on an offer",
            Self::OfferDelete => "Delete an unapproved offer with no active campaign",
            Self::OfferAudit => "Read an offer's audit trail",
            Self::CampaignRead => "List and read campaigns, their audiences and reports",
            Self::CampaignWrite => "Create campaigns and edit them while draft",
            Self::CampaignManage => "Edit any campaign and change its status",
            Self::CampaignDelete => "Delete a campaign with no sent deliveries",
            Self::CampaignProcess => "Trigger customer selection for a campaign",
            Self::CustomerContactRead => {
                "See customers' contact details (name, e-mail, phone) in campaign audiences"
            }
            Self::TenantMembersManage => {
                "List the tenant's members, assign and remove roles no broader than one's own, \
                 read the access audit trail"
            }
            Self::ConversionWrite => {
                "Record conversions (what the bank's systems saw customers do) for campaign results"
            }
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

impl<'de> serde::Deserialize<'de> for Permission {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(|_| {
            serde::de::Error::custom(format!(
                "unknown permission {name:?} (GET /sa/permissions lists them)"
            ))
        })
    }
}

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

    /// The role's permissions (the default mapping).
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
            let json = serde_json::to_string(&p).expect("serialise");
            assert_eq!(json, format!("\"{}\"", p.as_str()));
            assert_eq!(serde_json::from_str::<Permission>(&json).expect("read"), p);
        }
        let err = serde_json::from_str::<Permission>("\"offer.approve_all\"").expect_err("unknown");
        assert!(
            err.to_string()
                .contains("unknown permission \"offer.approve_all\""),
            "{err}"
        );
        assert!("offer.approve_everything".parse::<Permission>().is_err());
    }

    #[test]
    fn every_permission_is_described_on_one_line() {
        for p in Permission::ALL {
            let text = p.description();
            assert!(!text.is_empty() && !text.contains('\n'), "{p}");
        }
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
            (TenantMembersManage, true, false, false, false),
            (ConversionWrite, true, false, false, false),
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
