//! `offers-api`: the maker–checker offer workflow of one tenant, under
//! `/tenants/{tenant_name}/offers`.
//!
//! Every handler parses its input, checks a [`Permission`] in the tenant of the path (403
//! without it), then works inside a tenant transaction where every query filters by that
//! tenant (an offer of another tenant is 404). Every change writes its audit row in the same
//! transaction. Single-offer answers carry `ETag: "<version>"`; a write with a stale
//! `If-Match` answers 412. Content and its audit trail are in
//! [`offers`], the workflow steps in [`workflow`], approved versions, their diffs and
//! retirement in [`versions`]; [`routes`] is the route table.

mod etag;
mod offers;
mod routes;
mod versions;
mod workflow;

pub use routes::{openapi, router, routes};
