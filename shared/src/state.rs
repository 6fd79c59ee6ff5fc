//! [`AppState`]: what every handler shares, built once per process (per Lambda instance) in
//! `main`, before the first request.

use std::sync::Arc;

use deadpool_postgres::Pool;

use crate::auth::password::PasswordHasher;
use crate::auth::token::TokenKeys;
use crate::config::{Config, ReportGrace};
use crate::db;
use crate::queue::Queue;

/// Shared handler state; cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The PostgreSQL pool of tenant routes ([`db::Scope::Tenant`]): its connections see
    /// tenant rows only inside a [`db::TenantTx`].
    pub pool: Pool,
    /// The pool of paths that span tenants ([`db::Scope::Platform`]): super-admin routes,
    /// the principal lookup, the webhook's key lookup, the processor. Same role and URL.
    pub platform: Pool,
    /// Access-token keys and validation policy.
    pub tokens: Arc<TokenKeys>,
    /// Password hashing with bounded concurrency.
    pub passwords: PasswordHasher,
    /// The campaign queue, for functions that enqueue jobs (see [`AppState::with_queue`]).
    pub queue: Option<Queue>,
    /// Where a trusted proxy writes the client's address (`TRUSTED_PROXY_HEADER`), read by
    /// [`crate::http::ClientAddress`].
    pub trusted_proxy_header: Option<axum::http::HeaderName>,
    /// How long after a campaign's end its delivery reports are accepted.
    pub report_grace: ReportGrace,
    /// Most deliveries a release judges inside a request (larger ones go by ranges on the
    /// queue).
    pub release_batch: crate::config::ReleaseBatch,
}

impl axum::extract::FromRef<AppState> for ReportGrace {
    fn from_ref(state: &AppState) -> ReportGrace {
        state.report_grace
    }
}

impl axum::extract::FromRef<AppState> for Pool {
    /// Lets routers that need only the database (the delivery webhook) take `State<Pool>`:
    /// the platform pool (the webhook finds a key before it knows the key's tenant, then
    /// works inside a [`db::TenantTx`] of that tenant).
    fn from_ref(state: &AppState) -> Pool {
        state.platform.clone()
    }
}

impl AppState {
    /// Builds the state from configuration. Connections are opened lazily, on first use.
    ///
    /// # Errors
    /// If the pool cannot be built from the database URL.
    pub fn new(config: &Config) -> Result<Self, db::PoolBuildError> {
        Ok(Self {
            pool: db::pool(&config.database, db::Scope::Tenant)?,
            platform: db::pool(&config.database, db::Scope::Platform)?,
            tokens: Arc::new(TokenKeys::new(&config.jwt)),
            passwords: PasswordHasher::new(config.password_hash_concurrency),
            queue: None,
            trusted_proxy_header: config.trusted_proxy_header.clone(),
            report_grace: config.report_grace,
            release_batch: config.release_batch,
        })
    }

    /// The same state, enqueueing campaign jobs on `queue`.
    #[must_use]
    pub fn with_queue(mut self, queue: Queue) -> Self {
        self.queue = Some(queue);
        self
    }

    /// The campaign queue.
    ///
    /// # Errors
    /// 503 if this deployment has none configured (`CAMPAIGN_QUEUE_URL` unset in a function
    /// that needs it); the cause is logged.
    pub fn queue(&self) -> Result<&Queue, crate::error::ApiError> {
        self.queue.as_ref().ok_or_else(|| {
            crate::error::ApiError::ServiceUnavailable("no campaign queue is configured".into())
        })
    }
}
