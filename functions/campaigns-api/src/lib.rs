//! `campaigns-api`: a tenant's campaigns under `/tenants/{tenant_name}/campaigns`, their
//! customers, and audience previews. Creating a campaign and `process-customers` write a
//! selection job to the outbox in their transaction, send it to the campaign queue right after
//! the commit (see `campaign-processor`, `shared::relay`), and answer 202 with the campaign's
//! processing state.
//!
//! A campaign's audience is complete or invisible: until its processing is `done`, its
//! customers and their summary answer 409 and it cannot become `active`.
//!
//! Permissions (docs/security.md, "Authentication and authorisation"): `campaign.read` to read; `campaign.write` to create, preview and
//! edit a `draft`; `campaign.manage` to edit any campaign and change its status;
//! `campaign.delete`; `campaign.process`. Every query filters by the tenant of the path, so
//! another tenant's campaign is 404.
//!
//! A campaign pins the offer version it delivers when it is created; moving it to another
//! version is explicit and audited ([`offer_version`]).
//!
//! Creation, listing and re-processing are in [`campaigns`], status changes in
//! [`lifecycle`], customers and previews in [`audience`], conversions and a campaign's
//! results (its holdout against its treated group) in [`results`]; [`routes`] is the route
//! table.

mod audience;
mod campaigns;
mod lifecycle;
mod offer_version;
mod results;
mod routes;

pub use routes::{openapi, router, routes};
