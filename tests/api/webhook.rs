//! The delivery-status webhook: API keys, Standard Webhooks signatures and replays, bulk
//! reports with per-item outcomes, event ordering, size limits, and the campaign counts.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use chrono::{Duration, Timelike, Utc};
use integration_tests::{TestApp, TestResponse};
use serde_json::{Value, json};
use standardwebhooks::Webhook;

const PATH: &str = "/system/campaigns/update-delivery-status";

/// A processed campaign over the real data: (app, tenant fixture, campaign id, its customers).
pub(crate) async fn processed_campaign(
    criteria: Value,
) -> (TestApp, integration_tests::TenantFixture, i64, Vec<String>) {
    let app = TestApp::spawn().await;
    app.import_demo_customers().await;
    let fx = app.tenant_with_offer("credit_card").await;
    let created = integration_tests::NewCampaign::of(fx.offer_id)
        .name("Deliveries")
        .criteria(criteria)
        .post(&app, "credit_card", &fx.maker)
        .await;
    let id = created.body["id"].as_i64().expect("id");
    let campaign = app.wait_for_processing("credit_card", id, &fx.admin).await;
    assert_eq!(campaign["processing_status"], "done");
    // Reports are accepted for active campaigns, dated from their delivery's release on: the
    // campaign is activated, and it and its release made a day old so reports may be dated
    // in the past hour.
    let activated = app.activate_campaign("credit_card", id, &fx.admin).await;
    assert_eq!(activated.status, StatusCode::OK, "{:?}", activated.body);
    app.db()
        .await
        .batch_execute(&format!(
            "update campaigns set created_at = now() - interval '1 day' where id = {id};
             update campaign_customers set released_at = released_at - interval '1 day'
             where campaign_id = {id} and released_at is not null;
             update customer_contacts set contact_at = contact_at - interval '1 day'
             where campaign_id = {id};"
        ))
        .await
        .expect("age the campaign");
    let customers = app
        .db()
        .await
        .query(
            "select customer_id::text from campaign_customers where campaign_id = $1 order by customer_id",
            &[&(id as i32)],
        )
        .await
        .expect("customers")
        .iter()
        .map(|row| row.get(0))
        .collect();
    (app, fx, id, customers)
}

async fn post_raw(
    app: &TestApp,
    key: Option<&str>,
    body: Vec<u8>,
    extra: &[(&str, String)],
) -> TestResponse {
    let mut builder = Request::builder()
        .method(Method::POST)
        .uri(PATH)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(key) = key {
        builder = builder.header("x-api-key", key);
    }
    for (name, value) in extra {
        builder = builder.header(*name, value);
    }
    app.send(builder.body(Body::from(body)).expect("request"))
        .await
}

pub(crate) async fn report(app: &TestApp, key: &str, items: &Value) -> TestResponse {
    post_raw(app, Some(key), items.to_string().into_bytes(), &[]).await
}

pub(crate) fn signed_headers(
    secret: &str,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    let signature = Webhook::new(secret)
        .expect("secret")
        .sign(id, timestamp, body)
        .expect("sign");
    vec![
        ("webhook-id", id.to_owned()),
        ("webhook-timestamp", timestamp.to_string()),
        ("webhook-signature", signature),
    ]
}

#[tokio::test]
async fn missing_wrong_and_revoked_keys_are_refused() {
    let app = TestApp::spawn().await;
    let (key, secret) = app.issue_webhook_key("credit_card", false).await;
    assert!(key.starts_with("omk_") && secret.is_none());
    let token = app.super_admin_token().await;
    let listed = app.get("/sa/webhook-keys", &token).await;
    assert_eq!(listed.body[0]["signed"], false);
    assert!(
        !listed.body.to_string().contains("omk_"),
        "no secret in a listing"
    );
    let stored = app
        .count(
            "select count(*) from webhook_keys where key_hash = sha256($1::text::bytea)",
            &[&key],
        )
        .await;
    assert_eq!(stored, 1, "the key is stored as its SHA-256");
    assert_eq!(report(&app, &key, &json!([])).await.status, StatusCode::OK);

    let mut wrong = key.clone();
    wrong.pop();
    wrong.push(if key.ends_with('A') { 'B' } else { 'A' });
    for presented in [
        None,
        Some(wrong.as_str()),
        Some("omk_nonsense"),
        Some("Bearer x"),
    ] {
        let response = post_raw(&app, presented, b"[]".to_vec(), &[]).await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{presented:?}");
        assert_eq!(response.content_type(), "application/problem+json");
    }
    // A JWT is not a webhook credential.
    let response = app.post(PATH, &token, json!([])).await;
    assert_eq!(response.status, StatusCode::UNAUTHORIZED);

    let id = listed.body[0]["id"].as_str().expect("id").to_owned();
    let maker_attempt = app
        .call(
            Method::DELETE,
            &format!("/sa/webhook-keys/{id}"),
            None,
            None,
        )
        .await;
    assert_eq!(maker_attempt.status, StatusCode::UNAUTHORIZED);
    let revoked = app.delete(&format!("/sa/webhook-keys/{id}"), &token).await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    assert_eq!(
        report(&app, &key, &json!([])).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert!(app.get("/sa/webhook-keys", &token).await.body[0]["revoked_at"].is_string());
}

#[tokio::test]
async fn a_batch_of_1000_reports_is_applied_and_shows_in_the_campaign_counts() {
    let (app, fx, id, customers) =
        processed_campaign(json!({"segment": "blue", "kyc_status": "verified"})).await;
    assert!(customers.len() > 1000);
    let (key, _) = app.issue_webhook_key("credit_card", false).await;
    let now = Utc::now();
    let items: Vec<Value> = customers[..1000]
        .iter()
        .enumerate()
        .map(|(i, customer)| {
            let status = if i % 10 == 0 { "failed" } else { "sent" };
            json!({"campaign_id": id, "customer_id": customer, "status": status,
                   "sent_at": now.to_rfc3339(), "provider_message_id": format!("msg-{i}"),
                   "failure_reason": (status == "failed").then_some("mailbox full")})
        })
        .collect();
    let response = report(&app, &key, &Value::Array(items.clone())).await;
    assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
    assert_eq!(
        response.body["summary"],
        json!({"updated": 1000, "unchanged": 0, "not_found": 0, "invalid": 0})
    );
    let total = customers.len() as i64;
    assert_eq!(
        app.campaign_summary(&fx, id).await,
        json!({"total": total, "pending": total - 1000, "sent": 900, "failed": 100,
               "suppressed_by_consent": 0, "suppressed_by_pressure": 0,
               "awaiting_release": 0, "released": total, "expired": 0, "control": 0,
               "delivered": 0, "opened": 0, "clicked": 0})
    );
    let failed = app
        .get(
            &format!(
                "/tenants/credit_card/campaigns/{id}/customers?delivery_status=failed&limit=200"
            ),
            &fx.viewer,
        )
        .await;
    let rows = failed.body.as_array().expect("rows");
    assert_eq!(rows.len(), 100);
    assert!(
        rows.iter()
            .all(|r| r["failure_reason"] == "mailbox full" && r["sent_at"].is_string())
    );
    // The same batch again changes nothing.
    let again = report(&app, &key, &Value::Array(items)).await;
    assert_eq!(again.body["summary"]["unchanged"], 1000);
}

#[tokio::test]
async fn mixed_batches_report_every_item() {
    let (app, _fx, id, customers) = processed_campaign(json!({"segment": "platinum"})).await;
    let (key, _) = app.issue_webhook_key("credit_card", false).await;
    let now = Utc::now().to_rfc3339();
    let stranger = app
        .db()
        .await
        .query_one(
            "select id::text from customers where segment = 'blue' limit 1",
            &[],
        )
        .await
        .expect("row")
        .get::<_, String>(0);
    let items = json!([
        {"campaign_id": id, "customer_id": customers[0], "status": "sent", "sent_at": now},
        {"campaign_id": 999999, "customer_id": customers[1], "status": "sent", "sent_at": now},
        {"campaign_id": id, "customer_id": stranger, "status": "sent", "sent_at": now},
        {"campaign_id": id, "customer_id": customers[2], "status": "pending", "sent_at": now},
        {"campaign_id": id, "customer_id": "not-a-uuid", "status": "sent", "sent_at": now},
        {"campaign_id": id, "customer_id": customers[3], "status": "sent"},
        {"campaign_id": id, "customer_id": customers[4], "status": "sent", "sent_at": now, "colour": "red"},
        "not an object",
        {"campaign_id": id, "customer_id": customers[5], "status": "failed", "sent_at": now,
         "failure_reason": "x".repeat(1001)},
    ]);
    let response = report(&app, &key, &items).await;
    assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
    let statuses: Vec<&str> = response.body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["status"].as_str().expect("status"))
        .collect();
    assert_eq!(
        statuses,
        [
            "updated",
            "not_found",
            "not_found",
            "invalid",
            "invalid",
            "invalid",
            "invalid",
            "invalid",
            "invalid"
        ]
    );
    let reasons = response.body["results"].to_string();
    assert!(
        reasons.contains(
            "not sent, failed, bounced, delivered, opened, clicked, unsubscribed or complained"
        ),
        "{reasons}"
    );
    assert!(reasons.contains("sent_at"), "{reasons}");
    assert!(reasons.contains("colour"), "{reasons}");
    assert_eq!(
        response.body["summary"],
        json!({"updated": 1, "unchanged": 0, "not_found": 2, "invalid": 6})
    );
    assert_eq!(
        app.count(
            "select count(*) from campaign_customers where delivery_status <> 'pending'",
            &[]
        )
        .await,
        1
    );
}

#[tokio::test]
async fn events_never_go_back_in_time() {
    let (app, fx, id, customers) = processed_campaign(json!({"segment": "platinum"})).await;
    let (key, _) = app.issue_webhook_key("credit_card", false).await;
    // Nanoseconds, which PostgreSQL cuts to microseconds: a report is still told `updated`.
    let t0 = chrono::Timelike::with_nanosecond(&(Utc::now() - Duration::minutes(10)), 123_456_789)
        .expect("a valid time");
    let item = |status: &str, at: chrono::DateTime<Utc>| json!({"campaign_id": id, "customer_id": customers[0], "status": status, "sent_at": at.to_rfc3339()});
    let outcome = |response: &TestResponse| response.body["results"][0]["status"].clone();
    let newer = report(
        &app,
        &key,
        &json!([item("sent", t0 + Duration::minutes(2))]),
    )
    .await;
    assert_eq!(outcome(&newer), "updated");
    let older = report(&app, &key, &json!([item("failed", t0)])).await;
    assert_eq!(
        outcome(&older),
        "unchanged",
        "an older event changes nothing"
    );
    let same_time = report(
        &app,
        &key,
        &json!([item("failed", t0 + Duration::minutes(2))]),
    )
    .await;
    assert_eq!(
        outcome(&same_time),
        "unchanged",
        "failed after sent for the same attempt"
    );
    let later = report(
        &app,
        &key,
        &json!([item("failed", t0 + Duration::minutes(3))]),
    )
    .await;
    assert_eq!(outcome(&later), "updated", "a newer failure is applied");
    // Two reports for one delivery in a batch: the later one wins, whatever the order.
    let batch = report(
        &app,
        &key,
        &json!([
            item("sent", t0 + Duration::minutes(5)),
            item("failed", t0 + Duration::minutes(4))
        ]),
    )
    .await;
    let statuses: Vec<Value> = batch.body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["status"].clone())
        .collect();
    assert_eq!(statuses, [json!("updated"), json!("unchanged")]);
    let row = app
        .get(
            &format!("/tenants/credit_card/campaigns/{id}/customers?limit=1"),
            &fx.viewer,
        )
        .await
        .body[0]
        .clone();
    assert_eq!(row["customer_id"], customers[0]);
    assert_eq!(row["delivery_status"], "sent");
}

#[tokio::test]
async fn signed_keys_need_a_valid_recent_signature_and_replays_change_nothing() {
    let (app, _fx, id, customers) = processed_campaign(json!({"segment": "platinum"})).await;
    let (key, secret) = app.issue_webhook_key("credit_card", true).await;
    let secret = secret.expect("a signed key has a secret");
    assert!(secret.starts_with("whsec_"));
    let now = Utc::now();
    let body = json!([{"campaign_id": id, "customer_id": customers[0], "status": "sent",
                       "sent_at": now.to_rfc3339()}])
    .to_string()
    .into_bytes();
    let ts = now.timestamp();

    let unsigned = post_raw(&app, Some(&key), body.clone(), &[]).await;
    assert_eq!(unsigned.status, StatusCode::UNAUTHORIZED);
    assert!(
        unsigned.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("signed"))
    );

    let mut tampered = body.clone();
    tampered.extend_from_slice(b" ");
    let headers = signed_headers(&secret, "msg_1", ts, &body);
    assert_eq!(
        post_raw(&app, Some(&key), tampered, &headers).await.status,
        StatusCode::UNAUTHORIZED,
        "a body that differs from the signed one"
    );
    let old = signed_headers(&secret, "msg_1", ts - 6 * 60, &body);
    let response = post_raw(&app, Some(&key), body.clone(), &old).await;
    assert_eq!(response.status, StatusCode::UNAUTHORIZED);
    assert!(
        response.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("5-minute"))
    );
    let other_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let forged = signed_headers(other_secret, "msg_1", ts, &body);
    assert_eq!(
        post_raw(&app, Some(&key), body.clone(), &forged)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );

    let valid = post_raw(&app, Some(&key), body.clone(), &headers).await;
    assert_eq!(valid.status, StatusCode::OK, "{:?}", valid.body);
    assert_eq!(valid.body["summary"]["updated"], 1);

    // The same id again, even signed over a newer event: accepted, nothing changes.
    let replay_body = json!([{"campaign_id": id, "customer_id": customers[0], "status": "failed",
                              "sent_at": (now + Duration::minutes(1)).to_rfc3339()}])
    .to_string()
    .into_bytes();
    let replay_headers = signed_headers(&secret, "msg_1", ts, &replay_body);
    let replay = post_raw(&app, Some(&key), replay_body.clone(), &replay_headers).await;
    assert_eq!(replay.status, StatusCode::OK);
    assert_eq!(replay.body["results"][0]["status"], "unchanged");
    assert!(
        replay.body["results"][0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("already"))
    );
    let status: String = app
        .db()
        .await
        .query_one(
            "select delivery_status from campaign_customers where campaign_id = $1 and customer_id = $2::text::uuid",
            &[&(id as i32), &customers[0]],
        )
        .await
        .expect("row")
        .get(0);
    assert_eq!(status, "sent");
    // A new id with the same content is applied.
    let fresh = signed_headers(&secret, "msg_2", ts, &replay_body);
    let applied = post_raw(&app, Some(&key), replay_body, &fresh).await;
    assert_eq!(applied.body["results"][0]["status"], "updated");
}

#[tokio::test]
async fn malformed_and_oversized_requests_are_refused_whole() {
    let app = TestApp::spawn().await;
    let (key, _) = app.issue_webhook_key("credit_card", false).await;
    let item = json!({"campaign_id": 1, "customer_id": uuid::Uuid::nil(), "status": "sent",
                      "sent_at": Utc::now().to_rfc3339()});
    let too_many = Value::Array(vec![item.clone(); 1001]);
    let response = report(&app, &key, &too_many).await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        response.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("1000"))
    );
    let huge = json!([{"campaign_id": 1, "customer_id": uuid::Uuid::nil(), "status": "sent",
                       "sent_at": Utc::now().to_rfc3339(), "failure_reason": "x".repeat(1024 * 1024)}]);
    let response = report(&app, &key, &huge).await;
    assert_eq!(response.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(response.content_type(), "application/problem+json");
    let response = report(&app, &key, &json!({"reports": []})).await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    let response = post_raw(&app, Some(&key), b"[{".to_vec(), &[]).await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    let request = Request::builder()
        .method(Method::POST)
        .uri(PATH)
        .header("x-api-key", &key)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from("[]"))
        .expect("request");
    assert_eq!(
        app.send(request).await.status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    let response = report(&app, &key, &Value::Array(vec![item; 1000])).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(
        response.body["summary"]["not_found"], 1,
        "duplicates collapse to one report"
    );
    assert_eq!(response.body["summary"]["unchanged"], 999);
}

#[tokio::test]
async fn a_key_reports_only_on_its_own_tenants_open_campaigns() {
    let (app, fx, id, customers) = processed_campaign(json!({"segment": "platinum"})).await;
    let (loan_key, _) = app.issue_webhook_key("loan", false).await;
    let (own_key, _) = app.issue_webhook_key("credit_card", false).await;
    let now = Utc::now().to_rfc3339();
    let item = |campaign: i64, customer: &str| json!({"campaign_id": campaign, "customer_id": customer, "status": "sent", "sent_at": now});

    // Another tenant's key: the campaign and its customers look exactly like ones that do
    // not exist.
    let foreign = report(&app, &loan_key, &json!([item(id, &customers[0])])).await;
    let missing = report(&app, &loan_key, &json!([item(999_999, &customers[0])])).await;
    assert_eq!(foreign.status, StatusCode::OK);
    assert_eq!(foreign.body, missing.body);
    assert_eq!(foreign.body["results"][0]["status"], "not_found");
    assert_eq!(
        app.count(
            "select count(*) from campaign_customers where delivery_status <> 'pending'",
            &[]
        )
        .await,
        0,
        "nothing changed"
    );

    // The tenant's own draft campaign accepts no reports.
    let draft_id = app
        .processed_campaign(&fx, "Not yet", json!({"segment": "platinum"}))
        .await;
    let closed = report(&app, &own_key, &json!([item(draft_id, &customers[0])])).await;
    assert_eq!(closed.body["results"][0]["status"], "invalid");
    assert!(
        closed.body["results"][0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("active")),
        "{:?}",
        closed.body
    );

    // The right key, an active campaign: applied.
    let applied = report(&app, &own_key, &json!([item(id, &customers[0])])).await;
    assert_eq!(applied.body["results"][0]["status"], "updated");
}

#[tokio::test]
async fn sent_at_far_in_the_future_or_before_the_release_is_refused() {
    let (app, _fx, id, customers) = processed_campaign(json!({"segment": "platinum"})).await;
    let (key, _) = app.issue_webhook_key("credit_card", false).await;
    let item = |status: &str, at: String| json!({"campaign_id": id, "customer_id": customers[0], "status": status, "sent_at": at});
    let frozen = report(
        &app,
        &key,
        &json!([item("failed", "2999-01-01T00:00:00Z".into())]),
    )
    .await;
    assert_eq!(frozen.body["results"][0]["status"], "invalid");
    assert!(
        frozen.body["results"][0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("future"))
    );
    let ancient = report(
        &app,
        &key,
        &json!([item("sent", "2001-01-01T00:00:00Z".into())]),
    )
    .await;
    assert_eq!(ancient.body["results"][0]["status"], "invalid");
    assert!(
        ancient.body["results"][0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("release"))
    );
    // A genuine report afterwards is applied (nothing froze the delivery).
    let skewed = (Utc::now() + Duration::minutes(2)).to_rfc3339();
    let genuine = report(&app, &key, &json!([item("sent", skewed)])).await;
    assert_eq!(genuine.body["results"][0]["status"], "updated");
}

#[tokio::test]
async fn keys_made_before_tenant_scoping_work_only_once_bound() {
    let (app, _fx, id, customers) = processed_campaign(json!({"segment": "platinum"})).await;
    let (key, _) = app.issue_webhook_key("credit_card", false).await;
    // What migration V006 leaves when several tenants exist: the key belongs to none.
    app.db()
        .await
        .execute("update webhook_keys set tenant_name = null", &[])
        .await
        .expect("unbind");
    let body = json!([{"campaign_id": id, "customer_id": customers[0], "status": "sent",
                       "sent_at": Utc::now().to_rfc3339()}]);
    let refused = report(&app, &key, &body).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    // `offerctl webhook-key assign ID --tenant credit_card` binds it.
    let key_id: uuid::Uuid = app
        .db()
        .await
        .query_one("select id from webhook_keys", &[])
        .await
        .expect("key")
        .get(0);
    let tenant = shared::domain::TenantName::parse("credit_card").expect("name");
    let db = app.db().await;
    shared::db::webhook_keys::assign_tenant(&db, key_id, &tenant)
        .await
        .expect("assign");
    let loan = shared::domain::TenantName::parse("loan").expect("name");
    assert!(matches!(
        shared::db::webhook_keys::assign_tenant(&db, key_id, &loan).await,
        Err(shared::ApiError::Conflict(_))
    ));
    let accepted = report(&app, &key, &body).await;
    assert_eq!(accepted.body["results"][0]["status"], "updated");
}

/// One delivery's row and its contact-ledger row, as text (customer id left out), to compare
/// two deliveries that were told the same story in different orders.
async fn delivery_and_contact(app: &TestApp, id: i64, customer: &str) -> String {
    let row = app
        .db()
        .await
        .query_one(
            "select cc.delivery_status, cc.sent_at, cc.provider_message_id, cc.failure_reason,
                    cc.delivered_at, cc.opened_at, cc.clicked_at, l.contact_at, l.settled
             from campaign_customers cc
             left join customer_contacts l
               on l.campaign_id = cc.campaign_id and l.customer_id = cc.customer_id
             where cc.campaign_id = $1 and cc.customer_id = $2::text::uuid",
            &[&(id as i32), &customer],
        )
        .await
        .expect("the delivery");
    format!(
        "{:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?}",
        row.get::<_, String>(0),
        row.get::<_, Option<chrono::DateTime<Utc>>>(1),
        row.get::<_, Option<String>>(2),
        row.get::<_, Option<String>>(3),
        row.get::<_, Option<chrono::DateTime<Utc>>>(4),
        row.get::<_, Option<chrono::DateTime<Utc>>>(5),
        row.get::<_, Option<chrono::DateTime<Utc>>>(6),
        row.get::<_, Option<chrono::DateTime<Utc>>>(7),
        row.get::<_, Option<bool>>(8),
    )
}

#[tokio::test]
async fn engagement_stages_out_of_order_and_repeated_give_the_same_row_as_in_order() {
    let (app, fx, id, customers) = processed_campaign(json!({"segment": "platinum"})).await;
    let (key, _) = app.issue_webhook_key("credit_card", false).await;
    let t0 = (Utc::now() - Duration::minutes(30))
        .with_nanosecond(0)
        .expect("whole seconds");
    let event = |customer: &str, status: &str, minute: i64| {
        json!({"campaign_id": id, "customer_id": customer, "status": status,
               "occurred_at": (t0 + Duration::minutes(minute)).to_rfc3339(),
               "provider_message_id": "m-1"})
    };
    let story = [("sent", 1), ("delivered", 2), ("opened", 5), ("clicked", 9)];
    // In order, one request each.
    let (a, b, c) = (&customers[0], &customers[1], &customers[2]);
    for (status, minute) in story {
        let answer = report(&app, &key, &json!([event(a, status, minute)])).await;
        assert_eq!(answer.body["summary"]["updated"], 1, "{:?}", answer.body);
    }
    // Backwards, with repeats and later copies of each stage, across requests and in one.
    let answer = report(
        &app,
        &key,
        &json!([
            event(b, "clicked", 9),
            event(b, "opened", 12),
            event(b, "clicked", 20)
        ]),
    )
    .await;
    assert_eq!(
        answer.body["summary"],
        json!({"updated": 2, "unchanged": 1, "not_found": 0, "invalid": 0})
    );
    report(
        &app,
        &key,
        &json!([event(b, "opened", 5), event(b, "delivered", 2)]),
    )
    .await;
    report(
        &app,
        &key,
        &json!([event(b, "delivered", 3), event(b, "sent", 1)]),
    )
    .await;
    let repeat = report(
        &app,
        &key,
        &json!([event(b, "opened", 5), event(b, "clicked", 9)]),
    )
    .await;
    assert_eq!(repeat.body["summary"]["unchanged"], 2, "{:?}", repeat.body);
    let in_order = delivery_and_contact(&app, id, a).await;
    assert_eq!(delivery_and_contact(&app, id, b).await, in_order);
    assert!(in_order.starts_with("\"clicked\""), "{in_order}");
    assert!(in_order.ends_with("Some(true)"), "settled: {in_order}");

    // A stage before the release is early; a bounce is a failure; a stage alone settles the
    // contact at its time, and an earlier send reported later moves it back.
    let early = report(&app, &key, &json!([event(c, "opened", -24 * 60 - 5)])).await;
    assert_eq!(early.body["summary"]["invalid"], 1, "{:?}", early.body);
    report(&app, &key, &json!([event(c, "delivered", 4)])).await;
    let contact_at = |customer: &str| {
        let app = &app;
        let customer = customer.to_owned();
        async move {
            app.db()
                .await
                .query_one(
                    "select contact_at, settled from customer_contacts
                     where campaign_id = $1 and customer_id = $2::text::uuid",
                    &[&(id as i32), &customer],
                )
                .await
                .map(|r| (r.get::<_, chrono::DateTime<Utc>>(0), r.get::<_, bool>(1)))
                .expect("the contact")
        }
    };
    assert_eq!(contact_at(c).await, (t0 + Duration::minutes(4), true));
    report(&app, &key, &json!([event(c, "sent", 1)])).await;
    assert_eq!(contact_at(c).await, (t0 + Duration::minutes(1), true));
    let d = &customers[3];
    let bounced = report(&app, &key, &json!([event(d, "bounced", 1)])).await;
    assert_eq!(bounced.body["summary"]["updated"], 1, "{:?}", bounced.body);
    let row = delivery_and_contact(&app, id, d).await;
    assert!(row.starts_with("\"failed\""), "{row}");
    assert!(row.contains("Some(\"bounced\")"), "{row}");
    assert!(
        row.ends_with("Some(false)"),
        "a bounce keeps the slot held: {row}"
    );

    let summary = app.campaign_summary(&fx, id).await;
    assert_eq!(
        (
            &summary["sent"],
            &summary["delivered"],
            &summary["opened"],
            &summary["clicked"]
        ),
        (&json!(3), &json!(3), &json!(2), &json!(2)),
        "{summary}"
    );
}

#[tokio::test]
async fn the_release_remembers_the_earliest_end_it_released_under() {
    // V027: the report statement reads a delivery's ledger row for lateness only for a
    // result dated at or after the campaign's `released_until`, so no ledger row may have an
    // earlier `open_until`. The release sets it to the end it releases under; an end moved
    // later leaves it (the deliveries released before keep their end).
    let (app, _fx, id, _) = processed_campaign(json!({"segment": "platinum"})).await;
    let db = app.db().await;
    let row = db
        .query_one(
            "select c.released_until = c.ends_at,
                    c.released_until <= (select min(open_until) from customer_contacts
                                         where campaign_id = c.id)
             from campaigns c where c.id = $1",
            &[&(id as i32)],
        )
        .await
        .expect("campaign");
    assert!(
        row.get::<_, bool>(0),
        "released_until is the end released under"
    );
    assert!(
        row.get::<_, bool>(1),
        "no ledger row has an earlier open_until"
    );
    db.execute(
        "update campaigns set end_date = end_date + 5 where id = $1",
        &[&(id as i32)],
    )
    .await
    .expect("a later end");
    let kept: bool = db
        .query_one(
            "select released_until < ends_at from campaigns where id = $1",
            &[&(id as i32)],
        )
        .await
        .expect("campaign")
        .get(0);
    assert!(
        kept,
        "a later end does not move what was released under the earlier one"
    );
}
