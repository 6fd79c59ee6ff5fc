//! The route table of `customers-api`: every handler of the crate, by path, and the OpenAPI
//! description built from their annotations.

use axum::Router;
use shared::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::{consents, customers};

/// The routes of this function (checked against `template.yaml`).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(
            customers::create_customer,
            customers::list_customers
        ))
        .routes(routes!(customers::import_customers))
        .routes(routes!(
            customers::get_customer,
            customers::replace_customer,
            customers::delete_customer
        ))
        .routes(routes!(consents::list_customer_consents))
        .routes(routes!(consents::set_customer_consent))
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
