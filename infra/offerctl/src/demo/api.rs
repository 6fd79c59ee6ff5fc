//! The demo's HTTP client: requests with a bearer token or a webhook key, answers checked
//! against the statuses expected, and the demo users made or reset.

use anyhow::{Context, bail};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A JSON client of the API.
pub(super) struct Api {
    pub(super) http: reqwest::Client,
    pub(super) base: String,
}

/// An answer: status, `ETag` (if any) and JSON body (`null` when empty).
pub(super) struct Answer {
    pub(super) status: StatusCode,
    pub(super) etag: Option<String>,
    pub(super) body: Value,
}

impl Answer {
    /// The body if the status is one of `expected`, else an error with the problem detail.
    pub(super) fn expect(self, what: &str, expected: &[u16]) -> anyhow::Result<Value> {
        if expected.contains(&self.status.as_u16()) {
            return Ok(self.body);
        }
        let detail = self.body["detail"].as_str().unwrap_or("no detail");
        bail!("{what}: the server answered {} ({detail})", self.status)
    }
}

/// Credentials of a request.
pub(super) enum Auth<'a> {
    Bearer(&'a str),
    WebhookKey(&'a str),
}

impl Api {
    pub(super) async fn send(
        &self,
        method: Method,
        path: &str,
        auth: Option<Auth<'_>>,
        body: Option<&Value>,
    ) -> anyhow::Result<Answer> {
        self.send_if_match(method, path, auth, body, None).await
    }

    /// As [`Api::send`], with `If-Match: if_match` when given (a checker's approval names
    /// the version reviewed).
    pub(super) async fn send_if_match(
        &self,
        method: Method,
        path: &str,
        auth: Option<Auth<'_>>,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> anyhow::Result<Answer> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(tag) = if_match {
            request = request.header("if-match", tag);
        }
        request = match auth {
            Some(Auth::Bearer(token)) => request.bearer_auth(token),
            Some(Auth::WebhookKey(key)) => request.header("x-api-key", key),
            None => request,
        };
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.with_context(|| {
            format!("cannot reach {} (is `offerctl serve` running?)", self.base)
        })?;
        let status = response.status();
        let etag = response
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = response.bytes().await?;
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        Ok(Answer { status, etag, body })
    }

    pub(super) async fn sign_in(&self, username: &str, password: &str) -> anyhow::Result<String> {
        let body = json!({"username": username, "password": password});
        let answer = self
            .send(Method::POST, "/auth/token", None, Some(&body))
            .await?;
        let token = answer.expect(&format!("signing in as {username}"), &[200])?;
        token["access_token"]
            .as_str()
            .map(str::to_owned)
            .context("the token answer has no access_token")
    }
}

/// Creates `username` with a new password, or resets the password of an existing one;
/// answers the password.
pub(super) async fn ensure_user(
    api: &Api,
    admin_token: &str,
    username: &str,
    full_name: &str,
) -> anyhow::Result<String> {
    let password = new_password();
    let body = json!({"username": username, "password": password, "full_name": full_name});
    let created = api
        .send(
            Method::POST,
            "/sa/users",
            Some(Auth::Bearer(admin_token)),
            Some(&body),
        )
        .await?;
    if created.status == StatusCode::CONFLICT {
        let body = json!({"new_password": password});
        api.send(
            Method::POST,
            &format!("/sa/users/{username}/change-password"),
            Some(Auth::Bearer(admin_token)),
            Some(&body),
        )
        .await?
        .expect(&format!("resetting {username}'s password"), &[204])?;
    } else {
        created.expect(&format!("creating {username}"), &[201])?;
    }
    Ok(password)
}

/// A password for a demo user: `Demo-` and 32 hex digits of a random (v4) UUID, 122 bits from
/// the operating system's generator.
fn new_password() -> String {
    format!("Demo-{}", uuid::Uuid::new_v4().simple())
}
