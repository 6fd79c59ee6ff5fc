//! What a data file holds, told by its S3 key: customer records (`imports/…`, platform data)
//! or one tenant's conversions (`conversions/<tenant>/…`). The import's streaming, limits,
//! ledger, parts and result object are the same for both; the kind decides the columns a
//! row is checked against, the table its rows are staged in and the statement that applies
//! them.

use crate::domain::TenantName;

/// Where S3 events for customer files come from (`template.yaml`'s notification filter).
pub const IMPORTS_PREFIX: &str = "imports/";
/// Where S3 events for conversion files come from: `conversions/<tenant>/<name>`.
pub const CONVERSIONS_PREFIX: &str = "conversions/";

/// The kind of a data file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileKind {
    /// Customer records, upserted by e-mail (`customers`, platform data).
    Customers,
    /// Conversions of one tenant (`conversions`, [`crate::db::conversions`]), recorded once
    /// per `event_id`.
    Conversions {
        /// The tenant the key names (its existence is checked when the file is imported).
        tenant: TenantName,
    },
}

impl FileKind {
    /// The kind of the object at `key`: [`IMPORTS_PREFIX`] for customers,
    /// [`CONVERSIONS_PREFIX`]`<tenant>/<name>` for a tenant's conversions.
    ///
    /// # Errors
    /// Why the key names no kind (another prefix, or no valid tenant name after
    /// `conversions/`), as a sentence for the result object.
    pub fn of_key(key: &str) -> Result<Self, String> {
        if key.starts_with(IMPORTS_PREFIX) {
            return Ok(Self::Customers);
        }
        let Some(rest) = key.strip_prefix(CONVERSIONS_PREFIX) else {
            return Err(format!(
                "the key is under neither {IMPORTS_PREFIX} (customers) nor \
                 {CONVERSIONS_PREFIX}<tenant>/ (conversions)"
            ));
        };
        let tenant = match rest.split_once('/') {
            Some((tenant, name)) if !name.is_empty() => tenant,
            _ => {
                return Err(format!(
                    "a conversion file's key is {CONVERSIONS_PREFIX}<tenant>/<name>"
                ));
            }
        };
        TenantName::parse(tenant)
            .map(|tenant| Self::Conversions { tenant })
            .map_err(|_| format!("{tenant:?} after {CONVERSIONS_PREFIX} is not a tenant name"))
    }

    /// `customers` or `conversions`, as result objects and logs name it.
    #[must_use]
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::Customers => "customers",
            Self::Conversions { .. } => "conversions",
        }
    }

    /// The tenant whose rows the file writes (none for customer records, which span
    /// tenants).
    #[must_use]
    pub const fn tenant(&self) -> Option<&TenantName> {
        match self {
            Self::Customers => None,
            Self::Conversions { tenant } => Some(tenant),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_names_the_kind_and_the_tenant() {
        assert_eq!(
            FileKind::of_key("imports/a.csv").expect("valid"),
            FileKind::Customers
        );
        let kind = FileKind::of_key("conversions/credit_card/2026-12.csv.gz").expect("valid");
        assert_eq!(kind.tenant().map(TenantName::as_str), Some("credit_card"));
        assert_eq!(kind.as_str(), "conversions");
        for bad in [
            "conversions/credit_card",
            "conversions/credit_card/",
            "conversions/Bad Name/x.csv",
            "other/x.csv",
            "results/imports/x.csv.json",
        ] {
            assert!(FileKind::of_key(bad).is_err(), "{bad}");
        }
    }
}
