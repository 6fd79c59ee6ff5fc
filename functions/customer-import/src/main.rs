//! Lambda entry point of `customer-import`: builds the pool and S3 client once, then
//! handles S3 events.

// The S3 client's and the pool's futures nest deeply inside the runtime's.
#![recursion_limit = "256"]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let database = shared::config::DatabaseConfig::from_env()?;
    let importer = customer_import::Importer {
        pool: shared::db::pool(&database, shared::db::Scope::Platform)?,
        s3: bulk::s3::client_from_env().await,
        options: bulk::import::ImportOptions::from_env(None)?,
    };
    let importer = &importer;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<aws_lambda_events::event::s3::S3Event>| async move {
            // The context's deadline is in milliseconds since the Unix epoch.
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            let left = Duration::from_millis(event.context.deadline).saturating_sub(now);
            tracing::debug!(
                deadline_ms = event.context.deadline,
                left_ms = left.as_millis(),
                "invocation deadline"
            );
            // A deadline already past is a wrong clock (a local emulator), not no time at all.
            let deadline = (!left.is_zero()).then(|| Instant::now() + left);
            importer
                .handle(&event.payload, deadline)
                .await
                .map_err(Error::from)
        },
    ))
    .await
}
