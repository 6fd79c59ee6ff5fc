//! Test harness: [`TestApp`] runs the merged router of every function in-process against a
//! real PostgreSQL database of its own, cloned from a migrated template.
//!
//! `TEST_DATABASE_URL` (default `postgres://postgres:postgres@127.0.0.1:5432/postgres`) must
//! name a role that may create databases. The template is named after the migrations'
//! checksums, so changing a migration builds a new one; test databases are dropped when their
//! [`TestApp`] is.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use secrecy::SecretString;
use serde_json::Value;
use shared::AppState;
use shared::config::Config;
use shared::db::{self, users};
use shared::domain::Username;
use tower::ServiceExt;

/// Username of the super admin every [`TestApp`] starts with.
pub const SUPER_ADMIN: &str = "root.admin";
/// Its password.
pub const SUPER_ADMIN_PASSWORD: &str = "root admin password";
/// Password given to users made by [`TestApp::create_user`].
pub const USER_PASSWORD: &str = "user password 123";
/// Customers per range job of the test apps' processor (the real data set is split into
/// several ranges).
pub const TEST_RANGE_SIZE: i64 = 3_000;
/// The real data set (10,127 card holders), as the project keeps it.
pub const DEMO_CUSTOMERS_CSV: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../infra/demo/customers_credit_card.csv"
);
/// The JWT key of test apps.
pub const JWT_SECRET: &str = "integration-tests-jwt-secret-0123456789";

fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:5432/postgres".into())
}

fn url_for(database: &str) -> String {
    let admin = admin_url();
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
    format!("{base}/{database}")
}

/// The login role test apps connect as: a member of `offers_api` (migration V007), so it owns
/// nothing and row-level security applies to it, as to the deployed API.
pub const API_ROLE: &str = "offers_test_api";

/// The login role of test apps' platform pool (`DATABASE_PLATFORM_URL`): a member of
/// `offers_api` and of `offers_platform` (migration V014), whose members see every tenant.
pub const PLATFORM_ROLE: &str = "offers_test_platform";

/// `database`'s URL for `role` (password: the role's name; same host and port as
/// `TEST_DATABASE_URL`).
pub fn role_url_for(role: &str, database: &str) -> String {
    let admin = admin_url();
    let (scheme, rest) = admin.split_once("://").unwrap_or(("postgres", &admin));
    let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let host = host.split_once('/').map_or(host, |(host, _)| host);
    format!("{scheme}://{role}:{role}@{host}/{database}")
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {url}: {e} (is PostgreSQL running?)"));
    tokio::spawn(connection);
    client
}

/// Name of the migrated template for the current migrations.
fn template_name() -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for migration in db::migrations::runner().get_migrations() {
        hash = (hash ^ migration.checksum()).wrapping_mul(0x100_0000_01b3);
    }
    format!("oms_template_{hash:016x}")
}

/// Creates and migrates the template unless it exists; serialised across processes by an
/// advisory lock.
async fn ensure_template(admin: &tokio_postgres::Client) -> String {
    let template = template_name();
    admin
        .execute("select pg_advisory_lock(727274)", &[])
        .await
        .expect("lock");
    let exists = admin
        .query_opt("select 1 from pg_database where datname = $1", &[&template])
        .await
        .expect("query")
        .is_some();
    for role in [API_ROLE, PLATFORM_ROLE] {
        admin
            .batch_execute(&format!(
                "do $$ begin
                     if not exists (select from pg_roles where rolname = '{role}') then
                         create role {role} login password '{role}';
                     end if;
                 end $$"
            ))
            .await
            .expect("create the API roles");
    }
    admin
        .batch_execute(&format!("alter role {PLATFORM_ROLE} reset app.scope"))
        .await
        .expect("no role default");
    if !exists {
        let building = format!("{template}_building");
        for statement in [
            format!("drop database if exists {building} with (force)"),
            format!("create database {building}"),
        ] {
            admin
                .batch_execute(&statement)
                .await
                .expect("create template");
        }
        let mut client = connect(&url_for(&building)).await;
        db::migrate(&mut client).await.expect("migrate template");
        drop(client);
        for statement in [
            format!("alter database {building} with is_template true"),
            format!("alter database {building} rename to {template}"),
        ] {
            admin
                .batch_execute(&statement)
                .await
                .expect("finish template");
        }
    }
    admin
        .batch_execute(&format!(
            "grant offers_api to {API_ROLE}; grant offers_api to {PLATFORM_ROLE};
             grant offers_platform to {PLATFORM_ROLE}"
        ))
        .await
        .expect("grant offers_api and offers_platform");
    admin
        .execute("select pg_advisory_unlock(727274)", &[])
        .await
        .expect("unlock");
    template
}

/// A response with its body parsed as JSON (`Value::Null` when empty, a string when not JSON).
#[derive(Debug)]
pub struct TestResponse {
    /// Status code.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Value,
}

impl TestResponse {
    /// Asserts the status is `status`, showing the body otherwise; the response, to go on.
    #[track_caller]
    pub fn expect(self, status: StatusCode) -> Self {
        assert_eq!(self.status, status, "{:?}", self.body);
        self
    }

    /// The `Content-Type` header, or "".
    pub fn content_type(&self) -> &str {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// Parses a response into a [`TestResponse`].
pub async fn read_response(response: axum::response::Response) -> TestResponse {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    TestResponse {
        status,
        headers,
        body,
    }
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// One application on its own database.
pub struct TestApp {
    /// The state handlers share (its pool points at this test's database).
    pub state: AppState,
    /// Every function's routes, as `offerctl serve` mounts them.
    pub router: Router,
    /// This test's database name.
    pub database: String,
}

/// How [`TestApp::spawn_with`] builds the app.
#[derive(Debug, Clone)]
pub struct TestOptions {
    /// How often the background outbox relay runs, as in `offerctl serve`; `None`: no
    /// background relay (the test runs [`shared::relay::Relay`] itself).
    pub relay_interval: Option<std::time::Duration>,
    /// The background relay's re-drive policy.
    pub policy: shared::config::RedrivePolicy,
    /// The API's queue refuses every message (its consumer is gone), as if the process had
    /// died between its commit and the send; the relay and the processor keep a working one.
    pub api_queue_broken: bool,
    /// `CAMPAIGN_RELEASE_BATCH`, if not the default (a small one makes the demo's campaigns
    /// release by ranges on the queue).
    pub release_batch: Option<i64>,
}

impl Default for TestOptions {
    fn default() -> Self {
        Self {
            relay_interval: Some(std::time::Duration::from_secs(1)),
            policy: shared::config::RedrivePolicy::default(),
            api_queue_broken: false,
            release_batch: None,
        }
    }
}

impl TestOptions {
    /// No background relay: the test sends outbox messages itself (or the writers' fast path
    /// does), so nothing else takes them first.
    pub fn without_relay() -> Self {
        Self {
            relay_interval: None,
            ..Self::default()
        }
    }
}

impl TestApp {
    /// Clones the template into a fresh database, builds the app on it (processor on an
    /// in-process queue, outbox relay every second) and creates the super admin
    /// [`SUPER_ADMIN`].
    pub async fn spawn() -> Self {
        Self::spawn_with(TestOptions::default()).await
    }

    /// As [`TestApp::spawn`], built as `options` say.
    pub async fn spawn_with(options: TestOptions) -> Self {
        shared::telemetry::init_with_default("warn");
        let admin = connect(&admin_url()).await;
        let template = ensure_template(&admin).await;
        let database = format!(
            "oms_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            uuid::Uuid::new_v4().simple()
        );
        admin
            .batch_execute(&format!("create database {database} template {template}"))
            .await
            .expect("clone template");
        let url = role_url_for(API_ROLE, &database);
        let platform_url = role_url_for(PLATFORM_ROLE, &database);
        let config = Config::from_lookup(|key| match key {
            "DATABASE_URL" => Some(url.clone()),
            "DATABASE_PLATFORM_URL" => Some(platform_url.clone()),
            "DATABASE_POOL_SIZE" => Some("4".into()),
            "JWT_SECRET" => Some(JWT_SECRET.into()),
            "PASSWORD_HASH_CONCURRENCY" => Some("2".into()),
            "CAMPAIGN_RELEASE_BATCH" => options.release_batch.map(|n| n.to_string()),
            _ => None,
        })
        .expect("config");
        let state = AppState::new(&config).expect("state");
        let queue =
            offerctl_gateway::start_processor(state.platform.clone(), None, TEST_RANGE_SIZE, None)
                .await;
        if let Some(interval) = options.relay_interval {
            offerctl_gateway::start_relay(
                state.platform.clone(),
                queue.clone(),
                options.policy,
                state.release_batch,
                interval,
            );
        }
        let state = if options.api_queue_broken {
            let (broken, receiver) = shared::queue::Queue::in_process();
            drop(receiver);
            state.with_queue(broken)
        } else {
            state.with_queue(queue)
        };
        let app = Self {
            router: offerctl_gateway::app(state.clone()),
            state,
            database,
        };
        app.insert_user(SUPER_ADMIN, SUPER_ADMIN_PASSWORD, true)
            .await;
        app
    }

    /// Inserts a user directly (no API call).
    pub async fn insert_user(&self, username: &str, password: &str, is_super_admin: bool) {
        let hash = self
            .state
            .passwords
            .hash(SecretString::from(password.to_owned()))
            .await
            .expect("hash");
        let username = Username::parse(username).expect("username");
        users::create(
            &self.state.platform.get().await.expect("client"),
            &users::NewUser {
                username: &username,
                password_hash: &hash,
                full_name: None,
                is_super_admin,
            },
        )
        .await
        .expect("insert user");
    }

    /// A pool of this test's database as its owner (`TEST_DATABASE_URL`'s role), as
    /// migrations run.
    pub fn owner_pool(&self) -> deadpool_postgres::Pool {
        let url = url_for(&self.database);
        let config = shared::config::DatabaseConfig::from_lookup(|key| {
            (key == "DATABASE_URL").then(|| url.clone())
        })
        .expect("config");
        db::pool(&config, db::Scope::Platform).expect("owner pool")
    }

    /// A client of this test's database in the platform scope (it sees every tenant's rows).
    pub async fn db(&self) -> deadpool_postgres::Object {
        self.state.platform.get().await.expect("client")
    }

    /// Sends a request through the merged router (trailing slashes normalised, as served).
    pub async fn send(&self, request: Request<Body>) -> TestResponse {
        let service = shared::http::into_service(self.router.clone());
        read_response(service.oneshot(request).await.expect("infallible")).await
    }

    /// Issues a delivery provider's webhook key of `tenant` (created if missing) over the
    /// API, signing when `signed`: (key, signing secret).
    pub async fn issue_webhook_key(&self, tenant: &str, signed: bool) -> (String, Option<String>) {
        let token = self.super_admin_token().await;
        let tenant_created = self
            .post("/sa/tenants", &token, serde_json::json!({"name": tenant}))
            .await;
        assert!(
            [StatusCode::CREATED, StatusCode::CONFLICT].contains(&tenant_created.status),
            "{:?}",
            tenant_created.body
        );
        let response = self
            .post(
                "/sa/webhook-keys",
                &token,
                serde_json::json!({"tenant_name": tenant, "name": "mailer", "signed": signed}),
            )
            .await;
        assert_eq!(response.status, StatusCode::CREATED, "{:?}", response.body);
        (
            response.body["key"].as_str().expect("key").to_owned(),
            response.body["signing_secret"].as_str().map(str::to_owned),
        )
    }

    /// Sends `method path` as the holder of `token`, with an optional JSON body.
    pub async fn call_as(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> TestResponse {
        self.call(method, path, Some(token), body).await
    }

    /// `GET …/campaigns/{id}/customers/summary` of `fx`'s tenant, as its viewer; asserts
    /// 200 and answers the counts.
    pub async fn campaign_summary(&self, fx: &TenantFixture, id: i64) -> Value {
        let response = self
            .get(
                &format!("/tenants/{}/campaigns/{id}/customers/summary", fx.tenant),
                &fx.viewer,
            )
            .await;
        assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
        response.body
    }

    /// `POST /customers/import` of `csv` (`text/csv`) as the holder of `token`.
    pub async fn import_customers_csv(&self, token: &str, csv: Vec<u8>) -> TestResponse {
        let request = Request::builder()
            .method(Method::POST)
            .uri("/customers/import")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "text/csv")
            .body(Body::from(csv))
            .expect("request");
        self.send(request).await
    }

    /// Sends `method path` with an optional bearer token and JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> TestResponse {
        self.call_with(method, path, token, &[], body).await
    }

    /// Sends `method path` with an optional bearer token, extra headers and JSON body.
    pub async fn call_with(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> TestResponse {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let body = match body {
            Some(json) => {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
                Body::from(json.to_string())
            }
            None => Body::empty(),
        };
        self.send(builder.body(body).expect("request")).await
    }

    /// A checker's review step (`approve` or `reject`) of the offer at `offer_path`, as a
    /// checker does it: reads the offer as `token` and sends its `ETag` as `If-Match`.
    pub async fn review(
        &self,
        offer_path: &str,
        step: &str,
        token: &str,
        body: Option<Value>,
    ) -> TestResponse {
        let read = self.get(offer_path, token).await;
        let etag = read
            .headers
            .get(header::ETAG)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("\"none\"")
            .to_owned();
        self.call_with(
            Method::POST,
            &format!("{offer_path}/{step}"),
            Some(token),
            &[("if-match", &etag)],
            body,
        )
        .await
    }

    /// `PUT path` with a token and JSON body.
    pub async fn put(&self, path: &str, token: &str, body: Value) -> TestResponse {
        self.call(Method::PUT, path, Some(token), Some(body)).await
    }

    /// `PATCH path` with a token and JSON body.
    pub async fn patch(&self, path: &str, token: &str, body: Value) -> TestResponse {
        self.call(Method::PATCH, path, Some(token), Some(body))
            .await
    }

    /// `DELETE path` with a token.
    pub async fn delete(&self, path: &str, token: &str) -> TestResponse {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    /// `GET path` with a token.
    pub async fn get(&self, path: &str, token: &str) -> TestResponse {
        self.call(Method::GET, path, Some(token), None).await
    }

    /// `POST path` with a token and JSON body.
    pub async fn post(&self, path: &str, token: &str, body: Value) -> TestResponse {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    /// Signs in with JSON credentials; the raw response.
    pub async fn try_login(&self, username: &str, password: &str) -> TestResponse {
        let body = serde_json::json!({"username": username, "password": password});
        self.call(Method::POST, "/auth/token", None, Some(body))
            .await
    }

    /// Signs in with JSON credentials from client address `ip` (as the socket's peer, the
    /// way `offerctl serve` sees it); the raw response.
    pub async fn try_login_from(&self, username: &str, password: &str, ip: &str) -> TestResponse {
        let peer: std::net::SocketAddr = format!("{ip}:40000").parse().expect("address");
        let body = serde_json::json!({"username": username, "password": password});
        let request = Request::builder()
            .method(Method::POST)
            .uri("/auth/token")
            .header(header::CONTENT_TYPE, "application/json")
            .extension(axum::extract::ConnectInfo(peer))
            .body(Body::from(body.to_string()))
            .expect("request");
        self.send(request).await
    }

    /// Signs in and returns the access token; panics unless it succeeds.
    pub async fn login(&self, username: &str, password: &str) -> String {
        let response = self.try_login(username, password).await;
        assert_eq!(
            response.status,
            StatusCode::OK,
            "login {username}: {:?}",
            response.body
        );
        response.body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// A token of the super admin.
    pub async fn super_admin_token(&self) -> String {
        self.login(SUPER_ADMIN, SUPER_ADMIN_PASSWORD).await
    }

    /// Creates a tenant through the API.
    pub async fn create_tenant(&self, token: &str, name: &str) {
        let response = self
            .post("/sa/tenants", token, serde_json::json!({"name": name}))
            .await;
        assert_eq!(response.status, StatusCode::CREATED, "{:?}", response.body);
    }

    /// Creates a user (password [`USER_PASSWORD`]) through the API, with `roles` as
    /// `(tenant, role)` pairs.
    pub async fn create_user(&self, token: &str, username: &str, roles: &[(&str, &str)]) {
        let response = self
            .post(
                "/sa/users",
                token,
                serde_json::json!({"username": username, "password": USER_PASSWORD}),
            )
            .await;
        assert_eq!(response.status, StatusCode::CREATED, "{:?}", response.body);
        for (tenant, role) in roles {
            let response = self
                .post(
                    "/sa/user-tenant-roles",
                    token,
                    serde_json::json!({"username": username, "tenant_name": tenant, "role": role}),
                )
                .await;
            assert!(response.status.is_success(), "{:?}", response.body);
        }
    }
}

/// A tenant with one user per default role and an approved offer, made by [`TestApp::tenant_with_offer`].
#[derive(Debug, Clone)]
pub struct TenantFixture {
    /// The tenant's name.
    pub tenant: String,
    /// Token of `<tenant>.admin` (role `admin`).
    pub admin: String,
    /// Token of `<tenant>.maker` (role `create`).
    pub maker: String,
    /// Token of `<tenant>.checker` (role `approver`).
    pub checker: String,
    /// Token of `<tenant>.viewer` (role `read_only`).
    pub viewer: String,
    /// An approved offer of the tenant (written by the maker, approved by the checker).
    pub offer_id: i64,
}

impl TestApp {
    /// Creates `tenant`, a user per default role and an approved offer. The tenant counts
    /// unknown consent as consent (`unknown_consent_allowed`), so campaigns reach the demo
    /// customers, who have no consent records; `tests/api/consent.rs` covers the default.
    pub async fn tenant_with_offer(&self, tenant: &str) -> TenantFixture {
        let sa = self.super_admin_token().await;
        let response = self
            .post(
                "/sa/tenants",
                &sa,
                serde_json::json!({"name": tenant, "unknown_consent_allowed": true}),
            )
            .await;
        assert_eq!(response.status, StatusCode::CREATED, "{:?}", response.body);
        let mut tokens = Vec::new();
        for (user, role) in [
            ("admin", "admin"),
            ("maker", "create"),
            ("checker", "approver"),
            ("viewer", "read_only"),
        ] {
            let username = format!("{}.{user}", tenant.replace('_', "-"));
            self.create_user(&sa, &username, &[(tenant, role)]).await;
            tokens.push(self.login(&username, USER_PASSWORD).await);
        }
        let [admin, maker, checker, viewer] = <[String; 4]>::try_from(tokens).expect("four tokens");
        let offers = format!("/tenants/{tenant}/offers");
        let created = self
            .post(
                &offers,
                &maker,
                serde_json::json!({"data": {"title": "Cashback 5%"}}),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
        let offer_id = created.body["id"].as_i64().expect("offer id");
        for (path, token) in [("submit", &maker), ("approve", &checker)] {
            let offer = format!("{offers}/{offer_id}");
            let response = if path == "approve" {
                self.review(&offer, path, token, Some(serde_json::json!({})))
                    .await
            } else {
                self.post(&format!("{offer}/{path}"), token, serde_json::json!({}))
                    .await
            };
            assert_eq!(
                response.status,
                StatusCode::OK,
                "{path}: {:?}",
                response.body
            );
        }
        TenantFixture {
            tenant: tenant.to_owned(),
            admin,
            maker,
            checker,
            viewer,
            offer_id,
        }
    }

    /// Imports the real data set ([`DEMO_CUSTOMERS_CSV`]) directly.
    pub async fn import_demo_customers(&self) -> shared::db::customer_import::ImportSummary {
        let file = std::fs::File::open(DEMO_CUSTOMERS_CSV).expect("demo data");
        shared::db::customer_import::import(
            &self.state.platform,
            file,
            shared::db::customer_import::ImportLimits::API,
            None,
        )
        .await
        .expect("import demo customers")
    }

    /// Polls campaign `id` until its processing is `done` or `failed` (at most 60 s); returns
    /// the campaign.
    pub async fn wait_for_processing(&self, tenant: &str, id: i64, token: &str) -> Value {
        let path = format!("/tenants/{tenant}/campaigns/{id}");
        for _ in 0..600 {
            let response = self.get(&path, token).await;
            assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
            let status = response.body["processing_status"].as_str().unwrap_or("");
            if status == "done" || status == "failed" {
                return response.body;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("campaign {id} was not processed within 60 s");
    }

    /// Creates a running campaign of `fx`'s tenant for its approved offer (as its maker) over
    /// `criteria`, waits until its customers are selected, and returns its id.
    pub async fn processed_campaign(&self, fx: &TenantFixture, name: &str, criteria: Value) -> i64 {
        let created = NewCampaign::of(fx.offer_id)
            .name(name)
            .criteria(criteria)
            .post(self, &fx.tenant, &fx.maker)
            .await
            .expect(StatusCode::ACCEPTED);
        let id = created.body["id"].as_i64().expect("campaign id");
        let campaign = self.wait_for_processing(&fx.tenant, id, &fx.admin).await;
        assert_eq!(campaign["processing_status"], "done", "{campaign}");
        id
    }

    /// Terminates every backend connected to this test's database (and only this one), as
    /// an administrator or a database restart would; returns how many it ended.
    pub async fn terminate_backends(&self) -> i64 {
        connect(&admin_url())
            .await
            .query_one(
                "select count(pg_terminate_backend(pid)) from pg_stat_activity
                 where datname = $1 and pid <> pg_backend_pid()",
                &[&self.database],
            )
            .await
            .expect("terminate backends")
            .get(0)
    }

    /// `PUT /tenants/{tenant}/campaigns/{id}` `{"status": "active"}` as `token`.
    pub async fn activate_campaign(&self, tenant: &str, id: i64, token: &str) -> TestResponse {
        self.call(
            Method::PUT,
            &format!("/tenants/{tenant}/campaigns/{id}"),
            Some(token),
            Some(serde_json::json!({"status": "active"})),
        )
        .await
    }

    /// Counts rows of a query that returns one `bigint`.
    pub async fn count(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> i64 {
        self.db()
            .await
            .query_one(sql, params)
            .await
            .expect("count query")
            .get(0)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let database = self.database.clone();
        self.state.pool.close();
        self.state.platform.close();
        // Drop runs inside the test's runtime; a thread of its own may block.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                if let Ok((client, connection)) =
                    tokio_postgres::connect(&admin_url(), tokio_postgres::NoTls).await
                {
                    tokio::spawn(connection);
                    let _ = client
                        .batch_execute(&format!("drop database if exists {database} with (force)"))
                        .await;
                }
            });
        })
        .join();
    }
}

/// The body of `POST /tenants/{t}/campaigns`, built up from a running campaign of an offer
/// over every customer: `NewCampaign::of(fx.offer_id).name("Gold").criteria(json!(…))`.
#[derive(Debug, Clone)]
pub struct NewCampaign(Value);

impl NewCampaign {
    /// A campaign of `offer_id` named `Campaign`, criteria `{}`, running now: from two days
    /// ago to 30 days ahead (UTC dates, the test tenants' zone).
    pub fn of(offer_id: i64) -> Self {
        let today = chrono::Utc::now().date_naive();
        Self(serde_json::json!({"offer_id": offer_id, "name": "Campaign",
            "selection_criteria": {}, "start_date": today - chrono::Days::new(2),
            "end_date": today + chrono::Days::new(30)}))
    }

    /// Sets `name`.
    pub fn name(self, name: &str) -> Self {
        self.with("name", Value::from(name))
    }

    /// Sets `selection_criteria`.
    pub fn criteria(self, criteria: Value) -> Self {
        self.with("selection_criteria", criteria)
    }

    /// Sets any other member (`description`, `channel`, `offer_version`, dates, …).
    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.0[key] = value;
        self
    }

    /// The JSON body.
    pub fn body(self) -> Value {
        self.0
    }

    /// `POST /tenants/{tenant}/campaigns` with it as `token`; the raw response.
    pub async fn post(self, app: &TestApp, tenant: &str, token: &str) -> TestResponse {
        app.post(&format!("/tenants/{tenant}/campaigns"), token, self.0)
            .await
    }
}
