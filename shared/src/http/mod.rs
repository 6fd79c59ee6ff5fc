//! HTTP plumbing shared by every router: the service wrapper used by the local gateway and by
//! Lambda alike (security headers, trailing slashes, the trace layer) here; JSON bodies in
//! [`json`] and query and path parameters in [`params`], both answering bad input as problem
//! details; their names are re-exported from this module.

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use tower_http::trace::{DefaultOnResponse, TraceLayer};

use crate::error::ApiError;

pub mod json;
pub mod params;
pub mod strict;

pub use json::{
    AppJson, MAX_COMMENT_CHARS, MAX_JSON_BODY_BYTES, MAX_TEXT_CHARS, OptionalJson, check_length,
    decode_json, has_media_type, nullable, read_body, read_body_limited,
};
pub use params::{AppPath, AppQuery};
pub use strict::{duplicate_key, duplicate_key_error, inexact_number};

/// Where the local server's interactive API docs live. Swagger UI's page is the directory
/// `/docs/` (its assets are relative to it), so paths under it keep their trailing slash.
pub const DOCS_PATH: &str = "/docs";

/// The service [`into_service`] returns: the router behind the trailing-slash trimming, for
/// request bodies of type `B` (axum's locally, `lambda_http`'s in Lambda).
pub type Service<B> =
    tower::util::MapRequest<Router, fn(axum::http::Request<B>) -> axum::http::Request<B>>;

/// `Content-Security-Policy` of the docs page: only this origin's scripts, styles (Swagger UI
/// sets inline styles) and images (it draws icons as `data:` SVG); no framing, no plugins.
pub const DOCS_CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
     font-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// Response headers every answer gets, and problem details for the router's own 404/405.
///
/// - `X-Content-Type-Options: nosniff` on every answer;
/// - `Cache-Control: no-store` on every API answer (RFC 6749 §5.1 for tokens; every other
///   answer may hold personal data), unless the handler set one;
/// - under [`DOCS_PATH`]: [`DOCS_CONTENT_SECURITY_POLICY`] and `X-Frame-Options: DENY`;
/// - a 404 (no such route) or 405 (no such method; `Allow` is kept) that the router answered
///   with an empty body gets an `application/problem+json` body.
async fn security_headers(request: Request, next: axum::middleware::Next) -> Response {
    let docs = request
        .uri()
        .path()
        .strip_prefix(DOCS_PATH)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
    let mut response = next.run(request).await;
    let status = response.status();
    if !response.headers().contains_key(header::CONTENT_TYPE) {
        let problem = match status {
            axum::http::StatusCode::NOT_FOUND => {
                Some(ApiError::NotFound("no such resource".into()))
            }
            axum::http::StatusCode::METHOD_NOT_ALLOWED => Some(ApiError::MethodNotAllowed),
            _ => None,
        };
        if let Some(problem) = problem {
            let allow = response.headers().get(header::ALLOW).cloned();
            response = problem.into_response();
            if let Some(allow) = allow {
                response.headers_mut().insert(header::ALLOW, allow);
            }
        }
    }
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if docs {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(DOCS_CONTENT_SECURITY_POLICY),
        );
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    } else if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// Wraps a router for serving: each request gets a tracing span (`http.method`, `http.path`,
/// `user.name` once known) and a response log line with status and latency; every answer gets
/// the headers of [`security_headers`]; and trailing slashes are trimmed before routing, so
/// `/sa/users/` and `/sa/users` reach the same route (a layer on the `Router` itself runs
/// after routing and cannot do that). Paths under [`DOCS_PATH`] are left as they are.
pub fn into_service<B>(router: Router) -> Service<B> {
    let trace = TraceLayer::new_for_http()
        .make_span_with(|req: &axum::http::Request<axum::body::Body>| {
            tracing::info_span!(
                "request",
                http.method = %req.method(),
                http.path = %req.uri().path(),
                user.name = tracing::field::Empty,
            )
        })
        .on_response(DefaultOnResponse::new().level(tracing::Level::INFO))
        .on_failure(());
    let router = router
        .layer(axum::middleware::from_fn(security_headers))
        .layer(trace);
    tower::util::MapRequest::new(router, trim_trailing_slash::<B> as fn(_) -> _)
}

/// `/a/b//?q` → `/a/b?q`; `/` and paths under `DOCS_PATH/` are unchanged. (tower-http's
/// `NormalizePath` does the same for every path, the docs page's directory URL included.)
fn trim_trailing_slash<B>(mut request: axum::http::Request<B>) -> axum::http::Request<B> {
    let path = request.uri().path();
    let docs_dir = path
        .strip_prefix(DOCS_PATH)
        .is_some_and(|rest| rest.starts_with('/'));
    if path.len() <= 1 || !path.ends_with('/') || docs_dir {
        return request;
    }
    let trimmed = match path.trim_end_matches('/') {
        "" => "/",
        trimmed => trimmed,
    };
    let path_and_query = match request.uri().query() {
        Some(query) => format!("{trimmed}?{query}"),
        None => trimmed.to_owned(),
    };
    let mut parts = request.uri().clone().into_parts();
    parts.path_and_query = path_and_query.parse().ok();
    if let Ok(uri) = axum::http::Uri::from_parts(parts) {
        *request.uri_mut() = uri;
    }
    request
}

/// The routes of an OpenAPI document, `(method, path)` in path order. Each function builds
/// its router and its document from the same `#[utoipa::path]` annotations
/// (`utoipa_axum::router::OpenApiRouter` and `routes!`), so this is also the list of what it
/// serves: checked against the API Gateway routes of the SAM template.
pub fn routes_of(doc: &utoipa::openapi::OpenApi) -> Vec<(Method, String)> {
    let mut routes = Vec::new();
    for (path, item) in &doc.paths.paths {
        for (method, operation) in [
            (Method::GET, &item.get),
            (Method::PUT, &item.put),
            (Method::POST, &item.post),
            (Method::DELETE, &item.delete),
            (Method::OPTIONS, &item.options),
            (Method::HEAD, &item.head),
            (Method::PATCH, &item.patch),
            (Method::TRACE, &item.trace),
        ] {
            if operation.is_some() {
                routes.push((method, path.clone()));
            }
        }
    }
    routes
}

/// 201 Created with `Location: location` (RFC 9110 §15.3.2) and `body` as JSON.
pub fn created<T: serde::Serialize>(location: impl AsRef<str>, body: T) -> Response {
    with_location(
        (axum::http::StatusCode::CREATED, json::AppJson(body)).into_response(),
        location.as_ref(),
    )
}

/// Sets `Location` (RFC 9110 §10.2.2) on a response; `path` is built from validated parts,
/// so it is always a valid header value (otherwise the header is left out).
pub fn with_location(mut response: Response, path: &str) -> Response {
    if let Ok(location) = axum::http::HeaderValue::from_str(path) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_slashes_are_trimmed_except_under_the_docs() {
        let trimmed = |uri: &str| {
            let request = Request::builder().uri(uri).body(axum::body::Body::empty());
            trim_trailing_slash(request.expect("request"))
                .uri()
                .to_string()
        };
        assert_eq!(trimmed("/sa/users/"), "/sa/users");
        assert_eq!(trimmed("/sa/users//?limit=1"), "/sa/users?limit=1");
        assert_eq!(trimmed("/"), "/");
        assert_eq!(trimmed("/docs/"), "/docs/");
        assert_eq!(trimmed("/docs"), "/docs");
        assert_eq!(trimmed("/docsy/"), "/docsy");
    }
}
