//! `campaign-processor`: expands a campaign's selection criteria into `campaign_customers`.
//!
//! It consumes [`CampaignJob`] messages from the campaign queue, as an SQS event source
//! (Lambda with `ReportBatchItemFailures`) or from the local gateway's in-process queue or
//! SQS poller, which call the same [`Processor::handle_batch`].
//!
//! - A **plan** job (no `range`) counts customers. Up to `range_size` customers it expands the
//!   whole audience in one statement; above that it splits the customer-id space into
//!   `ceil(customers / range_size)` ranges (at most [`MAX_RANGES`]) and writes one **range**
//!   job each to the outbox in the transaction that marks the job `running`, then sends them
//!   (`shared::relay::send`; what it cannot send, the scheduled relay sends), so no
//!   invocation works on more than about `range_size` customers and no range is lost.
//! - A range job expands its slice and records it as finished; the last one marks the campaign
//!   `done` with its `matched_count`.
//! - Expansion is `insert … select … on conflict do nothing`, and finished ranges are recorded
//!   once, so a redelivered or duplicated message changes nothing. A message of an older job
//!   (the campaign was re-queued since) is acknowledged and ignored.
//! - A message that fails is reported in `batchItemFailures` and redelivered by the queue; one
//!   that can never succeed (malformed body, unknown campaign) fails every time and lands in
//!   the dead-letter queue through the queue's redrive policy. A job whose messages are lost
//!   anyway is re-driven by the relay (`shared::relay`) once it is stale.
//! - Figures (jobs started, finished and failed, rows matched, job duration) are emitted as
//!   CloudWatch embedded-metric records (`shared::metrics`).
//! - A **release** job's range (`step` `release`) releases the campaign's prepared
//!   deliveries of its customer-id slice in one transaction
//!   ([`campaigns::releases::release_range`]), once, and only while the campaign is active
//!   and the job current; it writes the next range's message in that transaction and sends
//!   it on the fast path; the last range marks the release job `done`.
//! - The same queue carries the steps of customer files imported in parts ([`ImportJob`]:
//!   stage a part, or merge), which it hands to `bulk::import::parts` with its
//!   [`ImportSteps`]; the messages they lead to are sent on the fast path as above.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use deadpool_postgres::Pool;
use shared::ApiError;
use shared::criteria::{Criteria, CriteriaError};
use shared::db::campaigns::releases::{self, RangeOutcome};
use shared::db::{campaigns, outbox};
use shared::domain::ProcessingStatus;
use shared::metrics::{self, Metric};
use shared::queue::{CampaignJob, IdRange, ImportJob, JobStep, Queue, QueueError};
use uuid::Uuid;

/// Most ranges one job is split into.
pub const MAX_RANGES: i64 = 10_000;

/// Why a job failed. Every variant is reported as a batch item failure; the permanent ones
/// ([`JobError::is_permanent`]) will fail again on every delivery.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The body is not a campaign job.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// No campaign with that id in that tenant.
    #[error("campaign {0} does not exist in tenant {1}")]
    UnknownCampaign(i32, String),
    /// The stored criteria no longer compile.
    #[error("stored selection criteria are invalid: {0}")]
    InvalidCriteria(#[from] CriteriaError),
    /// Range jobs could not be enqueued.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// A step of a customer file imported in parts failed (S3, the database, the stream);
    /// the redelivered message goes on where it stopped.
    #[error("customer import step: {0}")]
    Import(#[from] bulk::BulkError),
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] ApiError),
}

impl From<tokio_postgres::Error> for JobError {
    fn from(err: tokio_postgres::Error) -> Self {
        Self::Database(err.into())
    }
}

impl From<deadpool_postgres::PoolError> for JobError {
    fn from(err: deadpool_postgres::PoolError) -> Self {
        Self::Database(err.into())
    }
}

impl JobError {
    /// Whether redelivering the message cannot help.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            Self::Malformed(_) | Self::UnknownCampaign(..) | Self::InvalidCriteria(_)
        )
    }

    /// What the campaign's readers are told (its `last_error`): the reason, without internal
    /// detail such as database messages.
    pub fn public_reason(&self) -> String {
        match self {
            Self::Malformed(_) => "a malformed job message was received".into(),
            Self::UnknownCampaign(..) => "the campaign does not exist".into(),
            Self::InvalidCriteria(err) => format!(
                "the stored selection criteria are invalid at {}: {}; correct them and \
                 process the campaign again",
                if err.pointer.is_empty() {
                    "/"
                } else {
                    &err.pointer
                },
                err.detail
            ),
            Self::Queue(_) => {
                "the campaign queue refused messages; they are retried automatically".into()
            }
            Self::Import(_) => "a customer import step failed; it is retried automatically".into(),
            Self::Database(_) => {
                "the database was unavailable during processing; the job is retried \
                 automatically"
                    .into()
            }
        }
    }
}

/// What a job did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    /// The whole audience was expanded; the campaign is `done`.
    Expanded {
        /// Customers the campaign now has.
        matched: i64,
        /// Seconds from queueing the job to its end.
        duration_seconds: f64,
    },
    /// The job was split into this many range jobs, written to the outbox.
    Split {
        /// Range jobs written.
        ranges: u32,
        /// How many of them the fast path sent (the rest wait for the scheduled relay).
        sent: usize,
    },
    /// A range was expanded; `finished` holds the job's figures if it was the last one.
    RangeDone {
        /// Rows this range added.
        inserted: u64,
        /// The finished job, if this range was its last.
        finished: Option<campaigns::FinishedJob>,
    },
    /// The job was already done (a duplicate or redelivered message).
    Duplicate,
    /// The campaign has moved on to a newer job; this message is obsolete.
    Stale,
    /// A step of a customer file imported in parts ran (or found itself done).
    ImportStep(ImportJob),
    /// A range of a release job was released; `finished` when it was the job's last.
    Released {
        /// What the range did.
        summary: campaigns::ReleaseSummary,
        /// Whether the release job is now `done`.
        finished: bool,
    },
    /// A release job's range found the campaign no longer active: the job is `stopped`.
    ReleaseStopped,
}

/// What the processor needs for the steps of customer files imported in parts: the S3
/// client and the import's limits.
#[derive(Debug, Clone)]
pub struct ImportSteps {
    /// The S3 client.
    pub s3: aws_sdk_s3::Client,
    /// The import's limits and part size.
    pub options: bulk::import::ImportOptions,
}

/// The name this function's metrics carry.
pub const FUNCTION: &str = "campaign-processor";

/// The processor: the pool, the queue for range jobs, and the range size.
#[derive(Debug, Clone)]
pub struct Processor {
    /// Database pool (platform scope).
    pub pool: Pool,
    /// Where range jobs go.
    pub queue: Queue,
    /// Customers per range job.
    pub range_size: i64,
    /// For import steps; without it an import step fails (and reaches the dead-letter
    /// queue).
    pub imports: Option<ImportSteps>,
}

impl Processor {
    /// Handles an SQS event; the answer lists the ids of the messages that failed, for
    /// `ReportBatchItemFailures`.
    pub async fn handle_batch(&self, event: SqsEvent) -> SqsBatchResponse {
        use futures_util::StreamExt;

        // Messages of a batch run side by side on half the pool (at least one), as range jobs
        // of one campaign would on concurrent Lambda invocations.
        let concurrency = (self.pool.status().max_size / 2).clamp(1, 10);
        let failures: Vec<Option<String>> = futures_util::stream::iter(event.records)
            .map(|message| self.handle_message(message))
            .buffered(concurrency)
            .collect()
            .await;
        let mut response = SqsBatchResponse::default();
        for message_id in failures.into_iter().flatten() {
            response.add_failure(message_id);
        }
        response
    }

    /// Handles one message; returns its id if it failed.
    async fn handle_message(&self, message: SqsMessage) -> Option<String> {
        let message_id = message.message_id.unwrap_or_default();
        let receive_count = message
            .attributes
            .get("ApproximateReceiveCount")
            .cloned()
            .unwrap_or_default();
        let result = match message.body.as_deref() {
            Some(body) => self.handle_body(body).await,
            None => Err(JobError::Malformed("the message has no body".into())),
        };
        match result {
            Ok(outcome) => {
                tracing::info!(message.id = %message_id, ?outcome, "campaign job handled");
                None
            }
            Err(err) if err.is_permanent() => {
                tracing::error!(message.id = %message_id, message.receive_count = %receive_count, error = %err,
                    "campaign job can never succeed; it will reach the dead-letter queue");
                Some(message_id)
            }
            Err(err) => {
                tracing::warn!(message.id = %message_id, message.receive_count = %receive_count, error = %err,
                    "campaign job failed; it will be redelivered");
                Some(message_id)
            }
        }
    }

    /// Handles one message body.
    ///
    /// # Errors
    /// [`JobError`]; the failure is also recorded on the campaign when it names one.
    pub async fn handle_body(&self, body: &str) -> Result<Outcome, JobError> {
        if let Ok(step) = serde_json::from_str::<ImportJob>(body) {
            return self.import_step(step).await;
        }
        let job: CampaignJob =
            serde_json::from_str(body).map_err(|e| JobError::Malformed(e.to_string()))?;
        if job.step == JobStep::Release {
            return self.release_range(&job).await;
        }
        let result = match job.range {
            None => self.plan(&job).await,
            Some(range) => self.expand_range(&job, range).await,
        };
        match &result {
            Ok(Outcome::Expanded {
                matched,
                duration_seconds,
            }) => self.finished(*matched, *duration_seconds),
            Ok(Outcome::RangeDone {
                finished: Some(job),
                ..
            }) => self.finished(job.matched, job.duration_seconds),
            Err(JobError::UnknownCampaign(..)) | Ok(_) => {}
            Err(err) => {
                let client = self.pool.get().await?;
                let permanent = err.is_permanent();
                let recorded = campaigns::record_failure(
                    &client,
                    job.campaign_id,
                    job.job_id,
                    &err.public_reason(),
                    permanent,
                )
                .await?;
                if permanent && recorded {
                    metrics::emit(FUNCTION, &[Metric::count(metrics::JOBS_FAILED, 1)]);
                }
            }
        }
        result
    }

    /// A step of a customer file imported in parts, then the fast path for the messages it
    /// wrote.
    async fn import_step(&self, step: ImportJob) -> Result<Outcome, JobError> {
        let Some(imports) = &self.imports else {
            return Err(JobError::Malformed(
                "an import step reached a processor without S3 access".into(),
            ));
        };
        bulk::import::parts::handle(&self.pool, &imports.s3, step, imports.options).await?;
        if let Err(err) = shared::relay::send_imports(&self.pool, &self.queue).await {
            tracing::warn!(error = %err, "import messages left for the scheduled relay");
        }
        Ok(Outcome::ImportStep(step))
    }

    /// Emits the figures of a finished job.
    fn finished(&self, matched: i64, duration_seconds: f64) {
        metrics::emit(
            FUNCTION,
            &[
                Metric::count(metrics::JOBS_FINISHED, 1),
                Metric::count(metrics::ROWS_MATCHED, matched as f64),
                Metric::seconds(metrics::JOB_DURATION, duration_seconds),
            ],
        );
    }

    /// A plan job: expand everything, or split into range jobs.
    async fn plan(&self, job: &CampaignJob) -> Result<Outcome, JobError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let Some(target) = campaigns::job_target(&tx, job.campaign_id, true).await? else {
            return Err(unknown(job));
        };
        if target.tenant_name != job.tenant_name.as_str() {
            return Err(unknown(job));
        }
        if target.processing_job != Some(job.job_id) {
            return Ok(Outcome::Stale);
        }
        if target.processing_status != ProcessingStatus::Queued {
            // Planned already (running or done), or given up (failed: a new job restarts it).
            return Ok(Outcome::Duplicate);
        }
        metrics::emit(FUNCTION, &[Metric::count(metrics::JOBS_STARTED, 1)]);
        let criteria = Criteria::parse(&target.selection_criteria)?;
        let customers = campaigns::customer_count(&tx).await?;
        let ranges = ((customers + self.range_size - 1) / self.range_size).clamp(1, MAX_RANGES);
        if ranges == 1 {
            let compiled = criteria.compile(5);
            let all = (Uuid::nil(), Uuid::max());
            campaigns::expand(&tx, job.campaign_id, target.offer_id, all, &compiled).await?;
            let finished =
                campaigns::finish_job_if_complete(&tx, job.campaign_id, job.job_id).await?;
            tx.commit().await?;
            let finished = finished.unwrap_or(campaigns::FinishedJob {
                matched: 0,
                duration_seconds: 0.0,
            });
            return Ok(Outcome::Expanded {
                matched: finished.matched,
                duration_seconds: finished.duration_seconds,
            });
        }
        // `ranges` is at most MAX_RANGES, so these conversions cannot fail.
        let count = i32::try_from(ranges).unwrap_or(i32::MAX);
        campaigns::start_ranges(&tx, job.campaign_id, job.job_id, count).await?;
        // The range messages commit with the `running` state: a crash before the commit
        // leaves the plan to be redelivered, one after it leaves them in the outbox.
        outbox::add_unfinished_ranges(
            &tx,
            job.campaign_id,
            job.tenant_name.as_str(),
            job.job_id,
            count,
        )
        .await?;
        tx.commit().await?;
        let sent = match shared::relay::send(&self.pool, &self.queue, Some(job.job_id)).await {
            Ok(sent) => sent,
            Err(err) => {
                tracing::warn!(campaign.id = job.campaign_id, job.id = %job.job_id, error = %err,
                    "range jobs stay in the outbox for the scheduled relay");
                0
            }
        };
        Ok(Outcome::Split {
            ranges: u32::try_from(count).unwrap_or_default(),
            sent,
        })
    }

    /// A range job: expand one slice of the customer-id space.
    async fn expand_range(&self, job: &CampaignJob, range: IdRange) -> Result<Outcome, JobError> {
        let bounds = range.bounds().map_err(JobError::Malformed)?;
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let Some(target) = campaigns::job_target(&tx, job.campaign_id, false).await? else {
            return Err(unknown(job));
        };
        if target.tenant_name != job.tenant_name.as_str() {
            return Err(unknown(job));
        }
        if target.processing_job != Some(job.job_id) {
            return Ok(Outcome::Stale);
        }
        if target.processing_status == ProcessingStatus::Done {
            return Ok(Outcome::Duplicate);
        }
        if target.ranges_total == 0 {
            // Left over from a plan that did not commit; its redelivery sends ranges again.
            return Ok(Outcome::Stale);
        }
        let compiled = Criteria::parse(&target.selection_criteria)?.compile(5);
        let inserted =
            campaigns::expand(&tx, job.campaign_id, target.offer_id, bounds, &compiled).await?;
        let index = i32::try_from(range.index).unwrap_or(i32::MAX);
        if !campaigns::finish_range(&tx, job.campaign_id, job.job_id, index, inserted).await? {
            return Ok(Outcome::Duplicate);
        }
        let finished = campaigns::finish_job_if_complete(&tx, job.campaign_id, job.job_id).await?;
        tx.commit().await?;
        Ok(Outcome::RangeDone { inserted, finished })
    }
}

impl Processor {
    /// A range of a release job, in a transaction of the campaign's tenant. A failure is
    /// redelivered by the queue (the range rolled back whole); a job whose messages run out
    /// is re-driven by the relay once stale.
    async fn release_range(&self, job: &CampaignJob) -> Result<Outcome, JobError> {
        let Some(range) = job.range else {
            return Err(JobError::Malformed(
                "a release message without a range".into(),
            ));
        };
        range.bounds().map_err(JobError::Malformed)?;
        let outcome = shared::db::in_tenant(&self.pool, &job.tenant_name, async |tx| {
            releases::release_range(tx, job.campaign_id, job.job_id, range).await
        })
        .await?;
        match outcome {
            RangeOutcome::Released { summary, finished } => {
                if finished {
                    tracing::info!(campaign.id = job.campaign_id, release.job = %job.job_id,
                        "release job done");
                } else if let Err(err) =
                    shared::relay::send(&self.pool, &self.queue, Some(job.job_id)).await
                {
                    tracing::warn!(campaign.id = job.campaign_id, release.job = %job.job_id,
                        error = %err, "the next release range stays in the outbox for the \
                        scheduled relay");
                }
                Ok(Outcome::Released { summary, finished })
            }
            RangeOutcome::Duplicate => Ok(Outcome::Duplicate),
            RangeOutcome::Stale => Ok(Outcome::Stale),
            RangeOutcome::Stopped => Ok(Outcome::ReleaseStopped),
            RangeOutcome::Unknown => Err(unknown(job)),
        }
    }
}

fn unknown(job: &CampaignJob) -> JobError {
    JobError::UnknownCampaign(job.campaign_id, job.tenant_name.to_string())
}
