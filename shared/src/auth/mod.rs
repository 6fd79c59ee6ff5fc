//! Authentication and authorisation: password hashing ([`password`]), access tokens
//! ([`token`]), permissions and default roles ([`permission`]), and the request principal
//! ([`principal`]: its data and the permission check; the `extract` module builds it per
//! request).

pub mod api_key;
pub mod password;
pub mod permission;
pub mod principal;
pub mod token;

pub use permission::{DefaultRole, Permission};
pub use principal::{Principal, TenantAccess};
