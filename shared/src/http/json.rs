//! JSON request bodies: decoded into a type with problem details that point at the field
//! (RFC 6901), and refused whole for what serde would accept silently (duplicate member
//! names, U+0000, numbers a double would round), within a size limit.

use crate::error::{ApiError, FieldError, pointer_token};
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::strict::{
    duplicate_key, duplicate_key_error, has_nul_escape, inexact_number, nul_pointer,
};

/// Largest JSON body any route reads, in bytes.
pub const MAX_JSON_BODY_BYTES: usize = 1024 * 1024;

/// Turns a serde error path (`a.b[0].c`) into a JSON Pointer (`/a/b/0/c`).
pub(crate) fn pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    path.iter()
        .filter_map(|segment| match segment {
            Segment::Seq { index } => Some(format!("/{index}")),
            Segment::Map { key } => Some(format!("/{key}")),
            Segment::Enum { variant } => Some(format!("/{variant}")),
            Segment::Unknown => None,
        })
        .collect()
}

/// Decodes a JSON body, which must be an object, into `T`, naming the offending field on
/// failure.
///
/// # Errors
/// 400 for syntactically invalid JSON; 422 (with `errors[].pointer`) for JSON of the wrong
/// shape: not an object, a missing or unknown field, a wrong type, a value a newtype
/// refuses, a string containing U+0000 (which PostgreSQL cannot store), a member name
/// repeated in any object of the body (see [`duplicate_key`]), or a number that would be
/// rounded (see [`inexact_number`]).
pub fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if let Some(pointer) = duplicate_key(bytes) {
        return Err(duplicate_key_error(pointer));
    }
    if let Some(pointer) = inexact_number(bytes) {
        let detail = "this number cannot be stored exactly (at most 64-bit integers and \
                      numbers a double holds without rounding); send it as a string";
        return Err(ApiError::Unprocessable {
            detail: format!("{pointer}: {detail}"),
            errors: vec![FieldError {
                pointer,
                detail: detail.into(),
            }],
        });
    }
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{')
        && serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok()
    {
        return Err(ApiError::Unprocessable {
            detail: "the body must be a JSON object".into(),
            errors: vec![FieldError {
                pointer: String::new(),
                detail: "must be a JSON object".into(),
            }],
        });
    }
    if has_nul_escape(bytes)
        && let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes)
        && let Some(pointer) = nul_pointer(&value)
    {
        return Err(ApiError::Unprocessable {
            detail: format!("{pointer}: must not contain the NUL character (U+0000)"),
            errors: vec![FieldError {
                pointer,
                detail: "must not contain the NUL character (U+0000)".into(),
            }],
        });
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let mut pointer = pointer(err.path());
        let inner = err.into_inner();
        let message = strip_position(&inner.to_string());
        // serde names a missing field in its message only, with the path of the object that
        // lacks it: point at the field itself.
        if let Some(field) = missing_field(&message) {
            pointer.push('/');
            pointer.push_str(&pointer_token(field));
        }
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::BadRequest {
                detail: format!("malformed JSON body: {message}"),
                errors: Vec::new(),
            };
        }
        let shown = if pointer.is_empty() {
            "body"
        } else {
            pointer.as_str()
        };
        ApiError::Unprocessable {
            detail: format!("{shown}: {message}"),
            errors: vec![FieldError {
                pointer,
                detail: message,
            }],
        }
    })?;
    deserializer.end().map_err(|_| ApiError::BadRequest {
        detail: "malformed JSON body: trailing characters after the JSON value".into(),
        errors: Vec::new(),
    })?;
    Ok(value)
}

/// The field of serde's "missing field `name`" message.
fn missing_field(message: &str) -> Option<&str> {
    message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.strip_suffix('`'))
}

/// serde_json appends " at line 1 column 9" to its messages; the pointer says where.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|essence| {
            let essence = essence.trim().to_ascii_lowercase();
            essence == "application/json" || essence.ends_with("+json")
        })
        .unwrap_or(false)
}

/// Reads a whole body of at most `limit` bytes.
///
/// # Errors
/// 413 naming the limit if the body is larger (or cannot be read).
pub async fn read_body_limited(
    body: axum::body::Body,
    limit: usize,
) -> Result<axum::body::Bytes, ApiError> {
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large(limit))
}

/// 413 naming the largest body a route reads, `limit` bytes.
fn too_large(limit: usize) -> ApiError {
    ApiError::PayloadTooLarge(format!("the body must be at most {limit} bytes"))
}

/// Whether the `Content-Type` essence (before any `;`) equals `media_type`.
pub fn has_media_type(headers: &HeaderMap, media_type: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case(media_type))
}

/// Reads the whole body, refusing more than [`MAX_JSON_BODY_BYTES`].
///
/// # Errors
/// 413 if the body is larger than [`MAX_JSON_BODY_BYTES`]; 400 if it cannot be read.
pub async fn read_body(req: Request) -> Result<axum::body::Bytes, ApiError> {
    axum::body::to_bytes(req.into_body(), MAX_JSON_BODY_BYTES)
        .await
        .map_err(|err| {
            let too_large = err
                .into_inner()
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some();
            if too_large {
                self::too_large(MAX_JSON_BODY_BYTES)
            } else {
                ApiError::BadRequest {
                    detail: "the body could not be read".into(),
                    errors: Vec::new(),
                }
            }
        })
}

/// JSON request body / response. As an extractor it requires `Content-Type:
/// application/json` (415 otherwise) and answers malformed bodies through [`decode_json`];
/// as a response it serialises `T` with `Content-Type: application/json`.
#[derive(Debug, Clone, Copy, Default)]
pub struct AppJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for AppJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::UnsupportedMediaType(
                "expected Content-Type: application/json".into(),
            ));
        }
        let bytes = read_body(req).await?;
        decode_json(&bytes).map(AppJson)
    }
}

impl<T: Serialize> IntoResponse for AppJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// An optional JSON body: an empty body yields `T::default()`; a non-empty one must be JSON
/// and is decoded as [`AppJson`] would.
#[derive(Debug, Clone, Copy, Default)]
pub struct OptionalJson<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let json = is_json(req.headers());
        let bytes = read_body(req).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        if !json {
            return Err(ApiError::UnsupportedMediaType(
                "expected Content-Type: application/json".into(),
            ));
        }
        decode_json(&bytes).map(OptionalJson)
    }
}

/// serde helper for "absent vs. null" in partial updates: with
/// `#[serde(default, deserialize_with = "shared::http::nullable")]` on an `Option<Option<T>>`
/// field, an absent field is `None` (leave unchanged), `null` is `Some(None)` (clear) and a
/// value is `Some(Some(v))`.
///
/// # Errors
/// Whatever `T`'s deserialisation answers.
pub fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    serde::Deserialize::deserialize(deserializer).map(Some)
}

/// Longest free text of the administration routes (descriptions, full names), in
/// characters.
pub const MAX_TEXT_CHARS: usize = 1000;

/// Longest comment, reason or campaign description, in characters.
pub const MAX_COMMENT_CHARS: usize = 4000;

/// Checks that an optional free-text field is at most `max` characters.
///
/// # Errors
/// 422 naming the field.
pub fn check_length(field: &str, value: Option<&str>, max: usize) -> Result<(), ApiError> {
    match value {
        Some(v) if v.chars().count() > max => Err(ApiError::invalid_field(
            field,
            format!("must be at most {max} characters"),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::strict::canonical_number;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        inner: Option<Inner>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        count: u32,
    }

    fn pointer_of(err: ApiError) -> (u16, Vec<FieldError>) {
        match err {
            ApiError::Unprocessable { errors, .. } => (422, errors),
            ApiError::BadRequest { errors, .. } => (400, errors),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn wrong_types_name_the_nested_field() {
        let err = decode_json::<Body>(br#"{"name":"a","inner":{"count":"x"}}"#)
            .expect_err("must be refused");
        let (status, errors) = pointer_of(err);
        assert_eq!(status, 422);
        assert_eq!(errors[0].pointer, "/inner/count");
    }

    #[test]
    fn missing_fields_are_named_by_their_pointer() {
        for (body, pointer) in [
            (&br#"{}"#[..], "/name"),
            (&br#"{"name":"a","inner":{}}"#[..], "/inner/count"),
        ] {
            let err = decode_json::<Body>(body).expect_err("must be refused");
            let (status, errors) = pointer_of(err);
            assert_eq!(status, 422);
            assert_eq!(errors[0].pointer, pointer, "{errors:?}");
        }
    }

    #[test]
    fn unknown_fields_are_refused_and_named() {
        let err = decode_json::<Body>(br#"{"name":"a","status":"approved"}"#)
            .expect_err("must be refused");
        let (status, errors) = pointer_of(err);
        assert_eq!(status, 422);
        assert!(
            errors[0].detail.contains("unknown field `status`"),
            "{errors:?}"
        );
    }

    #[test]
    fn bodies_must_be_objects() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Optional {
            a: Option<u32>,
            b: Option<u32>,
        }
        let err = decode_json::<Optional>(b"[null, null]").expect_err("must be refused");
        assert_eq!(pointer_of(err).0, 422);
        assert!(decode_json::<Optional>(b" {} ").is_ok());
    }

    #[test]
    fn nul_characters_are_refused_with_their_pointer() {
        let err = decode_json::<Body>(br#"{"name":"a","inner":null,"x":1}"#).expect_err("unknown");
        assert_eq!(pointer_of(err).0, 422);
        let err = decode_json::<Body>(br#"{"name":"a\u0000b"}"#).expect_err("NUL");
        let (status, errors) = pointer_of(err);
        assert_eq!((status, errors[0].pointer.as_str()), (422, "/name"));
        // An escaped backslash followed by "u0000" is text, not a NUL.
        let body: Body = decode_json(br#"{"name":"a\\u0000"}"#).expect("plain text");
        assert_eq!(body.name, "a\\u0000");
        assert_eq!(
            nul_pointer(&serde_json::json!({"a": [1, {"k/\u{0}": 2}]})).as_deref(),
            Some("/a/1/k~1\u{0}")
        );
    }

    #[test]
    fn numbers_a_double_would_round_are_found_with_their_pointer() {
        for (text, pointer) in [
            (r#"{"a": 123456789012345678901234567890}"#, Some("/a")),
            (r#"{"a": [1, -18446744073709551617]}"#, Some("/a/1")),
            (
                r#"{"a~b": {"c": 0.1000000000000000000001}}"#,
                Some("/a~0b/c"),
            ),
            (r#"{"a": 9007199254740993.0}"#, Some("/a")),
            (
                r#"{"s": "123456789012345678901234567890", "n": 18446744073709551615}"#,
                None,
            ),
            (
                r#"{"a": -9223372036854775808, "b": 0.1, "c": 1e-7, "d": 1E2, "e": -0.0}"#,
                None,
            ),
            (
                r#"{"a": 2.50, "b": 100.000, "c": 12e-1, "d": "\"1e999\""}"#,
                None,
            ),
        ] {
            assert_eq!(
                inexact_number(text.as_bytes()).as_deref(),
                pointer,
                "{text}"
            );
        }
        assert_eq!(canonical_number("1.50e2"), canonical_number("150"));
        assert_eq!(canonical_number("-0.0"), canonical_number("0"));
        assert_ne!(canonical_number("1e2"), canonical_number("-1e2"));
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_depth_with_their_pointer() {
        let pointer = |body: &[u8]| match decode_json::<serde_json::Value>(body) {
            Err(ApiError::Unprocessable { errors, .. }) => Some(errors[0].pointer.clone()),
            Err(other) => panic!("unexpected {other:?}"),
            Ok(_) => None,
        };
        assert_eq!(pointer(br#"{"a":1,"a":2}"#).as_deref(), Some("/a"));
        assert_eq!(
            pointer(br#"{"data":{"fee":0,"x":[{"k":1},{"k/~":1,"k/~":2}],"fee":1}}"#).as_deref(),
            Some("/data/x/1/k~1~0")
        );
        assert_eq!(
            pointer(br#"{"selection_criteria":{"any":[{"segment":"a","segment":"b"}]}}"#)
                .as_deref(),
            Some("/selection_criteria/any/0/segment")
        );
        assert_eq!(pointer(br#"{"a":{"b":1},"c":{"b":2}}"#), None);
        assert_eq!(
            duplicate_key(br#"[{"a":1},{"a":1,"a":2}]"#).as_deref(),
            Some("/1/a")
        );
    }

    #[test]
    fn syntax_errors_are_bad_requests() {
        let (status, _) =
            pointer_of(decode_json::<Body>(b"{\"name\":").expect_err("must be refused"));
        assert_eq!(status, 400);
        let (status, _) =
            pointer_of(decode_json::<Body>(b"{\"name\":\"a\"} x").expect_err("must be refused"));
        assert_eq!(status, 400);
    }
}
