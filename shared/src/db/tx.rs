//! Transactions and executors: the [`TenantTx`] every tenant statement runs in, the closure
//! helpers [`in_tenant`] and [`in_platform`] that commit on `Ok`, the statement cache
//! ([`CachedStatements`]) and the read executors ([`Executor`], [`TenantExecutor`],
//! [`TenantRead`]).

use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::domain::TenantName;
use crate::error::ApiError;

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

    /// Begins a transaction on `client` scoped to `tenant` that sees one snapshot of the
    /// database throughout (`REPEATABLE READ`): for exports whose statements must agree (a
    /// count and the rows it counts). Not read-only: an archive's export stages the rows it
    /// reads in a temporary table ([`crate::db::archives::stage_deliveries`]), and rolls
    /// back.
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
