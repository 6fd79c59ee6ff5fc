//! Entity tags of offers (RFC 9110 §8.8.3): the `ETag` every single-offer answer carries and
//! the `If-Match` precondition that edits may, and reviews must, send.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use shared::ApiError;
use shared::db::offers::Offer;
use shared::http::AppJson;

/// An offer answered with its `ETag`.
pub(crate) struct Tagged(pub(crate) StatusCode, pub(crate) Offer);

impl IntoResponse for Tagged {
    fn into_response(self) -> Response {
        let etag = entity_tag(&self.1);
        let mut response = (self.0, AppJson(self.1)).into_response();
        response.headers_mut().insert(header::ETAG, etag);
        response
    }
}

/// The offer's entity tag (RFC 9110 §8.8.3): its `version`, quoted. Every change of content
/// or status moves it, so an `If-Match` of it names exactly the content read.
pub(crate) fn entity_tag(offer: &Offer) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{}\"", offer.version))
        .expect("a quoted integer is a valid header value")
}

/// `If-Match` (RFC 9110 §13.1.1): absent, `*`, or a list of entity tags; weak tags compare
/// by their value.
pub(crate) struct IfMatch(Option<Vec<String>>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(header::IF_MATCH) else {
            return Ok(IfMatch(None));
        };
        let value = value.to_str().map_err(|_| ApiError::BadRequest {
            detail: "malformed If-Match header".into(),
            errors: Vec::new(),
        })?;
        if value.trim() == "*" {
            return Ok(IfMatch(None));
        }
        let tags = value
            .split(',')
            .map(|t| {
                t.trim()
                    .trim_start_matches("W/")
                    .trim_matches('"')
                    .to_owned()
            })
            .collect();
        Ok(IfMatch(Some(tags)))
    }
}

impl IfMatch {
    /// As [`IfMatch::check`], but an entity tag is required: 428 without `If-Match` or with
    /// `*`. For the steps that must act on the version the caller read (approve, reject).
    pub(crate) fn require(&self, offer: &Offer) -> Result<(), ApiError> {
        if self.0.is_none() {
            return Err(ApiError::PreconditionRequired(format!(
                "send If-Match with the ETag of the version of offer {} you reviewed (the \
                 offer's or its draft-diff's ETag)",
                offer.id
            )));
        }
        self.check(offer)
    }

    /// 412 when `If-Match` names tags none of which is `offer`'s version.
    pub(crate) fn check(&self, offer: &Offer) -> Result<(), ApiError> {
        match &self.0 {
            Some(tags) if !tags.iter().any(|t| *t == offer.version.to_string()) => {
                Err(ApiError::PreconditionFailed(format!(
                    "offer {} is at version {}; reload it and retry",
                    offer.id, offer.version
                )))
            }
            _ => Ok(()),
        }
    }
}
