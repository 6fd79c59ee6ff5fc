//! `migrate`: applies the SQL migrations (`migrations/`, embedded at build time) in AWS. Invoke
//! it once after each deploy (`aws lambda invoke --function-name <MigrateFunction> out.json`);
//! it runs the same code as `offerctl migrate`, under the same advisory lock, so concurrent
//! invocations are safe and a second one finds nothing to do.

use deadpool_postgres::Pool;
use serde::Serialize;

/// The answer: `{"applied": ["V4__customers_and_campaigns", …]}` (empty when up to date).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MigrateOutput {
    /// Migrations applied by this invocation, in order.
    pub applied: Vec<String>,
}

/// Applies pending migrations on a connection from `pool`. The invocation's payload is
/// ignored (any JSON, e.g. `{}`).
///
/// # Errors
/// The database could not be reached or a migration failed (nothing of that migration is
/// applied); the message names the cause.
pub async fn run(pool: &Pool) -> Result<MigrateOutput, String> {
    let mut client = pool
        .get()
        .await
        .map_err(|e| format!("cannot connect to the database: {e}"))?;
    let applied = shared::db::migrate(&mut client)
        .await
        .map_err(|e| format!("migration failed: {e}"))?;
    for name in &applied {
        tracing::info!(migration = %name, "migration applied");
    }
    Ok(MigrateOutput { applied })
}
