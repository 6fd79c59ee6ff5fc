//! Lambda entry point of `campaigns-api`: builds the state and the SQS client once, then
//! serves API Gateway (HTTP API) events through the same router the local gateway mounts.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let config = shared::config::Config::from_env()?;
    let queue = shared::queue::Queue::sqs_from_env().await?;
    let state = shared::AppState::new(&config)?.with_queue(queue);
    let app = shared::http::into_service(campaigns_api::router().with_state(state));
    lambda_http::run(app).await
}
