//! Domain newtypes that parse instead of validate: once a value has one of these types, it is
//! known to be well-formed, so handlers and SQL never see an unchecked name.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a name was refused (the message is shown to clients).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NameError(String);

fn check_name(
    value: &str,
    what: &str,
    pattern: &str,
    max: usize,
    first_ok: impl Fn(char) -> bool,
    rest_ok: impl Fn(char) -> bool,
) -> Result<(), NameError> {
    let mut chars = value.chars();
    let len = value.chars().count();
    let valid =
        (2..=max).contains(&len) && chars.next().is_some_and(&first_ok) && chars.all(&rest_ok);
    if valid {
        Ok(())
    } else {
        Err(NameError(format!("{what} must match {pattern}")))
    }
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $what:literal, $pattern:literal, $max:literal, $first:expr, $rest:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            #[doc = concat!("Parses a ", $what, ": `", $pattern, "`.")]
            ///
            /// # Errors
            /// [`NameError`] saying which pattern the value must match.
            pub fn parse(value: impl Into<String>) -> Result<Self, NameError> {
                let value = value.into();
                check_name(&value, $what, $pattern, $max, $first, $rest)?;
                Ok(Self(value))
            }

            /// The name as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .pattern(Some($pattern))
                    .min_length(Some(2))
                    .max_length(Some($max))
                    .description(Some(concat!("A ", $what, ": `", $pattern, "`.")))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}

        impl TryFrom<String> for $name {
            type Error = NameError;
            fn try_from(value: String) -> Result<Self, NameError> {
                Self::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

fn lower_alpha(c: char) -> bool {
    c.is_ascii_lowercase()
}

fn lower_alnum_underscore(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'
}

name_type!(
    /// A tenant's name, e.g. `credit_card`: `^[a-z][a-z0-9_]{1,49}$`.
    TenantName, "tenant name", "^[a-z][a-z0-9_]{1,49}$", 50, lower_alpha, lower_alnum_underscore
);

name_type!(
    /// A role's name inside a tenant, e.g. `approver`: `^[a-z][a-z0-9_]{1,49}$`.
    RoleName, "role name", "^[a-z][a-z0-9_]{1,49}$", 50, lower_alpha, lower_alnum_underscore
);

name_type!(
    /// A username: `^[a-z0-9][a-z0-9._@-]{1,63}$` (lower case, so `Alice` and `alice` cannot
    /// be two accounts; e-mail addresses fit).
    Username, "username", "^[a-z0-9][a-z0-9._@-]{1,63}$", 64,
    |c: char| c.is_ascii_lowercase() || c.is_ascii_digit(),
    |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '@' | '-')
);

/// An offer's place in the maker–checker workflow (the seed's CHECK values):
/// `draft` → `submitted` → `approved` | `rejected`; editing a rejected offer returns it to
/// `draft`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OfferStatus {
    /// Being written; editable by makers.
    Draft,
    /// Waiting for a checker.
    Submitted,
    /// Approved: never edited in place; campaigns may use it.
    Approved,
    /// Sent back by a checker; editable by makers.
    Rejected,
}

impl OfferStatus {
    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Submitted => "submitted",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
        }
    }

    /// Parses a stored name.
    ///
    /// # Errors
    /// [`NameError`] for anything else.
    pub fn parse(value: &str) -> Result<Self, NameError> {
        match value {
            "draft" => Ok(Self::Draft),
            "submitted" => Ok(Self::Submitted),
            "approved" => Ok(Self::Approved),
            "rejected" => Ok(Self::Rejected),
            other => Err(NameError(format!("unknown offer status {other:?}"))),
        }
    }
}

impl fmt::Display for OfferStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Declares a closed set of stored names as an enum with `as_str`, `parse` and `Display`;
/// serde uses the same snake_case names.
macro_rules! stored_enum {
    ($(#[$doc:meta])* $name:ident, $what:literal { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            /// Every value.
            pub const ALL: &'static [$name] = &[$(Self::$variant),+];

            /// The stored name.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }

            /// Parses a stored name.
            ///
            /// # Errors
            /// [`NameError`] for anything else.
            pub fn parse(value: &str) -> Result<Self, NameError> {
                match value {
                    $($text => Ok(Self::$variant),)+
                    other => Err(NameError(format!(concat!("unknown ", $what, " {:?}"), other))),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

stored_enum!(
    /// A campaign's lifecycle (the seed's CHECK values): `draft` → `active` ⇄ `paused`,
    /// `active` → `completed`.
    CampaignStatus, "campaign status" {
        /// Being prepared; makers may still edit it.
        Draft = "draft",
        /// Activated before its start: nothing is released until the scheduler starts it at
        /// `starts_at` (then `active`).
        Scheduled = "scheduled",
        /// Running.
        Active = "active",
        /// Stopped for now; may be resumed.
        Paused = "paused",
        /// Finished for good: completed by hand, cancelled before its start, or ended at
        /// `ends_at` by the scheduler.
        Completed = "completed",
    }
);

impl CampaignStatus {
    /// Whether the lifecycle allows a request to move from `self` to `next`: draft → active,
    /// active ⇄ paused, scheduled → paused, active or scheduled → completed. A request for
    /// `active` before the campaign's start makes it `scheduled` instead (the API decides by
    /// the database clock); only the scheduler moves scheduled → active.
    pub fn can_become(self, next: CampaignStatus) -> bool {
        use CampaignStatus::*;
        matches!(
            (self, next),
            (Draft, Active)
                | (Active, Paused)
                | (Scheduled, Paused)
                | (Paused, Active)
                | (Active, Completed)
                | (Scheduled, Completed)
        )
    }
}

stored_enum!(
    /// Where customer selection for a campaign stands.
    ProcessingStatus, "processing status" {
        /// Never processed.
        Idle = "idle",
        /// A job is on the queue.
        Queued = "queued",
        /// The job was split into customer-id ranges that are being expanded.
        Running = "running",
        /// The last job finished; `matched_count` is current.
        Done = "done",
        /// The last attempt failed; `last_error` says why (a redelivery may still succeed).
        Failed = "failed",
    }
);

stored_enum!(
    /// What happened to one delivery (the seed's CHECK values on `campaign_customers`).
    DeliveryStatus, "delivery status" {
        /// Selected, not yet reported by a provider.
        Pending = "pending",
        /// Delivered by the provider.
        Sent = "sent",
        /// The provider could not deliver it.
        Failed = "failed",
        /// Matched, but never to be sent: no consent for the campaign's channel, or the
        /// customer is at the platform's contact cap (`suppression_reason` says which).
        Suppressed = "suppressed",
        /// Released, but never reported by the end of its campaign (`expired_at`): its
        /// contact slot is freed. A report dated inside the campaign still applies during the
        /// grace period (`CAMPAIGN_REPORT_GRACE_DAYS`).
        Expired = "expired",
        /// In the campaign's control group (its holdout): would have been released, is
        /// never contacted (`assigned_at` says when it was drawn).
        Control = "control",
        /// Sent, and reported delivered by the provider (`delivered_at`).
        Delivered = "delivered",
        /// Sent, and reported opened (`opened_at`).
        Opened = "opened",
        /// Sent, and a click in it reported (`clicked_at`): the furthest stage.
        Clicked = "clicked",
    }
);

stored_enum!(
    /// What changed in a tenant's access (`tenant_access_audit_logs.action`).
    AccessAction, "access audit action" {
        /// A custom role was created.
        RoleCreated = "role_created",
        /// A role's description or permissions changed.
        RoleUpdated = "role_updated",
        /// A custom role was deleted.
        RoleDeleted = "role_deleted",
        /// A user was given a role.
        RoleAssigned = "role_assigned",
        /// A user's role was taken away (directly, or because the role or the user was
        /// deleted).
        RoleRemoved = "role_removed",
    }
);

stored_enum!(
    /// What a campaign is sent through, and so which consent it needs.
    Channel, "channel" {
        /// E-mail, to `customers.email`.
        Email = "email",
        /// Text message, to `customers.phone`.
        Sms = "sms",
        /// App push notification, to the customer's id in the bank's app.
        Push = "push",
        /// Phone call, to `customers.phone`.
        Call = "call",
    }
);

stored_enum!(
    /// What a customer said about marketing through one channel.
    ConsentStatus, "consent status" {
        /// Agreed to be contacted.
        OptedIn = "opted_in",
        /// Refused (or unsubscribed, or complained).
        OptedOut = "opted_out",
        /// Said nothing we know of (no record).
        Unknown = "unknown",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_names_follow_the_pattern() {
        for ok in [
            "credit_card",
            "loan",
            "ab",
            "a1_b2",
            &format!("a{}", "b".repeat(49)),
        ] {
            assert!(TenantName::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a",
            "Credit",
            "1loan",
            "_x",
            "credit-card",
            "loan ",
            "cr\u{e9}dit",
            "x'; drop table users; --",
            &format!("a{}", "b".repeat(50)),
        ] {
            assert!(TenantName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn usernames_are_lower_case_and_may_be_email_addresses() {
        for ok in ["alice", "a.b-c_d", "maker@bank.example", "007"] {
            assert!(Username::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["Alice", "a", "-alice", "al ice", "al'ice", &"a".repeat(65)] {
            assert!(Username::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn deserialising_parses() {
        let err = serde_json::from_str::<TenantName>("\"Bad Name\"").expect_err("must be refused");
        assert!(err.to_string().contains("tenant name must match"));
        let ok: RoleName = serde_json::from_str("\"approver\"").expect("valid");
        assert_eq!(ok.as_str(), "approver");
    }
}
