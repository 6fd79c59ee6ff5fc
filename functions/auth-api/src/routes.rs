//! The route table of `auth-api`: every handler of the crate, by path, and the OpenAPI
//! description built from their annotations.

use axum::Router;
use shared::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::tokens;

/// The routes of this function (checked against `template.yaml`).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(tokens::create_token))
        .routes(routes!(tokens::change_password))
        .routes(routes!(tokens::get_current_user))
        .routes(routes!(tokens::list_current_user_tenants))
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
