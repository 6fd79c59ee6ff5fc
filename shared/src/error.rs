//! The one error type of the API, rendered as RFC 9457 problem details
//! (`application/problem+json`).
//!
//! Every variant documents its status. Client errors carry a `detail` written for the client
//! and, for validation failures, an `errors` member listing each offending field as a JSON
//! Pointer (RFC 6901). Server errors (5xx) never carry internal detail: the cause is logged
//! once, here, and the body says only what the status says.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Media type of problem details (RFC 9457 §3).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One invalid input field: `{"pointer": "/name", "detail": "…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// JSON Pointer (RFC 6901) to the field in the request body, or the query/path
    /// parameter's name prefixed with `/`.
    pub pointer: String,
    /// What is wrong with it.
    pub detail: String,
}

impl FieldError {
    /// A field error for the (top-level) field `name`.
    pub fn new(name: &str, detail: impl Into<String>) -> Self {
        Self {
            pointer: format!("/{name}"),
            detail: detail.into(),
        }
    }
}

/// Boxed cause of an internal error, logged but never sent.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything a handler can answer besides success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed (unparseable JSON, bad query parameter).
    #[error("bad request: {detail}")]
    BadRequest {
        /// Explanation for the client.
        detail: String,
        /// Offending fields, if any.
        errors: Vec<FieldError>,
    },
    /// 401: no credentials, bad credentials, or a token that is no longer valid. Answered with
    /// `WWW-Authenticate: Bearer` (RFC 6750 §3).
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
    /// 403: authenticated, but lacking the permission.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// 404: no such resource (or one the principal may not know exists).
    #[error("not found: {0}")]
    NotFound(String),
    /// 405: the path exists but not with this method; `Allow` lists the methods it has.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 409: the request conflicts with the current state (duplicate name, invalid transition).
    #[error("conflict: {0}")]
    Conflict(String),
    /// 412: an `If-Match` precondition failed.
    #[error("precondition failed: {0}")]
    PreconditionFailed(String),
    /// 428: the route requires an `If-Match` naming the version the caller read (RFC 6585
    /// §3), e.g. an approval, which must be of the content the checker reviewed.
    #[error("precondition required: {0}")]
    PreconditionRequired(String),
    /// 413: the body is larger than the route accepts.
    #[error("payload too large: {0}")]
    PayloadTooLarge(String),
    /// 415: the body's media type is not one this route reads.
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    /// 422: well-formed, but semantically invalid input.
    #[error("unprocessable: {detail}")]
    Unprocessable {
        /// Explanation for the client.
        detail: String,
        /// Offending fields.
        errors: Vec<FieldError>,
    },
    /// 429: too many attempts; `Retry-After` gives the seconds to wait (RFC 9110 §10.2.3).
    #[error("too many requests; retry after {retry_after_secs} s")]
    TooManyRequests {
        /// Seconds until the client may try again.
        retry_after_secs: u64,
    },
    /// 503: the database is unreachable or the pool is exhausted; the client may retry.
    #[error("service unavailable")]
    ServiceUnavailable(#[source] Cause),
    /// 500: a defect or an unexpected failure. The cause is logged, never sent.
    #[error("internal error")]
    Internal(#[source] Cause),
}

impl ApiError {
    /// A 422 naming one field.
    pub fn invalid_field(name: &str, detail: impl Into<String>) -> Self {
        let detail = detail.into();
        Self::Unprocessable {
            detail: format!("{name}: {detail}"),
            errors: vec![FieldError::new(name, detail)],
        }
    }

    /// A 500 wrapping any error.
    pub fn internal(cause: impl Into<Cause>) -> Self {
        Self::Internal(cause.into())
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            Self::PreconditionRequired(_) => StatusCode::PRECONDITION_REQUIRED,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::ServiceUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// The RFC 9457 problem details body every error is answered with
/// (`application/problem+json`). `type` is always `about:blank`: the status and `title`
/// carry the meaning, `detail` the occurrence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(example = json!({
    "type": "about:blank", "title": "Unprocessable Entity", "status": 422,
    "detail": "name: must match ^[a-z][a-z0-9_]{1,49}$",
    "errors": [{"pointer": "/name", "detail": "must match ^[a-z][a-z0-9_]{1,49}$"}]
}))]
pub struct ProblemDetails {
    /// Problem type URI; always `about:blank` (RFC 9457 §4.2.1).
    #[serde(rename = "type")]
    pub kind: String,
    /// The HTTP status's reason phrase, e.g. `Not Found`.
    pub title: String,
    /// The HTTP status code.
    #[schema(minimum = 400, maximum = 599)]
    pub status: u16,
    /// What went wrong with this request; absent on 500.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The offending fields of a 400 or 422, each as a JSON Pointer; absent when empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let (detail, errors): (Option<&str>, &[FieldError]) = match &self {
            Self::BadRequest { detail, errors } | Self::Unprocessable { detail, errors } => {
                (Some(detail), errors)
            }
            Self::Unauthorized(d) => (Some(d), &[]),
            Self::Forbidden(d)
            | Self::NotFound(d)
            | Self::Conflict(d)
            | Self::PreconditionFailed(d)
            | Self::PreconditionRequired(d)
            | Self::PayloadTooLarge(d)
            | Self::UnsupportedMediaType(d) => (Some(d), &[]),
            Self::MethodNotAllowed => (Some("this path does not accept this method"), &[]),
            Self::TooManyRequests { .. } => (Some("too many attempts; try again later"), &[]),
            Self::ServiceUnavailable(cause) => {
                tracing::warn!(error = %cause, "service unavailable");
                (
                    Some("the service is temporarily unavailable; try again shortly"),
                    &[],
                )
            }
            Self::Internal(cause) => {
                tracing::error!(error = %cause, error.debug = ?cause, "internal error");
                (None, &[])
            }
        };
        let body = ProblemDetails {
            kind: "about:blank".into(),
            title: status.canonical_reason().unwrap_or("Error").into(),
            status: status.as_u16(),
            detail: detail.map(str::to_owned),
            errors: errors.to_vec(),
        };
        let json = serde_json::to_vec(&body).unwrap_or_default();
        let mut response = (status, json).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        match &self {
            Self::Unauthorized(_) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::TooManyRequests { retry_after_secs } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            Self::ServiceUnavailable(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}

/// Whether a database error is the database being unavailable rather than a defect: the
/// connection closed or failed (I/O), or the server's SQLSTATE says the connection was ended
/// or refused: class 08 (connection exception), 57P01 `admin_shutdown` (e.g.
/// `pg_terminate_backend`, a fast shutdown), 57P02 `crash_shutdown`, 57P03
/// `cannot_connect_now` (starting up or recovering), 53300 `too_many_connections`.
pub fn database_unavailable(err: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    if err.is_closed() || std::error::Error::source(err).is_some_and(|s| s.is::<std::io::Error>()) {
        return true;
    }
    err.code().is_some_and(|code| {
        code.code().starts_with("08")
            || [
                SqlState::ADMIN_SHUTDOWN,
                SqlState::CRASH_SHUTDOWN,
                SqlState::CANNOT_CONNECT_NOW,
                SqlState::TOO_MANY_CONNECTIONS,
            ]
            .contains(code)
    })
}

impl From<tokio_postgres::Error> for ApiError {
    /// The database being unavailable ([`database_unavailable`]) is 503 with `Retry-After`;
    /// anything else the server answered with an SQLSTATE is a defect on our side (500).
    /// Expected constraint violations are mapped to 409/422 at the call site with
    /// `db::violated_constraint`.
    fn from(err: tokio_postgres::Error) -> Self {
        if database_unavailable(&err) {
            Self::ServiceUnavailable(err.into())
        } else {
            Self::Internal(err.into())
        }
    }
}

impl From<deadpool_postgres::PoolError> for ApiError {
    /// Pool exhaustion (wait timeout), a database that refuses connections, or a closed pool
    /// are all 503.
    fn from(err: deadpool_postgres::PoolError) -> Self {
        use deadpool_postgres::PoolError;
        match err {
            PoolError::Timeout(_) | PoolError::Backend(_) | PoolError::Closed => {
                Self::ServiceUnavailable(err.into())
            }
            other => Self::Internal(other.into()),
        }
    }
}

/// Escapes one JSON Pointer reference token (RFC 6901 §4: `~` → `~0`, `/` → `~1`).
pub fn pointer_token(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .expect("body");
        serde_json::from_slice(&bytes).expect("json")
    }

    #[tokio::test]
    async fn internal_errors_carry_no_detail() {
        let response = ApiError::internal("password=hunter2 at db.internal:5432").into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        assert_eq!(
            body(response).await,
            serde_json::json!({"type": "about:blank", "title": "Internal Server Error", "status": 500})
        );
    }

    #[tokio::test]
    async fn field_errors_are_listed() {
        let response = ApiError::invalid_field("name", "must be lower case").into_response();
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            body(response).await,
            serde_json::json!({
                "type": "about:blank", "title": "Unprocessable Entity", "status": 422,
                "detail": "name: must be lower case",
                "errors": [{"pointer": "/name", "detail": "must be lower case"}]
            })
        );
    }

    #[tokio::test]
    async fn unauthorized_and_throttled_answers_carry_their_headers() {
        let response = ApiError::Unauthorized("invalid token").into_response();
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
        let response = ApiError::TooManyRequests {
            retry_after_secs: 42,
        }
        .into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "42");
    }
}
