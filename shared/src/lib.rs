//! Library shared by every Offer Management Platform function.
//!
//! A tour of the modules, in the order a request meets them:
//!
//! - [`config`]: every environment variable, read once in `main` in typed sections
//!   ([`config::Config::from_env`] for the API); a missing or malformed variable stops
//!   start-up and names the variable.
//! - [`telemetry`]: tracing set-up (JSON on Lambda, readable locally).
//! - [`state`]: [`state::AppState`], the pool, token keys and password hasher built once and
//!   shared by every handler.
//! - [`http`]: extractors that answer malformed input in our error format ([`http::AppJson`],
//!   [`http::AppQuery`], [`http::AppPath`]) and the service wrapper used by both the local
//!   gateway and Lambda; [`pagination`]: `?limit=&offset=` and keyset pages.
//! - [`extract`]: who is calling: [`extract::Principal`]'s extractor (bearer token, then the
//!   roles the database holds now), [`extract::Account`], [`extract::SuperAdmin`],
//!   [`extract::ClientAddress`].
//! - [`paths`]: typed path parameters of the tenant routes ([`paths::OfferPath`], …), each
//!   with the loader of the row it names (404 when the tenant has none).
//! - [`auth`]: passwords (argon2id), access tokens (JWT), permissions and the
//!   [`auth::Principal`] extractor that re-reads a user's roles on every request.
//! - [`db`]: the connection pool, migrations, tenant transactions and one module per aggregate
//!   with the SQL that reads and writes it.
//! - [`criteria`]: the selection-criteria language, compiled to parameterised SQL.
//! - [`queue`]: the campaign queue (SQS or in-process) and its job messages.
//! - [`relay`]: the transactional outbox's relay and the re-drive of stale jobs, then the
//!   campaign [`scheduler`] (starts and ends by each tenant's calendar); [`metrics`]: their
//!   figures as CloudWatch embedded metric format records.
//! - [`domain`]: newtypes that parse instead of validate (tenant names, usernames, role names).
//! - [`error`]: [`error::ApiError`], rendered as RFC 9457 `application/problem+json`.

pub mod auth;
pub mod config;
pub mod criteria;
pub mod db;
pub mod domain;
pub mod error;
pub mod extract;
pub mod http;
pub mod metrics;
pub mod openapi;
pub mod pagination;
pub mod paths;
pub mod queue;
pub mod relay;
pub mod scheduler;
pub mod state;
pub mod telemetry;
pub mod uplift;

pub use error::ApiError;
pub use state::AppState;
