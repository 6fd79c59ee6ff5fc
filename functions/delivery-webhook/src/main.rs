//! Lambda entry point of `delivery-webhook`: builds the pool and reads the report grace period
//! once (this function needs no JWT key), then serves API Gateway (HTTP API) events through the router the local gateway mounts.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let database = shared::config::DatabaseConfig::from_env()?;
    let state = delivery_webhook::WebhookState {
        pool: shared::db::pool(&database, shared::db::Scope::Platform)?,
        report_grace: shared::config::ReportGrace::from_env()?,
    };
    let app = shared::http::into_service(delivery_webhook::router().with_state(state));
    lambda_http::run(app).await
}
