//! `customers-api`: the customer base under `/customers`, for super admins.
//!
//! Customers are shared by every tenant's campaigns, so they are not tenant data; only a
//! super admin reads or writes them here (bulk loads also run through `offerctl
//! import-customers`). Lists page by id (`limit` / `after`, keyset pagination), because the
//! table grows to millions of rows.

mod consents;
mod customers;
mod routes;

pub use routes::{openapi, router, routes};
