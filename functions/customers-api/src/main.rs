//! Lambda entry point of `customers-api`: builds the state once, then serves API Gateway (HTTP API)
//! events through the same router the local gateway mounts.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let config = shared::config::Config::from_env()?;
    let state = shared::AppState::new(&config)?;
    let app = shared::http::into_service(customers_api::router().with_state(state));
    lambda_http::run(app).await
}
