//! Feeding the campaign processor outside AWS, as Lambda's SQS event source mapping would:
//! batches of up to [`BATCH_SIZE`] messages go to [`Processor::handle_batch`]; messages it
//! reports as failed are left for redelivery, the others are deleted.
//!
//! - [`run_in_process`]: the in-process queue (the local server's default). A failed message
//!   comes back after a growing delay; after [`MAX_RECEIVES`] receives it is dropped with an
//!   error log line, the in-process stand-in for a dead-letter queue.
//! - [`poll_sqs_once`] / [`run_sqs_poller`]: a real SQS queue (or an emulator); redelivery
//!   and dead-lettering follow the queue's visibility timeout and redrive policy.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use campaign_processor::Processor;
use shared::queue::{InProcessReceiver, QueuedMessage};

/// Most messages per batch (Lambda's SQS default batch size).
pub const BATCH_SIZE: usize = 10;
/// Receives before the in-process queue gives a message up (the template's `maxReceiveCount`).
pub const MAX_RECEIVES: u32 = 5;

/// An SQS event as Lambda would deliver it.
fn event(messages: impl IntoIterator<Item = (String, String, u32)>) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = messages
        .into_iter()
        .map(|(id, body, receive_count)| {
            let mut message = SqsMessage::default();
            message.message_id = Some(id);
            message.body = Some(body);
            message.event_source = Some("aws:sqs".into());
            message.attributes = HashMap::from([(
                "ApproximateReceiveCount".to_owned(),
                receive_count.to_string(),
            )]);
            message
        })
        .collect();
    event
}

/// The ids of the messages a batch response reports as failed.
fn failed_ids(response: SqsBatchResponse) -> HashSet<String> {
    response
        .batch_item_failures
        .into_iter()
        .map(|f| f.item_identifier)
        .collect()
}

/// Consumes the in-process queue until every sender is gone.
pub async fn run_in_process(mut receiver: InProcessReceiver, processor: Processor) {
    while let Some(first) = receiver.messages.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH_SIZE {
            match receiver.messages.try_recv() {
                Ok(message) => batch.push(message),
                Err(_) => break,
            }
        }
        let response = processor
            .handle_batch(event(
                batch
                    .iter()
                    .map(|m| (m.message_id.clone(), m.body.clone(), m.receive_count + 1)),
            ))
            .await;
        let failed = failed_ids(response);
        for message in batch {
            if !failed.contains(&message.message_id) {
                continue;
            }
            let receive_count = message.receive_count + 1;
            if receive_count >= MAX_RECEIVES {
                tracing::error!(message.id = %message.message_id, message.body = %message.body,
                    "campaign job failed {MAX_RECEIVES} times; dropped (dead-lettered)");
                continue;
            }
            let requeue = receiver.requeue.clone();
            let delay = Duration::from_millis(250 << receive_count.min(4));
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let _ = requeue.send(QueuedMessage {
                    receive_count,
                    ..message
                });
            });
        }
    }
}

/// One receive–process–delete round on an SQS queue, long-polling up to `wait_seconds`.
/// Returns how many messages were received.
///
/// # Errors
/// The SDK's error chain as text, if receiving or deleting failed.
pub async fn poll_sqs_once(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
    processor: &Processor,
    wait_seconds: i32,
) -> Result<usize, String> {
    let output = client
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(BATCH_SIZE as i32)
        .wait_time_seconds(wait_seconds)
        .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
        .send()
        .await
        .map_err(|e| DisplayErrorContext(e).to_string())?;
    let messages = output.messages.unwrap_or_default();
    if messages.is_empty() {
        return Ok(0);
    }
    let receipts: HashMap<String, String> = messages
        .iter()
        .filter_map(|m| Some((m.message_id()?.to_owned(), m.receipt_handle()?.to_owned())))
        .collect();
    let response = processor
        .handle_batch(event(messages.iter().map(|m| {
            let receive_count = m
                .attributes()
                .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                .and_then(|n| n.parse().ok())
                .unwrap_or(1);
            (
                m.message_id().unwrap_or_default().to_owned(),
                m.body().unwrap_or_default().to_owned(),
                receive_count,
            )
        })))
        .await;
    let failed = failed_ids(response);
    let entries = receipts
        .iter()
        .filter(|(id, _)| !failed.contains(*id))
        .enumerate()
        .map(|(i, (_, receipt))| {
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(receipt)
                .build()
                .map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<_>, _>>()?;
    if !entries.is_empty() {
        client
            .delete_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| DisplayErrorContext(e).to_string())?;
    }
    Ok(messages.len())
}

/// Polls an SQS queue forever (20 s long polls), backing off for a second after an error.
pub async fn run_sqs_poller(client: aws_sdk_sqs::Client, queue_url: String, processor: Processor) {
    loop {
        if let Err(err) = poll_sqs_once(&client, &queue_url, &processor, 20).await {
            tracing::warn!(error = %err, "polling the campaign queue failed");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}
