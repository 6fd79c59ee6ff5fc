//! [`AppState`]: what every handler shares, built once per process (per Lambda instance) in
//! `main`, before the first request.

use std::sync::Arc;

use deadpool_postgres::Pool;

use crate::auth::password::PasswordHasher;
use crate::auth::token::TokenKeys;
use crate::config::Config;
use crate::db;

/// Shared handler state; cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The PostgreSQL pool.
    pub pool: Pool,
    /// Access-token keys and validation policy.
    pub tokens: Arc<TokenKeys>,
    /// Password hashing with bounded concurrency.
    pub passwords: PasswordHasher,
}

impl AppState {
    /// Builds the state from configuration. Connections are opened lazily, on first use.
    ///
    /// # Errors
    /// If the pool cannot be built from the database URL.
    pub fn new(config: &Config) -> Result<Self, db::PoolBuildError> {
        Ok(Self {
            pool: db::pool(&config.database)?,
            tokens: Arc::new(TokenKeys::new(&config.jwt)),
            passwords: PasswordHasher::new(config.password_hash_concurrency),
        })
    }
}
