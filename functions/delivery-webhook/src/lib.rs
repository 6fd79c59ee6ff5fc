//! `delivery-webhook`: `POST /system/campaigns/update-delivery-status`, where delivery
//! providers (e-mail, SMS, push) report what happened to each campaign delivery.
//!
//! - **Authentication** by API key in `X-API-Key` (keys from `/sa/webhook-keys` or
//!   `offerctl webhook-key create`; stored as SHA-256, compared in constant time), not JWT.
//!   A key belongs to one tenant: reports on another tenant's campaigns are answered exactly
//!   like reports on a campaign that does not exist (`not_found`), so the answer reveals
//!   nothing about other tenants. A key made before keys were tenant-scoped and not yet bound
//!   to a tenant is refused (401).
//!   When the key has a signing secret, the request must also carry a Standard Webhooks
//!   signature (`webhook-id`, `webhook-timestamp`, `webhook-signature`: HMAC-SHA256 over
//!   `id.timestamp.body`), verified on the raw bytes before parsing by the `standardwebhooks`
//!   crate, with its 5-minute window. A replayed `webhook-id` is answered 200 and changes
//!   nothing.
//! - **Body**: a JSON array of at most [`MAX_REPORTS`] reports
//!   `{campaign_id, customer_id, status, sent_at (or occurred_at), provider_message_id?,
//!   failure_reason?}`, at most [`MAX_BODY_BYTES`] (413 beyond; 422 for too many items). A
//!   status is a result (`sent`, `failed`, `bounced`: a failure), an engagement stage
//!   (`delivered`, `opened`, `clicked`) or an opt-out (`unsubscribed`, `complained`).
//! - **One statement** applies the batch. The answer lists every report as `updated`,
//!   `unchanged` (the row records the same or a later event), `not_found` or `invalid` (with a
//!   reason), and counts them; the request answers 200 once understood.
//! - Results never go back in time: a result whose `sent_at` is not later than the recorded
//!   one changes nothing; of two results for one delivery in a batch the later wins. A
//!   stage keeps the first time reported, and the delivery's status is the furthest stage
//!   reached, so stages out of order or repeated give the same row. A `sent_at`
//!   more than [`MAX_CLOCK_SKEW_SECS`] in the future, or before the delivery was released, is
//!   `invalid` (a report dated 2999 would otherwise freeze the delivery for good, and one
//!   dated before the release would age its contact out of the contact cap's window).
//! - Only `active`, `paused` and `completed` campaigns accept reports; for the tenant's other
//!   campaigns each report is `invalid` with the reason. Only released deliveries take
//!   reports (a suppressed or not yet released one is `not_found`); each report keeps the
//!   contact ledger of the platform's contact cap current (a `sent` result or a stage
//!   settles the delivery's contact at the earliest time shown; a failure keeps its slot
//!   held until the end it was released under, since the provider may retry).
//! - `unsubscribed` and `complained` opt the customer out of the campaign's channel
//!   (`customer_consents`, source `provider: …`), leaving the delivery's result as it is.
//! - [`feed`]: `GET /system/campaigns/{campaign_id}/deliveries`, the released deliveries a
//!   provider has to send, with the same key; a signing key signs those requests too, over
//!   [`signed_request_line`] (method and request target) in place of a body.

pub mod feed;
mod provider;
mod reports;
mod routes;

pub use provider::{API_KEY_HEADER, signed_request_line};
pub use reports::{
    MAX_BODY_BYTES, MAX_CLOCK_SKEW_SECS, MAX_FAILURE_REASON_CHARS, MAX_PROVIDER_MESSAGE_ID_CHARS,
    MAX_REPORTS,
};
pub use routes::{WebhookState, openapi, router, routes};
