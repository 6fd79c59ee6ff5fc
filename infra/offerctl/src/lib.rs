//! The local gateway: every function's router merged into one axum app, as API Gateway
//! routes them in AWS. Used by `offerctl serve` and by the integration tests.

use axum::Router;
use axum::routing::get;
use serde_json::json;
use shared::AppState;

/// All routes of all functions, plus `GET /health` (liveness, no database access).
pub fn app(state: AppState) -> Router {
    Router::new()
        .route(
            "/health",
            get(|| async { axum::Json(json!({"status": "ok"})) }),
        )
        .merge(auth_api::router())
        .merge(admin_api::router())
        .merge(offers_api::router())
        .with_state(state)
}
