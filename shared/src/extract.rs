//! Request extractors that authenticate or identify the caller: [`Principal`] (a bearer
//! token, then the roles the database holds now), [`Account`], [`SuperAdmin`] and
//! [`ClientAddress`]. They stand above [`crate::auth`] (the principal's data and permission
//! check) and [`crate::db`] (the principal lookup), which import nothing from here.
//!
//! The bearer token (RFC 6750) proves identity only. Roles and permissions come from one
//! indexed query per request, so a removed role, a deleted user or a password change
//! (`users.tokens_valid_after`) takes effect on the caller's next request, whatever the token
//! says.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use chrono::Utc;

use crate::auth::Principal;
use crate::db;
use crate::domain::Username;
use crate::error::ApiError;
use crate::state::AppState;

fn bearer_token(parts: &Parts) -> Result<&str, ApiError> {
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or(ApiError::Unauthorized("missing bearer token"))?
        .to_str()
        .map_err(|_| ApiError::Unauthorized("malformed Authorization header"))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or(ApiError::Unauthorized("malformed Authorization header"))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::Unauthorized("expected a bearer token"));
    }
    Ok(token.trim())
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(cached) = parts.extensions.get::<Principal>() {
            return Ok(cached.clone());
        }
        let token = bearer_token(parts)?;
        let now = Utc::now();
        let claims = state.tokens.verify(token, now).map_err(|err| {
            tracing::info!(error = %err, "bearer token rejected");
            ApiError::Unauthorized("invalid or expired token")
        })?;
        let username =
            Username::parse(claims.sub).map_err(|_| ApiError::Unauthorized("invalid token"))?;
        let client = state.platform.get().await?;
        let Some(record) = db::users::load_principal(&client, &username).await? else {
            return Err(ApiError::Unauthorized("invalid or expired token"));
        };
        if claims.iat_ms < record.tokens_valid_after.timestamp_millis() {
            return Err(ApiError::Unauthorized(
                "token was issued before the last password change; sign in again",
            ));
        }
        let principal = record.principal;
        tracing::Span::current().record("user.name", principal.username.as_str());
        parts.extensions.insert(principal.clone());
        parts.extensions.insert(Account(record.account));
        Ok(principal)
    }
}

/// The caller's account (`users` row, never the password hash), read by the same statement as
/// its [`Principal`]: authenticating as [`Principal`] does, with no further query.
#[derive(Debug, Clone)]
pub struct Account(pub db::users::User);

impl FromRequestParts<AppState> for Account {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Principal::from_request_parts(parts, state).await?;
        parts.extensions.get::<Account>().cloned().ok_or_else(|| {
            ApiError::internal("the principal was authenticated without its account")
        })
    }
}

/// A [`Principal`] that is a super admin; any other caller gets 403.
#[derive(Debug, Clone)]
pub struct SuperAdmin(pub Principal);

impl FromRequestParts<AppState> for SuperAdmin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal = Principal::from_request_parts(parts, state).await?;
        if principal.is_super_admin {
            Ok(SuperAdmin(principal))
        } else {
            Err(ApiError::Forbidden(
                "this operation requires a super admin".into(),
            ))
        }
    }
}

/// The address of the client that sent a request, as the sign-in throttle counts it:
///
/// 1. on Lambda, API Gateway's `requestContext.http.sourceIp` (API Gateway sets it from the
///    TCP connection; a client cannot forge it with a header);
/// 2. with `TRUSTED_PROXY_HEADER` set, the right-most address in that header (the one the
///    trusted proxy appended; the left-most entries are whatever the client sent);
/// 3. otherwise the socket's peer address (`offerctl serve`);
/// 4. `unknown` when none is available (a request built in-process).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAddress(pub String);

impl ClientAddress {
    /// The address of `parts`' client, reading the trusted header `proxy_header` if given.
    pub fn of(parts: &Parts, proxy_header: Option<&axum::http::HeaderName>) -> Self {
        if let Some(lambda_http::request::RequestContext::ApiGatewayV2(context)) =
            parts
                .extensions
                .get::<lambda_http::request::RequestContext>()
            && let Some(ip) = &context.http.source_ip
        {
            return Self(ip.clone());
        }
        if let Some(name) = proxy_header {
            let last = parts
                .headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(str::trim)
                .rfind(|v| v.parse::<std::net::IpAddr>().is_ok());
            if let Some(ip) = last {
                return Self(ip.to_owned());
            }
        }
        if let Some(axum::extract::ConnectInfo(peer)) = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        {
            return Self(peer.ip().to_string());
        }
        Self("unknown".into())
    }
}

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self::of(parts, state.trusted_proxy_header.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    #[test]
    fn the_client_address_comes_from_the_socket_or_the_trusted_proxy_only() {
        let parts = |forwarded: &str| {
            let peer: std::net::SocketAddr = "192.0.2.10:40000".parse().expect("address");
            let (parts, ()) = Request::builder()
                .header("x-forwarded-for", forwarded)
                .extension(axum::extract::ConnectInfo(peer))
                .body(())
                .expect("request")
                .into_parts();
            parts
        };
        let proxy = axum::http::HeaderName::from_static("x-forwarded-for");
        // Without a trusted proxy, a client's own X-Forwarded-For is ignored.
        assert_eq!(ClientAddress::of(&parts("6.6.6.6"), None).0, "192.0.2.10");
        // Behind one, the right-most address (the one the proxy appended) counts.
        assert_eq!(
            ClientAddress::of(&parts("6.6.6.6, 198.51.100.4"), Some(&proxy)).0,
            "198.51.100.4"
        );
        assert_eq!(
            ClientAddress::of(&parts("not an address"), Some(&proxy)).0,
            "192.0.2.10"
        );
        let (bare, ()) = Request::builder().body(()).expect("request").into_parts();
        assert_eq!(ClientAddress::of(&bare, None).0, "unknown");
    }
}
