//! Integration tests: every function's routes in-process, against real PostgreSQL.

mod admin;
mod auth;
mod database;
mod lambda;
mod offers;
