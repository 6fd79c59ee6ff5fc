//! PostgreSQL access: the pool, migrations, tenant transactions, constraint mapping, and one
//! module per aggregate holding the SQL that reads and writes it.
//!
//! SQL is lower case, beside the function that runs it, parameterised only (`$1`, `$2`, …);
//! functions of platform data take `&impl GenericClient` (a pooled client or a transaction);
//! a tenant's functions take its [`TenantTx`] (or a [`TenantExecutor`] for reads), never the
//! tenant again.

pub mod access_audit;
pub mod archives;
pub mod campaigns;
pub mod consents;
pub mod conversions;
pub mod customer_import;
pub mod customer_imports;
pub mod customers;
pub mod login_throttle;
pub mod offers;
pub mod outbox;
pub mod results;
pub mod roles;
pub mod tenants;
pub mod users;
pub mod webhook_keys;

mod tx;

pub(crate) use tx::set_tenant;
pub use tx::{
    CachedStatements, Executor, TenantExecutor, TenantRead, TenantTx, in_platform, in_tenant,
};

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use secrecy::ExposeSecret;
use tokio_postgres::NoTls;
use tokio_postgres::config::SslMode;

pub use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use crate::config::DatabaseConfig;

/// How long a request waits for a pooled connection before answering 503.
pub const POOL_WAIT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long opening a new connection may take before answering 503.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The pool could not be built (a malformed URL; connections are opened lazily).
#[derive(Debug, thiserror::Error)]
pub enum PoolBuildError {
    /// `DATABASE_URL` does not parse.
    #[error("DATABASE_URL is not a PostgreSQL connection URL")]
    Url,
    /// `DATABASE_CA_FILE` could not be read or holds no usable certificate.
    #[error("DATABASE_CA_FILE: {0}")]
    CaFile(String),
    /// The TLS configuration could not be built.
    #[error("TLS configuration: {0}")]
    Tls(String),
    /// deadpool refused the settings.
    #[error("could not build the connection pool: {0}")]
    Build(#[from] deadpool_postgres::BuildError),
}

/// Which rows a pool's connections may see under row-level security (migrations V007, V014).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `DATABASE_URL`'s role, a member of `offers_api` only: no tenant's rows, except inside a
    /// [`TenantTx`] (which sets `app.tenant`). The pool of tenant routes.
    Tenant,
    /// `DATABASE_PLATFORM_URL`'s role (or `DATABASE_URL`'s when that is unset, as for
    /// `offerctl`'s commands run as the tables' owner): every tenant's rows, by membership of
    /// the group role `offers_platform`, which a session cannot give itself. For paths that
    /// legitimately span tenants: super-admin routes, the principal lookup, the campaign
    /// processor, the webhook's key lookup and `offerctl`. A [`TenantTx`] on such a
    /// connection is still confined to its tenant.
    Platform,
}

/// Builds the connection pool of `scope`: at most `pool_size` connections, opened on demand,
/// recycled with a cheap liveness check; waiting for a connection or opening one times out
/// after five seconds (answered as 503).
///
/// TLS: a URL with `sslmode=require` connects over TLS (rustls) and verifies the server's
/// certificate and host name against the Mozilla root store plus the certificates of
/// `DATABASE_CA_FILE`; any other `sslmode` (or none) connects without TLS, as for a local
/// database.
///
/// # Errors
/// [`PoolBuildError`] for a malformed URL or an unusable CA file.
pub fn pool(config: &DatabaseConfig, scope: Scope) -> Result<Pool, PoolBuildError> {
    let url = match (scope, &config.platform_url) {
        (Scope::Platform, Some(platform_url)) => platform_url,
        _ => &config.url,
    };
    let mut pg: tokio_postgres::Config = url
        .expose_secret()
        .parse()
        .map_err(|_| PoolBuildError::Url)?;
    pg.connect_timeout(CONNECT_TIMEOUT);
    if pg.get_application_name().is_none() {
        pg.application_name("offer-management");
    }
    let manager_config = ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    };
    let manager = if pg.get_ssl_mode() == SslMode::Require {
        Manager::from_config(
            pg,
            tls_connector(config.ca_file.as_deref())?,
            manager_config,
        )
    } else {
        pg.ssl_mode(SslMode::Disable);
        Manager::from_config(pg, NoTls, manager_config)
    };
    Ok(Pool::builder(manager)
        .max_size(config.pool_size)
        .wait_timeout(Some(POOL_WAIT_TIMEOUT))
        .create_timeout(Some(CONNECT_TIMEOUT))
        .runtime(Runtime::Tokio1)
        .build()?)
}

/// A verifying rustls connector: Mozilla roots plus the PEM certificates of `ca_file`.
fn tls_connector(
    ca_file: Option<&std::path::Path>,
) -> Result<tokio_postgres_rustls::MakeRustlsConnect, PoolBuildError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;

    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let mut added = 0;
        let certificates = CertificateDer::pem_file_iter(path)
            .map_err(|e| PoolBuildError::CaFile(format!("{}: {e}", path.display())))?;
        for certificate in certificates {
            let certificate = certificate
                .map_err(|e| PoolBuildError::CaFile(format!("{}: {e}", path.display())))?;
            roots
                .add(certificate)
                .map_err(|e| PoolBuildError::CaFile(format!("{}: {e}", path.display())))?;
            added += 1;
        }
        if added == 0 {
            return Err(PoolBuildError::CaFile(format!(
                "{} holds no PEM certificate",
                path.display()
            )));
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| PoolBuildError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

#[allow(missing_docs)]
mod embedded {
    refinery::embed_migrations!("../migrations");
}

/// The SQL migrations under `migrations/`, embedded at compile time (refinery naming:
/// `V001__name.sql`); `migrations::runner()` builds a refinery runner over them.
pub use embedded::migrations;

/// Applies every pending migration in one transaction, holding a PostgreSQL advisory lock so
/// two migrators (a deploy hook and an operator) never interleave. Returns the names of the
/// migrations applied now.
///
/// # Errors
/// Any connection or migration failure; nothing is applied then.
pub async fn migrate(client: &mut tokio_postgres::Client) -> Result<Vec<String>, MigrateError> {
    const LOCK_KEY: i64 = 0x6f66_6665_725f_6d67; // "offer_mg"
    client
        .execute("select pg_advisory_lock($1)", &[&LOCK_KEY])
        .await?;
    let report = migrations::runner()
        .set_grouped(true)
        .run_async(client)
        .await;
    client
        .execute("select pg_advisory_unlock($1)", &[&LOCK_KEY])
        .await?;
    Ok(report?
        .applied_migrations()
        .iter()
        .map(|m| m.to_string())
        .collect())
}

/// Why migrating failed.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// Talking to the database failed.
    #[error("database error: {0}")]
    Database(#[from] tokio_postgres::Error),
    /// A migration failed or diverges from what was applied before.
    #[error("migration failed: {0}")]
    Migration(#[from] refinery::Error),
}

/// Whether `row`'s columns are `names`, in order: the check beside rows read by position
/// (`debug_assert!(columns_are(row, …))`), so every debug build and test catches a select
/// list and its reader drifting apart.
pub(crate) fn columns_are(row: &Row, names: &[&str]) -> bool {
    row.columns()
        .iter()
        .map(tokio_postgres::Column::name)
        .eq(names.iter().copied())
}

/// The name of the constraint an error violated, if it is a constraint violation
/// (SQLSTATE class 23). Used to turn expected violations into 409/422.
pub fn violated_constraint(err: &tokio_postgres::Error) -> Option<&str> {
    let db = err.as_db_error()?;
    db.code()
        .code()
        .starts_with("23")
        .then(|| db.constraint())?
}
