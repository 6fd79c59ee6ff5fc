//! The campaign queue: how the API hands customer-selection jobs to the campaign processor.
//!
//! One interface, [`Queue`], with two implementations:
//!
//! - [`Queue::Sqs`]: Amazon SQS through `aws-sdk-sqs`. The SDK reads its configuration the
//!   standard way (`AWS_REGION`, credentials chain, and `AWS_ENDPOINT_URL_SQS` /
//!   `AWS_ENDPOINT_URL` for an endpoint such as an emulator on loopback).
//! - [`Queue::InProcess`]: an unbounded channel inside the process, the local server's
//!   default; its consumer ([`InProcessReceiver`]) is driven by the local gateway.
//!
//! Messages are [`CampaignJob`]s (a selection job's plan or range, or a release job's
//! range: [`JobStep`]), or the steps of a split customer file's import ([`ImportJob`]),
//! serialised as JSON; the two shapes share no field.

use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::domain::TenantName;

/// Most messages per SQS `SendMessageBatch` call (an SQS limit).
pub const SQS_BATCH_LIMIT: usize = 10;

/// One unit of campaign processing, the body of a queue message:
/// `{"campaign_id": 7, "tenant_name": "credit_card", "job_id": "…", "range": null}`, or
/// with `"step": "release"` a range of a release job.
///
/// A selection job without `range` is a plan: the processor either expands the whole
/// audience or splits the customer-id space into `count` ranges and enqueues one job per
/// range. A release job always has a range: the processor releases the campaign's prepared
/// deliveries of that slice of customer ids (`shared::db::campaigns::releases`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignJob {
    /// The campaign.
    pub campaign_id: i32,
    /// Its tenant.
    pub tenant_name: TenantName,
    /// The processing job (set on the campaign when enqueued); a message of an older job is
    /// ignored.
    pub job_id: Uuid,
    /// The slice of the customer-id space to expand (or release), if the job was split.
    #[serde(default)]
    pub range: Option<IdRange>,
    /// What the message asks; absent means [`JobStep::Select`] (the messages written before
    /// releases went by ranges have no `step`).
    #[serde(default, skip_serializing_if = "JobStep::is_select")]
    pub step: JobStep,
}

/// What a [`CampaignJob`] asks of the processor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStep {
    /// Select the audience (`job_id` is the campaign's `processing_job`).
    #[default]
    Select,
    /// Release a range of prepared deliveries (`job_id` is the campaign's `release_job`).
    Release,
}

impl JobStep {
    /// Whether this is [`JobStep::Select`] (left out of the JSON).
    #[must_use]
    pub fn is_select(&self) -> bool {
        *self == Self::Select
    }

    /// The name stored in `campaign_outbox.step`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Select => "select",
            Self::Release => "release",
        }
    }
}

/// One step of a customer file imported in parts (`bulk::import::parts`), the body of a
/// queue message: `{"import_id": 12, "part": 3}` stages part 3, `{"import_id": 12, "part":
/// null}` merges the staged rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportJob {
    /// The import's job (`customer_import_jobs.id`).
    pub import_id: i64,
    /// The part to stage; none for the merge.
    pub part: Option<i32>,
}

/// Slice `index` of the customer-id (UUID) space cut into `count` equal slices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdRange {
    /// Zero-based slice number, below `count`.
    pub index: u32,
    /// Number of slices (at least 1).
    pub count: u32,
}

impl IdRange {
    /// The inclusive bounds of this slice. UUIDs order like 128-bit big-endian integers in
    /// PostgreSQL, and random (v4) ids spread evenly over that space, so equal slices hold
    /// about equally many customers.
    ///
    /// # Errors
    /// A message-level error if `index >= count` or `count == 0`.
    pub fn bounds(self) -> Result<(Uuid, Uuid), String> {
        if self.count == 0 || self.index >= self.count {
            return Err(format!(
                "range index {} is not below count {}",
                self.index, self.count
            ));
        }
        let width = u128::MAX / u128::from(self.count);
        let low = width * u128::from(self.index);
        let high = if self.index + 1 == self.count {
            u128::MAX
        } else {
            low + width - 1
        };
        Ok((Uuid::from_u128(low), Uuid::from_u128(high)))
    }
}

/// A message as the in-process queue holds it (mirrors what SQS hands Lambda).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMessage {
    /// Unique id of the message.
    pub message_id: String,
    /// The JSON body.
    pub body: String,
    /// How often it has been received before (0 for a new message).
    pub receive_count: u32,
}

/// Sending a message failed.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The SQS API refused or could not be reached; the text includes the SDK's error chain.
    #[error("SQS send failed: {0}")]
    Sqs(String),
    /// The in-process consumer has stopped.
    #[error("the in-process queue is closed")]
    Closed,
    /// SQS accepted only part of a batch.
    #[error("SQS refused {0} message(s) of a batch")]
    Partial(usize),
}

impl From<QueueError> for crate::error::ApiError {
    fn from(err: QueueError) -> Self {
        crate::error::ApiError::ServiceUnavailable(err.into())
    }
}

/// Where campaign jobs go; cheap to clone.
#[derive(Debug, Clone)]
pub enum Queue {
    /// An SQS queue.
    Sqs {
        /// The SDK client.
        client: aws_sdk_sqs::Client,
        /// The queue's URL.
        queue_url: String,
    },
    /// The in-process channel.
    InProcess(mpsc::UnboundedSender<QueuedMessage>),
}

/// The consuming end of [`Queue::in_process`]; failed messages go back through `requeue`.
#[derive(Debug)]
pub struct InProcessReceiver {
    /// Incoming messages.
    pub messages: mpsc::UnboundedReceiver<QueuedMessage>,
    /// The sending side, to put a failed message back for redelivery.
    pub requeue: mpsc::UnboundedSender<QueuedMessage>,
}

impl Queue {
    /// An SQS queue at `queue_url`, with the SDK configured from the environment.
    pub async fn sqs(queue_url: impl Into<String>) -> Self {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Self::Sqs {
            client: aws_sdk_sqs::Client::new(&config),
            queue_url: queue_url.into(),
        }
    }

    /// The SQS queue named by `CAMPAIGN_QUEUE_URL` (the Lambda functions that send or relay
    /// campaign jobs).
    ///
    /// # Errors
    /// [`crate::config::ConfigError::Missing`] if it is unset.
    pub async fn sqs_from_env() -> Result<Self, crate::config::ConfigError> {
        let config = crate::config::QueueConfig::from_lookup(crate::config::env);
        Ok(Self::sqs(config.required_url()?.to_owned()).await)
    }

    /// A new in-process queue and its receiver.
    pub fn in_process() -> (Self, InProcessReceiver) {
        let (sender, messages) = mpsc::unbounded_channel();
        let receiver = InProcessReceiver {
            messages,
            requeue: sender.clone(),
        };
        (Self::InProcess(sender), receiver)
    }

    /// Sends one job.
    ///
    /// # Errors
    /// [`QueueError`] if the queue did not take it.
    pub async fn send(&self, job: &CampaignJob) -> Result<(), QueueError> {
        self.send_all(std::slice::from_ref(job)).await
    }

    /// Sends jobs ([`CampaignJob`]s or [`ImportJob`]s; SQS: in batches of
    /// [`SQS_BATCH_LIMIT`]).
    ///
    /// # Errors
    /// [`QueueError`] if any was not taken; some of the others may have been sent, which
    /// is safe because processing a job twice changes nothing.
    pub async fn send_all<J: Serialize>(&self, jobs: &[J]) -> Result<(), QueueError> {
        match self {
            Self::InProcess(sender) => {
                for job in jobs {
                    sender
                        .send(QueuedMessage {
                            message_id: Uuid::new_v4().to_string(),
                            body: body(job),
                            receive_count: 0,
                        })
                        .map_err(|_| QueueError::Closed)?;
                }
                Ok(())
            }
            Self::Sqs { client, queue_url } => {
                for chunk in jobs.chunks(SQS_BATCH_LIMIT) {
                    let entries = chunk
                        .iter()
                        .enumerate()
                        .map(|(i, job)| {
                            SendMessageBatchRequestEntry::builder()
                                .id(i.to_string())
                                .message_body(body(job))
                                .build()
                                .map_err(|e| QueueError::Sqs(e.to_string()))
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    let output = client
                        .send_message_batch()
                        .queue_url(queue_url)
                        .set_entries(Some(entries))
                        .send()
                        .await
                        .map_err(|e| QueueError::Sqs(DisplayErrorContext(e).to_string()))?;
                    if !output.failed().is_empty() {
                        return Err(QueueError::Partial(output.failed().len()));
                    }
                }
                Ok(())
            }
        }
    }
}

fn body(job: &impl Serialize) -> String {
    // A struct of plain fields always serialises.
    serde_json::to_string(job).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_the_id_space_without_gaps_or_overlap() {
        for count in [1u32, 2, 3, 7, 64] {
            let mut expected_low = 0u128;
            for index in 0..count {
                let (low, high) = IdRange { index, count }.bounds().expect("valid");
                assert_eq!(low.as_u128(), expected_low, "count {count} index {index}");
                assert!(high.as_u128() >= low.as_u128());
                expected_low = high.as_u128().wrapping_add(1);
            }
            assert_eq!(
                expected_low, 0,
                "last range ends at the top for count {count}"
            );
        }
        assert!(IdRange { index: 3, count: 3 }.bounds().is_err());
        assert!(IdRange { index: 0, count: 0 }.bounds().is_err());
    }

    #[test]
    fn jobs_round_trip_as_json() {
        let job = CampaignJob {
            campaign_id: 7,
            tenant_name: TenantName::parse("credit_card").expect("name"),
            job_id: Uuid::nil(),
            range: Some(IdRange { index: 1, count: 4 }),
            step: JobStep::Select,
        };
        let text = body(&job);
        assert!(!text.contains("step"), "{text}");
        assert_eq!(
            serde_json::from_str::<CampaignJob>(&text).expect("parse"),
            job
        );
        let release = CampaignJob {
            step: JobStep::Release,
            ..job.clone()
        };
        let text = body(&release);
        assert!(text.contains(r#""step":"release""#), "{text}");
        assert_eq!(
            serde_json::from_str::<CampaignJob>(&text).expect("parse"),
            release
        );
        assert!(serde_json::from_str::<CampaignJob>(r#"{"campaign_id": "x"}"#).is_err());
    }

    #[tokio::test]
    async fn in_process_queue_delivers_in_order() {
        let (queue, mut receiver) = Queue::in_process();
        let job = CampaignJob {
            campaign_id: 1,
            tenant_name: TenantName::parse("loan").expect("name"),
            job_id: Uuid::new_v4(),
            range: None,
            step: JobStep::Select,
        };
        queue.send(&job).await.expect("send");
        let message = receiver.messages.recv().await.expect("message");
        assert_eq!(message.receive_count, 0);
        assert_eq!(
            serde_json::from_str::<CampaignJob>(&message.body).expect("job"),
            job
        );
    }
}
