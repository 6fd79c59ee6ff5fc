//! Lambda entry point of `migrate`: builds the pool once, then applies pending migrations on
//! every invocation.

use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    // DATABASE_URL is the tables' owner here (a member of offers_platform from migration V014
    // on); DATABASE_PLATFORM_URL, the API's platform role, does not apply.
    let database = shared::config::DatabaseConfig::owner_from_lookup(shared::config::env)?;
    let pool = shared::db::pool(&database, shared::db::Scope::Platform)?;
    let pool = &pool;
    lambda_runtime::run(service_fn(
        move |_: LambdaEvent<serde_json::Value>| async move {
            migrate::run(pool).await.map_err(Error::from)
        },
    ))
    .await
}
