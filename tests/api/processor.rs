//! The campaign processor's batch handler, fed SQS event JSON as Lambda delivers it: partial
//! batch failures, duplicated and stale messages, and range-split jobs on the real data set.

use aws_lambda_events::event::sqs::SqsEvent;
use campaign_processor::{Outcome, Processor};
use integration_tests::{TenantFixture, TestApp, TestOptions};
use serde_json::{Value, json};
use shared::queue::{CampaignJob, Queue};
use uuid::Uuid;

/// The job id written into `events/campaign-processor/sqs-batch.json`.
const FIXTURE_JOB: &str = "0193a5e0-7c1d-7b6e-9a41-5d2f0c8e1a01";

fn fixture() -> SqsEvent {
    let file = format!(
        "{}/../events/campaign-processor/sqs-batch.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(file).expect("fixture")).expect("SQS event")
}

fn event(bodies: &[String]) -> SqsEvent {
    let mut event = fixture();
    let template = event.records[0].clone();
    event.records = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            let mut message = template.clone();
            message.message_id = Some(format!("message-{i}"));
            message.body = Some(body.clone());
            message
        })
        .collect();
    event
}

/// A campaign over the real data, processed once by the app's own queue, then given the
/// fixture's job id as its current (queued) job.
async fn campaign_with_fixture_job(app: &TestApp, fx: &TenantFixture, criteria: Value) -> i32 {
    let response = integration_tests::NewCampaign::of(fx.offer_id)
        .name("c")
        .criteria(criteria)
        .post(app, &fx.tenant, &fx.maker)
        .await;
    let id = response.body["id"].as_i64().expect("id");
    app.wait_for_processing(&fx.tenant, id, &fx.admin).await;
    let id = i32::try_from(id).expect("small id");
    let job = Uuid::parse_str(FIXTURE_JOB).expect("uuid");
    app.db()
        .await
        .execute(
            "update campaigns set processing_job = $2, processing_status = 'queued' where id = $1",
            &[&id, &job],
        )
        .await
        .expect("set job");
    app.db()
        .await
        .execute(
            "delete from campaign_customers where campaign_id = $1",
            &[&id],
        )
        .await
        .expect("clear");
    id
}

fn processor(app: &TestApp, range_size: i64) -> (Processor, shared::queue::InProcessReceiver) {
    let (queue, receiver) = Queue::in_process();
    (
        Processor {
            pool: app.state.platform.clone(),
            queue,
            range_size,
            imports: None,
        },
        receiver,
    )
}

#[tokio::test]
async fn a_batch_reports_only_the_failed_message_and_duplicates_change_nothing() {
    let app = TestApp::spawn_with(TestOptions::without_relay()).await;
    app.import_demo_customers().await;
    let fx = app.tenant_with_offer("credit_card").await;
    let id = campaign_with_fixture_job(&app, &fx, json!({"segment": "platinum"})).await;
    assert_eq!(id, 1, "the fixture names campaign 1");
    let (processor, _receiver) = processor(&app, 1_000_000);

    let response = processor.handle_batch(fixture()).await;
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(
        failed,
        ["059f36b4-87a3-44ab-83d2-661975830a7d"],
        "only the malformed one"
    );
    let expected = app
        .count(
            "select count(*) from customers where segment = 'platinum' and is_active",
            &[],
        )
        .await;
    let selected = "select count(*) from campaign_customers where campaign_id = 1";
    assert_eq!(app.count(selected, &[]).await, expected);
    let campaign = app
        .get("/tenants/credit_card/campaigns/1", &fx.viewer)
        .await
        .body;
    assert_eq!(campaign["processing_status"], "done");
    assert_eq!(campaign["matched_count"].as_i64(), Some(expected));

    // The same valid message again, twice in one batch: acknowledged, nothing changes.
    let body = fixture().records[0].body.clone().expect("body");
    let response = processor
        .handle_batch(event(&[body.clone(), body.clone()]))
        .await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(
        processor.handle_body(&body).await.expect("ok"),
        Outcome::Duplicate
    );
    assert_eq!(app.count(selected, &[]).await, expected);
}

#[tokio::test]
async fn unknown_campaigns_fail_and_stale_jobs_are_ignored() {
    let app = TestApp::spawn_with(TestOptions::without_relay()).await;
    app.import_demo_customers().await;
    let fx = app.tenant_with_offer("credit_card").await;
    let id = campaign_with_fixture_job(&app, &fx, json!({"segment": "gold"})).await;
    let (processor, _receiver) = processor(&app, 1_000_000);
    let job = |campaign_id: i32, tenant: &str, job_id: Uuid| {
        serde_json::to_string(&CampaignJob {
            campaign_id,
            tenant_name: shared::domain::TenantName::parse(tenant).expect("tenant"),
            job_id,
            range: None,
            step: shared::queue::JobStep::Select,
        })
        .expect("json")
    };
    let bodies = [
        job(999, "credit_card", Uuid::new_v4()),
        job(id, "loan", Uuid::new_v4()),
        job(id, "credit_card", Uuid::new_v4()),
        r#"{"campaign_id": 1, "tenant_name": "credit_card"}"#.to_owned(),
    ];
    let response = processor.handle_batch(event(&bodies)).await;
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["message-0", "message-1", "message-3"]);
    assert_eq!(
        processor.handle_body(&bodies[2]).await.expect("stale"),
        Outcome::Stale
    );
    assert_eq!(
        app.count("select count(*) from campaign_customers", &[])
            .await,
        0,
        "a stale job selects nobody"
    );
}

#[tokio::test]
async fn a_split_job_spreads_over_range_messages_and_redelivery_changes_nothing() {
    let app = TestApp::spawn_with(TestOptions::without_relay()).await;
    app.import_demo_customers().await;
    let fx = app.tenant_with_offer("credit_card").await;
    let criteria = json!({"segment": {"in": ["blue", "silver"]}, "kyc_status": "verified", "credit_score": {"gte": 650}});
    let id = campaign_with_fixture_job(&app, &fx, criteria).await;
    let (processor, mut receiver) = processor(&app, 1_000);
    let plan = fixture().records[0].body.clone().expect("body");
    assert_eq!(
        processor.handle_body(&plan).await.expect("plan"),
        Outcome::Split {
            ranges: 11,
            sent: 11
        }
    );
    assert_eq!(
        processor.handle_body(&plan).await.expect("again"),
        Outcome::Duplicate
    );
    let mut bodies = Vec::new();
    while let Ok(message) = receiver.messages.try_recv() {
        bodies.push(message.body);
    }
    assert_eq!(bodies.len(), 11, "one message per range");
    // Deliver every range, the first three twice (as SQS may).
    let mut deliveries = bodies.clone();
    deliveries.extend(bodies[..3].iter().cloned());
    let mut finished = Vec::new();
    for body in &deliveries {
        match processor.handle_body(body).await.expect("range") {
            Outcome::RangeDone {
                finished: Some(job),
                ..
            } => finished.push(job.matched),
            Outcome::RangeDone { finished: None, .. } | Outcome::Duplicate => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    let expected = app
        .count(
            "select count(*) from customers where segment in ('blue', 'silver')
               and kyc_status = 'verified' and credit_score >= 650 and is_active",
            &[],
        )
        .await;
    assert_eq!(
        finished,
        [expected],
        "the last range finishes the job, once"
    );
    assert_eq!(
        app.count(
            "select count(*) from campaign_customers where campaign_id = $1",
            &[&id]
        )
        .await,
        expected
    );
    let spread = app
        .count(
            "select count(*) from campaign_processing_ranges where campaign_id = $1 and inserted > 0",
            &[&id],
        )
        .await;
    assert!(
        spread >= 8,
        "the audience is spread over the ranges ({spread} non-empty)"
    );
    let campaign = app
        .get(&format!("/tenants/credit_card/campaigns/{id}"), &fx.viewer)
        .await
        .body;
    assert_eq!(campaign["processing_status"], "done");
    assert_eq!(campaign["ranges_total"], 11);
    assert_eq!(campaign["ranges_done"], 11);
    assert_eq!(campaign["matched_count"].as_i64(), Some(expected));
}
