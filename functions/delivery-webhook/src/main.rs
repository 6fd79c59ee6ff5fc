//! Lambda entry point of `delivery-webhook`: builds the pool once (this function needs no JWT
//! key), then serves API Gateway (HTTP API) events through the router the local gateway mounts.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let database = shared::config::DatabaseConfig::from_env()?;
    let pool = shared::db::pool(&database, shared::db::Scope::Platform)?;
    let app = shared::http::into_service(delivery_webhook::router().with_state(pool));
    lambda_http::run(app).await
}
