//! The route table of `offers-api`: every handler of the crate, by path, and the OpenAPI
//! description built from their annotations.

use axum::Router;
use shared::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::{offers, versions, workflow};

/// The routes of this function (checked against `template.yaml`).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(offers::create_offer, offers::list_offers))
        .routes(routes!(
            offers::get_offer,
            offers::replace_offer,
            offers::patch_offer,
            offers::delete_offer
        ))
        .routes(routes!(workflow::submit_offer))
        .routes(routes!(workflow::approve_offer))
        .routes(routes!(workflow::reject_offer))
        .routes(routes!(offers::comment_on_offer))
        .routes(routes!(offers::list_offer_audit_logs))
        .routes(routes!(versions::list_offer_versions))
        .routes(routes!(versions::get_offer_version))
        .routes(routes!(versions::diff_offer_versions))
        .routes(routes!(versions::get_offer_draft_diff))
        .routes(routes!(versions::retire_offer))
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
