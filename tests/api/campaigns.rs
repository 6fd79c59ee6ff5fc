//! Campaigns: creation rules, criteria validation, permissions and lifecycle, processing on
//! the real data set (through the in-process queue and the processor), customers pages,
//! audience previews, and injection attempts against the criteria compiler.

use axum::http::{StatusCode, header};
use integration_tests::{TenantFixture, TestApp};
use serde_json::{Value, json};

fn campaign_body(offer_id: i64, criteria: Value) -> Value {
    integration_tests::NewCampaign::of(offer_id)
        .name("Gold upgrade")
        .with("description", json!("Upgrade offer for premium holders"))
        .criteria(criteria)
        .body()
}

async fn create(app: &TestApp, fx: &TenantFixture, criteria: Value) -> Value {
    let response = app
        .post(
            &format!("/tenants/{}/campaigns", fx.tenant),
            &fx.maker,
            campaign_body(fx.offer_id, criteria),
        )
        .await;
    assert_eq!(response.status, StatusCode::ACCEPTED, "{:?}", response.body);
    response.body
}

const GOLD_PLATINUM_VERIFIED: &str = "select count(*) from customers
     where segment in ('gold', 'platinum') and kyc_status = 'verified' and is_active";

#[tokio::test]
async fn a_campaign_selects_exactly_the_customers_a_direct_sql_count_gives() {
    let app = TestApp::spawn().await;
    let summary = app.import_demo_customers().await;
    assert_eq!(summary.rows, 10_127);
    let fx = app.tenant_with_offer("credit_card").await;
    let created = create(
        &app,
        &fx,
        json!({"segment": {"in": ["gold", "platinum"]}, "kyc_status": "verified"}),
    )
    .await;
    assert_eq!(created["status"], "draft");
    assert_eq!(created["processing_status"], "queued");
    let id = created["id"].as_i64().expect("id");
    let campaign = app.wait_for_processing("credit_card", id, &fx.viewer).await;
    assert_eq!(campaign["processing_status"], "done", "{campaign:?}");
    let expected = app.count(GOLD_PLATINUM_VERIFIED, &[]).await;
    assert!(expected > 50, "the real data has gold and platinum holders");
    assert_eq!(campaign["matched_count"].as_i64(), Some(expected));
    // 10,127 customers at 3,000 per range: the job was split.
    assert_eq!(campaign["ranges_total"], 4);
    assert_eq!(campaign["ranges_done"], 4);
    assert!(campaign["processed_at"].is_string());
    let rows = app
        .count(
            "select count(*) from campaign_customers cc join customers c on c.id = cc.customer_id
             where cc.campaign_id = $1 and c.segment in ('gold', 'platinum')
               and c.kyc_status = 'verified' and c.is_active and cc.offer_id = $2",
            &[&(id as i32), &(fx.offer_id as i32)],
        )
        .await;
    assert_eq!(rows, expected);

    // Keyset pages, following Link: rel="next" until a page comes without it.
    let mut next = Some(format!(
        "/tenants/credit_card/campaigns/{id}/customers?limit=30"
    ));
    let mut seen = Vec::new();
    while let Some(path) = next.take() {
        let page = app.get(&path, &fx.viewer).await;
        assert_eq!(page.status, StatusCode::OK, "{:?}", page.body);
        for row in page.body.as_array().expect("array") {
            assert_eq!(row["delivery_status"], "pending");
            assert!(row["sent_at"].is_null());
            seen.push(row["customer_id"].as_str().expect("id").to_owned());
        }
        next = page
            .headers
            .get(header::LINK)
            .and_then(|v| v.to_str().ok())
            .map(|link| {
                link.trim_start_matches('<')
                    .split('>')
                    .next()
                    .expect("link target")
                    .to_owned()
            });
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, seen, "pages come in id order without repeats");
    assert_eq!(seen.len() as i64, expected);

    let summary = app
        .get(
            &format!("/tenants/credit_card/campaigns/{id}/customers/summary"),
            &fx.viewer,
        )
        .await;
    assert_eq!(
        summary.body,
        json!({"total": expected, "pending": 0, "sent": 0, "failed": 0,
               "suppressed_by_consent": 0, "suppressed_by_pressure": 0,
               "awaiting_release": expected, "released": 0, "expired": 0, "control": 0,
               "delivered": 0, "opened": 0, "clicked": 0}),
        "a draft campaign's deliveries are prepared, not released"
    );
    let sent_only = app
        .get(
            &format!("/tenants/credit_card/campaigns/{id}/customers?delivery_status=sent"),
            &fx.viewer,
        )
        .await;
    assert_eq!(sent_only.body, json!([]));
    let bad = app
        .get(
            &format!("/tenants/credit_card/campaigns/{id}/customers?after=not-a-uuid"),
            &fx.viewer,
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    // Processing again changes nothing.
    let again = app
        .post(
            &format!("/tenants/credit_card/campaigns/{id}/process-customers"),
            &fx.admin,
            json!({}),
        )
        .await;
    assert_eq!(again.status, StatusCode::ACCEPTED, "{:?}", again.body);
    assert_eq!(again.body["processing_status"], "queued");
    let campaign = app.wait_for_processing("credit_card", id, &fx.viewer).await;
    assert_eq!(campaign["matched_count"].as_i64(), Some(expected));
    assert_eq!(
        app.count(
            "select count(*) from campaign_customers where campaign_id = $1",
            &[&(id as i32)]
        )
        .await,
        expected
    );
}

#[tokio::test]
async fn invalid_criteria_are_422_naming_the_key_and_nothing_is_created() {
    let app = TestApp::spawn().await;
    let fx = app.tenant_with_offer("credit_card").await;
    let deep = (0..12).fold(json!({"segment": "gold"}), |inner, _| json!({"not": inner}));
    let cases = [
        (json!({"segmnt": "gold"}), "/selection_criteria/segmnt"),
        (
            json!({"credit_score": {"gte": "high"}}),
            "/selection_criteria/credit_score/gte",
        ),
        (
            json!({"credit_score": {"gte": 650.5}}),
            "/selection_criteria/credit_score/gte",
        ),
        (
            json!({"kyc_status": "approved"}),
            "/selection_criteria/kyc_status",
        ),
        (
            json!({"segment": {"like": "g%"}}),
            "/selection_criteria/segment/like",
        ),
        (
            json!({"segment": {"gt": "gold"}}),
            "/selection_criteria/segment/gt",
        ),
        (json!({"any": []}), "/selection_criteria/any"),
        (
            json!({"any": [{"segment": "gold"}, {"dob": "last year"}]}),
            "/selection_criteria/any/1/dob",
        ),
        (
            json!({"annual_income": {"between": [1]}}),
            "/selection_criteria/annual_income/between",
        ),
        (json!({"state": {"in": []}}), "/selection_criteria/state/in"),
        (json!({"is_active": "yes"}), "/selection_criteria/is_active"),
        (json!({"segment": null}), "/selection_criteria/segment"),
        (json!({"email": "a@b.c"}), "/selection_criteria/email"),
        (json!(["gold"]), "/selection_criteria"),
    ];
    for (criteria, pointer) in cases {
        let response = app
            .post(
                "/tenants/credit_card/campaigns",
                &fx.maker,
                campaign_body(fx.offer_id, criteria.clone()),
            )
            .await;
        assert_eq!(
            response.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{criteria}: {:?}",
            response.body
        );
        assert_eq!(response.body["errors"][0]["pointer"], pointer, "{criteria}");
    }
    let response = app
        .post(
            "/tenants/credit_card/campaigns",
            &fx.maker,
            campaign_body(fx.offer_id, deep),
        )
        .await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        response.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("deeper"))
    );
    let list = app.get("/tenants/credit_card/campaigns", &fx.viewer).await;
    assert_eq!(list.body, json!([]));
    assert_eq!(app.count("select count(*) from campaigns", &[]).await, 0);
}

#[tokio::test]
async fn a_campaign_needs_an_approved_offer_of_its_tenant_and_ordered_dates() {
    let app = TestApp::spawn().await;
    let fx = app.tenant_with_offer("credit_card").await;
    let other = app.tenant_with_offer("loan").await;
    let draft = app
        .post(
            "/tenants/credit_card/offers",
            &fx.maker,
            json!({"data": {"title": "draft"}}),
        )
        .await;
    let draft_id = draft.body["id"].as_i64().expect("id");
    for (offer_id, needle) in [
        (draft_id, "draft"),
        (other.offer_id, "no offer"),
        (999_999, "no offer"),
    ] {
        let response = app
            .post(
                "/tenants/credit_card/campaigns",
                &fx.maker,
                campaign_body(offer_id, json!({})),
            )
            .await;
        assert_eq!(
            response.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{:?}",
            response.body
        );
        assert_eq!(response.body["errors"][0]["pointer"], "/offer_id");
        assert!(
            response.body["detail"]
                .as_str()
                .is_some_and(|d| d.contains(needle))
        );
    }
    let mut body = campaign_body(fx.offer_id, json!({}));
    body["end_date"] = json!("2026-11-30");
    let response = app
        .post("/tenants/credit_card/campaigns", &fx.maker, body)
        .await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(response.body["errors"][0]["pointer"], "/end_date");
    let mut body = campaign_body(fx.offer_id, json!({}));
    body["start_date"] = json!("tomorrow");
    let response = app
        .post("/tenants/credit_card/campaigns", &fx.maker, body)
        .await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(response.body["errors"][0]["pointer"], "/start_date");
    assert_eq!(app.count("select count(*) from campaigns", &[]).await, 0);
}

#[tokio::test]
async fn permissions_and_the_status_lifecycle() {
    let app = TestApp::spawn().await;
    let fx = app.tenant_with_offer("credit_card").await;
    let other = app.tenant_with_offer("loan").await;
    for token in [&fx.viewer, &fx.checker, &other.admin] {
        let response = app
            .post(
                "/tenants/credit_card/campaigns",
                token,
                campaign_body(fx.offer_id, json!({})),
            )
            .await;
        assert_eq!(
            response.status,
            StatusCode::FORBIDDEN,
            "{:?}",
            response.body
        );
    }
    let created = create(&app, &fx, json!({"segment": "gold"})).await;
    let id = created["id"].as_i64().expect("id");
    let path = format!("/tenants/credit_card/campaigns/{id}");
    assert_eq!(app.get(&path, &fx.viewer).await.status, StatusCode::OK);
    assert_eq!(
        app.get(&path, &other.admin).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.get(&format!("/tenants/loan/campaigns/{id}"), &other.admin)
            .await
            .status,
        StatusCode::NOT_FOUND,
        "another tenant's campaign is 404"
    );
    let put = |token: &str, body: Value| {
        let path = path.clone();
        let token = token.to_owned();
        let app = &app;
        async move { app.put(&path, &token, body).await }
    };
    // The maker edits a draft, but may not change its status.
    let edited = put(
        &fx.maker,
        json!({"name": "Gold upgrade v2", "description": null}),
    )
    .await;
    assert_eq!(edited.status, StatusCode::OK, "{:?}", edited.body);
    assert_eq!(edited.body["name"], "Gold upgrade v2");
    assert!(edited.body["description"].is_null());
    assert_eq!(
        put(&fx.maker, json!({"status": "active"})).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        put(&fx.viewer, json!({"name": "x"})).await.status,
        StatusCode::FORBIDDEN
    );
    let conflict = put(&fx.admin, json!({"status": "completed"})).await;
    assert_eq!(
        conflict.status,
        StatusCode::CONFLICT,
        "draft cannot complete"
    );
    assert_eq!(
        put(&fx.admin, json!({"status": "active"})).await.status,
        StatusCode::OK
    );
    // Once active only the admin edits it.
    assert_eq!(
        put(&fx.maker, json!({"name": "late"})).await.status,
        StatusCode::FORBIDDEN
    );
    let bad = put(&fx.admin, json!({"selection_criteria": {"bogus": 1}})).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        bad.body["errors"][0]["pointer"],
        "/selection_criteria/bogus"
    );
    for (status, expected) in [
        ("draft", StatusCode::CONFLICT),
        ("paused", StatusCode::OK),
        ("completed", StatusCode::CONFLICT),
        ("active", StatusCode::OK),
        ("completed", StatusCode::OK),
        ("active", StatusCode::CONFLICT),
    ] {
        let response = put(&fx.admin, json!({"status": status})).await;
        assert_eq!(
            response.status, expected,
            "to {status}: {:?}",
            response.body
        );
    }
    assert_eq!(
        put(&fx.admin, json!({"name": "after"})).await.status,
        StatusCode::CONFLICT
    );
    let process = format!("{path}/process-customers");
    assert_eq!(
        app.post(&process, &fx.maker, json!({})).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.post(&process, &fx.admin, json!({})).await.status,
        StatusCode::CONFLICT
    );
    let list = app
        .get(
            "/tenants/credit_card/campaigns?status=completed",
            &fx.viewer,
        )
        .await;
    assert_eq!(list.body.as_array().map(Vec::len), Some(1));
    let list = app
        .get("/tenants/credit_card/campaigns?status=draft", &fx.viewer)
        .await;
    assert_eq!(list.body, json!([]));
    let bad_filter = app
        .get("/tenants/credit_card/campaigns?status=finished", &fx.viewer)
        .await;
    assert_eq!(bad_filter.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn deletion_is_for_admins_and_only_without_sent_deliveries() {
    let app = TestApp::spawn().await;
    app.import_demo_customers().await;
    let fx = app.tenant_with_offer("credit_card").await;
    let draft = create(&app, &fx, json!({"segment": "platinum"})).await;
    let draft_path = format!("/tenants/credit_card/campaigns/{}", draft["id"]);
    assert_eq!(
        app.delete(&draft_path, &fx.maker).await.status,
        StatusCode::FORBIDDEN
    );
    let active = create(&app, &fx, json!({"segment": "platinum"})).await;
    let id = active["id"].as_i64().expect("id");
    app.wait_for_processing("credit_card", id, &fx.admin).await;
    let path = format!("/tenants/credit_card/campaigns/{id}");
    let response = app.put(&path, &fx.admin, json!({"status": "active"})).await;
    assert_eq!(response.status, StatusCode::OK);
    app.db()
        .await
        .execute(
            "update campaign_customers set delivery_status = 'sent', sent_at = now()
             where campaign_id = $1 and customer_id = (select min(customer_id::text)::uuid from campaign_customers where campaign_id = $1)",
            &[&(id as i32)],
        )
        .await
        .expect("mark one sent");
    let refused = app.delete(&path, &fx.admin).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{:?}", refused.body);
    assert_eq!(
        app.delete(&draft_path, &fx.admin).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get(&draft_path, &fx.admin).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn audience_preview_counts_without_creating_anything() {
    let app = TestApp::spawn().await;
    app.import_demo_customers().await;
    let fx = app.tenant_with_offer("credit_card").await;
    let path = "/tenants/credit_card/campaigns/audience-preview";
    let criteria = json!({"segment": {"in": ["gold", "platinum"]}, "kyc_status": "verified"});
    let response = app
        .post(
            path,
            &fx.maker,
            json!({"selection_criteria": criteria, "sample_size": 5}),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
    let expected = app.count(GOLD_PLATINUM_VERIFIED, &[]).await;
    assert_eq!(response.body["matched_count"].as_i64(), Some(expected));
    let sample = response.body["sample"].as_array().expect("sample");
    assert_eq!(sample.len(), 5);
    for member in sample {
        assert!(["gold", "platinum"].contains(&member["segment"].as_str().unwrap_or("")));
        assert!(
            member.get("email").is_none(),
            "no contact details in a preview"
        );
    }
    // Every operator and composition, against SQL written by hand.
    let cases = [
        (
            json!({"credit_score": {"gte": 700}, "marital_status": {"ne": "married"}}),
            "credit_score >= 700 and marital_status is distinct from 'married' and is_active",
        ),
        (
            json!({"annual_income": {"between": [50000, 90000]}, "gender": "female"}),
            "annual_income between 50000 and 90000 and gender = 'female' and is_active",
        ),
        (
            json!({"any": [{"segment": "gold"}, {"credit_score": {"lt": 500}}], "not": {"kyc_status": "rejected"}}),
            "(segment = 'gold' or credit_score < 500) and kyc_status is distinct from 'rejected' and is_active",
        ),
        (
            json!({"segment": {"not_in": ["blue", "silver"]}, "is_active": false}),
            "segment is distinct from 'blue' and segment is distinct from 'silver' and not is_active",
        ),
        (
            json!({"marital_status": {"exists": false}, "account_age_months": {"gt": 40, "lte": 50}}),
            "marital_status is null and account_age_months > 40 and account_age_months <= 50 and is_active",
        ),
        (
            json!({"attributes.education_level": "Graduate", "attributes.dependent_count": {"gte": 3}}),
            "attributes->>'education_level' = 'Graduate' and (attributes->>'dependent_count')::numeric >= 3 and is_active",
        ),
        (
            json!({"attributes.income_category": ["$60K - $80K", "$80K - $120K"], "dob": {"lt": "1970-01-01"}}),
            "attributes->>'income_category' in ('$60K - $80K', '$80K - $120K') and dob < '1970-01-01' and is_active",
        ),
        (
            json!({"all": [{"segment": "blue"}, {"credit_score": [700, 701, 702]}], "attributes.no_such_key": {"exists": false}}),
            "segment = 'blue' and credit_score in (700, 701, 702) and is_active",
        ),
        (json!({}), "is_active"),
    ];
    for (criteria, sql) in cases {
        let response = app
            .post(
                path,
                &fx.maker,
                json!({"selection_criteria": criteria, "sample_size": 0}),
            )
            .await;
        assert_eq!(
            response.status,
            StatusCode::OK,
            "{criteria}: {:?}",
            response.body
        );
        let expected = app
            .count(&format!("select count(*) from customers where {sql}"), &[])
            .await;
        assert!(expected > 0, "{sql} should match some real customers");
        assert_eq!(
            response.body["matched_count"].as_i64(),
            Some(expected),
            "{criteria}"
        );
    }
    let too_big = app
        .post(
            path,
            &fx.maker,
            json!({"selection_criteria": {}, "sample_size": 51}),
        )
        .await;
    assert_eq!(too_big.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        app.post(path, &fx.viewer, json!({"selection_criteria": {}}))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(app.count("select count(*) from campaigns", &[]).await, 0);
}

#[tokio::test]
async fn injection_attempts_are_refused_or_matched_literally() {
    let app = TestApp::spawn().await;
    app.import_demo_customers().await;
    let fx = app.tenant_with_offer("credit_card").await;
    let users_before = app
        .count("select count(*) from users where is_super_admin", &[])
        .await;
    let customers_before = app.count("select count(*) from customers", &[]).await;
    let gold = app
        .count(
            "select count(*) from customers where segment = 'gold' and is_active",
            &[],
        )
        .await;
    let path = "/tenants/credit_card/campaigns/audience-preview";
    let literal = [
        (json!({"segment": "x' OR '1'='1"}), 0),
        (
            json!({"segment": {"eq": "x'; UPDATE users SET is_super_admin=true; --"}}),
            0,
        ),
        (json!({"segment": {"in": ["gold", "x') or true --"]}}), gold),
        (json!({"attributes.education_level": "x' OR 1=1 --"}), 0),
        (
            json!({"segment": "gold", "city": {"ne": "'; drop table customers; --"}}),
            gold,
        ),
    ];
    for (criteria, expected) in literal {
        let response = app
            .post(path, &fx.maker, json!({"selection_criteria": criteria}))
            .await;
        assert_eq!(
            response.status,
            StatusCode::OK,
            "{criteria}: {:?}",
            response.body
        );
        assert_eq!(
            response.body["matched_count"].as_i64(),
            Some(expected),
            "{criteria}"
        );
    }
    let refused = [
        json!({"1=1 OR segment": "x"}),
        json!({"segment; drop table users": "x"}),
        json!({"attributes.x') or true --": 1}),
        json!({"segment": {"eq); delete from customers; --": "x"}}),
        json!({"credit_score": {"gte": "0 or 1=1"}}),
    ];
    for criteria in refused {
        let response = app
            .post(path, &fx.maker, json!({"selection_criteria": criteria}))
            .await;
        assert_eq!(
            response.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{criteria}"
        );
    }
    // The same values through a real campaign and the processor.
    let created = create(
        &app,
        &fx,
        json!({"any": [{"segment": "x' OR '1'='1"}, {"segment": {"eq": "x'; UPDATE users SET is_super_admin=true; --"}}]}),
    )
    .await;
    let id = created["id"].as_i64().expect("id");
    let campaign = app.wait_for_processing("credit_card", id, &fx.maker).await;
    assert_eq!(campaign["processing_status"], "done");
    assert_eq!(campaign["matched_count"], 0);
    assert_eq!(
        app.count("select count(*) from users where is_super_admin", &[])
            .await,
        users_before
    );
    assert_eq!(
        app.count("select count(*) from customers", &[]).await,
        customers_before
    );
    assert_eq!(
        app.count("select count(*) from campaign_customers", &[])
            .await,
        0
    );
}

#[tokio::test]
async fn a_campaign_that_released_is_never_deleted_once_its_rows_are_archived_and_pruned() {
    // Review 3, finding 5: deletion was judged from released rows in campaign_customers and
    // the ledger's foreign key; archiving removes the first, expiry or the prune the second,
    // and then a tenant admin's delete answered 204 and took the archive record with it.
    let app = TestApp::spawn().await;
    app.import_demo_customers().await;
    let fx = app.tenant_with_offer("credit_card").await;
    let campaign = create(&app, &fx, json!({"segment": "platinum"})).await;
    let id = campaign["id"].as_i64().expect("id");
    app.wait_for_processing("credit_card", id, &fx.admin).await;
    let path = format!("/tenants/credit_card/campaigns/{id}");
    app.put(&path, &fx.admin, json!({"status": "active"}))
        .await
        .expect(StatusCode::OK);
    app.put(&path, &fx.admin, json!({"status": "completed"}))
        .await
        .expect(StatusCode::OK);
    // What archiving (its deliveries) and the ledger's prune (its contacts) remove.
    app.db()
        .await
        .batch_execute(&format!(
            "delete from customer_contacts where campaign_id = {id};
             delete from campaign_customers where campaign_id = {id};"
        ))
        .await
        .expect("archive and prune");
    let refused = app.delete(&path, &fx.admin).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{:?}", refused.body);
    assert!(
        refused.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("released deliveries")),
        "{:?}",
        refused.body
    );
    app.get(&path, &fx.viewer).await.expect(StatusCode::OK);
}

#[tokio::test]
async fn a_started_campaigns_start_date_cannot_move_into_the_future() {
    // Review 3, finding 8: moving an active campaign's start_date into the future left it
    // active, its feed serving and its reports accepted "before its start".
    let app = TestApp::spawn().await;
    app.import_demo_customers().await;
    let fx = app.tenant_with_offer("credit_card").await;
    let campaign = create(&app, &fx, json!({"segment": "platinum"})).await;
    let id = campaign["id"].as_i64().expect("id");
    app.wait_for_processing("credit_card", id, &fx.admin).await;
    let path = format!("/tenants/credit_card/campaigns/{id}");
    let active = app
        .put(&path, &fx.admin, json!({"status": "active"}))
        .await
        .expect(StatusCode::OK);
    let end = active.body["end_date"].as_str().expect("end").to_owned();
    let tomorrow: String = app
        .db()
        .await
        .query_one("select ((now() at time zone 'UTC')::date + 1)::text", &[])
        .await
        .expect("tomorrow")
        .get(0);
    assert!(
        tomorrow.as_str() <= end.as_str(),
        "the window holds tomorrow"
    );
    let moved = app
        .put(&path, &fx.admin, json!({"start_date": tomorrow}))
        .await;
    assert_eq!(
        moved.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{:?}",
        moved.body
    );
    assert_eq!(moved.body["errors"][0]["pointer"], "/start_date");
    let read = app.get(&path, &fx.viewer).await.expect(StatusCode::OK);
    assert_eq!(
        read.body["start_date"], active.body["start_date"],
        "unchanged"
    );
    // A date that has begun is still fine.
    let today: String = app
        .db()
        .await
        .query_one("select ((now() at time zone 'UTC')::date - 1)::text", &[])
        .await
        .expect("yesterday")
        .get(0);
    app.put(&path, &fx.admin, json!({"start_date": today}))
        .await
        .expect(StatusCode::OK);
}
