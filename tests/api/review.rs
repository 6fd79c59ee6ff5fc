//! The second outside review's findings, one regression test (or more) each: the contact cap
//! bypassed by deleting a campaign, signed keys reading the feed unsigned, reports dated
//! before their release, approvals of content the checker never saw, re-pinning a paused
//! campaign, an audit trail the API may rewrite, the ledger under concurrent reports, and the
//! smaller items (retired offers, sign-in logs, large numbers, member answers). Row-level
//! security's findings are in `hardening.rs`.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use chrono::{Duration, Utc};
use integration_tests::{SUPER_ADMIN, TestApp, TestResponse};
use serde_json::{Value, json};
use shared::db::TenantTx;
use shared::domain::TenantName;

use crate::webhook::{processed_campaign, report, signed_headers};

const CAMPAIGNS: &str = "/tenants/credit_card/campaigns";
const OFFERS: &str = "/tenants/credit_card/offers";

/// Rows of the contact ledger of campaign `id`.
async fn ledger_rows(app: &TestApp, id: i64) -> i64 {
    app.count(
        "select count(*) from customer_contacts where campaign_id = $1",
        &[&(id as i32)],
    )
    .await
}

#[tokio::test]
async fn a_campaign_that_released_anything_is_never_deleted_and_the_ledger_keeps_its_rows() {
    let (app, fx, id, _) = processed_campaign(json!({"segment": "platinum"})).await;
    let held = ledger_rows(&app, id).await;
    assert!(held > 0, "the activation released deliveries");
    let one = format!("{CAMPAIGNS}/{id}");
    let refused = app.delete(&one, &fx.admin).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{:?}", refused.body);
    let detail = refused.body["detail"].as_str().expect("detail");
    assert!(
        detail.contains("released") && detail.contains("complete it"),
        "{detail}"
    );
    // Paused, it is still refused; the ledger kept every row throughout.
    let paused = app.put(&one, &fx.admin, json!({"status": "paused"})).await;
    assert_eq!(paused.status, StatusCode::OK, "{:?}", paused.body);
    let refused = app.delete(&one, &fx.admin).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert_eq!(ledger_rows(&app, id).await, held);
    assert_eq!(app.get(&one, &fx.admin).await.status, StatusCode::OK);

    // Below the API, the database refuses too: injected SQL cannot free the slots by
    // deleting the campaign (nor its tenant).
    let tenant = TenantName::parse("credit_card").expect("name");
    let mut client = app.state.pool.get().await.expect("client");
    let tx = TenantTx::begin(&mut client, &tenant)
        .await
        .expect("transaction");
    let err = tx
        .execute("delete from campaigns where id = $1", &[&(id as i32)])
        .await
        .expect_err("the ledger's foreign key refuses");
    assert_eq!(
        err.as_db_error().and_then(|e| e.constraint()),
        Some("customer_contacts_campaign_id_fkey")
    );
    drop(tx);
    let sa = app.super_admin_token().await;
    let tenant_deleted = app.delete("/sa/tenants/credit_card", &sa).await;
    assert_eq!(
        tenant_deleted.status,
        StatusCode::CONFLICT,
        "{:?}",
        tenant_deleted.body
    );
    assert_eq!(ledger_rows(&app, id).await, held);

    // A campaign that never released anything may go, and its audit trail says who.
    let draft = app
        .processed_campaign(&fx, "Never sent", json!({"segment": "gold"}))
        .await;
    let deleted = app.delete(&format!("{CAMPAIGNS}/{draft}"), &fx.admin).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{:?}", deleted.body);
    let trail = app
        .get(&format!("{CAMPAIGNS}/{draft}/audit-logs"), &fx.viewer)
        .await;
    assert_eq!(trail.status, StatusCode::OK);
    let entries = trail.body.as_array().expect("entries");
    assert_eq!(entries.len(), 1, "{:?}", trail.body);
    assert_eq!(entries[0]["action"], "delete");
    assert_eq!(entries[0]["performed_by"], "credit-card.admin");
    assert_eq!(entries[0]["old_data"]["name"], "Never sent");
}

/// `GET` of the feed with a key and optional extra headers.
async fn feed(app: &TestApp, target: &str, key: &str, extra: &[(&str, String)]) -> TestResponse {
    let mut builder = Request::builder()
        .method(Method::GET)
        .uri(target)
        .header("x-api-key", key);
    for (name, value) in extra {
        builder = builder.header(*name, value);
    }
    app.send(builder.body(Body::empty()).expect("request"))
        .await
}

#[tokio::test]
async fn a_signed_key_signs_its_feed_requests_too() {
    let (app, _fx, id, _) = processed_campaign(json!({"segment": "platinum"})).await;
    let (key, secret) = app.issue_webhook_key("credit_card", true).await;
    let secret = secret.expect("a signed key has a secret");
    let target = format!("/system/campaigns/{id}/deliveries?limit=5");
    let unsigned = feed(&app, &target, &key, &[]).await;
    assert_eq!(
        unsigned.status,
        StatusCode::UNAUTHORIZED,
        "{:?}",
        unsigned.body
    );
    // Signed over `GET <path and query>`, as docs/api.md shows providers.
    let now = Utc::now().timestamp();
    let line = format!("GET {target}");
    let headers = signed_headers(&secret, "msg_feed_1", now, line.as_bytes());
    let signed = feed(&app, &target, &key, &headers).await;
    assert_eq!(signed.status, StatusCode::OK, "{:?}", signed.body);
    assert_eq!(signed.body["deliveries"].as_array().map(Vec::len), Some(5));
    // The same request again: a replay.
    let replayed = feed(&app, &target, &key, &headers).await;
    assert_eq!(replayed.status, StatusCode::UNAUTHORIZED);
    // A signature of one page does not open another.
    let other = format!("/system/campaigns/{id}/deliveries?limit=6");
    let headers = signed_headers(&secret, "msg_feed_2", now, line.as_bytes());
    let moved = feed(&app, &other, &key, &headers).await;
    assert_eq!(moved.status, StatusCode::UNAUTHORIZED);
    // Outside the 5-minute window.
    let old = now - 600;
    let headers = signed_headers(&secret, "msg_feed_3", old, line.as_bytes());
    assert_eq!(
        feed(&app, &target, &key, &headers).await.status,
        StatusCode::UNAUTHORIZED
    );
    // A key without a secret still reads with the key alone.
    let (plain, _) = app.issue_webhook_key("credit_card", false).await;
    assert_eq!(
        feed(&app, &target, &plain, &[]).await.status,
        StatusCode::OK
    );
}

/// The contact-ledger time of one delivery.
async fn contact_at(app: &TestApp, id: i64, customer: &str) -> chrono::DateTime<Utc> {
    app.db()
        .await
        .query_one(
            "select contact_at from customer_contacts
             where campaign_id = $1 and customer_id = $2::text::uuid",
            &[&(id as i32), &customer],
        )
        .await
        .expect("ledger row")
        .get(0)
}

#[tokio::test]
async fn a_report_dated_before_its_delivery_was_released_is_invalid() {
    let (app, _fx, id, customers) = processed_campaign(json!({"segment": "platinum"})).await;
    let (key, _) = app.issue_webhook_key("credit_card", false).await;
    // The campaign is a day old; this delivery was released an hour ago.
    let customer = &customers[0];
    app.db()
        .await
        .execute(
            "update campaign_customers set released_at = now() - interval '1 hour'
             where campaign_id = $1 and customer_id = $2::text::uuid",
            &[&(id as i32), customer],
        )
        .await
        .expect("release an hour ago");
    let before = contact_at(&app, id, customer).await;
    let early = (Utc::now() - Duration::hours(2)).to_rfc3339();
    let item =
        json!([{"campaign_id": id, "customer_id": customer, "status": "sent", "sent_at": early}]);
    let answer = report(&app, &key, &item).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    assert_eq!(answer.body["results"][0]["status"], "invalid");
    assert!(
        answer.body["results"][0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("release")),
        "{:?}",
        answer.body
    );
    assert_eq!(
        contact_at(&app, id, customer).await,
        before,
        "the contact did not age"
    );
    let now = Utc::now().to_rfc3339();
    let item =
        json!([{"campaign_id": id, "customer_id": customer, "status": "sent", "sent_at": now}]);
    assert_eq!(
        report(&app, &key, &item).await.body["results"][0]["status"],
        "updated"
    );
}

/// `POST {offer}/approve` as `token` with `If-Match: tag`.
async fn approve_as(app: &TestApp, offer: &str, token: &str, tag: &str) -> TestResponse {
    app.call_with(
        Method::POST,
        &format!("{offer}/approve"),
        Some(token),
        &[("if-match", tag)],
        None,
    )
    .await
}

#[tokio::test]
async fn an_approval_binds_to_the_version_the_checker_read() {
    let app = TestApp::spawn().await;
    let fx = app.tenant_with_offer("credit_card").await;
    let one = format!("{OFFERS}/{}", fx.offer_id);
    // The maker drafts version 2 (only /apr changes) and submits it.
    let drafted = app
        .put(
            &one,
            &fx.maker,
            json!({"data": {"title": "Cashback 5%", "apr": 18.5}}),
        )
        .await;
    assert_eq!(drafted.status, StatusCode::OK, "{:?}", drafted.body);
    let submitted = app
        .post(&format!("{one}/submit"), &fx.maker, json!({}))
        .await;
    assert_eq!(submitted.status, StatusCode::OK);
    // The checker reads the diff: it carries the offer's ETag.
    let diff = app.get(&format!("{one}/draft-diff"), &fx.checker).await;
    assert_eq!(diff.status, StatusCode::OK);
    let reviewed = diff.headers[header::ETAG]
        .to_str()
        .expect("etag")
        .to_owned();
    assert_eq!(
        reviewed,
        submitted.headers[header::ETAG].to_str().expect("etag")
    );
    // Without If-Match (or with `*`) an approval or a rejection is 428.
    for (step, tag) in [("approve", None), ("reject", None), ("approve", Some("*"))] {
        let headers: Vec<(&str, &str)> = tag.map(|t| ("if-match", t)).into_iter().collect();
        let unbound = app
            .call_with(
                Method::POST,
                &format!("{one}/{step}"),
                Some(&fx.checker),
                &headers,
                None,
            )
            .await;
        assert_eq!(unbound.status, StatusCode::PRECONDITION_REQUIRED, "{step}");
        assert_eq!(unbound.content_type(), "application/problem+json");
    }
    // An admin slips a fee into the submitted draft: it goes back to draft, audited.
    let slipped = app
        .put(
            &one,
            &fx.admin,
            json!({"data": {"title": "Cashback 5%", "apr": 18.5, "annual_fee": 99999}}),
        )
        .await;
    assert_eq!(slipped.status, StatusCode::OK, "{:?}", slipped.body);
    assert_eq!(slipped.body["status"], "draft");
    let trail = app.get(&format!("{one}/audit-logs"), &fx.admin).await;
    let last = trail.body.as_array().and_then(|a| a.last()).expect("entry");
    assert_eq!(last["action"], "update");
    assert_eq!(last["old_data"]["status"], "submitted");
    assert_eq!(last["new_data"]["status"], "draft");
    // The checker's approval of what they read is stale: 412, nothing approved.
    let stale = approve_as(&app, &one, &fx.checker, &reviewed).await;
    assert_eq!(
        stale.status,
        StatusCode::PRECONDITION_FAILED,
        "{:?}",
        stale.body
    );
    let read = app.get(&one, &fx.viewer).await;
    assert_eq!(read.body["live_version"], 1);
    // Submitted again, read again (the fee now in the diff), approved with the new tag.
    app.post(&format!("{one}/submit"), &fx.maker, json!({}))
        .await;
    let diff = app.get(&format!("{one}/draft-diff"), &fx.checker).await;
    assert!(
        diff.body.to_string().contains("annual_fee"),
        "{:?}",
        diff.body
    );
    let reviewed = diff.headers[header::ETAG]
        .to_str()
        .expect("etag")
        .to_owned();
    let approved = approve_as(&app, &one, &fx.checker, &reviewed).await;
    assert_eq!(approved.status, StatusCode::OK, "{:?}", approved.body);
    assert_eq!(approved.body["live_version"], 2);
}

#[tokio::test]
async fn moving_a_paused_campaigns_offer_version_needs_the_permission_that_edits_it() {
    let (app, fx, id, _) = processed_campaign(json!({"segment": "platinum"})).await;
    let one = format!("{CAMPAIGNS}/{id}");
    let paused = app.put(&one, &fx.admin, json!({"status": "paused"})).await;
    assert_eq!(paused.status, StatusCode::OK);
    let version = paused.body["offer_version"].clone();
    let edit = app.put(&one, &fx.maker, json!({"name": "Renamed"})).await;
    assert_eq!(edit.status, StatusCode::FORBIDDEN);
    let moved = app
        .post(
            &format!("{one}/offer-version"),
            &fx.maker,
            json!({"offer_version": version}),
        )
        .await;
    assert_eq!(moved.status, StatusCode::FORBIDDEN, "{:?}", moved.body);
    let by_admin = app
        .post(
            &format!("{one}/offer-version"),
            &fx.admin,
            json!({"offer_version": version}),
        )
        .await;
    assert_eq!(by_admin.status, StatusCode::OK, "{:?}", by_admin.body);
}

#[tokio::test]
async fn the_api_role_cannot_rewrite_any_audit_trail() {
    let app = TestApp::spawn().await;
    app.tenant_with_offer("credit_card").await;
    // Both login roles (tenant routes and the platform scope) hold the API group's rights.
    for pool in [&app.state.pool, &app.state.platform] {
        let mut client = pool.get().await.expect("client");
        let tenant = TenantName::parse("credit_card").expect("name");
        for (table, column) in [
            ("offer_audit_logs", "comment"),
            ("campaign_audit_logs", "comment"),
            ("tenant_access_audit_logs", "reason"),
            ("offer_versions", "comments"),
            ("customer_consent_history", "source"),
        ] {
            for statement in [
                format!("update {table} set {column} = {column}"),
                format!("delete from {table}"),
            ] {
                let tx = TenantTx::begin(&mut client, &tenant)
                    .await
                    .expect("transaction");
                let err = tx
                    .execute(&statement, &[])
                    .await
                    .expect_err("the API role may only append");
                assert_eq!(
                    err.as_db_error().map(|e| e.code().code()),
                    Some("42501"),
                    "{statement}: {err}"
                );
            }
        }
    }
    let kept = app
        .count("select count(*) from offer_audit_logs", &[])
        .await;
    assert!(kept >= 3, "create, submit and approve are still there");
}

#[tokio::test]
async fn the_ledger_follows_a_deliverys_final_status_under_concurrent_reports() {
    let (app, _fx, id, customers) = processed_campaign(json!({"segment": "platinum"})).await;
    let (key, _) = app.issue_webhook_key("credit_card", false).await;
    let app = Arc::new(app);
    let base = Utc::now() - Duration::minutes(30);
    // Eight deliveries, 32 reports each, all at once: sent and failed alternate in time; the
    // latest is `failed` for the even deliveries and `sent` for the odd ones.
    let mut requests = Vec::new();
    for (d, customer) in customers.iter().take(8).enumerate() {
        for i in 0..32i64 {
            let last_sent = d % 2 == 1;
            let sent = (i % 2 == 1) == last_sent;
            let at = base + Duration::seconds(i);
            let item = json!([{"campaign_id": id, "customer_id": customer,
                               "status": if sent { "sent" } else { "failed" },
                               "sent_at": at.to_rfc3339()}]);
            let (app, key) = (Arc::clone(&app), key.clone());
            requests.push(tokio::spawn(async move {
                report(&app, &key, &item).await.status
            }));
        }
    }
    for request in requests {
        assert_eq!(request.await.expect("task"), StatusCode::OK);
    }
    let latest = base + Duration::seconds(31);
    for (d, customer) in customers.iter().take(8).enumerate() {
        let db = app.db().await;
        let row = db
            .query_one(
                "select delivery_status, sent_at from campaign_customers
                 where campaign_id = $1 and customer_id = $2::text::uuid",
                &[&(id as i32), customer],
            )
            .await
            .expect("delivery");
        let (status, sent_at): (String, chrono::DateTime<Utc>) = (row.get(0), row.get(1));
        assert_eq!(
            sent_at.timestamp(),
            latest.timestamp(),
            "the latest report won"
        );
        // The ledger (V022): one row per released delivery, whatever came last; settled at
        // the first `sent` report accepted (a later `failed` report does not free the slot:
        // the provider may still retry), unsettled at the release while none was.
        let ledger = db
            .query(
                "select l.contact_at, l.settled, cc.released_at from customer_contacts l
                 join campaign_customers cc using (campaign_id, customer_id)
                 where l.campaign_id = $1 and l.customer_id = $2::text::uuid",
                &[&(id as i32), customer],
            )
            .await
            .expect("ledger");
        assert_eq!(
            ledger.len(),
            1,
            "one row per released delivery (delivery {d})"
        );
        let (contact_at, settled, released_at): (
            chrono::DateTime<Utc>,
            bool,
            chrono::DateTime<Utc>,
        ) = (ledger[0].get(0), ledger[0].get(1), ledger[0].get(2));
        assert_eq!(status, if d % 2 == 1 { "sent" } else { "failed" });
        if settled {
            // The report times are base + i seconds (stored to the microsecond).
            let second = ((contact_at - base).num_milliseconds() + 500).div_euclid(1000);
            let sent = (second % 2 == 1) == (d % 2 == 1);
            assert!(
                (0..32).contains(&second) && sent,
                "settled at a sent report's time (delivery {d}: {contact_at})"
            );
        } else {
            assert_eq!(
                contact_at, released_at,
                "unsettled at its release (delivery {d})"
            );
        }
    }
}

#[tokio::test]
async fn a_draft_campaign_of_a_retired_offer_cannot_start() {
    let app = TestApp::spawn().await;
    app.import_demo_customers().await;
    let fx = app.tenant_with_offer("credit_card").await;
    let id = app
        .processed_campaign(&fx, "Too late", json!({"segment": "platinum"}))
        .await;
    let retired = app
        .post(
            &format!("{OFFERS}/{}/retire", fx.offer_id),
            &fx.checker,
            json!({"reason": "product withdrawn"}),
        )
        .await;
    assert_eq!(retired.status, StatusCode::OK, "{:?}", retired.body);
    let started = app.activate_campaign("credit_card", id, &fx.admin).await;
    assert_eq!(started.status, StatusCode::CONFLICT, "{:?}", started.body);
    assert!(
        started.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("retired"))
    );
    assert_eq!(ledger_rows(&app, id).await, 0, "nothing released");
}

/// A `MakeWriter` collecting what the subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn unknown_usernames_typed_at_sign_in_are_logged_as_a_digest() {
    let app = TestApp::spawn().await;
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    // A name that is no account: someone's e-mail address with a forged log line after it.
    let typed = "jane.doe@private.example\nINFO forged line";
    let refused = app.try_login(typed, "whatever password").await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    // A known user with a wrong password is named.
    let known = app.try_login(SUPER_ADMIN, "wrong password").await;
    assert_eq!(known.status, StatusCode::UNAUTHORIZED);
    let logs = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("utf-8");
    assert!(!logs.contains("jane.doe"), "{logs}");
    assert!(!logs.contains("forged line"), "{logs}");
    let digest = shared::db::login_throttle::Subjects::new(typed, "ignored").account_digest();
    assert!(logs.contains(&format!("user.digest={digest}")), "{logs}");
    assert!(logs.contains(&format!("user.name={SUPER_ADMIN}")), "{logs}");
}

#[tokio::test]
async fn offer_numbers_are_stored_exactly_or_refused() {
    let app = TestApp::spawn().await;
    let fx = app.tenant_with_offer("credit_card").await;
    let post = |body: &'static str| {
        let request = Request::builder()
            .method(Method::POST)
            .uri(OFFERS)
            .header(header::AUTHORIZATION, format!("Bearer {}", fx.maker))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .expect("request");
        app.send(request)
    };
    for (body, pointer) in [
        (
            r#"{"data": {"limit": 123456789012345678901234567890}}"#,
            "/data/limit",
        ),
        (
            r#"{"data": {"tiers": [1, 18446744073709551616]}}"#,
            "/data/tiers/1",
        ),
        (
            r#"{"data": {"apr": 0.1000000000000000000001}}"#,
            "/data/apr",
        ),
    ] {
        let refused = post(body).await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {:?}",
            refused.body
        );
        assert_eq!(refused.body["errors"][0]["pointer"], pointer, "{body}");
    }
    assert_eq!(
        app.count("select count(*) from offers", &[]).await,
        1,
        "nothing written"
    );
    // What a double or a 64-bit integer holds is taken, and read back as sent.
    let taken = post(
        r#"{"data": {"limit": 9223372036854775807, "cap": 18446744073709551615, "apr": 19.99, "rate": 1e-7}}"#,
    )
    .await;
    assert_eq!(taken.status, StatusCode::CREATED, "{:?}", taken.body);
    let stored: Value = app
        .db()
        .await
        .query_one(
            "select data from offers where id = $1",
            &[&(taken.body["id"].as_i64().expect("id") as i32)],
        )
        .await
        .expect("offer")
        .get(0);
    assert_eq!(stored["limit"], json!(9_223_372_036_854_775_807_i64));
    assert_eq!(stored["cap"], json!(18_446_744_073_709_551_615_u64));
    assert_eq!(stored["apr"], json!(19.99));
    assert_eq!(stored["rate"], json!(1e-7));
}

#[tokio::test]
async fn member_routes_answer_a_super_admin_like_an_unknown_user() {
    let app = TestApp::spawn().await;
    let fx = app.tenant_with_offer("credit_card").await;
    let members = "/tenants/credit_card/members";
    let mut answers = Vec::new();
    for name in [SUPER_ADMIN, "nobody.here"] {
        let assign = app
            .post(
                members,
                &fx.admin,
                json!({"username": name, "role": "read_only"}),
            )
            .await;
        let remove = app
            .delete(&format!("{members}/{name}/roles/read_only"), &fx.admin)
            .await;
        for answer in [assign, remove] {
            let detail = answer.body["detail"]
                .as_str()
                .unwrap_or_default()
                .replace(name, "NAME");
            answers.push((answer.status, detail));
        }
    }
    assert_eq!(answers[0..2], answers[2..4], "{answers:?}");
    assert_eq!(answers[0].0, StatusCode::NOT_FOUND);
    assert_eq!(answers[1].0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn batches_naming_the_same_deliveries_in_opposite_orders_never_deadlock() {
    // The report statement takes its deliveries' rows in key order (its reports sorted),
    // with no lock statement before it: two batches of the same 500 deliveries, one in
    // ascending and one in descending order, sent at once, five times over, all apply
    // (a deadlock would answer 500 to one of them).
    let (app, _fx, id, customers) = processed_campaign(json!({})).await;
    let (key, _) = app.issue_webhook_key("credit_card", false).await;
    let app = Arc::new(app);
    let chosen: Vec<String> = customers.iter().take(500).cloned().collect();
    let base = Utc::now() - Duration::minutes(30);
    for round in 0..5i64 {
        let mut requests = Vec::new();
        for reversed in [false, true] {
            let at = base + Duration::seconds(2 * round + i64::from(reversed));
            let mut order = chosen.clone();
            if reversed {
                order.reverse();
            }
            let items: Vec<Value> = order
                .iter()
                .map(|c| {
                    json!({"campaign_id": id, "customer_id": c, "status": "sent",
                                "sent_at": at.to_rfc3339()})
                })
                .collect();
            let (app, key) = (Arc::clone(&app), key.clone());
            requests.push(tokio::spawn(async move {
                report(&app, &key, &json!(items)).await.status
            }));
        }
        for request in requests {
            assert_eq!(
                request.await.expect("task"),
                StatusCode::OK,
                "round {round}"
            );
        }
    }
    assert_eq!(
        app.count(
            "select count(*) from customer_contacts where campaign_id = $1 and settled",
            &[&(id as i32)],
        )
        .await,
        500
    );
}
