//! The local gateway: every function's router merged into one axum app, as API Gateway
//! routes them in AWS, plus the campaign processor fed from a queue as Lambda's event source
//! mapping would. Used by `offerctl serve` and by the integration tests.

pub mod worker;

use axum::Router;
use axum::routing::get;
use campaign_processor::Processor;
use deadpool_postgres::Pool;
use serde_json::json;
use shared::AppState;
use shared::queue::Queue;

/// All routes of all functions, plus `GET /health` (liveness, no database access).
pub fn app(state: AppState) -> Router {
    Router::new()
        .route(
            "/health",
            get(|| async { axum::Json(json!({"status": "ok"})) }),
        )
        .merge(auth_api::router())
        .merge(admin_api::router())
        .merge(offers_api::router())
        .merge(campaigns_api::router())
        .merge(customers_api::router())
        .merge(delivery_webhook::router())
        .with_state(state)
}

/// Starts the campaign processor in the background and returns the queue that feeds it:
/// the SQS queue at `queue_url`, polled by a task, or (without a URL) a new in-process
/// queue consumed by a task. `range_size` is the processor's customers per range job.
pub async fn start_processor(pool: Pool, queue_url: Option<String>, range_size: i64) -> Queue {
    let processor = |queue: &Queue| Processor {
        pool,
        queue: queue.clone(),
        range_size,
    };
    match queue_url {
        Some(url) => {
            let queue = Queue::sqs(url.clone()).await;
            if let Queue::Sqs { client, .. } = &queue {
                tokio::spawn(worker::run_sqs_poller(
                    client.clone(),
                    url,
                    processor(&queue),
                ));
            }
            queue
        }
        None => {
            let (queue, receiver) = Queue::in_process();
            tokio::spawn(worker::run_in_process(receiver, processor(&queue)));
            queue
        }
    }
}
