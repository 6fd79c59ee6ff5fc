//! Lambda entry point of `housekeeping`: builds the pool and S3 client once, then handles
//! scheduled events.

// The S3 client's and the pool's futures nest deeply inside the runtime's.
#![recursion_limit = "256"]

use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let database = shared::config::DatabaseConfig::from_env()?;
    let housekeeper = housekeeping::Housekeeper {
        pool: shared::db::pool(&database, shared::db::Scope::Platform)?,
        s3: bulk::s3::client_from_env().await,
        options: housekeeping::Housekeeper::options_from_env()?,
    };
    let housekeeper = &housekeeper;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<aws_lambda_events::event::eventbridge::EventBridgeEvent>| async move {
            housekeeper.handle(&event.payload).await.map_err(Error::from)
        },
    ))
    .await
}
