//! Pagination of lists: [`Page`] (`?limit=&offset=`) and [`Keyset`] (`?limit=&after=`, for
//! lists that grow to millions of rows), decoded from the query string with 400s that name
//! the parameter. The data layer takes them as plain values.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::{ApiError, FieldError};
use crate::http::{AppJson, AppQuery};

/// Default page size of every offset-paginated list.
pub const DEFAULT_LIMIT: i64 = 50;
/// Largest page size any list accepts; larger answers 400.
pub const MAX_LIMIT: i64 = 200;

/// `?limit=&offset=` of an offset-paginated list: `limit` 1–[`MAX_LIMIT`] (default
/// [`DEFAULT_LIMIT`]), `offset` ≥ 0 (default 0). Out-of-range values answer 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Rows to return.
    pub limit: i64,
    /// Rows to skip.
    pub offset: i64,
}

/// The query parameters of [`Page`], as documented.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct RawPage {
    /// Rows to return, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    /// Rows to skip (default 0).
    #[param(minimum = 0)]
    offset: Option<i64>,
}

impl utoipa::IntoParams for Page {
    fn into_params(
        parameter_in_provider: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        RawPage::into_params(parameter_in_provider)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Page {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let AppQuery(raw) = AppQuery::<RawPage>::from_request_parts(parts, state).await?;
        let limit = check_limit(raw.limit)?;
        let offset = raw.offset.unwrap_or(0);
        if offset < 0 {
            return Err(ApiError::BadRequest {
                detail: "offset must not be negative".into(),
                errors: vec![FieldError::new("offset", "must not be negative")],
            });
        }
        Ok(Page { limit, offset })
    }
}

/// `?limit=&after=` of a keyset-paginated list (lists that grow to millions of rows): rows
/// come in id order, and the next page starts after the last id of this one. `limit` is
/// 1–[`MAX_LIMIT`] (default [`DEFAULT_LIMIT`]); `after` is a UUID. Bad values answer 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keyset {
    /// Rows to return.
    pub limit: i64,
    /// Return rows with an id greater than this.
    pub after: Option<uuid::Uuid>,
}

/// The query parameters of [`Keyset`], as documented.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct RawKeyset {
    /// Rows to return, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    /// Return rows whose id is greater than this one: the last id of the previous page, as
    /// given in that page's `Link: rel="next"` header.
    after: Option<uuid::Uuid>,
}

impl utoipa::IntoParams for Keyset {
    fn into_params(
        parameter_in_provider: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        RawKeyset::into_params(parameter_in_provider)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Keyset {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let AppQuery(raw) = AppQuery::<RawKeyset>::from_request_parts(parts, state).await?;
        let limit = check_limit(raw.limit)?;
        Ok(Keyset {
            limit,
            after: raw.after,
        })
    }
}

impl Keyset {
    /// Answers a page as a JSON array; a full page carries `Link: <…?after=LAST>;
    /// rel="next"` (RFC 8288), built from `uri` with `after` replaced, so a client can follow
    /// it until a page comes without one.
    pub fn respond<T: Serialize>(
        self,
        uri: &axum::http::Uri,
        items: Vec<T>,
        last_id: impl Fn(&T) -> uuid::Uuid,
    ) -> Response {
        let full = i64::try_from(items.len()).is_ok_and(|n| n == self.limit);
        let next = full
            .then(|| items.last().map(&last_id))
            .flatten()
            .map(|last| {
                let mut query = form_urlencoded::Serializer::new(String::new());
                for (key, value) in form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
                    if key != "after" {
                        query.append_pair(&key, &value);
                    }
                }
                query.append_pair("after", &last.to_string());
                format!("<{}?{}>; rel=\"next\"", uri.path(), query.finish())
            });
        let mut response = AppJson(items).into_response();
        if let Some(link) = next.and_then(|l| axum::http::HeaderValue::from_str(&l).ok()) {
            response.headers_mut().insert(header::LINK, link);
        }
        response
    }
}

/// `limit` 1–[`MAX_LIMIT`], default [`DEFAULT_LIMIT`].
fn check_limit(limit: Option<i64>) -> Result<i64, ApiError> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if (1..=MAX_LIMIT).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::BadRequest {
            detail: format!("limit must be between 1 and {MAX_LIMIT}"),
            errors: vec![FieldError::new(
                "limit",
                format!("must be between 1 and {MAX_LIMIT}"),
            )],
        })
    }
}
