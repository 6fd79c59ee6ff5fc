//! Campaigns keep their calendar: scheduled starts, automatic ends with expired deliveries,
//! late reports and their grace period, two schedulers racing, tenant time zones at the
//! edges, and offers listed by whether they can run.
//!
//! Time moves only by dating campaigns relative to the database clock (their dates, and their
//! deliveries' release times, written back as if days had passed); the scheduler is the
//! production one (`shared::scheduler::run`, what the relay runs on its schedule).

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use integration_tests::{NewCampaign, TenantFixture, TestApp, TestOptions, TestResponse};
use serde_json::{Value, json};
use shared::scheduler::{self as calendar, CalendarReport};

use crate::webhook::report;

/// The UTC date `days` from the database's today (negative: before).
pub(crate) async fn utc_day(app: &TestApp, days: i32) -> String {
    app.db()
        .await
        .query_one(
            "select ((now() at time zone 'UTC')::date + $1::int4)::text",
            &[&days],
        )
        .await
        .expect("date")
        .get(0)
}

/// The date `days` from today in `zone`, by the database clock.
pub(crate) async fn zone_day(app: &TestApp, zone: &str, days: i32) -> String {
    app.db()
        .await
        .query_one(
            "select ((now() at time zone $1)::date + $2::int4)::text",
            &[&zone, &days],
        )
        .await
        .expect("date")
        .get(0)
}

/// `POST` of a campaign of `fx` over everyone from `start` to `end`; the raw response.
async fn dated(app: &TestApp, fx: &TenantFixture, start: &str, end: &str) -> TestResponse {
    NewCampaign::of(fx.offer_id)
        .with("start_date", json!(start))
        .with("end_date", json!(end))
        .post(app, &fx.tenant, &fx.maker)
        .await
}

/// A processed campaign of `fx` over `criteria` from `start` to `end`.
async fn campaign(
    app: &TestApp,
    fx: &TenantFixture,
    criteria: Value,
    start: &str,
    end: &str,
) -> i64 {
    let created = NewCampaign::of(fx.offer_id)
        .criteria(criteria)
        .with("start_date", json!(start))
        .with("end_date", json!(end))
        .post(app, &fx.tenant, &fx.maker)
        .await
        .expect(StatusCode::ACCEPTED);
    let id = created.body["id"].as_i64().expect("id");
    let done = app.wait_for_processing(&fx.tenant, id, &fx.admin).await;
    assert_eq!(done["processing_status"], "done", "{done}");
    id
}

async fn read(app: &TestApp, fx: &TenantFixture, id: i64) -> Value {
    app.get(&format!("/tenants/{}/campaigns/{id}", fx.tenant), &fx.admin)
        .await
        .expect(StatusCode::OK)
        .body
}

async fn ledger(app: &TestApp, id: i64) -> i64 {
    app.count(
        "select count(*) from customer_contacts where campaign_id = $1",
        &[&(id as i32)],
    )
    .await
}

async fn feed(app: &TestApp, key: &str, id: i64) -> TestResponse {
    let request = Request::builder()
        .method(Method::GET)
        .uri(format!("/system/campaigns/{id}/deliveries?limit=10"))
        .header("x-api-key", key)
        .body(Body::empty())
        .expect("request");
    app.send(request).await
}

/// Dates campaign `id` as if `days` had passed since now: its dates, its deliveries' release
/// and its ledger rows all move `days` into the past (the trigger recomputes its instants).
async fn age(app: &TestApp, id: i64, days: i32) {
    app.db()
        .await
        .batch_execute(&format!(
            "update campaigns set start_date = start_date - {days},
                                  end_date = end_date - {days},
                                  created_at = created_at - interval '{days} days'
             where id = {id};
             update campaign_customers set released_at = released_at - interval '{days} days'
             where campaign_id = {id} and released_at is not null;
             update customer_contacts set contact_at = contact_at - interval '{days} days'
             where campaign_id = {id};"
        ))
        .await
        .expect("age the campaign");
}

/// An app without the background relay, so the scheduler runs only when a test runs it (the
/// relay, every second in the other tests, runs it too).
async fn quiet_app() -> TestApp {
    TestApp::spawn_with(TestOptions::without_relay()).await
}

async fn run_scheduler(app: &TestApp) -> CalendarReport {
    calendar::run(&app.state.platform, app.state.release_batch)
        .await
        .expect("scheduler run")
}

/// The demo customers and a campaign of `fx` over the platinum holders from tomorrow on
/// (UTC), activated: its id and the activation's answer.
async fn scheduled_platinum(app: &TestApp, fx: &TenantFixture) -> (i64, Value) {
    app.import_demo_customers().await;
    let (tomorrow, later) = (utc_day(app, 1).await, utc_day(app, 20).await);
    let id = campaign(app, fx, json!({"segment": "platinum"}), &tomorrow, &later).await;
    let activated = app
        .activate_campaign(&fx.tenant, id, &fx.admin)
        .await
        .expect(StatusCode::OK);
    (id, activated.body)
}

/// The demo customers, a cap of one contact per `window_days` days, and an active campaign of
/// `fx` over the platinum holders from `start` to `end`: its id and how many it released.
async fn capped_and_running(
    app: &TestApp,
    fx: &TenantFixture,
    window_days: i32,
    (start, end): (&str, &str),
) -> (i64, i64) {
    app.import_demo_customers().await;
    let sa = app.super_admin_token().await;
    app.put(
        "/sa/contact-policy",
        &sa,
        json!({"max_contacts": 1, "window_days": window_days}),
    )
    .await
    .expect(StatusCode::OK);
    let id = campaign(app, fx, json!({"segment": "platinum"}), start, end).await;
    app.activate_campaign(&fx.tenant, id, &fx.admin)
        .await
        .expect(StatusCode::OK);
    let released = app.campaign_summary(fx, id).await["released"]
        .as_i64()
        .expect("n");
    (id, released)
}

/// How many of campaign `id`'s status changes the scheduler made.
async fn scheduler_changes(app: &TestApp, fx: &TenantFixture, id: i64) -> usize {
    status_changes(app, fx, id)
        .await
        .iter()
        .filter(|c| c["performed_by"] == "scheduler")
        .count()
}

async fn status_changes(app: &TestApp, fx: &TenantFixture, id: i64) -> Vec<Value> {
    let trail = app
        .get(
            &format!("/tenants/{}/campaigns/{id}/audit-logs", fx.tenant),
            &fx.admin,
        )
        .await
        .expect(StatusCode::OK);
    trail
        .body
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["action"] == "status_change")
        .cloned()
        .collect()
}

#[tokio::test]
async fn a_campaign_activated_before_its_start_is_scheduled_and_released_at_the_start() {
    let app = quiet_app().await;
    app.import_demo_customers().await;
    let fx = app.tenant_with_offer("credit_card").await;
    let (tomorrow, later) = (utc_day(&app, 1).await, utc_day(&app, 20).await);
    let id = campaign(&app, &fx, json!({"segment": "platinum"}), &tomorrow, &later).await;
    let before = app
        .count("select count(*) from customer_contacts", &[])
        .await;

    let activated = app.activate_campaign("credit_card", id, &fx.admin).await;
    let activated = activated.expect(StatusCode::OK);
    assert_eq!(activated.body["status"], "scheduled");
    assert!(
        activated.body["starts_at"].as_str().is_some(),
        "{:?}",
        activated.body
    );
    // Nothing released: the ledger is unchanged, the summary shows all awaiting release,
    // the feed refuses.
    assert_eq!(
        app.count("select count(*) from customer_contacts", &[])
            .await,
        before
    );
    let counts = app.campaign_summary(&fx, id).await;
    assert_eq!(counts["released"], 0, "{counts}");
    assert_eq!(counts["awaiting_release"], counts["total"], "{counts}");
    let (key, _) = app.issue_webhook_key("credit_card", false).await;
    let refused = feed(&app, &key, id).await.expect(StatusCode::CONFLICT);
    assert!(
        refused.body["detail"]
            .as_str()
            .unwrap_or("")
            .contains("scheduled"),
        "{:?}",
        refused.body
    );
    // The scheduler has nothing to do before the start.
    assert_eq!(run_scheduler(&app).await, CalendarReport::default());
    assert_eq!(read(&app, &fx, id).await["status"], "scheduled");
    // Pausing and resuming a scheduled campaign keeps it scheduled.
    let paused = app
        .put(
            &format!("/tenants/credit_card/campaigns/{id}"),
            &fx.admin,
            json!({"status": "paused"}),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(paused.body["status"], "paused");
    let resumed = app
        .activate_campaign("credit_card", id, &fx.admin)
        .await
        .expect(StatusCode::OK);
    assert_eq!(resumed.body["status"], "scheduled");

    // A day later (the campaign's dates moved one day back), the scheduler starts it.
    age(&app, id, 1).await;
    let run = run_scheduler(&app).await;
    assert_eq!((run.started, run.starts_failed), (1, 0), "{run:?}");
    let started = read(&app, &fx, id).await;
    assert_eq!(started["status"], "active");
    let counts = app.campaign_summary(&fx, id).await;
    assert_eq!(counts["released"], counts["total"], "{counts}");
    assert_eq!(
        ledger(&app, id).await,
        counts["released"].as_i64().expect("n")
    );
    feed(&app, &key, id).await.expect(StatusCode::OK);
    // The trail: draft → scheduled, → paused, → scheduled by the admin; → active by the
    // scheduler.
    let changes = status_changes(&app, &fx, id).await;
    let steps: Vec<(String, String, String)> = changes
        .iter()
        .map(|c| {
            (
                c["old_data"]["status"].as_str().unwrap_or("").to_owned(),
                c["new_data"]["status"].as_str().unwrap_or("").to_owned(),
                c["performed_by"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let admin = "credit-card.admin".to_owned();
    assert_eq!(
        steps,
        vec![
            ("draft".into(), "scheduled".into(), admin.clone()),
            ("scheduled".into(), "paused".into(), admin.clone()),
            ("paused".into(), "scheduled".into(), admin),
            ("scheduled".into(), "active".into(), "scheduler".into()),
        ]
    );
}

#[tokio::test]
async fn a_campaign_whose_audience_is_not_ready_at_its_start_stays_scheduled_and_counts_a_failure()
{
    let app = quiet_app().await;
    app.import_demo_customers().await;
    let fx = app.tenant_with_offer("credit_card").await;
    let (tomorrow, later) = (utc_day(&app, 1).await, utc_day(&app, 20).await);
    let id = campaign(&app, &fx, json!({"segment": "gold"}), &tomorrow, &later).await;
    app.activate_campaign("credit_card", id, &fx.admin)
        .await
        .expect(StatusCode::OK);
    // Its selection is being re-run when the start comes.
    app.db()
        .await
        .execute(
            "update campaigns set processing_status = 'running' where id = $1",
            &[&(id as i32)],
        )
        .await
        .expect("re-running");
    age(&app, id, 1).await;
    let run = run_scheduler(&app).await;
    assert_eq!((run.started, run.starts_failed), (0, 1), "{run:?}");
    assert_eq!(read(&app, &fx, id).await["status"], "scheduled");
    assert_eq!(ledger(&app, id).await, 0);
}

#[tokio::test]
async fn a_campaign_past_its_end_completes_and_its_unreported_deliveries_expire_still_counted() {
    let app = quiet_app().await;
    let fx = app.tenant_with_offer("credit_card").await;
    let (start, end) = (utc_day(&app, -1).await, utc_day(&app, 3).await);
    let criteria = json!({"segment": "platinum"});
    let (first, released) = capped_and_running(&app, &fx, 30, (&start, &end)).await;
    assert!(released > 2, "{released}");
    // One delivery is reported sent; the rest never are.
    let sent_customer: String = app
        .db()
        .await
        .query_one(
            "select customer_id::text from campaign_customers
             where campaign_id = $1 and released_at is not null order by customer_id limit 1",
            &[&(first as i32)],
        )
        .await
        .expect("customer")
        .get(0);
    let (key, _) = app.issue_webhook_key("credit_card", false).await;
    // Dated now: after its release (a moment ago), within the webhook's clock-skew bound.
    let sent_at = chrono::Utc::now().to_rfc3339();
    let answer = report(
        &app,
        &key,
        &json!([{"campaign_id": first, "customer_id": sent_customer, "status": "sent", "sent_at": sent_at}]),
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(answer.body["summary"]["updated"], 1, "{:?}", answer.body);

    // A second campaign for the same customers is held back by the cap.
    let second = campaign(&app, &fx, criteria.clone(), &start, &end).await;
    app.activate_campaign("credit_card", second, &fx.admin)
        .await
        .expect(StatusCode::OK);
    let held = app.campaign_summary(&fx, second).await;
    assert_eq!(held["released"], 0, "{held}");

    // Five days on, the first campaign is past its end: the scheduler completes it.
    age(&app, first, 5).await;
    feed(&app, &key, first).await.expect(StatusCode::CONFLICT);
    let run = run_scheduler(&app).await;
    assert_eq!(run.completed, 1, "{run:?}");
    assert_eq!(run.expired, (released - 1) as u64, "{run:?}");
    assert_eq!(read(&app, &fx, first).await["status"], "completed");
    let counts = app.campaign_summary(&fx, first).await;
    assert_eq!(counts["expired"], released - 1, "{counts}");
    assert_eq!(counts["sent"], 1, "{counts}");
    assert_eq!(counts["pending"], 0, "{counts}");
    assert_eq!(
        counts["released"].as_i64(),
        ["sent", "failed", "pending", "expired"]
            .iter()
            .map(|k| counts[*k].as_i64().expect("n"))
            .reduce(|a, b| a + b),
        "{counts}"
    );
    let expired_at_set = app
        .count(
            "select count(*) from campaign_customers
             where campaign_id = $1 and delivery_status = 'expired' and expired_at is not null",
            &[&(first as i32)],
        )
        .await;
    assert_eq!(expired_at_set, released - 1);
    // Every released delivery still counts against the cap, the expired ones too: they were
    // released, and the provider may still report them within the grace period (review 3,
    // finding 1).
    assert_eq!(ledger(&app, first).await, released);
    let changes = status_changes(&app, &fx, first).await;
    let last = changes.last().expect("a change");
    assert_eq!(
        (
            last["new_data"]["status"].as_str(),
            last["performed_by"].as_str()
        ),
        (Some("completed"), Some("scheduler"))
    );

    // A third campaign for the same customers inside the policy's window is held back by the
    // cap, the expired deliveries' customers included.
    let third = campaign(&app, &fx, criteria, &start, &end).await;
    app.activate_campaign("credit_card", third, &fx.admin)
        .await
        .expect(StatusCode::OK);
    let counts = app.campaign_summary(&fx, third).await;
    assert_eq!(counts["released"], 0, "{counts}");
    assert_eq!(counts["suppressed_by_pressure"], released, "{counts}");
    // Running the scheduler again changes nothing.
    assert_eq!(run_scheduler(&app).await, CalendarReport::default());
}

#[tokio::test]
async fn late_reports_apply_within_the_grace_period_and_are_invalid_after_it_or_after_the_end() {
    let app = quiet_app().await;
    app.import_demo_customers().await;
    let fx = app.tenant_with_offer("credit_card").await;
    let (start, end) = (utc_day(&app, -1).await, utc_day(&app, 1).await);
    let recent = campaign(&app, &fx, json!({"segment": "platinum"}), &start, &end).await;
    let old = campaign(&app, &fx, json!({"segment": "platinum"}), &start, &end).await;
    for id in [recent, old] {
        app.activate_campaign("credit_card", id, &fx.admin)
            .await
            .expect(StatusCode::OK);
    }
    // `recent` ended about a day ago, `old` about eleven days ago (grace: 7 days).
    age(&app, recent, 3).await;
    age(&app, old, 13).await;
    let run = run_scheduler(&app).await;
    assert_eq!(run.completed, 2, "{run:?}");
    let instants = |c: &Value| {
        (
            chrono::DateTime::parse_from_rfc3339(c["starts_at"].as_str().expect("starts_at"))
                .expect("instant"),
            chrono::DateTime::parse_from_rfc3339(c["ends_at"].as_str().expect("ends_at"))
                .expect("instant"),
        )
    };
    let customers = |id: i64| {
        let app = &app;
        async move {
            app.db()
                .await
                .query(
                    "select customer_id::text from campaign_customers
                     where campaign_id = $1 and delivery_status = 'expired' order by customer_id limit 2",
                    &[&(id as i32)],
                )
                .await
                .expect("customers")
                .iter()
                .map(|r| r.get::<_, String>(0))
                .collect::<Vec<_>>()
        }
    };
    let (_, recent_end) = instants(&read(&app, &fx, recent).await);
    let (_, old_end) = instants(&read(&app, &fx, old).await);
    let (r, o) = (customers(recent).await, customers(old).await);
    let (key, _) = app.issue_webhook_key("credit_card", false).await;
    let hour = chrono::Duration::hours(1);
    let answer = report(
        &app,
        &key,
        &json!([
            {"campaign_id": recent, "customer_id": r[0], "status": "sent", "sent_at": (recent_end - hour).to_rfc3339()},
            {"campaign_id": recent, "customer_id": r[1], "status": "sent", "sent_at": (recent_end + hour).to_rfc3339()},
            {"campaign_id": old, "customer_id": o[0], "status": "sent", "sent_at": (old_end - hour).to_rfc3339()},
            {"campaign_id": old, "customer_id": o[1], "status": "sent", "sent_at": (old_end + hour).to_rfc3339()},
        ]),
    )
    .await
    .expect(StatusCode::OK);
    let results = answer.body["results"].as_array().expect("results");
    assert_eq!(results[0]["status"], "updated", "{:?}", answer.body);
    assert_eq!(results[1]["status"], "invalid", "{:?}", answer.body);
    assert!(
        results[1]["reason"].as_str().unwrap_or("").contains("end"),
        "{:?}",
        answer.body
    );
    assert_eq!(results[2]["status"], "invalid", "{:?}", answer.body);
    // The whole reason, one space between words (review 3, finding 11).
    assert_eq!(
        results[2]["reason"],
        "the campaign ended longer ago than the report grace period \
         (CAMPAIGN_REPORT_GRACE_DAYS)",
        "{:?}",
        answer.body
    );
    // After the grace period every report is overdue, whatever its date: one dated after
    // the end too (the end is not the reason it is refused).
    assert_eq!(
        results[3]["reason"], results[2]["reason"],
        "{:?}",
        answer.body
    );
    // The late report inside the window made the expired delivery sent, counted in the
    // ledger at its time; the others changed nothing.
    let counts = app.campaign_summary(&fx, recent).await;
    assert_eq!(counts["sent"], 1, "{counts}");
    let contact = app
        .count(
            "select count(*) from customer_contacts where campaign_id = $1 and customer_id = $2::text::uuid",
            &[&(recent as i32), &r[0]],
        )
        .await;
    assert_eq!(contact, 1);
    assert_eq!(app.campaign_summary(&fx, old).await["sent"], 0);
}

#[tokio::test]
async fn two_schedulers_running_at_once_start_and_end_each_campaign_exactly_once() {
    let app = quiet_app().await;
    app.import_demo_customers().await;
    let fx = app.tenant_with_offer("credit_card").await;
    let (tomorrow, later) = (utc_day(&app, 1).await, utc_day(&app, 20).await);
    let (start, end) = (utc_day(&app, -1).await, utc_day(&app, 1).await);
    let mut starting = Vec::new();
    let mut ending = Vec::new();
    for segment in ["gold", "platinum", "silver"] {
        let id = campaign(&app, &fx, json!({"segment": segment}), &tomorrow, &later).await;
        app.activate_campaign("credit_card", id, &fx.admin)
            .await
            .expect(StatusCode::OK);
        age(&app, id, 1).await;
        starting.push(id);
        let id = campaign(&app, &fx, json!({"segment": segment}), &start, &end).await;
        app.activate_campaign("credit_card", id, &fx.admin)
            .await
            .expect(StatusCode::OK);
        age(&app, id, 3).await;
        ending.push(id);
    }
    let pending: i64 = app
        .count(
            "select count(*) from campaign_customers where campaign_id = any($1)
             and released_at is not null and delivery_status = 'pending'",
            &[&ending.iter().map(|i| *i as i32).collect::<Vec<_>>()],
        )
        .await;
    let (a, b) = tokio::join!(
        calendar::run(&app.state.platform, app.state.release_batch),
        calendar::run(&app.state.platform, app.state.release_batch)
    );
    let (a, b) = (a.expect("first"), b.expect("second"));
    assert_eq!(a.started + b.started, 3, "{a:?} {b:?}");
    assert_eq!(a.completed + b.completed, 3, "{a:?} {b:?}");
    assert_eq!(a.expired + b.expired, pending as u64, "{a:?} {b:?}");
    for id in &starting {
        assert_eq!(read(&app, &fx, *id).await["status"], "active");
        assert_eq!(scheduler_changes(&app, &fx, *id).await, 1);
        let counts = app.campaign_summary(&fx, *id).await;
        assert_eq!(
            ledger(&app, *id).await,
            counts["released"].as_i64().expect("n")
        );
    }
    for id in &ending {
        assert_eq!(read(&app, &fx, *id).await["status"], "completed");
        assert_eq!(scheduler_changes(&app, &fx, *id).await, 1);
        // Expired, their contacts still counted: one ledger row per released delivery.
        let counts = app.campaign_summary(&fx, *id).await;
        assert_eq!(
            ledger(&app, *id).await,
            counts["released"].as_i64().expect("n")
        );
    }
}

#[tokio::test]
async fn campaign_days_are_days_in_the_tenants_time_zone() {
    let app = TestApp::spawn().await;
    let sa = app.super_admin_token().await;
    let kolkata = app.tenant_with_offer("kolkata").await;
    let new_york = app.tenant_with_offer("new_york").await;
    for (fx, zone) in [(&kolkata, "Asia/Kolkata"), (&new_york, "America/New_York")] {
        let updated = app
            .put(
                &format!("/sa/tenants/{}", fx.tenant),
                &sa,
                json!({"time_zone": zone}),
            )
            .await
            .expect(StatusCode::OK);
        assert_eq!(updated.body["time_zone"], zone);
    }
    let refused = app
        .put(
            "/sa/tenants/kolkata",
            &sa,
            json!({"time_zone": "Mars/Olympus_Mons"}),
        )
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        refused.body["errors"][0]["pointer"], "/time_zone",
        "{:?}",
        refused.body
    );

    // The same dates are different instants: the ends of 2030-12-31 there.
    let k = dated(&app, &kolkata, "2030-12-01", "2030-12-31")
        .await
        .expect(StatusCode::ACCEPTED);
    let n = dated(&app, &new_york, "2030-12-01", "2030-12-31")
        .await
        .expect(StatusCode::ACCEPTED);
    let instant = |v: &Value, name: &str| {
        chrono::DateTime::parse_from_rfc3339(v[name].as_str().expect(name))
            .expect("instant")
            .with_timezone(&chrono::Utc)
            .to_rfc3339()
    };
    assert_eq!(instant(&k.body, "starts_at"), "2030-11-30T18:30:00+00:00");
    assert_eq!(instant(&k.body, "ends_at"), "2030-12-31T18:30:00+00:00");
    assert_eq!(instant(&n.body, "starts_at"), "2030-12-01T05:00:00+00:00");
    assert_eq!(instant(&n.body, "ends_at"), "2031-01-01T05:00:00+00:00");

    // A campaign ending "today" there runs until that day ends there; one ending "yesterday"
    // there is refused.
    for (fx, zone) in [(&kolkata, "Asia/Kolkata"), (&new_york, "America/New_York")] {
        let today = zone_day(&app, zone, 0).await;
        let yesterday = zone_day(&app, zone, -1).await;
        let ok = NewCampaign::of(fx.offer_id)
            .with("start_date", json!(yesterday))
            .with("end_date", json!(today))
            .post(&app, &fx.tenant, &fx.maker)
            .await
            .expect(StatusCode::ACCEPTED);
        let ends_at =
            chrono::DateTime::parse_from_rfc3339(ok.body["ends_at"].as_str().expect("ends_at"))
                .expect("instant");
        assert!(ends_at > chrono::Utc::now(), "{zone}: {ends_at}");
        let late = NewCampaign::of(fx.offer_id)
            .with("start_date", json!(yesterday))
            .with("end_date", json!(yesterday))
            .post(&app, &fx.tenant, &fx.maker)
            .await
            .expect(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            late.body["errors"][0]["pointer"], "/end_date",
            "{zone}: {:?}",
            late.body
        );
    }

    // Across the date line: the day before today at UTC+14 has always ended there, and never
    // has at UTC-12 (their dates differ by one or two days at every instant).
    let plus14 = app.tenant_with_offer("line_east").await;
    let minus12 = app.tenant_with_offer("line_west").await;
    for (fx, zone) in [(&plus14, "Etc/GMT-14"), (&minus12, "Etc/GMT+12")] {
        app.put(
            &format!("/sa/tenants/{}", fx.tenant),
            &sa,
            json!({"time_zone": zone}),
        )
        .await
        .expect(StatusCode::OK);
    }
    let day = zone_day(&app, "Etc/GMT-14", -1).await;
    dated(&app, &plus14, &day, &day)
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    dated(&app, &minus12, &day, &day)
        .await
        .expect(StatusCode::ACCEPTED);

    // Moving the zone moves the windows of drafts.
    app.put("/sa/tenants/kolkata", &sa, json!({"time_zone": "UTC"}))
        .await
        .expect(StatusCode::OK);
    let moved = app
        .get(
            &format!("/tenants/kolkata/campaigns/{}", k.body["id"]),
            &kolkata.admin,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(instant(&moved.body, "ends_at"), "2031-01-01T00:00:00+00:00");
}

#[tokio::test]
async fn offers_listed_live_are_those_campaigns_can_run() {
    let app = TestApp::spawn().await;
    let fx = app.tenant_with_offer("credit_card").await;
    let offers = "/tenants/credit_card/offers";
    // The fixture's offer is approved; a draft is opened on top of it (status reads draft).
    let live_with_draft = fx.offer_id;
    let opened = app
        .patch(
            &format!("{offers}/{live_with_draft}"),
            &fx.maker,
            json!({"data": {"title": "Cashback 6%"}}),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(opened.body["status"], "draft");
    // Never approved.
    let draft = app
        .post(offers, &fx.maker, json!({"data": {"title": "Draft"}}))
        .await
        .expect(StatusCode::CREATED)
        .body["id"]
        .as_i64()
        .expect("id");
    // Approved, then retired.
    let retired = app
        .post(offers, &fx.maker, json!({"data": {"title": "Old"}}))
        .await
        .expect(StatusCode::CREATED)
        .body["id"]
        .as_i64()
        .expect("id");
    app.post(&format!("{offers}/{retired}/submit"), &fx.maker, json!({}))
        .await
        .expect(StatusCode::OK);
    app.review(
        &format!("{offers}/{retired}"),
        "approve",
        &fx.checker,
        Some(json!({})),
    )
    .await
    .expect(StatusCode::OK);
    app.post(
        &format!("{offers}/{retired}/retire"),
        &fx.checker,
        json!({"reason": "season over"}),
    )
    .await
    .expect(StatusCode::OK);

    let ids = |r: TestResponse| -> Vec<i64> {
        r.body
            .as_array()
            .expect("list")
            .iter()
            .map(|o| o["id"].as_i64().expect("id"))
            .collect()
    };
    let live = ids(app
        .get(&format!("{offers}?live=true"), &fx.viewer)
        .await
        .expect(StatusCode::OK));
    assert_eq!(live, vec![live_with_draft]);
    let approved = ids(app
        .get(&format!("{offers}?status=approved"), &fx.viewer)
        .await
        .expect(StatusCode::OK));
    assert!(!approved.contains(&live_with_draft), "{approved:?}");
    let mut not_live = ids(app
        .get(&format!("{offers}?live=false"), &fx.viewer)
        .await
        .expect(StatusCode::OK));
    not_live.sort_unstable();
    assert_eq!(not_live, vec![draft, retired]);
    let bad = app
        .get(&format!("{offers}?live=maybe"), &fx.viewer)
        .await
        .expect(StatusCode::BAD_REQUEST);
    assert!(bad.body["detail"].as_str().is_some(), "{:?}", bad.body);
}

#[tokio::test]
async fn creating_or_moving_a_campaign_whose_end_has_passed_is_refused() {
    let app = TestApp::spawn().await;
    let fx = app.tenant_with_offer("credit_card").await;
    let (start, end) = (utc_day(&app, -10).await, utc_day(&app, -1).await);
    let refused = NewCampaign::of(fx.offer_id)
        .with("start_date", json!(start))
        .with("end_date", json!(end))
        .post(&app, "credit_card", &fx.maker)
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(refused.body["errors"][0]["pointer"], "/end_date");
    let created = NewCampaign::of(fx.offer_id)
        .post(&app, "credit_card", &fx.maker)
        .await
        .expect(StatusCode::ACCEPTED);
    let id = created.body["id"].as_i64().expect("id");
    let moved = app
        .put(
            &format!("/tenants/credit_card/campaigns/{id}"),
            &fx.maker,
            json!({"start_date": start, "end_date": end}),
        )
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(moved.body["errors"][0]["pointer"], "/end_date");
    // A draft whose end passed since cannot be activated.
    app.wait_for_processing("credit_card", id, &fx.admin).await;
    age(&app, id, 40).await;
    let late = app
        .activate_campaign("credit_card", id, &fx.admin)
        .await
        .expect(StatusCode::CONFLICT);
    assert!(
        late.body["detail"].as_str().unwrap_or("").contains("ended"),
        "{:?}",
        late.body
    );
    assert_eq!(read(&app, &fx, id).await["status"], "draft");
}

#[tokio::test]
async fn the_relays_scheduled_run_starts_a_due_campaign_by_itself() {
    // The default app runs the relay every second, as `offerctl serve` does on its interval.
    let app = TestApp::spawn().await;
    let fx = app.tenant_with_offer("credit_card").await;
    let (id, _) = scheduled_platinum(&app, &fx).await;
    age(&app, id, 1).await;
    for _ in 0..100 {
        if read(&app, &fx, id).await["status"] == "active" {
            assert_eq!(scheduler_changes(&app, &fx, id).await, 1);
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the relay did not start campaign {id} within 10 s");
}

#[tokio::test]
async fn a_scheduled_campaign_whose_offer_was_retired_is_withdrawn_at_its_start_not_sent() {
    // Review 3, finding 6: scheduled, then its offer retired "by compliance", the campaign
    // was started by the scheduler and the feed served the retired content.
    let app = quiet_app().await;
    let fx = app.tenant_with_offer("credit_card").await;
    let (id, scheduled) = scheduled_platinum(&app, &fx).await;
    assert_eq!(scheduled["status"], "scheduled");
    let offer = format!("/tenants/credit_card/offers/{}", fx.offer_id);
    app.post(
        &format!("{offer}/retire"),
        &fx.checker,
        json!({"reason": "withdrawn by compliance"}),
    )
    .await
    .expect(StatusCode::OK);
    let before = app
        .count("select count(*) from customer_contacts", &[])
        .await;

    age(&app, id, 1).await;
    let run = run_scheduler(&app).await;
    assert_eq!(
        (run.started, run.withdrawn, run.starts_failed),
        (0, 1, 0),
        "{run:?}"
    );
    assert_eq!(read(&app, &fx, id).await["status"], "completed");
    let counts = app.campaign_summary(&fx, id).await;
    assert_eq!(counts["released"], 0, "nothing released: {counts}");
    assert_eq!(
        app.count("select count(*) from customer_contacts", &[])
            .await,
        before,
        "no contact counted"
    );
    let (key, _) = app.issue_webhook_key("credit_card", false).await;
    feed(&app, &key, id).await.expect(StatusCode::CONFLICT);
    let changes = status_changes(&app, &fx, id).await;
    let last = changes.last().expect("a change");
    assert_eq!(last["performed_by"], "scheduler", "{last}");
    assert!(
        last["comment"]
            .as_str()
            .is_some_and(|c| c.contains("retired")),
        "{last}"
    );
    // A second run finds nothing more to do.
    assert_eq!(run_scheduler(&app).await, CalendarReport::default());
}

#[tokio::test]
async fn expiry_keeps_the_contacts_so_late_reports_never_make_a_second_contact_in_the_window() {
    // Review 3, finding 1, the probe's scenario: at a campaign's end its unreported
    // deliveries expired and their ledger rows were deleted; another tenant's campaign then
    // released to the same customers, and the provider's late reports (dated inside the first
    // window, accepted during the grace period) put the first contact back: two contacts in
    // seven days under a one-per-seven-days policy.
    let app = quiet_app().await;
    let cards = app.tenant_with_offer("credit_card").await;
    let loans = app.tenant_with_offer("loan").await;
    let (start, end) = (utc_day(&app, -1).await, utc_day(&app, 1).await);
    let criteria = json!({"segment": "platinum"});
    let (first, released) = capped_and_running(&app, &cards, 7, (&start, &end)).await;
    assert!(released > 0);
    let customers: Vec<String> = app
        .db()
        .await
        .query(
            "select customer_id::text from campaign_customers
             where campaign_id = $1 and released_at is not null order by customer_id",
            &[&(first as i32)],
        )
        .await
        .expect("customers")
        .iter()
        .map(|r| r.get(0))
        .collect();
    // Two days on, the first campaign is past its end (within the policy's window and the
    // report grace period): the scheduler completes it and expires every delivery.
    age(&app, first, 2).await;
    let run = run_scheduler(&app).await;
    assert_eq!(run.expired, released as u64, "{run:?}");
    // The other tenant's campaign for the same customers is held back by the cap.
    let (loan_start, loan_end) = (utc_day(&app, 0).await, utc_day(&app, 5).await);
    let second = campaign(&app, &loans, criteria, &loan_start, &loan_end).await;
    app.activate_campaign("loan", second, &loans.admin)
        .await
        .expect(StatusCode::OK);
    let held = app.campaign_summary(&loans, second).await;
    assert_eq!(held["released"], 0, "{held}");
    // The provider's late reports, dated inside the first window, are accepted.
    let (key, _) = app.issue_webhook_key("credit_card", false).await;
    let sent_at = app
        .db()
        .await
        .query_one(
            "select ends_at - interval '1 hour' from campaigns where id = $1",
            &[&(first as i32)],
        )
        .await
        .expect("end")
        .get::<_, chrono::DateTime<chrono::Utc>>(0)
        .to_rfc3339();
    let reports: Vec<Value> = customers
        .iter()
        .map(|c| json!({"campaign_id": first, "customer_id": c, "status": "sent", "sent_at": sent_at}))
        .collect();
    let answer = report(&app, &key, &json!(reports))
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        answer.body["summary"]["updated"],
        customers.len(),
        "{:?}",
        answer.body
    );
    // The invariant: no customer holds more contacts in any 7-day window than the policy.
    let over = app
        .count(
            "select count(*) from customer_contacts a join customer_contacts b
               on a.customer_id = b.customer_id and a.campaign_id < b.campaign_id
              and abs(extract(epoch from a.contact_at - b.contact_at)) < 7 * 86400",
            &[],
        )
        .await;
    assert_eq!(over, 0, "customers contacted twice within seven days");
    assert_eq!(ledger(&app, first).await, released);
}

#[tokio::test]
async fn a_users_completion_ends_the_campaign_as_the_scheduler_does() {
    // Review 3, finding 9: `PUT {"status": "completed"}` ran no expiry; its pending
    // deliveries stayed pending for ever.
    let app = quiet_app().await;
    app.import_demo_customers().await;
    let fx = app.tenant_with_offer("credit_card").await;
    let (start, end) = (utc_day(&app, -1).await, utc_day(&app, 3).await);
    let id = campaign(&app, &fx, json!({"segment": "platinum"}), &start, &end).await;
    app.activate_campaign("credit_card", id, &fx.admin)
        .await
        .expect(StatusCode::OK);
    let released = app.campaign_summary(&fx, id).await["released"]
        .as_i64()
        .expect("n");
    app.put(
        &format!("/tenants/credit_card/campaigns/{id}"),
        &fx.admin,
        json!({"status": "completed"}),
    )
    .await
    .expect(StatusCode::OK);
    let counts = app.campaign_summary(&fx, id).await;
    assert_eq!(counts["pending"], 0, "{counts}");
    assert_eq!(counts["expired"], released, "{counts}");
    assert_eq!(
        ledger(&app, id).await,
        released,
        "their contacts stay counted"
    );
}

#[tokio::test]
async fn a_time_zone_change_moves_drafts_only_never_a_running_campaigns_window() {
    // Review 3, finding 2: `PUT /sa/tenants/{t} {"time_zone": …}` recomputed every campaign
    // not completed; moving east put an active campaign's end before its own release, the
    // scheduler completed it at once and freed its slots.
    let app = quiet_app().await;
    app.import_demo_customers().await;
    let sa = app.super_admin_token().await;
    let fx = app.tenant_with_offer("credit_card").await;
    let (start, end) = (utc_day(&app, -1).await, utc_day(&app, 0).await);
    let running = campaign(&app, &fx, json!({"segment": "platinum"}), &start, &end).await;
    app.activate_campaign("credit_card", running, &fx.admin)
        .await
        .expect(StatusCode::OK);
    let draft = campaign(&app, &fx, json!({"segment": "gold"}), &start, &end).await;
    let (before, draft_before) = (read(&app, &fx, running).await, read(&app, &fx, draft).await);
    app.put(
        "/sa/tenants/credit_card",
        &sa,
        json!({"time_zone": "Etc/GMT-14"}),
    )
    .await
    .expect(StatusCode::OK);
    let after = read(&app, &fx, running).await;
    assert_eq!(after["starts_at"], before["starts_at"], "{after}");
    assert_eq!(after["ends_at"], before["ends_at"], "{after}");
    assert_ne!(
        read(&app, &fx, draft).await["ends_at"],
        draft_before["ends_at"],
        "a draft follows the zone"
    );
    let run = run_scheduler(&app).await;
    assert_eq!(run.completed, 0, "{run:?}");
    assert_eq!(read(&app, &fx, running).await["status"], "active");
}

#[tokio::test]
async fn a_scheduled_campaigns_new_criteria_are_selected_again_before_it_starts() {
    // Review 3, finding 10: editing a scheduled campaign's criteria without re-processing let
    // the scheduler start the old audience while the campaign showed the new criteria.
    let app = TestApp::spawn().await;
    let fx = app.tenant_with_offer("credit_card").await;
    let (id, _) = scheduled_platinum(&app, &fx).await;
    let platinum = app.campaign_summary(&fx, id).await["total"]
        .as_i64()
        .expect("n");
    let gold = app
        .count(
            "select count(*) from customers where segment = 'gold' and is_active",
            &[],
        )
        .await;
    assert_ne!(platinum, gold);
    let edited = app
        .put(
            &format!("/tenants/credit_card/campaigns/{id}"),
            &fx.admin,
            json!({"selection_criteria": {"segment": "gold"}}),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(edited.body["status"], "scheduled");
    assert_ne!(edited.body["processing_status"], "done", "{}", edited.body);
    let done = app.wait_for_processing("credit_card", id, &fx.admin).await;
    assert_eq!(done["processing_status"], "done", "{done}");
    let counts = app.campaign_summary(&fx, id).await;
    assert_eq!(
        counts["total"], gold,
        "the audience of the new criteria: {counts}"
    );
}

#[tokio::test]
async fn expiry_by_slices_expires_every_pending_delivery_once_across_slice_boundaries() {
    // Bank scale: the expiry runs by slices of the key (50,000 deliveries a statement), all in
    // the completing transaction. Whatever the slice size — many slices, one slice exactly
    // the size of what is pending (its next slice finds nothing), one delivery a slice on a
    // part of the campaign — every pending delivery expires once, and no other row changes.
    let app = quiet_app().await;
    app.import_demo_customers().await;
    let fx = app.tenant_with_offer("credit_card").await;
    let id = app.processed_campaign(&fx, "Everyone", json!({})).await;
    app.activate_campaign("credit_card", id, &fx.admin)
        .await
        .expect(StatusCode::OK);
    let id = id as i32;
    let db = app.db().await;
    // About one delivery in eight is reported sent, spread over the key.
    db.execute(
        "update campaign_customers set delivery_status = 'sent', sent_at = now()
         where campaign_id = $1 and released_at is not null and customer_id::text like '%f'",
        &[&id],
    )
    .await
    .expect("sent reports");
    let pending = app
        .count(
            "select count(*) from campaign_customers
             where campaign_id = $1 and released_at is not null and delivery_status = 'pending'",
            &[&id],
        )
        .await;
    let sent = app
        .count(
            "select count(*) from campaign_customers where campaign_id = $1 and delivery_status = 'sent'",
            &[&id],
        )
        .await;
    assert!(pending > 5_000 && sent > 100, "{pending} {sent}");
    let tenant = shared::domain::TenantName::parse("credit_card").expect("tenant");
    for slice_rows in [1_000, pending, pending - 1, 7] {
        // Each size in a transaction rolled back: the next starts from the same rows.
        let outcome = shared::db::in_tenant(&app.state.platform, &tenant, async |tx| {
            let expired =
                shared::db::campaigns::calendar::expire_by_slices(tx, id, slice_rows).await?;
            let row = tx
                .query_one(
                    "select count(*) filter (where delivery_status = 'pending'),
                            count(*) filter (where delivery_status = 'expired'),
                            count(*) filter (where delivery_status = 'sent'),
                            count(distinct expired_at)
                     from campaign_customers where campaign_id = $1",
                    &[&id],
                )
                .await?;
            let counts: (i64, i64, i64, i64) = (row.get(0), row.get(1), row.get(2), row.get(3));
            Err::<(), _>(shared::error::ApiError::Conflict(format!(
                "{expired} {counts:?}"
            )))
        })
        .await;
        let Err(shared::error::ApiError::Conflict(outcome)) = outcome else {
            panic!("{outcome:?}");
        };
        // Every pending delivery expired, once, at the transaction's one `now()`; the sent
        // ones are untouched.
        assert_eq!(
            outcome,
            format!("{pending} (0, {pending}, {sent}, 1)"),
            "slices of {slice_rows}"
        );
    }
    // The rollbacks left every delivery as it was.
    assert_eq!(
        app.count(
            "select count(*) from campaign_customers
             where campaign_id = $1 and released_at is not null and delivery_status = 'pending'",
            &[&id],
        )
        .await,
        pending
    );
}
