//! A large release by customer-id ranges on the queue (V029, `db::campaigns::releases`): the
//! same verdict per customer as one release, each delivery released once whatever is killed,
//! redelivered or lost, and nothing released into a campaign that stopped being active.

use std::time::Duration;

use axum::http::StatusCode;
use campaign_processor::{Outcome, Processor};
use integration_tests::{NewCampaign, TenantFixture, TestApp, TestOptions};
use serde_json::{Value, json};
use shared::config::RedrivePolicy;
use shared::db::TenantTx;
use shared::db::campaigns::releases::{self, RangeOutcome};
use shared::domain::TenantName;
use shared::queue::{CampaignJob, InProcessReceiver, JobStep, Queue};
use shared::relay::Relay;
use uuid::Uuid;

use crate::calendar::utc_day;

/// Deliveries a release judges in its request in these tests: the demo's 10,127 customers
/// release in about 11 ranges.
const BATCH: i64 = 1_000;

/// Every customer: the demo's card holders.
fn everyone() -> Value {
    json!({"any": [{"is_active": true}, {"is_active": false}]})
}

/// Each delivery of campaign `id` as `(customer, status, suppression reason, released)`,
/// in customer order, read through `client`.
async fn outcomes(
    client: &impl shared::db::GenericClient,
    id: i32,
) -> Vec<(Uuid, String, Option<String>, bool)> {
    client
        .query(
            "select customer_id, delivery_status, suppression_reason, released_at is not null
             from campaign_customers where campaign_id = $1 order by customer_id",
            &[&id],
        )
        .await
        .expect("outcomes")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
}

/// The demo customers, a cap of one contact per 30 days, and a first campaign of
/// `fx` over the platinum holders released (under the batch: in its request), so that the
/// cap holds some customers back; then a campaign over everyone with a 10 % holdout,
/// selected and not yet active. Answers its id.
async fn capped_campaign_over_everyone(app: &TestApp, fx: &TenantFixture) -> i32 {
    app.import_demo_customers().await;
    let sa = app.super_admin_token().await;
    app.put(
        "/sa/contact-policy",
        &sa,
        json!({"max_contacts": 1, "window_days": 30}),
    )
    .await
    .expect(StatusCode::OK);
    let first = app
        .processed_campaign(fx, "Platinum first", json!({"segment": "platinum"}))
        .await;
    let response = app.activate_campaign(&fx.tenant, first, &fx.admin).await;
    assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
    assert_eq!(
        response.body["release"],
        Value::Null,
        "released in the request"
    );
    let created = NewCampaign::of(fx.offer_id)
        .name("Everyone")
        .criteria(everyone())
        .with("holdout_percent", json!(10))
        .post(app, &fx.tenant, &fx.maker)
        .await
        .expect(StatusCode::ACCEPTED);
    let id = created.body["id"].as_i64().expect("id");
    let campaign = app.wait_for_processing(&fx.tenant, id, &fx.admin).await;
    assert_eq!(campaign["processing_status"], "done", "{campaign}");
    i32::try_from(id).expect("small id")
}

/// What one release in one transaction would give campaign `id` now: released in a
/// transaction that is then rolled back.
async fn one_release(app: &TestApp, id: i32) -> Vec<(Uuid, String, Option<String>, bool)> {
    let mut client = app.state.platform.get().await.expect("client");
    let tenant = TenantName::parse("credit_card").expect("tenant");
    let tx = TenantTx::begin(&mut client, &tenant).await.expect("begin");
    shared::db::campaigns::release(&tx, id)
        .await
        .expect("release");
    let rows = outcomes(&*tx, id).await;
    tx.rollback().await.expect("rollback");
    rows
}

#[tokio::test]
async fn a_release_by_ranges_gives_every_customer_the_verdict_of_one_release() {
    // Bank scale: at 10,000,000 customers the release of one campaign took 21 minutes inside
    // its activation request, beyond API Gateway's 30 s and Lambda's 15 minutes.
    let app = TestApp::spawn_with(TestOptions {
        release_batch: Some(BATCH),
        ..TestOptions::default()
    })
    .await;
    let fx = app.tenant_with_offer("credit_card").await;
    let id = capped_campaign_over_everyone(&app, &fx).await;
    let expected = one_release(&app, id).await;
    let held: Vec<_> = expected
        .iter()
        .filter(|(_, status, _, _)| status != "pending")
        .collect();
    assert!(
        held.iter()
            .any(|(_, _, reason, _)| reason.as_deref() == Some("contact_pressure"))
            && held.iter().any(|(_, status, _, _)| status == "control"),
        "the cap and the holdout both hold some back"
    );

    let response = app
        .activate_campaign(&fx.tenant, id.into(), &fx.admin)
        .await;
    assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
    assert_eq!(response.body["status"], "active");
    let ranges = response.body["release"]["ranges_total"]
        .as_i64()
        .expect("a release job");
    assert_eq!(ranges, (10_127 + BATCH - 1) / BATCH, "{}", response.body);
    let campaign = wait_for_release(&app, &fx, id).await;
    assert_eq!(campaign["release"]["status"], "done", "{campaign}");
    assert_eq!(campaign["release"]["ranges_done"], json!(ranges));

    assert_eq!(outcomes(&app.db().await, id).await, expected);
    let released = expected.iter().filter(|row| row.3).count() as i64;
    assert_eq!(
        app.count(
            "select count(*) from customer_contacts where campaign_id = $1",
            &[&id]
        )
        .await,
        released,
        "one ledger row per released delivery"
    );
    let summary = app.campaign_summary(&fx, id.into()).await;
    assert_eq!(summary["released"], json!(released), "{summary}");
    assert_eq!(summary["awaiting_release"], 0, "{summary}");
}

/// Polls campaign `id` until its release job is no longer running (at most 60 s).
async fn wait_for_release(app: &TestApp, fx: &TenantFixture, id: i32) -> Value {
    let path = format!("/tenants/{}/campaigns/{id}", fx.tenant);
    for _ in 0..600 {
        let campaign = app.get(&path, &fx.admin).await.expect(StatusCode::OK).body;
        if campaign["release"]["status"] != "running" {
            return campaign;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("campaign {id}'s release did not finish within 60 s");
}

/// The test's own processor and its queue's receiver: it runs the messages the test hands it.
fn processor(app: &TestApp) -> (Processor, InProcessReceiver) {
    let (queue, receiver) = Queue::in_process();
    (
        Processor {
            pool: app.state.platform.clone(),
            queue,
            range_size: 2_000,
            imports: None,
        },
        receiver,
    )
}

/// Takes every unsent outbox message (as a relay would, committed) and answers their bodies.
async fn take_outbox(app: &TestApp) -> Vec<CampaignJob> {
    let mut client = app.state.platform.get().await.expect("client");
    let tx = client.transaction().await.expect("tx");
    let jobs = shared::db::outbox::take(&tx, None, 10_000)
        .await
        .expect("take");
    tx.commit().await.expect("commit");
    jobs
}

/// Runs the outbox's and the processor's own messages through `processor` until none are
/// left; answers the outcomes of the release messages.
async fn run_all(
    app: &TestApp,
    processor: &Processor,
    receiver: &mut InProcessReceiver,
) -> Vec<Outcome> {
    let mut released = Vec::new();
    loop {
        let mut bodies: Vec<String> = take_outbox(app)
            .await
            .iter()
            .map(|job| serde_json::to_string(job).expect("json"))
            .collect();
        while let Ok(message) = receiver.messages.try_recv() {
            bodies.push(message.body);
        }
        if bodies.is_empty() {
            return released;
        }
        for body in bodies {
            let release = body.contains(r#""step":"release""#);
            let outcome = processor.handle_body(&body).await.expect("handled");
            if release {
                released.push(outcome);
            }
        }
    }
}

/// An app whose API queue refuses every message and no relay runs: the test moves the
/// outbox itself.
async fn app_without_relay() -> TestApp {
    TestApp::spawn_with(TestOptions {
        api_queue_broken: true,
        release_batch: Some(BATCH),
        ..TestOptions::without_relay()
    })
    .await
}

/// A campaign over everyone, selected by `processor`, then activated: answers its id and
/// its release job.
async fn activated(
    app: &TestApp,
    fx: &TenantFixture,
    processor: &Processor,
    receiver: &mut InProcessReceiver,
) -> (i32, Uuid) {
    app.import_demo_customers().await;
    let created = NewCampaign::of(fx.offer_id)
        .name("Everyone")
        .criteria(everyone())
        .post(app, &fx.tenant, &fx.maker)
        .await
        .expect(StatusCode::ACCEPTED);
    let id = i32::try_from(created.body["id"].as_i64().expect("id")).expect("small");
    run_all(app, processor, receiver).await;
    let response = app
        .activate_campaign(&fx.tenant, id.into(), &fx.admin)
        .await;
    assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
    assert_eq!(response.body["release"]["status"], "running");
    (id, release_job(app, id).await)
}

/// Campaign `id`'s current release job.
async fn release_job(app: &TestApp, id: i32) -> Uuid {
    app.db()
        .await
        .query_one("select release_job from campaigns where id = $1", &[&id])
        .await
        .expect("job")
        .get(0)
}

/// The next message the processor's fast path sent (the chain's next range).
fn next_sent(receiver: &mut InProcessReceiver) -> String {
    receiver
        .messages
        .try_recv()
        .expect("the next range's message was sent")
        .body
}

/// Campaign `id`'s released deliveries.
async fn released(app: &TestApp, id: i32) -> i64 {
    app.count(
        "select count(*) from campaign_customers
         where campaign_id = $1 and released_at is not null",
        &[&id],
    )
    .await
}

#[tokio::test]
async fn a_killed_redelivered_or_lost_range_still_releases_each_delivery_once() {
    let app = app_without_relay().await;
    let fx = app.tenant_with_offer("credit_card").await;
    let (processor, mut receiver) = processor(&app);
    let (id, job) = activated(&app, &fx, &processor, &mut receiver).await;
    // The activation wrote the first range's message only: the ranges run one after another.
    let mut messages = take_outbox(&app).await;
    assert_eq!(messages.len(), 1, "{messages:?}");
    let first = messages.remove(0);
    assert_eq!((first.step, first.job_id), (JobStep::Release, job));
    let range = first.range.expect("range");
    assert_eq!((range.index, range.count), (0, 11));

    // A range killed before its commit (`kill -9` mid-transaction) leaves nothing behind,
    // not even the next range's message.
    {
        let mut client = app.state.platform.get().await.expect("client");
        let tenant = TenantName::parse(&fx.tenant).expect("tenant");
        let tx = TenantTx::begin(&mut client, &tenant).await.expect("begin");
        let outcome = releases::release_range(&tx, id, job, range)
            .await
            .expect("range");
        assert!(
            matches!(outcome, RangeOutcome::Released { .. }),
            "{outcome:?}"
        );
        drop(tx);
    }
    assert_eq!(released(&app, id).await, 0);
    assert!(take_outbox(&app).await.is_empty());
    // Its redelivery releases it and sends the next; a second redelivery changes nothing.
    let body = serde_json::to_string(&first).expect("json");
    let outcome = processor.handle_body(&body).await.expect("range");
    assert!(
        matches!(
            outcome,
            Outcome::Released {
                finished: false,
                ..
            }
        ),
        "{outcome:?}"
    );
    let after_first = outcomes(&app.db().await, id).await;
    assert!(released(&app, id).await > 0);
    assert_eq!(
        processor.handle_body(&body).await.expect("again"),
        Outcome::Duplicate
    );
    assert_eq!(outcomes(&app.db().await, id).await, after_first);

    // The next range's message is lost (taken from the queue, never handled): the chain
    // stops, and the job makes no progress.
    let lost = next_sent(&mut receiver);
    assert!(lost.contains(r#""index":1"#), "{lost}");
    assert!(run_all(&app, &processor, &mut receiver).await.is_empty());
    let path = format!("/tenants/{}/campaigns/{id}", fx.tenant);
    let campaign = app.get(&path, &fx.admin).await.expect(StatusCode::OK).body;
    assert_eq!(campaign["release"]["status"], "running", "{campaign}");
    assert_eq!(campaign["release"]["ranges_done"], 1);

    // The relay finds the job stale and writes the first unreleased range again; the chain
    // goes on from there to the end.
    let relay = Relay {
        pool: app.state.platform.clone(),
        queue: Queue::in_process().0,
        policy: RedrivePolicy {
            stale_after: Duration::ZERO,
            max_attempts: 3,
        },
        release_batch: app.state.release_batch,
    };
    let sweep = relay.sweep().await.expect("sweep");
    assert_eq!(
        (sweep.releases_redriven, sweep.ranges_redriven),
        (1, 1),
        "{sweep:?}"
    );
    let rest = run_all(&app, &processor, &mut receiver).await;
    assert_eq!(rest.len(), 10, "{rest:?}");
    assert!(
        matches!(rest.last(), Some(Outcome::Released { finished: true, .. })),
        "{rest:?}"
    );
    let campaign = app.get(&path, &fx.admin).await.expect(StatusCode::OK).body;
    assert_eq!(campaign["release"]["status"], "done", "{campaign}");
    assert_eq!(campaign["release"]["ranges_done"], 11, "{campaign}");
    assert_eq!(campaign["release"]["attempts"], 2, "{campaign}");
    // A late copy of any of its messages changes nothing.
    assert_eq!(
        processor.handle_body(&lost).await.expect("late"),
        Outcome::Stale
    );

    // Every delivery released once, with one ledger row each.
    let all = app
        .count(
            "select count(*) from campaign_customers where campaign_id = $1",
            &[&id],
        )
        .await;
    assert_eq!(released(&app, id).await, all, "no cap, no holdout: all");
    assert_eq!(
        app.count(
            "select count(*) from customer_contacts where campaign_id = $1",
            &[&id]
        )
        .await,
        all
    );
    assert_eq!(
        app.count(
            "select coalesce(sum(released), 0)::int8 from campaign_release_ranges
             where campaign_id = $1 and job_id = $2",
            &[&id, &job]
        )
        .await,
        all,
        "the ranges' own counts add up"
    );
    // Nothing is left to re-drive.
    assert_eq!(relay.sweep().await.expect("sweep").releases_redriven, 0);
}

#[tokio::test]
async fn a_paused_campaign_releases_nothing_more_until_it_is_activated_again() {
    let app = app_without_relay().await;
    let fx = app.tenant_with_offer("credit_card").await;
    let (processor, mut receiver) = processor(&app);
    let (id, job) = activated(&app, &fx, &processor, &mut receiver).await;
    // Two ranges run, then the campaign is paused.
    let first = serde_json::to_string(&take_outbox(&app).await[0]).expect("json");
    processor.handle_body(&first).await.expect("range 0");
    processor
        .handle_body(&next_sent(&mut receiver))
        .await
        .expect("range 1");
    let third = next_sent(&mut receiver);
    let path = format!("/tenants/{}/campaigns/{id}", fx.tenant);
    let paused = app
        .put(&path, &fx.admin, json!({"status": "paused"}))
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(paused["release"]["status"], "stopped", "{paused}");
    assert_eq!(paused["release"]["ranges_done"], 2, "{paused}");
    let released_before = released(&app, id).await;
    assert!(released_before > 0);
    // The stopped job's next message releases nothing.
    assert_eq!(
        processor.handle_body(&third).await.expect("range 2"),
        Outcome::Stale
    );
    assert_eq!(released(&app, id).await, released_before);
    // Activated again: a new job releases the rest; the old job's messages stay stale, and
    // a second release is refused while it runs.
    let resumed = app
        .put(&path, &fx.admin, json!({"status": "active"}))
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(resumed["release"]["status"], "running", "{resumed}");
    assert_eq!(resumed["release"]["ranges_done"], 0, "{resumed}");
    let refused = app
        .post(&format!("{path}/release"), &fx.admin, json!({}))
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{:?}", refused.body);
    assert_eq!(
        processor.handle_body(&third).await.expect("old range"),
        Outcome::Stale
    );
    run_all(&app, &processor, &mut receiver).await;
    let done = app.get(&path, &fx.admin).await.expect(StatusCode::OK).body;
    assert_eq!(done["release"]["status"], "done", "{done}");
    assert_ne!(release_job(&app, id).await, job);
    assert_eq!(
        app.count(
            "select count(*) from campaign_customers
             where campaign_id = $1 and released_at is null",
            &[&id]
        )
        .await,
        0,
        "everyone released in the end"
    );
    // Once done, a release of the campaign (its size decides: a job) finds nothing left.
    let again = app
        .post(&format!("{path}/release"), &fx.admin, json!({}))
        .await
        .expect(StatusCode::ACCEPTED)
        .body;
    assert_eq!(again["status"], "running", "{again}");
    assert_eq!(again["released"], 0, "{again}");
    run_all(&app, &processor, &mut receiver).await;
    let job = release_job(&app, id).await;
    let done = app.get(&path, &fx.admin).await.expect(StatusCode::OK).body;
    assert_eq!(done["release"]["status"], "done", "{done}");
    assert_eq!(
        app.count(
            "select coalesce(sum(released + suppressed_by_pressure + suppressed_by_consent
                                 + control), 0)::int8
             from campaign_release_ranges where campaign_id = $1 and job_id = $2",
            &[&id, &job]
        )
        .await,
        0
    );
}

#[tokio::test]
async fn the_scheduler_starts_a_large_campaign_by_a_release_job_the_relay_sends() {
    let app = TestApp::spawn_with(TestOptions {
        release_batch: Some(BATCH),
        ..TestOptions::without_relay()
    })
    .await;
    app.import_demo_customers().await;
    let fx = app.tenant_with_offer("credit_card").await;
    let (tomorrow, later) = (utc_day(&app, 1).await, utc_day(&app, 20).await);
    let created = NewCampaign::of(fx.offer_id)
        .criteria(everyone())
        .with("start_date", json!(tomorrow))
        .with("end_date", json!(later))
        .post(&app, &fx.tenant, &fx.maker)
        .await
        .expect(StatusCode::ACCEPTED);
    let id = created.body["id"].as_i64().expect("id");
    app.wait_for_processing(&fx.tenant, id, &fx.admin).await;
    let scheduled = app
        .activate_campaign(&fx.tenant, id, &fx.admin)
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(scheduled["status"], "scheduled", "{scheduled}");
    assert_eq!(
        scheduled["release"],
        Value::Null,
        "nothing released before the start"
    );
    // A day later, the relay's scheduler run starts it: the campaign is active at once and
    // its release job, sent by the same run, releases the ranges on the queue.
    app.db()
        .await
        .execute(
            "update campaigns set start_date = start_date - 1, end_date = end_date - 1
             where id = $1",
            &[&i32::try_from(id).expect("small")],
        )
        .await
        .expect("a day later");
    let relay = Relay {
        pool: app.state.platform.clone(),
        queue: app.state.queue().expect("queue").clone(),
        policy: RedrivePolicy::default(),
        release_batch: app.state.release_batch,
    };
    let report = relay.run_once("test").await.expect("relay");
    assert_eq!(report.calendar.started, 1, "{report:?}");
    assert!(report.sent >= 1, "the first range was sent: {report:?}");
    let id = i32::try_from(id).expect("small");
    let campaign = wait_for_release(&app, &fx, id).await;
    assert_eq!(campaign["status"], "active", "{campaign}");
    assert_eq!(campaign["release"]["status"], "done", "{campaign}");
    assert_eq!(campaign["release"]["ranges_done"], 11, "{campaign}");
    let summary = app.campaign_summary(&fx, id.into()).await;
    assert_eq!(summary["awaiting_release"], 0, "{summary}");
    assert_eq!(
        app.count(
            "select count(*) from customer_contacts where campaign_id = $1",
            &[&id]
        )
        .await,
        summary["released"].as_i64().expect("n")
    );
}
