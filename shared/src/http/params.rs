//! Query-string and path parameters decoded into types, a bad value answering 400 before any
//! query runs.

use super::json::pointer;
use crate::error::{ApiError, FieldError};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

/// Query-string parameters decoded into `T`; a bad value answers 400 naming the parameter.
#[derive(Debug, Clone, Copy, Default)]
pub struct AppQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for AppQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        if let Some((name, _)) = form_urlencoded::parse(query.as_bytes())
            .find(|(name, value)| name.contains('\0') || value.contains('\0'))
        {
            let pointer = format!("/{name}");
            return Err(ApiError::BadRequest {
                detail: format!(
                    "invalid query parameter {pointer}: must not contain the NUL character (U+0000)"
                ),
                errors: vec![FieldError {
                    pointer,
                    detail: "must not contain the NUL character (U+0000)".into(),
                }],
            });
        }
        let deserializer =
            serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map(AppQuery)
            .map_err(|err| {
                let pointer = pointer(err.path());
                let message = err.into_inner().to_string();
                ApiError::BadRequest {
                    detail: format!("invalid query parameter {pointer}: {message}"),
                    errors: vec![FieldError {
                        pointer,
                        detail: message,
                    }],
                }
            })
    }
}

/// Path parameters decoded into `T` (typically a domain newtype that parses); a value the
/// type refuses answers 400 before any query runs.
#[derive(Debug, Clone, Copy)]
pub struct AppPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for AppPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| AppPath(value))
            .map_err(|rejection| ApiError::BadRequest {
                detail: format!("invalid path parameter: {}", rejection.body_text()),
                errors: Vec::new(),
            })
    }
}
