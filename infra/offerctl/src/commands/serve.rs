//! `offerctl serve`: every router, the processor and the relay in one process.

use std::net::SocketAddr;

use anyhow::Context;
use shared::AppState;
use shared::config::{Config, ProcessorConfig, QueueConfig, RelayConfig, S3Config, env};

use super::data::watch_bucket;

pub(crate) async fn serve(listen: SocketAddr) -> anyhow::Result<()> {
    let config = Config::from_env()?;
    let range_size = ProcessorConfig::from_lookup(env)?.range_size;
    let queue_url = QueueConfig::from_lookup(env).url;
    let relay = RelayConfig::from_lookup(env)?;
    let s3 = S3Config::from_lookup(env);
    let state = AppState::new(&config)?;
    let imports = match &s3.data_bucket {
        Some(_) => Some(campaign_processor::ImportSteps {
            s3: bulk::s3::client_from_env().await,
            options: bulk::import::ImportOptions::from_env(None)?,
        }),
        None => None,
    };
    let queue = offerctl::start_processor(
        state.platform.clone(),
        queue_url.clone(),
        range_size,
        imports,
    )
    .await;
    let policy = relay.redrive;
    if queue_url.is_none() {
        redrive_previous(&state, &queue, policy.max_attempts).await?;
    }
    let relay_interval = relay.interval;
    offerctl::start_relay(
        state.platform.clone(),
        queue.clone(),
        policy,
        state.release_batch,
        relay_interval,
    );
    tracing::info!(
        relay.interval_s = relay_interval.as_secs(),
        relay.stale_after_s = policy.stale_after.as_secs(),
        relay.max_attempts = policy.max_attempts,
        "outbox relay started"
    );
    if let Some(bucket) = s3.data_bucket {
        watch_bucket(state.platform.clone(), bucket).await?;
    }
    let state = state.with_queue(queue);
    match &queue_url {
        Some(url) => tracing::info!(queue.url = %url, "campaign jobs go to SQS; polling it"),
        None => tracing::info!("campaign jobs go to the in-process queue"),
    }
    check_connections(&state).await?;
    let app = shared::http::into_service(offerctl::app(state));
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    tracing::info!(%listen, "offerctl serving");
    println!("listening on http://{listen}");
    // The peer address reaches the handlers (the sign-in throttle counts per client).
    axum::serve(
        listener,
        axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<
            SocketAddr,
        >(app),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}

/// The in-process queue of a previous process died with it: its unfinished jobs go again
/// now.
pub(crate) async fn redrive_previous(
    state: &AppState,
    queue: &shared::queue::Queue,
    max_attempts: i32,
) -> anyhow::Result<()> {
    let report = offerctl::redrive_after_restart(
        state.platform.clone(),
        queue.clone(),
        max_attempts,
        state.release_batch,
    )
    .await
    .context("re-driving the jobs of the previous process")?;
    if report.sweep.jobs_redriven + report.sweep.ranges_redriven > 0 {
        tracing::info!(
            jobs = report.sweep.jobs_redriven,
            ranges = report.sweep.ranges_redriven,
            "re-drove the unfinished jobs of the previous process"
        );
    }
    Ok(())
}

/// Fails fast, naming the problem, rather than on the first request.
pub(crate) async fn check_connections(state: &AppState) -> anyhow::Result<()> {
    drop(
        state
            .pool
            .get()
            .await
            .context("cannot connect to the database at DATABASE_URL")?,
    );
    drop(
        state
            .platform
            .get()
            .await
            .context("cannot connect to the database at DATABASE_PLATFORM_URL")?,
    );
    Ok(())
}
