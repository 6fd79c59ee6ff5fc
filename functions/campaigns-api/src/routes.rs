//! The route table of `campaigns-api`: every handler of the crate, by path, and the OpenAPI
//! description built from their annotations.

use axum::Router;
use shared::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::{audience, campaigns, lifecycle, offer_version, results};

/// The routes of this function (checked against `template.yaml`).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(
            campaigns::create_campaign,
            campaigns::list_campaigns
        ))
        .routes(routes!(audience::preview_audience))
        .routes(routes!(
            campaigns::get_campaign,
            lifecycle::update_campaign,
            lifecycle::delete_campaign
        ))
        .routes(routes!(campaigns::process_campaign_customers))
        .routes(routes!(audience::list_campaign_customers))
        .routes(routes!(audience::get_campaign_summary))
        .routes(routes!(offer_version::move_campaign_offer_version))
        .routes(routes!(offer_version::list_campaign_audit_logs))
        .routes(routes!(lifecycle::release_campaign_deliveries))
        .routes(routes!(results::get_campaign_results))
        .routes(routes!(results::record_conversions))
}

/// The router of this function.
pub fn router() -> Router<AppState> {
    routes().split_for_parts().0
}

/// The OpenAPI description of this function's routes (merged by
/// [`shared::openapi::document`]).
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().into_openapi()
}
