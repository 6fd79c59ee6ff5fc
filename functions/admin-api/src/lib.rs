//! `admin-api`: who may do what. The super admin's routes — tenants, users, role
//! assignments, roles and the API keys of the delivery webhook — and the routes through
//! which a tenant's own admins manage its members.
//!
//! Every `/sa/...` route requires a super admin ([`shared::extract::SuperAdmin`]); the
//! `/tenants/{tenant_name}/members...` and `/tenants/{tenant_name}/access-audit-logs` routes
//! require `tenant.members.manage` in that tenant. Lists take `limit` (default 50, at most
//! 200) and `offset`. `PUT` changes only the fields present in the body (`null` clears a
//! nullable field). Creation answers 201 with `Location`; deletion 204.
//!
//! One module per resource holds its handlers and bodies (the shape of the Rust package
//! registry's controllers): [`tenants`], [`users`], [`assignments`], [`roles`], [`members`]
//! and [`webhook_keys`]; [`routes`] keeps the route table and the OpenAPI export.

mod assignments;
mod contact_policy;
mod members;
mod roles;
mod routes;
mod tenants;
mod users;
mod webhook_keys;

pub use routes::{openapi, router, routes};
pub use webhook_keys::{IssuedWebhookKey, issue_webhook_key};
