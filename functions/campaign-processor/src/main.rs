//! Lambda entry point of `campaign-processor`: builds the pool, the queue and S3 clients once, then
//! handles SQS events, answering `batchItemFailures` (`ReportBatchItemFailures`).

use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let database = shared::config::DatabaseConfig::from_env()?;
    let processor = campaign_processor::Processor {
        pool: shared::db::pool(&database, shared::db::Scope::Platform)?,
        queue: shared::queue::Queue::sqs_from_env().await?,
        range_size: shared::config::ProcessorConfig::from_lookup(shared::config::env)?.range_size,
        imports: Some(campaign_processor::ImportSteps {
            s3: bulk::s3::client_from_env().await,
            options: bulk::import::ImportOptions::from_env(None)?,
        }),
    };
    let processor = &processor;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<aws_lambda_events::event::sqs::SqsEvent>| async move {
            Ok::<_, Error>(processor.handle_batch(event.payload).await)
        },
    ))
    .await
}
