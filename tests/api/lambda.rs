//! API Gateway v2 (HTTP API) event JSON through `lambda_http` into each function's router,
//! as the Lambda runtime delivers it.

use axum::http::StatusCode;
use integration_tests::{SUPER_ADMIN, SUPER_ADMIN_PASSWORD, TestApp, read_response};
use serde_json::Value;
use tower::ServiceExt;

fn event(path: &str) -> Value {
    let file = format!("{}/../events/{path}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&file).expect("event file")).expect("json")
}

async fn invoke(router: axum::Router, event: &Value) -> integration_tests::TestResponse {
    let request = lambda_http::request::from_str(&event.to_string()).expect("API Gateway v2 event");
    let service = shared::http::into_service(router);
    let response = service
        .oneshot(request.map(axum::body::Body::new))
        .await
        .expect("infallible");
    read_response(response).await
}

#[tokio::test]
async fn auth_api_answers_a_sign_in_event() {
    let app = TestApp::spawn().await;
    let event = event("auth-api/token.json");
    assert!(event["body"].as_str().expect("body").contains(SUPER_ADMIN));
    assert!(
        event["body"]
            .as_str()
            .expect("body")
            .contains(SUPER_ADMIN_PASSWORD)
    );
    let response = invoke(auth_api::router().with_state(app.state.clone()), &event).await;
    assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
    assert_eq!(response.body["token_type"], "bearer");
    assert!(
        response.body["access_token"]
            .as_str()
            .is_some_and(|t| t.split('.').count() == 3)
    );
}

#[tokio::test]
async fn the_sign_in_throttle_counts_api_gateways_source_ip_not_forwarded_headers() {
    let app = TestApp::spawn().await;
    let mut wrong = event("auth-api/token.json");
    let body = wrong["body"]
        .as_str()
        .expect("body")
        .replace(SUPER_ADMIN_PASSWORD, "a wrong guess");
    wrong["body"] = Value::String(body);
    wrong["requestContext"]["http"]["sourceIp"] = Value::String("203.0.113.66".into());
    for attempt in 0..5 {
        // A client-supplied X-Forwarded-For changes nothing: API Gateway's sourceIp counts.
        wrong["headers"]["x-forwarded-for"] = Value::String(format!("10.0.0.{attempt}"));
        let response = invoke(auth_api::router().with_state(app.state.clone()), &wrong).await;
        assert_eq!(
            response.status,
            StatusCode::UNAUTHORIZED,
            "attempt {attempt}"
        );
    }
    let mut right = event("auth-api/token.json");
    right["requestContext"]["http"]["sourceIp"] = Value::String("203.0.113.66".into());
    let throttled = invoke(auth_api::router().with_state(app.state.clone()), &right).await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
    right["requestContext"]["http"]["sourceIp"] = Value::String("198.51.100.7".into());
    let elsewhere = invoke(auth_api::router().with_state(app.state.clone()), &right).await;
    assert_eq!(elsewhere.status, StatusCode::OK, "{:?}", elsewhere.body);
}

#[tokio::test]
async fn admin_api_answers_a_list_tenants_event_with_a_trailing_slash() {
    let app = TestApp::spawn().await;
    let token = app.super_admin_token().await;
    app.create_tenant(&token, "credit_card").await;
    let mut event = event("admin-api/list-tenants.json");
    event["headers"]["authorization"] = Value::String(format!("Bearer {token}"));
    let response = invoke(admin_api::router().with_state(app.state.clone()), &event).await;
    assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
    assert_eq!(response.body[0]["name"], "credit_card");
    assert_eq!(response.body.as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn offers_api_answers_a_list_offers_event() {
    let app = TestApp::spawn().await;
    let sa = app.super_admin_token().await;
    app.create_tenant(&sa, "credit_card").await;
    app.create_user(
        &sa,
        "reader",
        &[("credit_card", "read_only"), ("credit_card", "create")],
    )
    .await;
    let token = app.login("reader", integration_tests::USER_PASSWORD).await;
    let created = app
        .post(
            "/tenants/credit_card/offers",
            &token,
            serde_json::json!({"data": {"apr": 9.9}}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let mut event = event("offers-api/list-offers.json");
    event["headers"]["authorization"] = Value::String(format!("Bearer {token}"));
    let response = invoke(offers_api::router().with_state(app.state.clone()), &event).await;
    assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
    assert_eq!(response.body.as_array().map(Vec::len), Some(1));
    assert_eq!(response.body[0]["data"], serde_json::json!({"apr": 9.9}));
}

#[tokio::test]
async fn campaigns_api_answers_a_list_campaigns_event() {
    let app = TestApp::spawn().await;
    let fx = app.tenant_with_offer("credit_card").await;
    integration_tests::NewCampaign::of(fx.offer_id)
        .name("Lambda")
        .post(&app, "credit_card", &fx.maker)
        .await
        .expect(StatusCode::ACCEPTED);
    let mut event = event("campaigns-api/list-campaigns.json");
    event["headers"]["authorization"] = Value::String(format!("Bearer {}", fx.viewer));
    let response = invoke(
        campaigns_api::router().with_state(app.state.clone()),
        &event,
    )
    .await;
    assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
    assert_eq!(response.body.as_array().map(Vec::len), Some(1));
    assert_eq!(response.body[0]["name"], "Lambda");
}

#[tokio::test]
async fn customers_api_answers_a_list_customers_event() {
    let app = TestApp::spawn().await;
    app.import_demo_customers().await;
    let token = app.super_admin_token().await;
    let mut event = event("customers-api/list-customers.json");
    event["headers"]["authorization"] = Value::String(format!("Bearer {token}"));
    let response = invoke(
        customers_api::router().with_state(app.state.clone()),
        &event,
    )
    .await;
    assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
    let page = response.body.as_array().expect("array");
    assert_eq!(page.len(), 5);
    assert!(page.iter().all(|c| c["segment"] == "platinum"));
    assert!(response.headers.contains_key(axum::http::header::LINK));
}

#[tokio::test]
async fn delivery_webhook_answers_a_report_event_with_only_a_pool() {
    let app = TestApp::spawn().await;
    let sa = app.super_admin_token().await;
    app.create_tenant(&sa, "credit_card").await;
    let issued = app
        .post(
            "/sa/webhook-keys",
            &sa,
            serde_json::json!({"tenant_name": "credit_card", "name": "ses"}),
        )
        .await;
    let mut event = event("delivery-webhook/update-delivery-status.json");
    event["headers"]["x-api-key"] = issued.body["key"].clone();
    // The Lambda runs this router on the (platform) pool alone (no JWT key).
    let router = delivery_webhook::router().with_state(delivery_webhook::WebhookState {
        pool: app.state.platform.clone(),
        report_grace: app.state.report_grace,
    });
    let response = invoke(router, &event).await;
    assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
    assert_eq!(response.body["results"][0]["status"], "not_found");
    event["headers"]["x-api-key"] = Value::String("omk_wrong".into());
    let router = delivery_webhook::router().with_state(delivery_webhook::WebhookState {
        pool: app.state.platform.clone(),
        report_grace: app.state.report_grace,
    });
    assert_eq!(
        invoke(router, &event).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn migrate_applies_nothing_twice() {
    let app = TestApp::spawn().await;
    let payload = event("migrate/invoke.json");
    assert!(payload.is_object(), "any JSON invokes it");
    // The migrate function connects as the tables' owner.
    let output = migrate::run(&app.owner_pool()).await.expect("migrate");
    assert!(
        output.applied.is_empty(),
        "the test database is already migrated"
    );
    let applied: i64 = app
        .owner_pool()
        .get()
        .await
        .expect("owner")
        .query_one("select count(*) from refinery_schema_history", &[])
        .await
        .expect("history")
        .get(0);
    let embedded = shared::db::migrations::runner().get_migrations().len() as i64;
    assert_eq!(applied, embedded);
}
