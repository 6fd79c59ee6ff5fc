//! Lambda entry point of `outbox-relay`: builds the pool, queue client and re-drive policy
//! once, then handles scheduled events.

// The relay's future nests the SQS client's inside both outboxes' send loops, deeper than
// the compiler's default limit of 128 when it lays out this function's future.
#![recursion_limit = "256"]

use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let database = shared::config::DatabaseConfig::from_env()?;
    let relay = shared::relay::Relay {
        pool: shared::db::pool(&database, shared::db::Scope::Platform)?,
        queue: shared::queue::Queue::sqs_from_env().await?,
        policy: shared::config::RedrivePolicy::from_lookup(shared::config::env)?,
        release_batch: shared::config::ReleaseBatch::from_lookup(shared::config::env)?,
    };
    let relay = &relay;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<aws_lambda_events::event::eventbridge::EventBridgeEvent>| async move {
            outbox_relay::handle(relay, event.payload)
                .await
                .map_err(Error::from)
        },
    ))
    .await
}
