//! Did an offer work: holdout groups drawn by the documented hash, never contacted and never
//! holding a cap slot; conversions recorded once per event and attributed by the documented
//! rule; results equal to a hand-written aggregate, on the real demo customers.

use std::collections::HashSet;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use hmac::{Hmac, Mac};
use integration_tests::{NewCampaign, TenantFixture, TestApp};
use serde_json::{Value, json};
use sha2::Sha256;
use uuid::Uuid;

/// The documented draw (docs/results.md), computed here without the database: the first 4
/// bytes of HMAC-SHA256 keyed with the campaign's seed over the customer id's 16 bytes, as an
/// unsigned big-endian integer; in the control group when draw × 10,000 < basis points × 2³².
fn in_holdout(seed: &[u8], customer: Uuid, basis_points: u64) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(seed).expect("any key length");
    mac.update(customer.as_bytes());
    let digest = mac.finalize().into_bytes();
    let draw = u64::from(u32::from_be_bytes([
        digest[0], digest[1], digest[2], digest[3],
    ]));
    draw * 10_000 < basis_points << 32
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hexadecimal"))
        .collect()
}

/// Every customer, the inactive ones too: the 10,127 demo card holders.
fn everyone() -> Value {
    json!({"any": [{"is_active": true}, {"is_active": false}]})
}

/// A campaign of `fx`'s offer over every customer with `holdout` percent held out, selected
/// and activated; answers its id and JSON.
async fn held_out_campaign(app: &TestApp, fx: &TenantFixture, holdout: f64) -> (i64, Value) {
    let created = NewCampaign::of(fx.offer_id)
        .name("With a holdout")
        .criteria(everyone())
        .with("holdout_percent", json!(holdout))
        .post(app, &fx.tenant, &fx.maker)
        .await
        .expect(StatusCode::ACCEPTED);
    assert_eq!(created.body["holdout_percent"], json!(holdout));
    assert_eq!(created.body["conversion_window_days"], 30);
    let id = created.body["id"].as_i64().expect("campaign id");
    app.wait_for_processing(&fx.tenant, id, &fx.admin).await;
    let activated = app.activate_campaign(&fx.tenant, id, &fx.admin).await;
    assert_eq!(activated.status, StatusCode::OK, "{:?}", activated.body);
    (id, activated.body)
}

async fn ids(app: &TestApp, sql: &str, campaign: i64) -> HashSet<Uuid> {
    app.db()
        .await
        .query(sql, &[&(campaign as i32)])
        .await
        .expect("ids")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn the_holdout_is_the_documented_draw_never_contacted_and_holds_no_cap_slot() {
    let app = TestApp::spawn().await;
    app.import_demo_customers().await;
    let sa = app.super_admin_token().await;
    // One contact per customer in 30 days: a held-out customer must stay free for another
    // campaign.
    let policy = app
        .put(
            "/sa/contact-policy",
            &sa,
            json!({"max_contacts": 1, "window_days": 30}),
        )
        .await;
    assert_eq!(policy.status, StatusCode::OK, "{:?}", policy.body);
    let fx = app.tenant_with_offer("credit_card").await;
    let (id, campaign) = held_out_campaign(&app, &fx, 10.0).await;
    let seed = hex(campaign["holdout_seed"].as_str().expect("seed"));
    assert_eq!(seed.len(), 16);

    let all = ids(
        &app,
        "select customer_id from campaign_customers where campaign_id = $1",
        id,
    )
    .await;
    let control = ids(
        &app,
        "select customer_id from campaign_customers
         where campaign_id = $1 and delivery_status = 'control' and assigned_at is not null
           and released_at is null",
        id,
    )
    .await;
    let released = ids(
        &app,
        "select customer_id from campaign_customers
         where campaign_id = $1 and released_at is not null",
        id,
    )
    .await;
    assert!(all.len() > 10_000, "{} customers", all.len());
    assert_eq!(
        control.len() + released.len(),
        all.len(),
        "nobody else held back"
    );
    // Recomputed outside the database: exactly the same customers.
    let drawn: HashSet<Uuid> = all
        .iter()
        .copied()
        .filter(|c| in_holdout(&seed, *c, 1_000))
        .collect();
    assert_eq!(drawn, control);
    // Binomial: within 4 standard deviations of 10 %.
    let (n, k) = (all.len() as f64, control.len() as f64);
    let sd = (n * 0.1 * 0.9).sqrt();
    assert!((k - n * 0.1).abs() <= 4.0 * sd, "{k} of {n}");

    let summary = app.campaign_summary(&fx, id).await;
    assert_eq!(summary["control"], json!(control.len()));
    assert_eq!(summary["released"], json!(released.len()));
    let listed = app
        .get(
            &format!(
                "/tenants/credit_card/campaigns/{id}/customers?delivery_status=control&limit=5"
            ),
            &fx.admin,
        )
        .await
        .expect(StatusCode::OK);
    let page = listed.body.as_array().expect("a page");
    assert_eq!(page.len(), 5);
    assert!(
        page.iter()
            .all(|d| d["delivery_status"] == "control" && d["assigned_at"].is_string()),
        "{page:?}"
    );

    // Never in the ledger, never in the feed.
    let in_ledger = app
        .count(
            "select count(*) from customer_contacts l join campaign_customers cc
               on cc.campaign_id = l.campaign_id and cc.customer_id = l.customer_id
             where l.campaign_id = $1 and cc.delivery_status = 'control'",
            &[&(id as i32)],
        )
        .await;
    assert_eq!(in_ledger, 0);
    let ledger = app
        .count(
            "select count(*) from customer_contacts where campaign_id = $1",
            &[&(id as i32)],
        )
        .await;
    assert_eq!(ledger, released.len() as i64);
    let (key, _) = app.issue_webhook_key("credit_card", false).await;
    let mut fed = HashSet::new();
    let mut after = String::new();
    loop {
        let request = Request::builder()
            .uri(format!(
                "/system/campaigns/{id}/deliveries?limit=200{after}"
            ))
            .header("x-api-key", &key)
            .body(Body::empty())
            .expect("request");
        let page = app.send(request).await.expect(StatusCode::OK);
        let items = page.body["deliveries"]
            .as_array()
            .expect("a page of deliveries")
            .clone();
        for item in &items {
            let customer: Uuid = item["customer_id"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .expect("customer id");
            fed.insert(customer);
        }
        if items.len() < 200 {
            break;
        }
        after = format!(
            "&after={}",
            items.last().expect("a last item")["customer_id"]
                .as_str()
                .expect("id")
        );
    }
    assert_eq!(fed, released, "the feed gives the released customers only");

    // A report for a held-out customer changes nothing.
    let one = *control.iter().next().expect("a control customer");
    let request = Request::builder()
        .method(Method::POST)
        .uri("/system/campaigns/update-delivery-status")
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-api-key", &key)
        .body(Body::from(
            json!([{"campaign_id": id, "customer_id": one, "status": "sent",
                    "sent_at": chrono::Utc::now()}])
            .to_string(),
        ))
        .expect("request");
    let report = app.send(request).await.expect(StatusCode::OK);
    assert_ne!(
        report.body["results"][0]["status"], "updated",
        "{:?}",
        report.body
    );

    // A second campaign over the same customers, no holdout: the cap (1 in 30 days) holds
    // back everyone the first one contacted and releases exactly its control group.
    let second = app.processed_campaign(&fx, "Second", everyone()).await;
    let activated = app
        .activate_campaign("credit_card", second, &fx.admin)
        .await;
    assert_eq!(activated.status, StatusCode::OK, "{:?}", activated.body);
    let released_second = ids(
        &app,
        "select customer_id from campaign_customers
         where campaign_id = $1 and released_at is not null",
        second,
    )
    .await;
    assert_eq!(released_second, control);

    // Paused and given new criteria, the first campaign selects its audience again: its
    // control group stays as drawn (with its assignment times), like its released customers.
    let path = format!("/tenants/credit_card/campaigns/{id}");
    let assigned = async || -> Vec<(Uuid, chrono::DateTime<chrono::Utc>)> {
        app.db()
            .await
            .query(
                "select customer_id, assigned_at from campaign_customers
                 where campaign_id = $1 and delivery_status = 'control' order by customer_id",
                &[&(id as i32)],
            )
            .await
            .expect("the control group")
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    };
    let before = assigned().await;
    app.put(&path, &fx.admin, json!({"status": "paused"}))
        .await
        .expect(StatusCode::OK);
    app.put(
        &path,
        &fx.admin,
        json!({"selection_criteria": {"segment": "gold"}}),
    )
    .await
    .expect(StatusCode::OK);
    app.wait_for_processing("credit_card", id, &fx.admin).await;
    let after = assigned().await;
    assert_eq!((after.len(), before.len()), (control.len(), control.len()));
    assert!(after == before, "the control group's assignments changed");
}

#[tokio::test]
async fn the_holdout_and_the_window_are_checked_and_fixed_after_draft() {
    let app = TestApp::spawn().await;
    let fx = app.tenant_with_offer("credit_card").await;
    for (field, value) in [
        ("holdout_percent", json!(50.01)),
        ("holdout_percent", json!(-1)),
        ("holdout_percent", json!(10.125)),
        ("conversion_window_days", json!(366)),
        ("conversion_window_days", json!(-1)),
    ] {
        let refused = NewCampaign::of(fx.offer_id)
            .with(field, value.clone())
            .post(&app, "credit_card", &fx.maker)
            .await
            .expect(StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            refused.body["detail"]
                .as_str()
                .is_some_and(|d| d.contains(field)),
            "{field} {value}: {:?}",
            refused.body
        );
    }
    let created = NewCampaign::of(fx.offer_id)
        .with("holdout_percent", json!(12.5))
        .with("conversion_window_days", json!(0))
        .post(&app, "credit_card", &fx.maker)
        .await
        .expect(StatusCode::ACCEPTED);
    let id = created.body["id"].as_i64().expect("id");
    let path = format!("/tenants/credit_card/campaigns/{id}");
    let edited = app
        .put(&path, &fx.maker, json!({"holdout_percent": 7.25}))
        .await
        .expect(StatusCode::OK);
    assert_eq!(edited.body["holdout_percent"], json!(7.25));
    assert_eq!(edited.body["conversion_window_days"], 0);
    app.wait_for_processing("credit_card", id, &fx.admin).await;
    app.activate_campaign("credit_card", id, &fx.admin)
        .await
        .expect(StatusCode::OK);
    for body in [
        json!({"holdout_percent": 5}),
        json!({"conversion_window_days": 10}),
    ] {
        let refused = app
            .put(&path, &fx.admin, body.clone())
            .await
            .expect(StatusCode::CONFLICT);
        assert!(
            refused.body["detail"]
                .as_str()
                .is_some_and(|d| d.contains("fixed once it leaves draft")),
            "{body}: {:?}",
            refused.body
        );
    }
}

/// Moves campaign `id`'s life into the past: released (or assigned) 10 days ago, ended 2
/// days ago (its last day 3 days ago), conversions counted for 1 more day, so that every
/// side of the attribution window can be tried with conversions dated up to now.
async fn into_the_past(app: &TestApp, id: i64) {
    app.db()
        .await
        .batch_execute(&format!(
            "update campaign_customers
               set released_at = released_at - interval '10 days',
                   assigned_at = assigned_at - interval '10 days'
             where campaign_id = {id};
             update customer_contacts set contact_at = contact_at - interval '10 days'
             where campaign_id = {id};
             update campaigns set start_date = current_date - 20, end_date = current_date - 3,
                    conversion_window_days = 1
             where id = {id};"
        ))
        .await
        .expect("into the past");
}

#[tokio::test]
async fn conversions_count_once_inside_the_window_and_results_equal_a_hand_written_aggregate() {
    let app = TestApp::spawn().await;
    app.import_demo_customers().await;
    let fx = app.tenant_with_offer("credit_card").await;
    let loans = app.tenant_with_offer("loan").await;
    let (id, _) = held_out_campaign(&app, &fx, 20.0).await;
    into_the_past(&app, id).await;
    let treated: Vec<Uuid> = ids(
        &app,
        "select customer_id from campaign_customers
         where campaign_id = $1 and released_at is not null",
        id,
    )
    .await
    .into_iter()
    .collect();
    let control: Vec<Uuid> = ids(
        &app,
        "select customer_id from campaign_customers
         where campaign_id = $1 and delivery_status = 'control'",
        id,
    )
    .await
    .into_iter()
    .collect();
    let other_offer = app
        .post(
            "/tenants/credit_card/offers",
            &fx.maker,
            json!({"data": {"title": "Another offer"}}),
        )
        .await
        .expect(StatusCode::CREATED)
        .body["id"]
        .as_i64()
        .expect("offer id");
    let days_ago = |days: i64| chrono::Utc::now() - chrono::Duration::days(days);
    let email: String = app
        .db()
        .await
        .query_one("select email from customers where id = $1", &[&control[0]])
        .await
        .expect("e-mail")
        .get(0);
    let mut conversions = Vec::new();
    // Counting: 300 treated customers 5 days ago, 40 of them twice (values summed), with the
    // campaign's offer or none; 30 control customers (one by e-mail).
    for (i, c) in treated.iter().take(300).enumerate() {
        conversions.push(json!({"event_id": format!("t-{i}"), "customer_id": c,
            "occurred_at": days_ago(5), "value": 10.5, "currency": "INR",
            "offer_id": if i % 2 == 0 { Some(fx.offer_id) } else { None }}));
    }
    for (i, c) in treated.iter().take(40).enumerate() {
        conversions.push(json!({"event_id": format!("t-again-{i}"), "customer_id": c,
            "occurred_at": days_ago(4), "value": 1.25, "currency": "INR"}));
    }
    conversions.push(json!({"event_id": "c-mail", "email": email,
        "occurred_at": days_ago(5)}));
    for (i, c) in control.iter().skip(1).take(29).enumerate() {
        conversions.push(json!({"event_id": format!("c-{i}"), "customer_id": c,
            "occurred_at": days_ago(6)}));
    }
    // Not counting: before the release, after the window, for another offer.
    for (i, c) in treated.iter().skip(300).take(20).enumerate() {
        conversions.push(json!({"event_id": format!("early-{i}"), "customer_id": c,
            "occurred_at": days_ago(11)}));
        conversions.push(json!({"event_id": format!("late-{i}"), "customer_id": c,
            "occurred_at": chrono::Utc::now()}));
        conversions.push(json!({"event_id": format!("other-{i}"), "customer_id": c,
            "occurred_at": days_ago(5), "offer_id": other_offer}));
    }
    let answer = app
        .post(
            "/tenants/credit_card/conversions",
            &fx.admin,
            json!({"conversions": conversions}),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        answer.body["summary"],
        json!({"recorded": conversions.len(), "unchanged": 0, "not_found": 0, "invalid": 0})
    );
    // The same events again change nothing; a repeat inside a request counts once.
    let again = app
        .post(
            "/tenants/credit_card/conversions",
            &fx.admin,
            json!({"conversions": [conversions[0], conversions[1], conversions[1]]}),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        again.body["summary"],
        json!({"recorded": 0, "unchanged": 3, "not_found": 0, "invalid": 0})
    );
    // Another tenant's conversion of a treated customer counts for that tenant only.
    app.post(
        "/tenants/loan/conversions",
        &loans.admin,
        json!({"conversions": [{"event_id": "loan-1", "customer_id": treated[500],
                                "occurred_at": days_ago(5)}]}),
    )
    .await
    .expect(StatusCode::OK);
    let refused = app
        .post(
            "/tenants/credit_card/conversions",
            &fx.admin,
            json!({"conversions": [
                {"event_id": "x", "customer_id": Uuid::nil(), "occurred_at": days_ago(1)},
                {"event_id": "y", "customer_id": treated[0], "email": "a@b.c",
                 "occurred_at": days_ago(1)},
                {"event_id": "z", "customer_id": treated[0], "occurred_at": days_ago(1),
                 "value": 1},
                {"event_id": "w", "customer_id": treated[0], "occurred_at": days_ago(1),
                 "offer_id": 999_999}
            ]}),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        refused.body["summary"],
        json!({"recorded": 0, "unchanged": 0, "not_found": 2, "invalid": 2}),
        "{:?}",
        refused.body
    );
    app.post(
        "/tenants/credit_card/conversions",
        &fx.maker,
        json!({"conversions": []}),
    )
    .await
    .expect(StatusCode::FORBIDDEN);

    let results = app
        .get(
            &format!("/tenants/credit_card/campaigns/{id}/results?confidence=0.99"),
            &fx.viewer,
        )
        .await
        .expect(StatusCode::OK);
    let body = &results.body;
    assert_eq!(body["treated"]["customers"], json!(treated.len()));
    assert_eq!(body["treated"]["converted"], 300);
    assert_eq!(
        body["treated"]["value"],
        json!({"INR": 300.0 * 10.5 + 40.0 * 1.25})
    );
    assert_eq!(body["control"]["customers"], json!(control.len()));
    assert_eq!(body["control"]["converted"], 30);
    assert_eq!(body["control"]["value"], json!({}));
    assert_eq!(body["funnel"]["released"], json!(treated.len()));
    assert_eq!(body["funnel"]["converted"], 300);
    assert_eq!(body["confidence"], 0.99);

    // The same numbers from a hand-written aggregate over the raw rows.
    let row = app
        .db()
        .await
        .query_one(
            "select count(*) filter (where cc.delivery_status <> 'control'),
                    count(*) filter (where cc.delivery_status <> 'control' and exists (
                        select 1 from conversions v where v.tenant_name = 'credit_card'
                          and v.customer_id = cc.customer_id
                          and v.occurred_at >= cc.released_at
                          and v.occurred_at < c.ends_at + interval '1 day'
                          and coalesce(v.offer_id, c.offer_id) = c.offer_id)),
                    count(*) filter (where cc.delivery_status = 'control'),
                    count(*) filter (where cc.delivery_status = 'control' and exists (
                        select 1 from conversions v where v.tenant_name = 'credit_card'
                          and v.customer_id = cc.customer_id
                          and v.occurred_at >= cc.assigned_at
                          and v.occurred_at < c.ends_at + interval '1 day'
                          and coalesce(v.offer_id, c.offer_id) = c.offer_id))
             from campaign_customers cc join campaigns c on c.id = cc.campaign_id
             where cc.campaign_id = $1
               and (cc.released_at is not null or cc.delivery_status = 'control')",
            &[&(id as i32)],
        )
        .await
        .expect("the aggregate");
    let (n1, c1, n2, c2): (i64, i64, i64, i64) = (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!(
        [n1, c1, n2, c2],
        [
            body["treated"]["customers"].as_i64().unwrap_or(-1),
            body["treated"]["converted"].as_i64().unwrap_or(-1),
            body["control"]["customers"].as_i64().unwrap_or(-1),
            body["control"]["converted"].as_i64().unwrap_or(-1),
        ]
    );
    let lift = shared::uplift::lift(
        shared::uplift::Group {
            customers: n1,
            converted: c1,
        },
        shared::uplift::Group {
            customers: n2,
            converted: c2,
        },
        shared::uplift::Confidence::P99,
    )
    .expect("both groups");
    assert_eq!(body["lift"]["absolute"], json!(lift.absolute));
    assert_eq!(body["lift"]["interval"], json!(lift.interval));
    assert_eq!(body["lift"]["p_value"], json!(lift.p_value));
    assert_eq!(
        body["lift"]["incremental_conversions"],
        json!(lift.incremental_conversions)
    );
    let bad = app
        .get(
            &format!("/tenants/credit_card/campaigns/{id}/results?confidence=0.5"),
            &fx.viewer,
        )
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        bad.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("confidence"))
    );
    // Another tenant's user sees nothing of it.
    app.get(
        &format!("/tenants/credit_card/campaigns/{id}/results"),
        &loans.admin,
    )
    .await
    .expect(StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_campaign_without_holdout_says_it_has_no_lift() {
    let app = TestApp::spawn().await;
    app.import_demo_customers().await;
    let fx = app.tenant_with_offer("credit_card").await;
    let id = app
        .processed_campaign(&fx, "No holdout", json!({"segment": "gold"}))
        .await;
    app.activate_campaign("credit_card", id, &fx.admin)
        .await
        .expect(StatusCode::OK);
    let results = app
        .get(
            &format!("/tenants/credit_card/campaigns/{id}/results"),
            &fx.viewer,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(results.body["lift"], Value::Null);
    assert_eq!(results.body["control"]["customers"], 0);
    let notes = results.body["notes"].as_array().expect("notes");
    assert!(
        notes.iter().any(|n| n
            .as_str()
            .is_some_and(|n| n.starts_with("no control group"))),
        "{notes:?}"
    );
}
