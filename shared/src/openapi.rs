//! The OpenAPI 3.1 description of the API, generated from the code with `utoipa`.
//!
//! Each function crate annotates its handlers with `#[utoipa::path]` and exports
//! `openapi()`; [`document`] merges those parts into the one document served at
//! `/openapi.json` and committed as `openapi.json`, adding what every part shares:
//!
//! - the security schemes: `bearer` (an access token from `POST /auth/token`, RFC 6750) and
//!   `webhook_key` (the delivery provider's key in `X-API-Key`); `bearer` is the default of
//!   every operation that declares no `security` (public ones declare `security(())`);
//! - the error responses, each an RFC 9457 [`ProblemDetails`] body. An operation lists the
//!   errors particular to it (409, 412, 429, …) with the unit types of this module, e.g.
//!   `(status = 409, response = shared::openapi::Conflict)`; [`document`] adds the ones that
//!   follow from its shape: 400/500/503 always, 401 (and 403 outside `auth` and `delivery`)
//!   when it needs credentials, 413/415/422 when it reads a body, 404 when its path names a
//!   resource.

use std::collections::BTreeMap;

use utoipa::openapi::path::Operation;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{Schema, SchemaType, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{
    ContentBuilder, HeaderBuilder, InfoBuilder, LicenseBuilder, OpenApi, OpenApiBuilder, Ref, RefOr,
};
use utoipa::{PartialSchema, ToSchema};

pub use crate::error::ProblemDetails;
use crate::error::{FieldError, PROBLEM_JSON};

/// Name of the bearer-token security scheme (`Authorization: Bearer <JWT>`).
pub const BEARER: &str = "bearer";
/// Name of the delivery provider's security scheme (`X-API-Key: omk_…`).
pub const WEBHOOK_KEY: &str = "webhook_key";

/// The tags operations are grouped by, with their descriptions, in display order.
const TAGS: &[(&str, &str)] = &[
    ("auth", "Sign-in and the signed-in user's own account."),
    (
        "admin",
        "Platform administration (super admins only): tenants, users, roles and their permissions, role assignments, access audit trails, webhook keys.",
    ),
    (
        "members",
        "A tenant's members and their roles, managed by the tenant's own admins (`tenant.members.manage`), with the tenant's access audit trail.",
    ),
    (
        "offers",
        "The maker–checker offer workflow of one tenant, with its audit trail.",
    ),
    (
        "customers",
        "The customer base campaigns select from (super admins only).",
    ),
    (
        "campaigns",
        "Campaigns of one tenant: selection criteria, processing and delivery tracking.",
    ),
    (
        "delivery",
        "The webhook delivery providers report results to (webhook key).",
    ),
    ("system", "Liveness."),
];

macro_rules! problem_responses {
    ($($(#[$doc:meta])* $name:ident = $status:literal, $description:literal;)+) => {
        $(
            $(#[$doc])*
            #[derive(Debug, Clone, Copy)]
            pub struct $name;

            impl<'r> utoipa::ToResponse<'r> for $name {
                fn response() -> (&'r str, RefOr<Response>) {
                    (stringify!($name), problem_response($status, $description).into())
                }
            }
        )+

        /// Every problem response of the API: `(component name, status, response)`.
        fn all_problem_responses() -> Vec<(&'static str, u16, Response)> {
            vec![$((stringify!($name), $status, problem_response($status, $description))),+]
        }
    };
}

problem_responses! {
    /// 400: a malformed body, query or path parameter.
    BadRequest = 400, "Malformed request: unparseable JSON, or a bad query or path parameter (named in `errors`).";
    /// 401: no credentials, or credentials that are not (or no longer) valid.
    Unauthorized = 401, "Missing, invalid or expired credentials.";
    /// 403: valid credentials without the permission.
    Forbidden = 403, "The principal lacks the permission this operation needs.";
    /// 404: no such resource (or one the principal may not know of).
    NotFound = 404, "No such resource.";
    /// 409: the request conflicts with the current state.
    Conflict = 409, "The request conflicts with the resource's current state (a duplicate, or a transition its status does not allow).";
    /// 412: a stale `If-Match`.
    PreconditionFailed = 412, "`If-Match` names a version that is no longer current.";
    /// 428: the operation needs `If-Match`.
    PreconditionRequired = 428, "This operation needs `If-Match` with the `ETag` of the version the caller read (RFC 6585 §3).";
    /// 413: the body is larger than the operation reads.
    PayloadTooLarge = 413, "The body is larger than this operation accepts.";
    /// 415: the body's media type is not the one the operation reads.
    UnsupportedMediaType = 415, "The body's Content-Type is not one this operation reads.";
    /// 422: well-formed but invalid input.
    Unprocessable = 422, "Invalid input; `errors` names each offending field as a JSON Pointer.";
    /// 429: too many attempts.
    TooManyRequests = 429, "Too many attempts; wait for `Retry-After` seconds.";
    /// 500: a defect; the body carries no detail.
    InternalError = 500, "Unexpected failure; the body carries no detail (the cause is logged).";
    /// 503: the database is unreachable or busy.
    ServiceUnavailable = 503, "The database is unreachable or busy; retry after `Retry-After` seconds.";
}

/// A problem+json response with the headers its status carries.
fn problem_response(status: u16, description: &str) -> Response {
    let content = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name(ProblemDetails::name())))
        .build();
    let mut response = ResponseBuilder::new()
        .description(description)
        .content(PROBLEM_JSON, content);
    let header = |description: &str| {
        HeaderBuilder::new()
            .schema(Some(String::schema()))
            .description(Some(description))
            .build()
    };
    match status {
        401 => {
            response = response.header(
                "WWW-Authenticate",
                header("`Bearer` (RFC 6750 §3) for bearer-token operations."),
            );
        }
        429 | 503 => {
            response = response.header(
                "Retry-After",
                header("Seconds to wait before retrying (RFC 9110 §10.2.3)."),
            );
        }
        _ => {}
    }
    response.build()
}

/// The schema of a batch answered item by item (delivery reports, conversions): an array of
/// at most `max_items` items, each the component `item` or anything else, which is
/// answered `invalid` with the reason in its result rather than refused whole (so a
/// schema-driven client or fuzzer sees that such items are accepted).
#[must_use]
pub fn item_by_item_array(item: &str, max_items: usize, description: &str) -> RefOr<Schema> {
    let any = utoipa::openapi::schema::AnyOfBuilder::new()
        .item(Ref::from_schema_name(item))
        .item(
            utoipa::openapi::schema::ObjectBuilder::new()
                .schema_type(SchemaType::AnyValue)
                .description(Some(
                    "Anything else is answered `invalid`, with the reason, in its result.",
                )),
        )
        .build();
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(RefOr::T(Schema::AnyOf(any)))
        .max_items(Some(max_items))
        .description(Some(description))
        .into()
}

/// Merges the parts of every function into the API's document: title, version, licence,
/// tags, security schemes, the [`ProblemDetails`] schema and the problem responses (see the
/// module documentation for which operation gets which).
pub fn document(parts: impl IntoIterator<Item = OpenApi>) -> OpenApi {
    let mut doc = OpenApiBuilder::new().info(info()).build();
    for part in parts {
        doc.merge(part);
    }
    doc.tags = Some(
        TAGS.iter()
            .map(|(name, description)| {
                TagBuilder::new()
                    .name(*name)
                    .description(Some(*description))
                    .build()
            })
            .collect(),
    );
    let components = doc.components.get_or_insert_with(Default::default);
    add_security_schemes(components);
    let mut schemas = vec![
        (
            ProblemDetails::name().into_owned(),
            ProblemDetails::schema(),
        ),
        (FieldError::name().into_owned(), FieldError::schema()),
    ];
    ProblemDetails::schemas(&mut schemas);
    components.schemas.extend(schemas);
    let by_status: BTreeMap<u16, &'static str> = all_problem_responses()
        .into_iter()
        .map(|(name, status, response)| {
            components.responses.insert(name.into(), response.into());
            (status, name)
        })
        .collect();
    for (path, item) in &mut doc.paths.paths {
        let names_resource = path.contains('{');
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            complete_operation(operation, names_resource, &by_status);
        }
    }
    doc
}

/// The document's title, version, description and licence.
fn info() -> utoipa::openapi::Info {
    InfoBuilder::new()
        .title("Offer Management Platform")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "Multi-tenant offers under maker–checker approval, campaigns that select customers \
             by JSON criteria, and delivery tracking. Errors are RFC 9457 problem details \
             (`application/problem+json`). Sign in with `POST /auth/token`, then send \
             `Authorization: Bearer <access_token>`.",
        ))
        .license(Some(
            LicenseBuilder::new()
                .name("Apache-2.0")
                .identifier(Some("Apache-2.0"))
                .build(),
        ))
        .build()
}

/// The two ways in: a bearer JWT ([`BEARER`]) and a delivery provider's key
/// ([`WEBHOOK_KEY`]).
fn add_security_schemes(components: &mut utoipa::openapi::Components) {
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .description(Some(
                    "The `access_token` of `POST /auth/token` (HS256 JWT, RFC 6750 / RFC 7519).",
                ))
                .build(),
        ),
    );
    components.add_security_scheme(
        WEBHOOK_KEY,
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            "X-API-Key",
            "A delivery provider's key (`omk_…`), issued by `POST /sa/webhook-keys` or \
             `offerctl webhook-key create`.",
        ))),
    );
}

/// One operation completed: bearer security unless it says otherwise, intra-doc links as
/// plain code, no `null` in parameter schemas, and the problem responses its shape implies.
fn complete_operation(
    operation: &mut utoipa::openapi::path::Operation,
    names_resource: bool,
    by_status: &BTreeMap<u16, &'static str>,
) {
    default_security(operation);
    // Rustdoc's intra-doc links (`[`NAME`]`) read as plain code here.
    if let Some(description) = &mut operation.description {
        *description = description.replace("[`", "`").replace("`]", "`");
    }
    for parameter in operation.parameters.iter_mut().flatten() {
        if let RefOr::T(parameter) = parameter
            && let Some(schema) = parameter.schema.take()
        {
            parameter.schema = Some(without_null(schema));
        }
    }
    for status in implied_statuses(operation, names_resource) {
        if let Some(name) = by_status.get(&status) {
            operation
                .responses
                .responses
                .entry(status.to_string())
                .or_insert_with(|| RefOr::Ref(Ref::from_response_name(*name)));
        }
    }
}

/// Bearer authentication is the default: an operation that declares no `security` requires
/// [`BEARER`]; one that declares `security(())` (an empty requirement: the sign-in, the
/// health check) is public and states none; any other (the delivery provider's
/// [`WEBHOOK_KEY`]) keeps its own.
fn default_security(operation: &mut Operation) {
    use utoipa::openapi::security::SecurityRequirement;
    let public = SecurityRequirement::default();
    match &operation.security {
        None => {
            operation.security = Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]);
        }
        Some(requirements) if requirements.iter().all(|r| *r == public) => {
            operation.security = None;
        }
        Some(_) => {}
    }
}

/// A parameter is absent or has a value; `null` is not a value a query string or header can
/// carry, so the `null` an `Option` adds to its schema is dropped.
fn without_null(schema: RefOr<Schema>) -> RefOr<Schema> {
    match schema {
        RefOr::T(Schema::Object(mut object)) => {
            if let SchemaType::Array(types) = &object.schema_type {
                let types: Vec<Type> = types
                    .iter()
                    .filter(|t| **t != Type::Null)
                    .cloned()
                    .collect();
                object.schema_type = match types.as_slice() {
                    [single] => SchemaType::Type(single.clone()),
                    _ => SchemaType::Array(types),
                };
            }
            RefOr::T(Schema::Object(object))
        }
        other => other,
    }
}

/// The problem statuses an operation's shape implies.
fn implied_statuses(operation: &Operation, names_resource: bool) -> Vec<u16> {
    let mut statuses = vec![400, 500, 503];
    let secured = operation
        .security
        .as_ref()
        .is_some_and(|requirements| !requirements.is_empty());
    if secured {
        statuses.push(401);
        let self_service = operation.tags.as_ref().is_some_and(|tags| {
            tags.iter()
                .any(|tag| tag.as_str() == "auth" || tag.as_str() == "delivery")
        });
        if !self_service {
            statuses.push(403);
        }
    }
    if operation.request_body.is_some() {
        statuses.extend([413, 415, 422]);
    }
    if names_resource {
        statuses.push(404);
    }
    statuses
}
