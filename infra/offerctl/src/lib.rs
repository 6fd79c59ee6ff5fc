//! The local gateway: every function's router merged into one axum app, as API Gateway
//! routes them in AWS, plus the campaign processor fed from a queue as Lambda's event source
//! mapping would. Used by `offerctl serve` and by the integration tests.

pub mod demo;
pub mod worker;

use axum::Router;
use axum::routing::get;
use campaign_processor::Processor;
use deadpool_postgres::Pool;
use shared::AppState;
use shared::queue::Queue;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

/// Path of the OpenAPI document the local server serves.
pub const OPENAPI_PATH: &str = "/openapi.json";
/// Path of the interactive API docs (Swagger UI, assets bundled in the binary; the page
/// itself is `/docs/`).
pub use shared::http::DOCS_PATH;

/// `GET /health` answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct Health {
    /// Always `ok`.
    status: &'static str,
}

/// Liveness.
///
/// `GET /health`: liveness; touches no database.
#[utoipa::path(
    get,
    path = "/health",
    tag = "system",
    security(()),
    responses((status = 200, description = "The server is up.", body = Health))
)]
async fn get_health() -> axum::Json<Health> {
    axum::Json(Health { status: "ok" })
}

#[derive(OpenApi)]
#[openapi(paths(get_health))]
struct GatewayDoc;

/// The OpenAPI 3.1 document of every route [`app`] serves (the one committed as
/// `openapi.json` and served at [`OPENAPI_PATH`]).
pub fn openapi() -> utoipa::openapi::OpenApi {
    shared::openapi::document([
        auth_api::openapi(),
        admin_api::openapi(),
        offers_api::openapi(),
        campaigns_api::openapi(),
        customers_api::openapi(),
        delivery_webhook::openapi(),
        GatewayDoc::openapi(),
    ])
}

/// The committed `openapi.json`'s exact text: [`openapi`] as pretty JSON with a final
/// newline.
///
/// # Errors
/// Only if serialisation fails (it does not for this document).
pub fn openapi_json() -> Result<String, serde_json::Error> {
    openapi().to_pretty_json().map(|json| json + "\n")
}

/// The line before the endpoint table in `docs/api.md`.
pub const ENDPOINTS_BEGIN: &str = "<!-- endpoints: generated from the OpenAPI document -->";
/// The line after it.
pub const ENDPOINTS_END: &str = "<!-- end of endpoints -->";

/// The endpoint table of `docs/api.md`: a Markdown table with one row per operation of the
/// OpenAPI document (`| method | path | what |`, the operation's summary), in the document's
/// path order and `GET`, `POST`, `PUT`, `PATCH`, `DELETE` within a path.
#[must_use]
pub fn endpoint_table() -> String {
    let document = serde_json::to_value(openapi()).unwrap_or_default();
    let mut table = String::from("| method | path | what |\n|---|---|---|\n");
    let Some(paths) = document.get("paths").and_then(serde_json::Value::as_object) else {
        return table;
    };
    for (path, item) in paths {
        for method in ["get", "post", "put", "patch", "delete"] {
            if let Some(operation) = item.get(method) {
                let summary = operation
                    .get("summary")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or_default();
                table.push_str(&format!(
                    "| `{}` | `{path}` | {summary} |\n",
                    method.to_uppercase()
                ));
            }
        }
    }
    table
}

/// `page` with the text between [`ENDPOINTS_BEGIN`] and [`ENDPOINTS_END`] replaced by
/// [`endpoint_table`]; `None` when the page lacks either line.
#[must_use]
pub fn with_endpoint_table(page: &str) -> Option<String> {
    let begin = page.find(ENDPOINTS_BEGIN)? + ENDPOINTS_BEGIN.len();
    let end = begin + page[begin..].find(ENDPOINTS_END)?;
    Some(format!(
        "{}\n{}{}",
        &page[..begin],
        endpoint_table(),
        &page[end..]
    ))
}

/// All routes of all functions, plus `GET /health` (liveness, no database access),
/// `GET /openapi.json` and the Swagger UI at `/docs`.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/health", get(get_health))
        .merge(SwaggerUi::new(DOCS_PATH).url(OPENAPI_PATH, openapi()))
        .merge(auth_api::router())
        .merge(admin_api::router())
        .merge(offers_api::router())
        .merge(campaigns_api::router())
        .merge(customers_api::router())
        .merge(delivery_webhook::router())
        .with_state(state)
}

/// Starts the outbox relay ([`shared::relay::Relay::run_once`]) in the background, every
/// `interval`, on `pool` (platform scope) and `queue`, logging its figures; the scheduler's
/// starts release at most `release_batch` deliveries in their transaction.
pub fn start_relay(
    pool: Pool,
    queue: Queue,
    policy: shared::config::RedrivePolicy,
    release_batch: shared::config::ReleaseBatch,
    interval: std::time::Duration,
) {
    let relay = shared::relay::Relay {
        pool,
        queue,
        policy,
        release_batch,
    };
    tokio::spawn(shared::relay::run_every(relay, interval, "offerctl"));
}

/// At start-up on the in-process queue: the messages of a previous process died with it
/// (a crash, a `kill -9`), so every job it left queued or running is re-driven now, as the
/// relay would after `CAMPAIGN_STALE_AFTER_SECONDS` without progress, then the outbox is sent.
/// Safe to run more than once: processing is idempotent (ranges are recorded once, rows
/// inserted with `on conflict do nothing`). Run it before serving, and only on the in-process
/// queue (one `offerctl serve` per database there): with SQS, messages outlive the process.
///
/// # Errors
/// [`shared::relay::RelayError`]; what was committed before it stays done.
pub async fn redrive_after_restart(
    pool: Pool,
    queue: Queue,
    max_attempts: i32,
    release_batch: shared::config::ReleaseBatch,
) -> Result<shared::relay::RelayReport, shared::relay::RelayError> {
    let relay = shared::relay::Relay {
        pool,
        queue,
        policy: shared::config::RedrivePolicy {
            stale_after: std::time::Duration::ZERO,
            max_attempts,
        },
        release_batch,
    };
    relay.run_once("offerctl").await
}

/// Starts the campaign processor in the background and returns the queue that feeds it:
/// the SQS queue at `queue_url`, polled by a task, or (without a URL) a new in-process
/// queue consumed by a task. `range_size` is the processor's customers per range job;
/// `imports`, when there is a data bucket, lets it run the steps of files imported in parts.
pub async fn start_processor(
    pool: Pool,
    queue_url: Option<String>,
    range_size: i64,
    imports: Option<campaign_processor::ImportSteps>,
) -> Queue {
    let processor = |queue: &Queue| Processor {
        pool,
        queue: queue.clone(),
        range_size,
        imports,
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

/// The one-line reason for a command that met a database without this platform's tables (a
/// database never migrated, or another one): it names the fix rather than "internal error".
pub fn missing_schema(err: &anyhow::Error) -> Option<String> {
    err.chain()
        .filter_map(|cause| cause.downcast_ref::<deadpool_postgres::tokio_postgres::Error>())
        .filter_map(deadpool_postgres::tokio_postgres::Error::code)
        .any(|code| *code == deadpool_postgres::tokio_postgres::error::SqlState::UNDEFINED_TABLE)
        .then(|| {
            "the database has no Offer Management schema (a table is missing): run \
             `offerctl migrate` first, as the tables' owner (DATABASE_OWNER_URL)"
                .to_owned()
        })
}
