//! Database plumbing: migrations, tenant transactions, and what a client sees when the
//! database is down.

use axum::http::StatusCode;
use integration_tests::{JWT_SECRET, SUPER_ADMIN, TestApp, read_response};
use shared::AppState;
use shared::config::Config;
use shared::db;
use shared::domain::TenantName;
use tower::ServiceExt;

#[tokio::test]
async fn migrating_a_migrated_database_applies_nothing() {
    let app = TestApp::spawn().await;
    let mut client = app.owner_pool().get().await.expect("owner");
    let applied = db::migrate(&mut client).await.expect("migrate");
    assert!(applied.is_empty(), "{applied:?}");
}

#[tokio::test]
async fn tenant_transactions_set_app_tenant_for_that_transaction_only() {
    let app = TestApp::spawn().await;
    let mut client = app.db().await;
    let tenant = TenantName::parse("credit_card").expect("name");
    {
        let tx = db::TenantTx::begin(&mut client, &tenant).await.expect("tx");
        let row = tx
            .query_one("select current_setting('app.tenant', true)", &[])
            .await
            .expect("query");
        assert_eq!(
            row.get::<_, Option<String>>(0).as_deref(),
            Some("credit_card")
        );
        tx.commit().await.expect("commit");
    }
    let row = client
        .query_one(
            "select coalesce(current_setting('app.tenant', true), '')",
            &[],
        )
        .await
        .expect("query");
    assert_eq!(row.get::<_, String>(0), "");
}

#[tokio::test]
async fn an_unreachable_database_answers_503_without_internal_detail() {
    let app = TestApp::spawn().await;
    let token = app.super_admin_token().await;
    // Same keys, but a database nobody listens on.
    let config = Config::from_lookup(|key| match key {
        "DATABASE_URL" => Some("postgres://postgres:secret-pw@127.0.0.1:1/nowhere".into()),
        "DATABASE_PLATFORM_URL" => Some("postgres://platform:secret-pw@127.0.0.1:1/nowhere".into()),
        "JWT_SECRET" => Some(JWT_SECRET.into()),
        _ => None,
    })
    .expect("config");
    let state = AppState::new(&config).expect("state");
    let router = offerctl_gateway::app(state);
    let request = axum::http::Request::get("/users/me")
        .header("authorization", format!("Bearer {token}"))
        .body(axum::body::Body::empty())
        .expect("request");
    let response = read_response(router.oneshot(request).await.expect("infallible")).await;
    assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.content_type(), "application/problem+json");
    assert!(response.headers.contains_key("retry-after"));
    let body = response.body.to_string();
    for leak in ["127.0.0.1", "secret-pw", "nowhere", "connect", SUPER_ADMIN] {
        assert!(!body.contains(leak), "{leak} leaked in {body}");
    }
}

#[tokio::test]
async fn sslmode_require_verifies_the_server_certificate() {
    // The local server's certificate (if it speaks TLS at all) is not signed by a trusted
    // root, so a verifying client must refuse it rather than fall back to plain text.
    let url = std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:5432/postgres".into());
    let separator = if url.contains('?') { '&' } else { '?' };
    let config = shared::config::DatabaseConfig::from_lookup(|key| match key {
        "DATABASE_URL" => Some(format!("{url}{separator}sslmode=require")),
        _ => None,
    })
    .expect("config");
    let pool = db::pool(&config, db::Scope::Tenant).expect("pool");
    assert!(
        pool.get().await.is_err(),
        "an untrusted certificate must be refused"
    );

    let plain = shared::config::DatabaseConfig::from_lookup(|key| match key {
        "DATABASE_URL" => Some(url.clone()),
        _ => None,
    })
    .expect("config");
    assert!(
        db::pool(&plain, db::Scope::Tenant)
            .expect("pool")
            .get()
            .await
            .is_ok()
    );

    let empty = std::env::temp_dir().join(format!("oms-empty-ca-{}.pem", std::process::id()));
    std::fs::write(&empty, "not a certificate\n").expect("write");
    let with_bad_ca = shared::config::DatabaseConfig::from_lookup(|key| match key {
        "DATABASE_URL" => Some(format!("{url}{separator}sslmode=require")),
        "DATABASE_CA_FILE" => Some(empty.display().to_string()),
        _ => None,
    })
    .expect("config");
    let err = db::pool(&with_bad_ca, db::Scope::Tenant).expect_err("no certificate in the CA file");
    assert!(err.to_string().contains("DATABASE_CA_FILE"), "{err}");
    let _ = std::fs::remove_file(empty);
}

#[tokio::test]
async fn offerctl_names_the_fix_for_a_database_that_was_never_migrated() {
    let app = TestApp::spawn().await;
    // A session that sees none of the platform's tables, as on a database never migrated.
    let client = app.owner_pool().get().await.expect("client");
    client
        .batch_execute("create schema unmigrated; set search_path = unmigrated")
        .await
        .expect("empty schema");
    let username = shared::domain::Username::parse("admin").expect("name");
    let err = shared::db::users::create(
        &client,
        &shared::db::users::NewUser {
            username: &username,
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            full_name: None,
            is_super_admin: true,
        },
    )
    .await
    .expect_err("no users table");
    let message = offerctl_gateway::missing_schema(&anyhow::Error::from(err))
        .expect("the missing schema is recognised");
    assert!(message.contains("offerctl migrate"), "{message}");
    // Any other failure keeps its own message.
    let other = anyhow::Error::from(shared::ApiError::Conflict("taken".into()));
    assert_eq!(offerctl_gateway::missing_schema(&other), None);
}
