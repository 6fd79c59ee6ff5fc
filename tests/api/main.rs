//! Integration tests: every function's routes in-process, against real PostgreSQL.

mod admin;
mod auth;
mod bulk;
mod calendar;
mod campaigns;
mod cap_property;
mod consent;
mod customers;
mod database;
mod demo;
mod docs;
mod durability;
mod hardening;
mod import_limits;
mod import_parts;
mod lambda;
mod offers;
mod openapi;
mod performance;
mod processor;
mod review;
mod roles;
mod sqs;
mod template;
mod versions;
mod webhook;
