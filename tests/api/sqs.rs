//! The real SQS path: `aws-sdk-sqs` against an SQS emulator on loopback (moto, started by
//! `infra/scripts/test.sh`, which exports `SQS_TEST_ENDPOINT`). A campaign created over the
//! API puts a message on the queue; the local poller feeds it to the processor as Lambda's
//! event source mapping would; a poison message reaches the dead-letter queue after
//! `maxReceiveCount` receives.

use std::time::Duration;

use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sqs::types::QueueAttributeName;
use axum::http::StatusCode;
use campaign_processor::Processor;
use integration_tests::{TestApp, TestOptions};
use serde_json::json;
use shared::queue::Queue;

const MAX_RECEIVE_COUNT: u32 = 5;

fn client() -> aws_sdk_sqs::Client {
    let endpoint = std::env::var("SQS_TEST_ENDPOINT").expect(
        "SQS_TEST_ENDPOINT must name the SQS emulator; run the tests with infra/scripts/test.sh",
    );
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

/// A fresh queue with its own dead-letter queue (redrive after `MAX_RECEIVE_COUNT`
/// receives, 1 s visibility timeout); returns (queue URL, dead-letter queue URL).
async fn queues(client: &aws_sdk_sqs::Client) -> (String, String) {
    let name = format!("oms-test-{}", uuid::Uuid::new_v4().simple());
    let dlq = client
        .create_queue()
        .queue_name(format!("{name}-dlq"))
        .send()
        .await
        .expect("create dead-letter queue")
        .queue_url
        .expect("url");
    let dlq_arn = client
        .get_queue_attributes()
        .queue_url(&dlq)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("attributes")
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .expect("arn");
    let redrive =
        json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT.to_string()});
    let queue = client
        .create_queue()
        .queue_name(&name)
        .attributes(QueueAttributeName::VisibilityTimeout, "1")
        .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
        .send()
        .await
        .expect("create queue")
        .queue_url
        .expect("url");
    (queue, dlq)
}

#[tokio::test]
async fn a_campaign_travels_through_sqs_and_a_poison_message_is_dead_lettered() {
    let client = client();
    let (queue_url, dlq_url) = queues(&client).await;
    // No background relay: every message must travel through SQS.
    let mut app = TestApp::spawn_with(TestOptions::without_relay()).await;
    let queue = Queue::Sqs {
        client: client.clone(),
        queue_url: queue_url.clone(),
    };
    app.state = app.state.clone().with_queue(queue.clone());
    app.router = offerctl_gateway::app(app.state.clone());
    let processor = Processor {
        pool: app.state.platform.clone(),
        queue,
        range_size: 4_000,
        imports: None,
    };
    app.import_demo_customers().await;
    let fx = app.tenant_with_offer("credit_card").await;
    let created = integration_tests::NewCampaign::of(fx.offer_id)
        .name("Via SQS")
        .criteria(json!({"segment": {"in": ["gold", "platinum"]}, "kyc_status": "verified"}))
        .post(&app, "credit_card", &fx.maker)
        .await
        .expect(StatusCode::ACCEPTED);
    let id = created.body["id"].as_i64().expect("id");
    // A poison message on the same queue.
    client
        .send_message()
        .queue_url(&queue_url)
        .message_body("{\"campaign_id\": \"not a number\"}")
        .send()
        .await
        .expect("send poison");

    let path = format!("/tenants/credit_card/campaigns/{id}");
    let mut done = None;
    let mut dead_lettered = Vec::new();
    for _ in 0..60 {
        offerctl_gateway::worker::poll_sqs_once(&client, &queue_url, &processor, 1)
            .await
            .expect("poll");
        let campaign = app.get(&path, &fx.viewer).await.body;
        if campaign["processing_status"] == "done" {
            done = Some(campaign);
        }
        let received = client
            .receive_message()
            .queue_url(&dlq_url)
            .max_number_of_messages(10)
            .send()
            .await
            .expect("read dead-letter queue");
        dead_lettered.extend(
            received
                .messages
                .unwrap_or_default()
                .into_iter()
                .filter_map(|m| m.body),
        );
        if done.is_some() && !dead_lettered.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let campaign = done.expect("the campaign was processed through SQS");
    let expected = app
        .count(
            "select count(*) from customers where segment in ('gold', 'platinum')
               and kyc_status = 'verified' and is_active",
            &[],
        )
        .await;
    assert_eq!(campaign["matched_count"].as_i64(), Some(expected));
    assert_eq!(
        campaign["ranges_total"], 3,
        "10,127 customers at 4,000 per range"
    );
    assert_eq!(
        app.count(
            "select count(*) from campaign_customers where campaign_id = $1",
            &[&(id as i32)]
        )
        .await,
        expected
    );
    assert_eq!(dead_lettered, ["{\"campaign_id\": \"not a number\"}"]);
}
