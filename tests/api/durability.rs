//! Durable campaign processing: what a crash, a lost message or a database outage at each
//! step leaves behind, and that the platform finishes the work by itself.
//!
//! - The API commits a campaign and dies before the queue took its job (its queue refuses
//!   every message): the relay sends the job from the outbox.
//! - A plan commits its ranges and dies before sending them; then a range message is lost:
//!   the relay sends what the outbox holds, then re-drives exactly the unfinished ranges.
//! - A job that never progresses is given up after the maximum attempts, with a `last_error`
//!   that says how to start again, which works.
//! - A half-selected audience is never listed, counted or activated (409), also while an
//!   active campaign is re-processed.
//! - Backends terminated under load: 503 with `Retry-After`, then recovery without a
//!   restart, and every campaign completes exactly once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::http::{Method, StatusCode, header};
use campaign_processor::{Outcome, Processor};
use integration_tests::{TenantFixture, TestApp, TestOptions};
use serde_json::{Value, json};
use shared::config::RedrivePolicy;
use shared::db::outbox;
use shared::domain::TenantName;
use shared::queue::{CampaignJob, InProcessReceiver, Queue};
use shared::relay::{Relay, SweepReport};
use uuid::Uuid;

/// Spread over 11 ranges of 1,000 customers (10,127 demo customers).
const CRITERIA: &str = r#"{"segment": {"in": ["blue", "silver"]}, "kyc_status": "verified",
    "credit_score": {"gte": 650}}"#;
const MATCHING: &str = "select count(*) from customers where segment in ('blue', 'silver')
    and kyc_status = 'verified' and credit_score >= 650 and is_active";

fn criteria() -> Value {
    serde_json::from_str(CRITERIA).expect("criteria")
}

/// The API's queue refuses every message (as if it died after its commit) and no background
/// relay runs: the test moves the outbox itself.
fn api_crashes_after_commit() -> TestOptions {
    TestOptions {
        api_queue_broken: true,
        ..TestOptions::without_relay()
    }
}

/// A relay on `queue` that treats every job as stale at once.
fn eager_relay(app: &TestApp, queue: &Queue, max_attempts: i32) -> Relay {
    Relay {
        pool: app.state.platform.clone(),
        queue: queue.clone(),
        policy: RedrivePolicy {
            stale_after: Duration::ZERO,
            max_attempts,
        },
        release_batch: app.state.release_batch,
    }
}

fn processor(app: &TestApp, queue: &Queue) -> Processor {
    Processor {
        pool: app.state.platform.clone(),
        queue: queue.clone(),
        range_size: 1_000,
        imports: None,
    }
}

fn drain(receiver: &mut InProcessReceiver) -> Vec<String> {
    let mut bodies = Vec::new();
    while let Ok(message) = receiver.messages.try_recv() {
        bodies.push(message.body);
    }
    bodies
}

async fn create_campaign(app: &TestApp, fx: &TenantFixture) -> i64 {
    let created = integration_tests::NewCampaign::of(fx.offer_id)
        .name("durable")
        .criteria(criteria())
        .post(app, &fx.tenant, &fx.maker)
        .await
        .expect(StatusCode::ACCEPTED);
    assert_eq!(created.body["processing_status"], "queued");
    created.body["id"].as_i64().expect("id")
}

async fn campaign(app: &TestApp, fx: &TenantFixture, id: i64) -> Value {
    app.get(
        &format!("/tenants/{}/campaigns/{id}", fx.tenant),
        &fx.viewer,
    )
    .await
    .body
}

/// Asserts that the campaign's customers, their summary and its activation answer 409.
async fn assert_audience_hidden(app: &TestApp, fx: &TenantFixture, id: i64) {
    let base = format!("/tenants/{}/campaigns/{id}", fx.tenant);
    for path in [
        format!("{base}/customers"),
        format!("{base}/customers/summary"),
    ] {
        let response = app.get(&path, &fx.admin).await;
        assert_eq!(
            response.status,
            StatusCode::CONFLICT,
            "{path}: {:?}",
            response.body
        );
        assert!(
            response.body["detail"]
                .as_str()
                .is_some_and(|d| d.contains("not complete")),
            "{:?}",
            response.body
        );
    }
    let activate = app.activate_campaign(&fx.tenant, id, &fx.admin).await;
    assert_eq!(activate.status, StatusCode::CONFLICT, "{:?}", activate.body);
}

#[tokio::test]
async fn a_job_the_queue_never_took_after_the_commit_finishes_by_itself() {
    // The API's queue refuses everything, as if the process died right after its commit;
    // only the background relay (as `offerctl serve` runs it) can deliver the job.
    let app = TestApp::spawn_with(TestOptions {
        relay_interval: Some(Duration::from_millis(200)),
        api_queue_broken: true,
        ..TestOptions::default()
    })
    .await;
    app.import_demo_customers().await;
    let fx = app.tenant_with_offer("credit_card").await;
    let expected = app.count(MATCHING, &[]).await;

    let id = create_campaign(&app, &fx).await;
    let done = app.wait_for_processing(&fx.tenant, id, &fx.admin).await;
    assert_eq!(done["processing_status"], "done", "{done}");
    assert_eq!(done["matched_count"].as_i64(), Some(expected));

    // The same for re-processing.
    let path = format!("/tenants/{}/campaigns/{id}/process-customers", fx.tenant);
    let queued = app.post(&path, &fx.admin, json!({})).await;
    assert_eq!(queued.status, StatusCode::ACCEPTED, "{:?}", queued.body);
    assert_eq!(queued.body["processing_status"], "queued");
    let done = app.wait_for_processing(&fx.tenant, id, &fx.admin).await;
    assert_eq!(done["processing_status"], "done", "{done}");
    assert_eq!(done["processing_attempts"], 1, "delivered, not re-driven");
    assert_eq!(
        app.count("select count(*) from campaign_outbox", &[]).await,
        0
    );
}

#[tokio::test]
async fn unsent_ranges_are_relayed_and_a_lost_range_is_re_driven_alone() {
    let app = TestApp::spawn_with(api_crashes_after_commit()).await;
    app.import_demo_customers().await;
    let fx = app.tenant_with_offer("credit_card").await;
    let expected = app.count(MATCHING, &[]).await;
    let id = create_campaign(&app, &fx).await;
    let campaign_id = i32::try_from(id).expect("small id");
    let job_id: Uuid = app
        .db()
        .await
        .query_one(
            "select processing_job from campaigns where id = $1",
            &[&campaign_id],
        )
        .await
        .expect("job")
        .get(0);
    let plan = serde_json::to_string(&CampaignJob {
        campaign_id,
        tenant_name: TenantName::parse("credit_card").expect("tenant"),
        job_id,
        range: None,
        step: shared::queue::JobStep::Select,
    })
    .expect("json");

    // The planner commits its 11 ranges and dies before sending them (its queue is gone).
    let (dead, receiver) = Queue::in_process();
    drop(receiver);
    let outcome = processor(&app, &dead).handle_body(&plan).await;
    assert_eq!(
        outcome.expect("plan"),
        Outcome::Split {
            ranges: 11,
            sent: 0
        }
    );
    let pending = outbox::pending(&app.db().await, Some(job_id)).await;
    assert_eq!(pending.expect("pending"), 12, "the plan and its 11 ranges");
    assert_audience_hidden(&app, &fx, id).await;

    // The relay sends them; the running job is not stale while its messages wait.
    let (queue, mut receiver) = Queue::in_process();
    let relay = eager_relay(&app, &queue, 3);
    let report = relay.run_once("test").await.expect("relay");
    assert_eq!(report.sweep, SweepReport::default());
    assert_eq!(report.sent, 12);
    let bodies = drain(&mut receiver);
    let worker = processor(&app, &queue);
    // The plan again (already planned) is a duplicate; five ranges are expanded, six lost.
    assert_eq!(
        worker.handle_body(&bodies[0]).await.expect("plan"),
        Outcome::Duplicate
    );
    for body in &bodies[1..6] {
        worker.handle_body(body).await.expect("range");
    }
    let running = campaign(&app, &fx, id).await;
    assert_eq!(running["processing_status"], "running");
    assert_eq!(running["ranges_done"], 5);
    assert_audience_hidden(&app, &fx, id).await;

    // Stale now: exactly the six unfinished ranges are sent again, as attempt 2. (The refused
    // activation above may still hold its row lock until its rollback reaches the server;
    // the sweep skips locked campaigns, so it may take a second run.)
    let mut report = relay.run_once("test").await.expect("relay");
    for _ in 0..50 {
        if report.sweep.jobs_redriven > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        report = relay.run_once("test").await.expect("relay");
    }
    assert_eq!(
        report.sweep,
        SweepReport {
            jobs_redriven: 1,
            ranges_redriven: 6,
            jobs_failed: 0,
            ..SweepReport::default()
        }
    );
    let again = drain(&mut receiver);
    assert_eq!(again.len(), 6);
    assert!(again.iter().all(|body| !bodies[1..6].contains(body)));
    let mut finished = Vec::new();
    for body in &again {
        if let Outcome::RangeDone {
            finished: Some(job),
            ..
        } = worker.handle_body(body).await.expect("range")
        {
            finished.push(job.matched);
        }
    }
    assert_eq!(finished, [expected]);
    let done = campaign(&app, &fx, id).await;
    assert_eq!(done["processing_status"], "done", "{done}");
    assert_eq!(done["processing_attempts"], 2);
    assert_eq!(done["matched_count"].as_i64(), Some(expected));
    assert_eq!(done["last_error"], Value::Null);
    let summary = app
        .get(
            &format!("/tenants/credit_card/campaigns/{id}/customers/summary"),
            &fx.viewer,
        )
        .await;
    assert_eq!(summary.status, StatusCode::OK);
    assert_eq!(summary.body["total"].as_i64(), Some(expected));
    let activate = app.activate_campaign(&fx.tenant, id, &fx.admin).await;
    assert_eq!(activate.status, StatusCode::OK, "{:?}", activate.body);
}

#[tokio::test]
async fn a_job_without_progress_is_given_up_after_the_maximum_attempts() {
    let app = TestApp::spawn_with(api_crashes_after_commit()).await;
    app.import_demo_customers().await;
    let fx = app.tenant_with_offer("credit_card").await;
    let id = create_campaign(&app, &fx).await;

    // Every message goes to a queue nobody consumes.
    let (black_hole, mut held) = Queue::in_process();
    let relay = eager_relay(&app, &black_hole, 3);
    let first = relay.run_once("test").await.expect("relay");
    assert_eq!((first.sweep.jobs_redriven, first.sent), (0, 1));
    for attempt in [2, 3] {
        let report = relay.run_once("test").await.expect("relay");
        assert_eq!(
            (report.sweep.jobs_redriven, report.sweep.ranges_redriven),
            (1, 1),
            "the plan again"
        );
        let state = campaign(&app, &fx, id).await;
        assert_eq!(state["processing_attempts"], attempt);
        assert_eq!(state["processing_status"], "queued");
        assert!(
            state["last_error"]
                .as_str()
                .is_some_and(|e| e.contains(&format!("attempt {attempt} of 3"))),
            "{state}"
        );
    }
    let last = relay.run_once("test").await.expect("relay");
    assert_eq!(last.sweep.jobs_failed, 1);
    assert_eq!(last.sent, 0);
    let failed = campaign(&app, &fx, id).await;
    assert_eq!(failed["processing_status"], "failed");
    let reason = failed["last_error"].as_str().expect("last_error");
    assert!(reason.contains("after 3 attempts"), "{reason}");
    assert!(
        reason.contains(&format!(
            "POST /tenants/credit_card/campaigns/{id}/process-customers"
        )),
        "{reason}"
    );
    assert_audience_hidden(&app, &fx, id).await;
    // A failed job stays failed: nothing more is sent for it.
    assert_eq!(
        relay.run_once("test").await.expect("relay"),
        Default::default()
    );

    // Doing what last_error says starts a new job, which completes.
    let path = format!("/tenants/credit_card/campaigns/{id}/process-customers");
    let retried = app.post(&path, &fx.admin, json!({})).await;
    assert_eq!(retried.status, StatusCode::ACCEPTED);
    assert_eq!(retried.body["processing_attempts"], 1);
    assert_eq!(retried.body["last_error"], Value::Null);
    drain(&mut held);
    let (queue, mut receiver) = Queue::in_process();
    let worker = Processor {
        range_size: 1_000_000,
        imports: None,
        ..processor(&app, &queue)
    };
    eager_relay(&app, &queue, 3)
        .run_once("test")
        .await
        .expect("relay");
    for body in drain(&mut receiver) {
        worker.handle_body(&body).await.expect("job");
    }
    let done = campaign(&app, &fx, id).await;
    assert_eq!(done["processing_status"], "done", "{done}");
    assert_eq!(
        done["matched_count"].as_i64(),
        Some(app.count(MATCHING, &[]).await)
    );
}

#[tokio::test]
async fn re_processing_an_active_campaign_hides_its_audience_until_the_new_one_is_complete() {
    let app = TestApp::spawn_with(TestOptions::without_relay()).await;
    app.import_demo_customers().await;
    let fx = app.tenant_with_offer("credit_card").await;
    let id = app.processed_campaign(&fx, "active", criteria()).await;
    let base = format!("/tenants/credit_card/campaigns/{id}");
    let activated = app.activate_campaign(&fx.tenant, id, &fx.admin).await;
    assert_eq!(activated.status, StatusCode::OK, "{:?}", activated.body);
    let before = app.count(MATCHING, &[]).await;
    // A new customer who matches.
    app.db()
        .await
        .execute(
            "insert into customers (full_name, email, segment, kyc_status, credit_score, is_active)
             values ('New Match', 'new.match@example.com', 'blue', 'verified', 700, true)",
            &[],
        )
        .await
        .expect("insert customer");

    // Re-processing, with the job's message held back: the audience is hidden meanwhile.
    let (held_queue, mut held) = Queue::in_process();
    let api = app.state.clone().with_queue(held_queue.clone());
    let router = offerctl_gateway::app(api);
    let request = axum::http::Request::builder()
        .method(Method::POST)
        .uri(format!("{base}/process-customers"))
        .header(header::AUTHORIZATION, format!("Bearer {}", fx.admin))
        .body(axum::body::Body::empty())
        .expect("request");
    let response = integration_tests::read_response(
        tower::ServiceExt::oneshot(shared::http::into_service(router), request)
            .await
            .expect("infallible"),
    )
    .await;
    assert_eq!(response.status, StatusCode::ACCEPTED, "{:?}", response.body);
    let state = campaign(&app, &fx, id).await;
    assert_eq!(state["status"], "active");
    assert_eq!(state["processing_status"], "queued");
    assert_eq!(state["matched_count"].as_i64(), Some(before), "unchanged");
    for path in [
        format!("{base}/customers"),
        format!("{base}/customers/summary"),
    ] {
        let response = app.get(&path, &fx.viewer).await;
        assert_eq!(response.status, StatusCode::CONFLICT, "{path}");
    }

    let worker = Processor {
        range_size: 1_000_000,
        imports: None,
        ..processor(&app, &held_queue)
    };
    for body in drain(&mut held) {
        worker.handle_body(&body).await.expect("job");
    }
    let done = campaign(&app, &fx, id).await;
    assert_eq!(done["processing_status"], "done");
    assert_eq!(done["matched_count"].as_i64(), Some(before + 1));
    let summary = app
        .get(&format!("{base}/customers/summary"), &fx.viewer)
        .await;
    assert_eq!(summary.status, StatusCode::OK);
    assert_eq!(summary.body["total"].as_i64(), Some(before + 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_connections_answer_503_then_recover_and_lose_nothing() {
    let app = Arc::new(
        TestApp::spawn_with(TestOptions {
            relay_interval: Some(Duration::from_millis(300)),
            policy: RedrivePolicy {
                stale_after: Duration::from_secs(3),
                max_attempts: 20,
            },
            ..TestOptions::default()
        })
        .await,
    );
    app.import_demo_customers().await;
    let fx = Arc::new(app.tenant_with_offer("credit_card").await);
    let expected = app.count(MATCHING, &[]).await;

    // Load: readers of the offer list and writers of campaigns, while every backend of this
    // test's database is terminated again and again.
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for worker in 0..4 {
        let (app, fx, stop) = (app.clone(), fx.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            let mut round = 0;
            while !stop.load(Ordering::Relaxed) {
                round += 1;
                let response = if worker == 0 && round % 4 == 0 {
                    integration_tests::NewCampaign::of(fx.offer_id)
                        .name(&format!("load {round}"))
                        .criteria(criteria())
                        .post(&app, "credit_card", &fx.maker)
                        .await
                } else {
                    app.get("/tenants/credit_card/offers?limit=50", &fx.maker)
                        .await
                };
                answers.push((
                    response.status,
                    response.headers.get(header::RETRY_AFTER).is_some(),
                    response.body.clone(),
                ));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            answers
        }));
    }
    let mut terminated = 0;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        terminated += app.terminate_backends().await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut answers = Vec::new();
    for worker in workers {
        answers.extend(worker.await.expect("worker"));
    }
    assert!(terminated > 0, "backends were terminated");
    let unavailable = answers
        .iter()
        .filter(|(status, ..)| *status == StatusCode::SERVICE_UNAVAILABLE)
        .count();
    for (status, retry_after, body) in &answers {
        assert!(
            [
                StatusCode::OK,
                StatusCode::ACCEPTED,
                StatusCode::SERVICE_UNAVAILABLE
            ]
            .contains(status),
            "{status}: {body}"
        );
        if *status == StatusCode::SERVICE_UNAVAILABLE {
            assert!(retry_after, "503 without Retry-After: {body}");
            assert!(
                !body.to_string().contains("terminating connection"),
                "no internal detail: {body}"
            );
        }
    }
    assert!(
        unavailable > 0,
        "the outage was seen ({} answers)",
        answers.len()
    );

    // Recovered without a restart: the same process answers again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for _ in 0..20 {
        let response = app
            .get("/tenants/credit_card/offers?limit=50", &fx.maker)
            .await;
        assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
    }
    // Every campaign that exists (even one whose 202 was lost to the outage) completes, once.
    let mut pending = i64::MAX;
    for _ in 0..600 {
        pending = app
            .count(
                "select count(*) from campaigns where processing_status <> 'done'",
                &[],
            )
            .await;
        if pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(pending, 0, "every campaign finished");
    let created = answers
        .iter()
        .filter(|(status, ..)| *status == StatusCode::ACCEPTED)
        .count();
    let campaigns = app.count("select count(*) from campaigns", &[]).await;
    assert!(
        usize::try_from(campaigns).expect("count") >= created,
        "{campaigns} < {created}"
    );
    let wrong = app
        .count(
            "select count(*) from campaigns c where matched_count <> $1
               or (select count(*) from campaign_customers cc where cc.campaign_id = c.id) <> $1",
            &[&expected],
        )
        .await;
    assert_eq!(
        wrong, 0,
        "every campaign selected exactly the {expected} matches"
    );
}

#[tokio::test]
async fn a_restart_on_the_in_process_queue_re_drives_the_jobs_the_killed_process_held() {
    // `offerctl serve` relayed the job into its in-process queue (the outbox row is gone)
    // and was killed before processing it: the message died with the process.
    let app = TestApp::spawn_with(api_crashes_after_commit()).await;
    app.import_demo_customers().await;
    let fx = app.tenant_with_offer("credit_card").await;
    let id = create_campaign(&app, &fx).await;
    app.db()
        .await
        .execute("delete from campaign_outbox", &[])
        .await
        .expect("the relay had taken the message");
    assert_eq!(campaign(&app, &fx, id).await["processing_status"], "queued");
    // The next process, on a new in-process queue: at start-up it re-drives at once rather
    // than after CAMPAIGN_STALE_AFTER_SECONDS.
    let queue =
        offerctl_gateway::start_processor(app.state.platform.clone(), None, 1_000, None).await;
    let report = offerctl_gateway::redrive_after_restart(
        app.state.platform.clone(),
        queue,
        3,
        app.state.release_batch,
    )
    .await
    .expect("re-drive");
    assert_eq!(report.sweep.jobs_redriven, 1, "{report:?}");
    let done = app.wait_for_processing(&fx.tenant, id, &fx.admin).await;
    assert_eq!(done["processing_status"], "done", "{done}");
    assert_eq!(
        done["matched_count"].as_i64(),
        Some(app.count(MATCHING, &[]).await)
    );
}
