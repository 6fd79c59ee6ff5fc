//! The route table of `delivery-webhook`, and the state its routes run on.

use axum::Router;
use axum::extract::FromRef;
use deadpool_postgres::Pool;
use shared::config::ReportGrace;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::{feed, reports};

/// The state of this function's routes: the platform pool and the report grace period, so
/// the Lambda runs them without the JWT configuration of the user-facing functions.
#[derive(Debug, Clone)]
pub struct WebhookState {
    /// A pool in the platform scope (the key is found before its tenant is known).
    pub pool: Pool,
    /// How long after a campaign's end its reports are accepted.
    pub report_grace: ReportGrace,
}

impl FromRef<WebhookState> for Pool {
    fn from_ref(state: &WebhookState) -> Pool {
        state.pool.clone()
    }
}

impl FromRef<WebhookState> for ReportGrace {
    fn from_ref(state: &WebhookState) -> ReportGrace {
        state.report_grace
    }
}

/// The routes of this function (checked against `template.yaml`), on any state that gives
/// the platform pool and the grace period ([`WebhookState`], or the local server's
/// `AppState`).
pub fn routes<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Pool: FromRef<S>,
    ReportGrace: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(reports::report_delivery_status))
        .routes(routes!(feed::list_deliveries))
}

/// The router of this function.
pub fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Pool: FromRef<S>,
    ReportGrace: FromRef<S>,
{
    routes().split_for_parts().0
}

/// The OpenAPI description of this function's routes (merged by
/// [`shared::openapi::document`]).
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes::<WebhookState>().into_openapi()
}
