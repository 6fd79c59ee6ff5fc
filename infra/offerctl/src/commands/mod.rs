//! The commands of `offerctl`, by what they work on; `main.rs` parses the command line and
//! dispatches here.

mod data;
mod operator;
mod serve;

pub(crate) use data::{archive, import_conversions, import_customers};
pub(crate) use operator::{calendar, create_super_admin, demo, migrate, webhook_key};
pub(crate) use serve::serve;
