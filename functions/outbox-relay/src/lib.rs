//! `outbox-relay`: the scheduled half of durable campaign processing (see `shared::relay`).
//!
//! An EventBridge schedule (`template.yaml`, every minute) invokes it with a scheduled event.
//! Each invocation runs [`shared::relay::Relay::run_once`]: stale jobs are re-driven (or
//! given up after `CAMPAIGN_MAX_ATTEMPTS`), every outbox message is sent to the campaign
//! queue, then the campaign scheduler starts and ends the campaigns due
//! ([`shared::scheduler`]). It answers what it did; its figures go to CloudWatch as embedded-metric records.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use serde::Serialize;
use shared::relay::{Relay, RelayError};

/// The name this function's metrics carry.
pub const FUNCTION: &str = "outbox-relay";

/// What one invocation did: `{"jobs_redriven": 0, "ranges_redriven": 0, "jobs_failed": 0,
/// "messages_sent": 2, "campaigns_started": 0, "campaign_starts_failed": 0,
/// "campaigns_completed": 1, "campaigns_withdrawn": 0, "deliveries_expired": 120}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RelayAnswer {
    /// Stale jobs re-driven.
    pub jobs_redriven: u64,
    /// Messages written again for them.
    pub ranges_redriven: u64,
    /// Stale jobs given up (now `failed`).
    pub jobs_failed: u64,
    /// Outbox messages sent to the queue.
    pub messages_sent: usize,
    /// Scheduled campaigns started by the scheduler.
    pub campaigns_started: u64,
    /// Scheduled campaigns that could not start (they stay scheduled).
    pub campaign_starts_failed: u64,
    /// Campaigns completed at their end.
    pub campaigns_completed: u64,
    /// Scheduled campaigns completed unstarted because their offer was retired.
    pub campaigns_withdrawn: u64,
    /// Deliveries expired at those ends.
    pub deliveries_expired: u64,
}

/// Handles one scheduled event (its content is not used beyond logging).
///
/// # Errors
/// [`RelayError`] if the database or the queue failed; the invocation is then reported as
/// failed (and EventBridge's next run tries again), work committed before stays done.
pub async fn handle(relay: &Relay, event: EventBridgeEvent) -> Result<RelayAnswer, RelayError> {
    tracing::debug!(event.id = ?event.id, event.detail_type = %event.detail_type, "relay run");
    let report = relay.run_once(FUNCTION).await?;
    Ok(RelayAnswer {
        jobs_redriven: report.sweep.jobs_redriven,
        ranges_redriven: report.sweep.ranges_redriven,
        jobs_failed: report.sweep.jobs_failed,
        messages_sent: report.sent,
        campaigns_started: report.calendar.started,
        campaign_starts_failed: report.calendar.starts_failed,
        campaigns_completed: report.calendar.completed,
        campaigns_withdrawn: report.calendar.withdrawn,
        deliveries_expired: report.calendar.expired,
    })
}
