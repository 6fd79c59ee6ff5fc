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
pub mod customer_import;
pub mod customer_imports;
pub mod customers;
pub mod login_throttle;
pub mod offers;
pub mod outbox;
pub mod roles;
pub mod tenants;
pub mod users;
pub mod webhook_keys;

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Transaction};
use secrecy::ExposeSecret;
use tokio_postgres::NoTls;
use tokio_postgres::config::SslMode;

pub use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::config::DatabaseConfig;
use crate::domain::TenantName;
use crate::error::ApiError;

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

/// A transaction scoped to one tenant, carrying that tenant: for this transaction only it sets
/// `app.tenant`, so the row-level security policies (migrations V007, V014) show and accept
/// only that tenant's rows, even on a connection of the [`Scope::Platform`] pool. The tenant's
/// db functions take it (`&TenantTx`) rather than a client and the tenant again, and filter by
/// [`TenantTx::tenant`] in their SQL as well: the policies are the second wall.
///
/// It dereferences to the [`Transaction`], so the statements of [`CachedStatements`] and
/// [`GenericClient`] run on it directly. Dropped without [`TenantTx::commit`], it rolls back.
pub struct TenantTx<'a> {
    tx: Transaction<'a>,
    tenant: TenantName,
}

impl<'a> TenantTx<'a> {
    /// Begins a transaction on `client` scoped to `tenant`.
    ///
    /// # Errors
    /// 503 if the connection fails.
    pub async fn begin(
        client: &'a mut deadpool_postgres::Client,
        tenant: &TenantName,
    ) -> Result<Self, ApiError> {
        let tx = client.transaction().await?;
        set_tenant(&tx, tenant).await?;
        Ok(Self {
            tx,
            tenant: tenant.clone(),
        })
    }

    /// Begins a read-only transaction on `client` scoped to `tenant` that sees one snapshot
    /// of the database throughout (`REPEATABLE READ`): for exports whose statements must
    /// agree (a count and the rows it counts).
    ///
    /// # Errors
    /// 503 if the connection fails.
    pub async fn begin_snapshot(
        client: &'a mut deadpool_postgres::Client,
        tenant: &TenantName,
    ) -> Result<Self, ApiError> {
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        set_tenant(&tx, tenant).await?;
        Ok(Self {
            tx,
            tenant: tenant.clone(),
        })
    }

    /// The tenant this transaction is scoped to.
    #[must_use]
    pub fn tenant(&self) -> &TenantName {
        &self.tenant
    }

    /// The transaction itself, for the functions that take any [`GenericClient`].
    #[must_use]
    pub fn transaction(&self) -> &Transaction<'a> {
        &self.tx
    }

    /// Commits the transaction.
    ///
    /// # Errors
    /// 503 when the commit fails (a broken connection; nothing was written then).
    pub async fn commit(self) -> Result<(), ApiError> {
        self.tx.commit().await?;
        Ok(())
    }

    /// Rolls the transaction back now (dropping it does too, without waiting).
    ///
    /// # Errors
    /// 503 when the connection fails.
    pub async fn rollback(self) -> Result<(), ApiError> {
        self.tx.rollback().await?;
        Ok(())
    }
}

/// Scopes `tx` to `tenant` until it ends, as [`TenantTx::begin`] does: for a caller that
/// needs the plain transaction either way (the relay sends one tenant's jobs or everyone's).
///
/// # Errors
/// 503 if the connection fails.
pub(crate) async fn set_tenant(tx: &Transaction<'_>, tenant: &TenantName) -> Result<(), ApiError> {
    tx.execute_cached(SET_TENANT, &[&tenant.as_str()]).await?;
    Ok(())
}

impl<'a> std::ops::Deref for TenantTx<'a> {
    type Target = Transaction<'a>;

    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl Executor for TenantTx<'_> {
    async fn rows(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        self.tx.query_cached(sql, params).await
    }
}

/// An [`Executor`] confined to one tenant: a [`TenantTx`] or a [`TenantRead`]. The tenant's
/// read functions take it, so they run on either and take the tenant from it.
pub trait TenantExecutor: Executor {
    /// The tenant the statements are confined to.
    fn tenant(&self) -> &TenantName;
}

impl TenantExecutor for TenantTx<'_> {
    fn tenant(&self) -> &TenantName {
        &self.tenant
    }
}

impl TenantExecutor for TenantRead<'_> {
    fn tenant(&self) -> &TenantName {
        self.tenant
    }
}

/// Runs `work` in a [`TenantTx`] of `tenant` on a connection of `pool`, and commits when it
/// returns `Ok`; on `Err` (or a panic, or the request being dropped) the transaction rolls back
/// and nothing it wrote remains. Handlers hold only their own logic:
///
/// ```ignore
/// let offer = in_tenant(&state.pool, &tenant, async |tx| {
///     let offer = path.load(tx, true).await?;
///     offers::set_status(tx, offer.id, OfferStatus::Draft).await
/// })
/// .await?;
/// ```
///
/// # Errors
/// 503 when no connection is to be had or the commit fails on a broken connection; whatever
/// `work` answers.
pub async fn in_tenant<T>(
    pool: &deadpool_postgres::Pool,
    tenant: &TenantName,
    work: impl AsyncFnOnce(&TenantTx<'_>) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let mut client = pool.get().await?;
    let tx = TenantTx::begin(&mut client, tenant).await?;
    let value = work(&tx).await?;
    tx.commit().await?;
    Ok(value)
}

/// Runs `work` in a transaction of `pool` that is scoped to no tenant, and commits when it
/// returns `Ok` (rolls back otherwise, as [`in_tenant`]): the super admin's work across
/// tenants (tenants, users, assignments) on the platform pool, whose login role sees every
/// tenant. Work on one tenant's rows takes [`in_tenant`] on the same pool instead, so its
/// statements read the tenant from the [`TenantTx`].
///
/// # Errors
/// 503 when no connection is to be had or the commit fails on a broken connection; whatever
/// `work` answers.
pub async fn in_platform<T>(
    pool: &deadpool_postgres::Pool,
    work: impl AsyncFnOnce(&Transaction<'_>) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let value = work(&tx).await?;
    tx.commit().await?;
    Ok(value)
}

/// Statement execution through the connection's statement cache (deadpool-postgres
/// [`GenericClient::prepare_cached`]): a statement text is parsed and planned once per
/// connection, later runs send only its bind and execute messages. Every statement whose text
/// is fixed at compile time runs through these; SQL that embeds a compiled criteria
/// expression or an import's column list is not cached (its texts are unbounded) and runs
/// through the plain [`GenericClient`] methods.
///
/// Cached statements stay valid across migrations that add tables, columns or indexes
/// (PostgreSQL re-plans them); a migration that changes the type of a column a cached
/// statement returns fails those statements ("cached plan must not change result type") on
/// connections opened before it, so such a migration ships with a deploy (fresh Lambda
/// instances, a restarted server).
pub trait CachedStatements: GenericClient {
    /// [`GenericClient::query`] on the cached statement of `sql`.
    ///
    /// # Errors
    /// Preparing or running the statement failed.
    fn query_cached(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Vec<Row>, tokio_postgres::Error>> + Send
    where
        Self: Sized,
    {
        async move {
            let statement = self.prepare_cached(sql).await?;
            self.query(&statement, params).await
        }
    }

    /// [`GenericClient::query_one`] on the cached statement of `sql`.
    ///
    /// # Errors
    /// Preparing or running the statement failed, or it returned other than one row.
    fn query_one_cached(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Row, tokio_postgres::Error>> + Send
    where
        Self: Sized,
    {
        async move {
            let statement = self.prepare_cached(sql).await?;
            self.query_one(&statement, params).await
        }
    }

    /// [`GenericClient::query_opt`] on the cached statement of `sql`.
    ///
    /// # Errors
    /// Preparing or running the statement failed, or it returned more than one row.
    fn query_opt_cached(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Option<Row>, tokio_postgres::Error>> + Send
    where
        Self: Sized,
    {
        async move {
            let statement = self.prepare_cached(sql).await?;
            self.query_opt(&statement, params).await
        }
    }

    /// [`GenericClient::execute`] on the cached statement of `sql`; answers the rows affected.
    ///
    /// # Errors
    /// Preparing or running the statement failed.
    fn execute_cached(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<u64, tokio_postgres::Error>> + Send
    where
        Self: Sized,
    {
        async move {
            let statement = self.prepare_cached(sql).await?;
            self.execute(&statement, params).await
        }
    }
}

impl<T: GenericClient> CachedStatements for T {}

/// Runs read statements: a plain client or transaction (each statement through the statement
/// cache), or a [`TenantRead`] (each statement in a tenant transaction of its own, one round
/// trip). Read functions that run a single statement take `&impl Executor`, so a handler can
/// call them on either.
pub trait Executor: Sync {
    /// The rows of `sql` with `params`.
    ///
    /// # Errors
    /// Preparing or running the statement failed.
    fn rows(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Vec<Row>, tokio_postgres::Error>> + Send;

    /// The row of `sql`, if it returned one; more than one is an error.
    ///
    /// # Errors
    /// Preparing or running the statement failed, or it returned several rows.
    fn row_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Option<Row>, ApiError>> + Send {
        async move {
            let mut rows = self.rows(sql, params).await?;
            if rows.len() > 1 {
                return Err(ApiError::internal(
                    "a single-row statement returned several rows",
                ));
            }
            Ok(rows.pop())
        }
    }
}

impl<T: GenericClient> Executor for T {
    async fn rows(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        self.query_cached(sql, params).await
    }
}

/// A pooled connection reading as `tenant`: each statement runs as `begin`, the tenant
/// setting of [`TenantTx`], the statement, `commit`, pipelined in one round trip
/// (tokio-postgres sends a request when its future is first polled; `try_join4` polls in
/// order). All four are prepared (or taken from the statement cache) before any is sent, so
/// they reach the server in that order; once the first is sent, all four are, so a request
/// dropped midway never leaves a transaction open on the connection (and a failure ends it
/// with `rollback`). The setting is
/// transaction-local as in [`TenantTx`], so row-level security confines the
/// statement to the tenant. For reads of one statement: two statements run in two
/// transactions (two snapshots).
pub struct TenantRead<'a> {
    client: &'a deadpool_postgres::Client,
    tenant: &'a TenantName,
}

/// The tenant setting of [`TenantTx`] and [`TenantRead`].
const SET_TENANT: &str = "select set_config('app.tenant', $1, true)";

impl<'a> TenantRead<'a> {
    /// Reads on `client` as `tenant`.
    #[must_use]
    pub fn new(client: &'a deadpool_postgres::Client, tenant: &'a TenantName) -> Self {
        Self { client, tenant }
    }
}

impl Executor for TenantRead<'_> {
    async fn rows(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        use futures_util::future::try_join4;

        let client = self.client;
        let (begin, set, statement, commit) = try_join4(
            client.prepare_cached("begin"),
            client.prepare_cached(SET_TENANT),
            client.prepare_cached(sql),
            client.prepare_cached("commit"),
        )
        .await?;
        let tenant = self.tenant.as_str();
        let outcome = try_join4(
            client.execute(&begin, &[]),
            client.execute(&set, &[&tenant]),
            client.query(&statement, params),
            client.execute(&commit, &[]),
        )
        .await;
        match outcome {
            Ok((_, _, rows, _)) => Ok(rows),
            Err(err) => {
                // A statement whose parameters fail to encode is never sent, nor is the
                // commit after it: end the transaction `begin` opened. After a commit this
                // is a no-op (a warning); on a broken connection it fails too.
                if let Err(rollback) = client.batch_execute("rollback").await {
                    tracing::debug!(error = %rollback, "rollback after a failed tenant read");
                }
                Err(err)
            }
        }
    }
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
