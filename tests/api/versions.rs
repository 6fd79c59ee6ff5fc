//! Offer versions: what was approved is what runs. Drafts on top of a live version, numbered
//! immutable versions, campaigns pinned to one (moved only explicitly, audited), four eyes on
//! every version, JSON Patch diffs, retirement, concurrency, and the migration of existing
//! data.

use axum::http::{Method, StatusCode, header};
use integration_tests::{TenantFixture, TestApp, TestResponse, USER_PASSWORD};
use serde_json::{Value, json};

const OFFERS: &str = "/tenants/credit_card/offers";
const CAMPAIGNS: &str = "/tenants/credit_card/campaigns";

/// A draft campaign of the fixture's offer; `offer_version` pins one explicitly.
async fn campaign(app: &TestApp, fx: &TenantFixture, offer_version: Option<i64>) -> TestResponse {
    let mut campaign = integration_tests::NewCampaign::of(fx.offer_id)
        .name("Cashback push")
        .criteria(json!({"segment": "gold"}));
    if let Some(v) = offer_version {
        campaign = campaign.with("offer_version", json!(v));
    }
    campaign.post(app, &fx.tenant, &fx.maker).await
}

/// Edits the approved offer as `token` (opening a draft), submits it as `token`, and answers
/// the submit.
async fn draft_and_submit(
    app: &TestApp,
    fx: &TenantFixture,
    token: &str,
    data: Value,
) -> TestResponse {
    let one = format!("{OFFERS}/{}", fx.offer_id);
    let edited = app
        .call_as(Method::PUT, &one, token, Some(json!({"data": data})))
        .await;
    assert_eq!(edited.status, StatusCode::OK, "{:?}", edited.body);
    app.post(&format!("{one}/submit"), token, json!({})).await
}

/// Sorts patch operations by path and op, so two patches with the same operations compare
/// equal whatever order a differ emits them in.
fn normalised(patch: &Value) -> Vec<Value> {
    let mut ops = patch.as_array().expect("a JSON Patch is an array").clone();
    ops.sort_by_key(|op| {
        (
            op["path"].as_str().unwrap_or("").to_owned(),
            op["op"].as_str().unwrap_or("").to_owned(),
        )
    });
    ops
}

#[tokio::test]
async fn an_edited_approved_offer_stays_live_until_its_draft_is_approved_as_version_2() {
    let app = TestApp::spawn().await;
    let fx = app.tenant_with_offer("credit_card").await;
    let one = format!("{OFFERS}/{}", fx.offer_id);
    let offer = app.get(&one, &fx.viewer).await;
    assert_eq!(offer.body["status"], "approved");
    assert_eq!(offer.body["live_version"], 1);
    assert_eq!(offer.body["draft_pending"], false);
    let before = campaign(&app, &fx, None).await;
    assert_eq!(before.status, StatusCode::ACCEPTED, "{:?}", before.body);
    assert_eq!(before.body["offer_version"], 1);

    // Editing the approved offer opens a draft; version 1 stays live and unchanged.
    let edited = app
        .call_as(
            Method::PUT,
            &one,
            &fx.maker,
            Some(json!({"data": {"title": "Cashback 6%", "cap": 500}, "comments": "raise it"})),
        )
        .await;
    assert_eq!(edited.status, StatusCode::OK, "{:?}", edited.body);
    assert_eq!(edited.body["status"], "draft");
    assert_eq!(edited.body["live_version"], 1);
    assert_eq!(edited.body["draft_pending"], true);
    assert_eq!(edited.body["draft_base_version"], 1);
    let versions = app.get(&format!("{one}/versions"), &fx.viewer).await;
    assert_eq!(versions.status, StatusCode::OK);
    let listed = versions.body.as_array().expect("versions");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["version"], 1);
    assert_eq!(listed[0]["data"], json!({"title": "Cashback 5%"}));
    assert_eq!(listed[0]["approved_by"], "credit-card.checker");
    assert_eq!(listed[0]["authors"], json!(["credit-card.maker"]));
    let during = campaign(&app, &fx, None).await;
    assert_eq!(
        during.body["offer_version"], 1,
        "a pending draft is not live"
    );

    // What the checker is asked to approve, as RFC 6902 (hand-written here).
    let expected_patch = json!([
        {"op": "add", "path": "/cap", "value": 500},
        {"op": "replace", "path": "/title", "value": "Cashback 6%"},
    ]);
    let draft_diff = app.get(&format!("{one}/draft-diff"), &fx.checker).await;
    assert_eq!(draft_diff.status, StatusCode::OK, "{:?}", draft_diff.body);
    assert_eq!(
        draft_diff.headers[header::CONTENT_TYPE],
        "application/json-patch+json"
    );
    assert_eq!(normalised(&draft_diff.body), normalised(&expected_patch));

    let submitted = app
        .post(&format!("{one}/submit"), &fx.maker, json!({}))
        .await;
    assert_eq!(submitted.status, StatusCode::OK);
    let approved = app
        .review(
            &one,
            "approve",
            &fx.checker,
            Some(json!({"comments": "Cap is fine"})),
        )
        .await;
    assert_eq!(approved.status, StatusCode::OK, "{:?}", approved.body);
    assert_eq!(approved.body["status"], "approved");
    assert_eq!(approved.body["live_version"], 2);
    assert_eq!(approved.body["draft_pending"], false);
    assert!(approved.body["draft_base_version"].is_null());
    assert_eq!(
        app.get(&format!("{one}/draft-diff"), &fx.checker)
            .await
            .status,
        StatusCode::NOT_FOUND,
        "no draft is pending any more"
    );

    let v2 = app.get(&format!("{one}/versions/2"), &fx.viewer).await;
    assert_eq!(v2.status, StatusCode::OK);
    assert_eq!(v2.body["data"], json!({"title": "Cashback 6%", "cap": 500}));
    assert_eq!(v2.body["comments"], "raise it");
    assert_eq!(v2.body["approved_by"], "credit-card.checker");
    assert_eq!(v2.body["approval_comment"], "Cap is fine");
    assert!(v2.body["approved_at"].is_string());
    let v1 = app.get(&format!("{one}/versions/1"), &fx.viewer).await;
    assert_eq!(
        v1.body["data"],
        json!({"title": "Cashback 5%"}),
        "version 1 never changed"
    );

    // Diffs between versions: the hand-written patch, applicable to version 1.
    let diff = app.get(&format!("{one}/versions/2/diff"), &fx.viewer).await;
    assert_eq!(diff.status, StatusCode::OK, "{:?}", diff.body);
    assert_eq!(normalised(&diff.body), normalised(&expected_patch));
    let patch: json_patch::Patch = serde_json::from_value(diff.body.clone()).expect("a JSON Patch");
    let mut document = v1.body["data"].clone();
    json_patch::patch(&mut document, &patch).expect("applies to version 1");
    assert_eq!(document, v2.body["data"]);
    let back = app
        .get(&format!("{one}/versions/1/diff?against=2"), &fx.viewer)
        .await;
    assert_eq!(
        normalised(&back.body),
        normalised(&json!([
            {"op": "remove", "path": "/cap"},
            {"op": "replace", "path": "/title", "value": "Cashback 5%"},
        ]))
    );
    let same = app
        .get(&format!("{one}/versions/2/diff?against=2"), &fx.viewer)
        .await;
    assert_eq!(same.body, json!([]));
    let first = app.get(&format!("{one}/versions/1/diff"), &fx.viewer).await;
    assert_eq!(first.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(first.body["errors"][0]["pointer"], "/against");
    for path in [
        format!("{one}/versions/3"),
        format!("{one}/versions/3/diff"),
        format!("{one}/versions/2/diff?against=9"),
        format!("{OFFERS}/999999/versions"),
    ] {
        assert_eq!(
            app.get(&path, &fx.viewer).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }

    // Campaigns made before keep version 1; new ones get version 2, or the one they name.
    for earlier in [&before, &during] {
        let id = earlier.body["id"].as_i64().expect("id");
        let read = app.get(&format!("{CAMPAIGNS}/{id}"), &fx.viewer).await;
        assert_eq!(read.body["offer_version"], 1);
    }
    assert_eq!(campaign(&app, &fx, None).await.body["offer_version"], 2);
    assert_eq!(campaign(&app, &fx, Some(1)).await.body["offer_version"], 1);
    let missing = campaign(&app, &fx, Some(5)).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{:?}", missing.body);

    // The audit trail records the version numbers.
    let trail = app.get(&format!("{one}/audit-logs"), &fx.admin).await;
    let approvals: Vec<&Value> = trail
        .body
        .as_array()
        .expect("trail")
        .iter()
        .filter(|e| e["new_data"]["status"] == "approved")
        .collect();
    assert_eq!(approvals.len(), 2);
    assert_eq!(approvals[0]["new_data"]["live_version"], 1);
    assert_eq!(approvals[1]["old_data"]["live_version"], 1);
    assert_eq!(approvals[1]["old_data"]["draft_base_version"], 1);
    assert_eq!(approvals[1]["new_data"]["live_version"], 2);
}

#[tokio::test]
async fn the_four_eyes_rule_holds_for_every_version() {
    let app = TestApp::spawn().await;
    let fx = app.tenant_with_offer("credit_card").await;
    let one = format!("{OFFERS}/{}", fx.offer_id);
    // The admin (who may edit and review) drafts version 2: it may not approve it.
    let submitted = draft_and_submit(&app, &fx, &fx.admin, json!({"title": "Cashback 7%"})).await;
    assert_eq!(submitted.status, StatusCode::OK, "{:?}", submitted.body);
    let own = app
        .review(&one, "approve", &fx.admin, Some(json!({})))
        .await;
    assert_eq!(own.status, StatusCode::FORBIDDEN, "{:?}", own.body);
    let rejected = app.review(&one, "reject", &fx.admin, Some(json!({}))).await;
    assert_eq!(rejected.status, StatusCode::FORBIDDEN);
    let approved = app
        .review(&one, "approve", &fx.checker, Some(json!({})))
        .await;
    assert_eq!(approved.status, StatusCode::OK, "{:?}", approved.body);
    assert_eq!(approved.body["live_version"], 2);
    let v2 = app.get(&format!("{one}/versions/2"), &fx.viewer).await;
    assert!(
        v2.body["authors"]
            .as_array()
            .expect("authors")
            .contains(&json!("credit-card.admin")),
        "{:?}",
        v2.body
    );
    // Version 3: drafted by the maker, commented on by the admin; the admin, not an author of
    // this draft, may approve it; the maker may not (and lacks offer.review anyway).
    let submitted = draft_and_submit(&app, &fx, &fx.maker, json!({"title": "Cashback 8%"})).await;
    assert_eq!(submitted.status, StatusCode::OK);
    let by_maker = app
        .review(&one, "approve", &fx.maker, Some(json!({})))
        .await;
    assert_eq!(by_maker.status, StatusCode::FORBIDDEN);
    let by_admin = app
        .review(&one, "approve", &fx.admin, Some(json!({})))
        .await;
    assert_eq!(by_admin.status, StatusCode::OK, "{:?}", by_admin.body);
    assert_eq!(by_admin.body["live_version"], 3);
}

#[tokio::test]
async fn concurrent_approvals_one_wins_the_other_is_409_and_a_stale_base_is_refused() {
    let app = TestApp::spawn().await;
    let fx = app.tenant_with_offer("credit_card").await;
    let sa = app.super_admin_token().await;
    app.create_user(&sa, "credit-card.checker2", &[("credit_card", "approver")])
        .await;
    let checker2 = app.login("credit-card.checker2", USER_PASSWORD).await;
    let one = format!("{OFFERS}/{}", fx.offer_id);
    let submitted = draft_and_submit(&app, &fx, &fx.maker, json!({"title": "Race"})).await;
    assert_eq!(submitted.status, StatusCode::OK);
    // Both checkers reviewed the same version (its ETag); the second approval finds it
    // changed: 412.
    let etag = submitted.headers[header::ETAG]
        .to_str()
        .expect("etag")
        .to_owned();
    let approve = |token: String| {
        let (app, path, etag) = (&app, format!("{one}/approve"), etag.clone());
        async move {
            app.call_with(
                Method::POST,
                &path,
                Some(&token),
                &[("if-match", &etag)],
                Some(json!({})),
            )
            .await
        }
    };
    let (a, b) = tokio::join!(approve(fx.checker.clone()), approve(checker2.clone()));
    let mut statuses = vec![a.status.as_u16(), b.status.as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, vec![200, 412], "{:?} {:?}", a.body, b.body);
    let versions = app.get(&format!("{one}/versions"), &fx.viewer).await;
    assert_eq!(
        versions.body.as_array().map(Vec::len),
        Some(2),
        "exactly one version 2"
    );

    // A draft whose base is no longer live is refused, naming both versions. (The API keeps
    // one working draft per offer, so this state is made as a concurrent writer would leave
    // it: version 3 approved and live while the draft still builds on version 2.)
    let submitted = draft_and_submit(&app, &fx, &fx.maker, json!({"title": "Stale"})).await;
    assert_eq!(submitted.status, StatusCode::OK);
    let owner = app.owner_pool().get().await.expect("owner client");
    owner
        .batch_execute(&format!(
            "insert into offer_versions (tenant_name, offer_id, version_number, data, approved_by)
             values ('credit_card', {id}, 3, '{{\"title\": \"Elsewhere\"}}', 'credit-card.checker2');
             update offers set live_version = 3 where id = {id};",
            id = fx.offer_id
        ))
        .await
        .expect("a version approved meanwhile");
    let stale = app
        .review(&one, "approve", &fx.checker, Some(json!({})))
        .await;
    assert_eq!(stale.status, StatusCode::CONFLICT, "{:?}", stale.body);
    let detail = stale.body["detail"].as_str().expect("detail");
    assert!(
        detail.contains("based on version 2") && detail.contains("version 3 is live"),
        "{detail}"
    );
    // Rejected, then edited again on top of the live version, it is approved as version 4.
    let rejected = app
        .review(
            &one,
            "reject",
            &fx.checker,
            Some(json!({"comments": "stale"})),
        )
        .await;
    assert_eq!(rejected.status, StatusCode::OK);
    assert_eq!(
        rejected.body["draft_base_version"], 2,
        "a rejection keeps the base"
    );
    let rebased = app
        .call_as(
            Method::PATCH,
            &one,
            &fx.maker,
            Some(json!({"comments": "rebased"})),
        )
        .await;
    assert_eq!(rebased.status, StatusCode::OK, "{:?}", rebased.body);
    assert_eq!(rebased.body["draft_base_version"], 3);
    app.post(&format!("{one}/submit"), &fx.maker, json!({}))
        .await;
    let approved = app
        .review(&one, "approve", &fx.checker, Some(json!({})))
        .await;
    assert_eq!(approved.status, StatusCode::OK, "{:?}", approved.body);
    assert_eq!(approved.body["live_version"], 4);
}

#[tokio::test]
async fn moving_a_campaign_to_another_version_is_explicit_audited_and_only_while_draft_or_paused() {
    let app = TestApp::spawn().await;
    app.import_demo_customers().await;
    let fx = app.tenant_with_offer("credit_card").await;
    let id = app
        .processed_campaign(&fx, "Pinned", json!({"segment": "platinum"}))
        .await;
    let submitted = draft_and_submit(&app, &fx, &fx.maker, json!({"title": "Cashback 9%"})).await;
    assert_eq!(submitted.status, StatusCode::OK);
    let approved = app
        .review(
            &format!("{OFFERS}/{}", fx.offer_id),
            "approve",
            &fx.checker,
            Some(json!({})),
        )
        .await;
    assert_eq!(approved.body["live_version"], 2);
    let path = format!("{CAMPAIGNS}/{id}");
    assert_eq!(
        app.get(&path, &fx.viewer).await.body["offer_version"],
        1,
        "approval moved nothing"
    );
    let mv = |token: String, body: Value| {
        let (app, path) = (&app, format!("{path}/offer-version"));
        async move { app.post(&path, &token, body).await }
    };
    assert_eq!(
        mv(fx.viewer.clone(), json!({"offer_version": 2}))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        mv(fx.maker.clone(), json!({"offer_version": 7}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        mv(fx.maker.clone(), json!({"offer_version": 2, "extra": 1}))
            .await
            .status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let moved = mv(
        fx.maker.clone(),
        json!({"offer_version": 2, "comment": "new cap"}),
    )
    .await;
    assert_eq!(moved.status, StatusCode::OK, "{:?}", moved.body);
    assert_eq!(moved.body["offer_version"], 2);
    let again = mv(fx.maker.clone(), json!({"offer_version": 2})).await;
    assert_eq!(
        again.status,
        StatusCode::OK,
        "naming the pinned version changes nothing"
    );

    // Active: no moves. Paused: moves again.
    assert_eq!(
        app.activate_campaign("credit_card", id, &fx.admin)
            .await
            .status,
        StatusCode::OK
    );
    let active = mv(fx.admin.clone(), json!({"offer_version": 1})).await;
    assert_eq!(active.status, StatusCode::CONFLICT, "{:?}", active.body);
    let paused = app
        .call_as(
            Method::PUT,
            &path,
            &fx.admin,
            Some(json!({"status": "paused"})),
        )
        .await;
    assert_eq!(paused.status, StatusCode::OK);
    let back = mv(
        fx.admin.clone(),
        json!({"offer_version": 1, "comment": "roll back"}),
    )
    .await;
    assert_eq!(back.status, StatusCode::OK, "{:?}", back.body);
    assert_eq!(app.get(&path, &fx.viewer).await.body["offer_version"], 1);

    let trail = app.get(&format!("{path}/audit-logs"), &fx.viewer).await;
    let entries: Vec<(Value, Value, Value, Value)> = trail
        .body
        .as_array()
        .expect("trail")
        .iter()
        .filter(|e| e["action"] == "offer_version_change")
        .map(|e| {
            (
                e["performed_by"].clone(),
                e["old_data"]["offer_version"].clone(),
                e["new_data"]["offer_version"].clone(),
                e["comment"].clone(),
            )
        })
        .collect();
    assert_eq!(
        entries,
        vec![
            (
                json!("credit-card.maker"),
                json!(1),
                json!(2),
                json!("new cap")
            ),
            (
                json!("credit-card.admin"),
                json!(2),
                json!(1),
                json!("roll back")
            ),
        ]
    );
    assert!(trail.body.as_array().expect("trail").iter().all(|e| {
        ["offer_version_change", "status_change"].contains(&e["action"].as_str().unwrap_or(""))
    }));

    // The delivery provider is told which version each campaign delivers.
    assert_eq!(
        app.activate_campaign("credit_card", id, &fx.admin)
            .await
            .status,
        StatusCode::OK
    );
    let (key, _) = app.issue_webhook_key("credit_card", false).await;
    let page = app
        .get(&format!("{path}/customers?limit=1"), &fx.viewer)
        .await;
    let customer = page.body[0]["customer_id"]
        .as_str()
        .expect("a customer")
        .to_owned();
    let request = axum::http::Request::builder()
        .method(Method::POST)
        .uri("/system/campaigns/update-delivery-status")
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-api-key", &key)
        .body(axum::body::Body::from(
            json!([{"campaign_id": id, "customer_id": customer, "status": "sent",
                    "sent_at": chrono::Utc::now().to_rfc3339()}])
            .to_string(),
        ))
        .expect("request");
    let answer = app.send(request).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    assert_eq!(
        answer.body["campaigns"],
        json!([{"campaign_id": id, "offer_id": fx.offer_id, "offer_version": 1}])
    );
}

#[tokio::test]
async fn a_retired_offer_takes_no_new_campaigns_while_existing_ones_keep_their_version() {
    let app = TestApp::spawn().await;
    let fx = app.tenant_with_offer("credit_card").await;
    let one = format!("{OFFERS}/{}", fx.offer_id);
    let existing = campaign(&app, &fx, None).await;
    let existing_id = existing.body["id"].as_i64().expect("id");
    // A pending draft is frozen with the offer.
    let edited = app
        .call_as(
            Method::PUT,
            &one,
            &fx.maker,
            Some(json!({"data": {"title": "Draft"}})),
        )
        .await;
    assert_eq!(edited.status, StatusCode::OK);

    let by_maker = app
        .post(&format!("{one}/retire"), &fx.maker, json!({"reason": "x"}))
        .await;
    assert_eq!(
        by_maker.status,
        StatusCode::FORBIDDEN,
        "retiring takes offer.review"
    );
    let blank = app
        .post(
            &format!("{one}/retire"),
            &fx.checker,
            json!({"reason": "  "}),
        )
        .await;
    assert_eq!(blank.status, StatusCode::UNPROCESSABLE_ENTITY);
    let retired = app
        .post(
            &format!("{one}/retire"),
            &fx.checker,
            json!({"reason": "Scheme withdrawn by the card network"}),
        )
        .await;
    assert_eq!(retired.status, StatusCode::OK, "{:?}", retired.body);
    assert!(retired.body["retired_at"].is_string());
    assert_eq!(retired.body["retired_by"], "credit-card.checker");
    assert_eq!(
        retired.body["retirement_reason"],
        "Scheme withdrawn by the card network"
    );
    let twice = app
        .post(
            &format!("{one}/retire"),
            &fx.checker,
            json!({"reason": "again"}),
        )
        .await;
    assert_eq!(twice.status, StatusCode::CONFLICT);

    let new_campaign = campaign(&app, &fx, None).await;
    assert_eq!(
        new_campaign.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{:?}",
        new_campaign.body
    );
    assert_eq!(new_campaign.body["errors"][0]["pointer"], "/offer_id");
    let kept = app
        .get(&format!("{CAMPAIGNS}/{existing_id}"), &fx.viewer)
        .await;
    assert_eq!(kept.body["offer_version"], 1);
    let moved = app
        .post(
            &format!("{CAMPAIGNS}/{existing_id}/offer-version"),
            &fx.maker,
            json!({"offer_version": 1}),
        )
        .await;
    assert_eq!(
        moved.status,
        StatusCode::OK,
        "the pinned version itself is a no-op"
    );
    for (method, path, body) in [
        (
            Method::PUT,
            one.clone(),
            Some(json!({"data": {"title": "Later"}})),
        ),
        (Method::POST, format!("{one}/submit"), Some(json!({}))),
        (Method::DELETE, one.clone(), None),
    ] {
        let response = app.call_as(method, &path, &fx.admin, body).await;
        assert_eq!(
            response.status,
            StatusCode::CONFLICT,
            "{path}: {:?}",
            response.body
        );
    }
    // The versions stay readable; the trail says who retired it and why.
    assert_eq!(
        app.get(&format!("{one}/versions/1"), &fx.viewer)
            .await
            .status,
        StatusCode::OK
    );
    let trail = app.get(&format!("{one}/audit-logs"), &fx.admin).await;
    let last = trail
        .body
        .as_array()
        .and_then(|t| t.last())
        .expect("entries")
        .clone();
    assert_eq!(last["action"], "retire");
    assert_eq!(last["performed_by"], "credit-card.checker");
    assert_eq!(last["comment"], "Scheme withdrawn by the card network");
    assert_eq!(last["new_data"]["live_version"], 1);

    // An offer never approved is deleted, not retired.
    let fresh = app
        .post(OFFERS, &fx.maker, json!({"data": {"title": "Never"}}))
        .await;
    let fresh_id = fresh.body["id"].as_i64().expect("id");
    let never = app
        .post(
            &format!("{OFFERS}/{fresh_id}/retire"),
            &fx.checker,
            json!({"reason": "x"}),
        )
        .await;
    assert_eq!(never.status, StatusCode::CONFLICT);
    assert_eq!(
        app.post(
            &format!("{OFFERS}/999999/retire"),
            &fx.checker,
            json!({"reason": "x"})
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_migration_makes_approved_offers_version_1_and_pins_their_campaigns() {
    let admin_url = std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:5432/postgres".into());
    let (base, _) = admin_url.rsplit_once('/').expect("a database URL");
    let name = format!("oms_v010_{}", uuid::Uuid::new_v4().simple());
    let (admin, connection) = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls)
        .await
        .expect("admin");
    tokio::spawn(connection);
    admin
        .batch_execute(&format!("create database {name}"))
        .await
        .expect("create");
    let (mut client, connection) =
        tokio_postgres::connect(&format!("{base}/{name}"), tokio_postgres::NoTls)
            .await
            .expect("connect");
    tokio::spawn(connection);
    shared::db::migrations::runner()
        .set_target(refinery::Target::Version(9))
        .run_async(&mut client)
        .await
        .expect("migrate to V009");
    client
        .batch_execute(
            "insert into users (username, password_hash) values ('maker', 'x'), ('checker', 'x');
             insert into tenants (name) values ('cards');
             insert into offers (id, tenant_name, status, data, created_by, last_edited_by)
             values (1, 'cards', 'approved', '{\"apr\": 19}', 'maker', 'maker'),
                    (2, 'cards', 'draft', '{\"apr\": 25}', 'maker', 'maker');
             insert into offer_audit_logs (tenant_name, offer_id, action, performed_by, new_data, comment)
             values ('cards', 1, 'status_change', 'checker', '{\"status\": \"approved\"}', 'ok');
             insert into campaigns (id, tenant_name, offer_id, name, start_date, end_date)
             values (1, 'cards', 1, 'Old campaign', '2026-01-01', '2026-01-31');",
        )
        .await
        .expect("data from before versions");
    shared::db::migrate(&mut client)
        .await
        .expect("migrate the rest");
    let version = client
        .query_one(
            "select version_number, data, approved_by, approval_comment, authors
             from offer_versions where offer_id = 1",
            &[],
        )
        .await
        .expect("version 1");
    assert_eq!(version.get::<_, i32>(0), 1);
    assert_eq!(version.get::<_, Value>(1), json!({"apr": 19}));
    assert_eq!(version.get::<_, String>(2), "checker");
    assert_eq!(version.get::<_, Option<String>>(3).as_deref(), Some("ok"));
    assert_eq!(version.get::<_, Vec<String>>(4), vec!["maker"]);
    let live: Vec<(i32, Option<i32>)> = client
        .query("select id, live_version from offers order by id", &[])
        .await
        .expect("offers")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(live, vec![(1, Some(1)), (2, None)]);
    let pinned: Option<i32> = client
        .query_one("select offer_version from campaigns where id = 1", &[])
        .await
        .expect("campaign")
        .get(0);
    assert_eq!(pinned, Some(1));
    // V016 gave the existing campaign its window in the default zone (UTC).
    let (starts_at, ends_at): (String, String) = client
        .query_one(
            "select to_char(starts_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI'),
                    to_char(ends_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI')
             from campaigns where id = 1",
            &[],
        )
        .await
        .map(|r| (r.get(0), r.get(1)))
        .expect("instants");
    assert_eq!(
        (starts_at.as_str(), ends_at.as_str()),
        ("2026-01-01 00:00", "2026-02-01 00:00")
    );
    drop(client);
    admin
        .batch_execute(&format!("drop database {name} with (force)"))
        .await
        .expect("drop");
}
