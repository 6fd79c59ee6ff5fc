//! The demo's campaigns (stage 3), the provider's feed and reports (stage 5) and the
//! report (stage 6).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::Method;
use serde_json::{Value, json};

use super::*;

impl Demo {
    /// The campaign for them, created by the operator, selected by the processor, activated by the tenant admin.
    pub(super) async fn campaign(&mut self, offer: &Offered) -> anyhow::Result<Campaigned> {
        let offer_id = offer.id;

        // 4. The campaign and its audience.
        let campaigns = format!("/tenants/{TENANT}/campaigns");
        let today = chrono::Utc::now().date_naive();
        let body = json!({
            "offer_id": offer_id,
            "name": "Platinum upgrade for gold and platinum holders",
            "selection_criteria": {"segment": {"in": ["gold", "platinum"]}, "kyc_status": "verified"},
            "start_date": today,
            "end_date": today + chrono::Days::new(30),
            "holdout_percent": HOLDOUT_PERCENT,
        });
        let started = Instant::now();
        let campaign = self
            .api
            .send(
                Method::POST,
                &campaigns,
                Some(Auth::Bearer(self.token(OPERATOR))),
                Some(&body),
            )
            .await?
            .expect(&format!("{OPERATOR} creating the campaign"), &[202])?;
        let campaign_id = campaign["id"].as_i64().context("the campaign has no id")?;
        let campaign_path = format!("{campaigns}/{campaign_id}");
        let campaign = self.wait_processed(campaign_id, &campaign_path).await?;
        let matched = campaign["matched_count"].as_i64().unwrap_or_default();
        if matched == 0 {
            bail!(
                "campaign {campaign_id} matched no customers: load the demo customers first \
             (offerctl import-customers infra/demo/customers_credit_card.csv)"
            );
        }
        self.steps.push(format!(
        "campaign {campaign_id} for verified gold and platinum card holders, created by {OPERATOR}: {matched} customers selected in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
        self.api
            .send(
                Method::PUT,
                &campaign_path,
                Some(Auth::Bearer(self.token("cc_admin"))),
                Some(&json!({"status": "active"})),
            )
            .await?
            .expect("the tenant admin activating the campaign", &[200])?;
        self.steps.push(format!(
            "campaign {campaign_id} activated by cc_admin: {HOLDOUT_PERCENT} % of the customers \
             it would contact held out as its control group"
        ));
        self.scheduled_campaign(offer_id, &campaigns, today).await?;
        Ok(Campaigned {
            id: campaign_id,
            path: campaign_path,
            matched,
        })
    }

    /// Polls campaign `id` at `path` until its selection is `done` (its state then), failing
    /// on `failed` or after [`PROCESSING_TIMEOUT`].
    pub(super) async fn wait_processed(&mut self, id: i64, path: &str) -> anyhow::Result<Value> {
        let started = Instant::now();
        loop {
            let campaign = self
                .api
                .send(
                    Method::GET,
                    path,
                    Some(Auth::Bearer(self.token("cc_viewer"))),
                    None,
                )
                .await?
                .expect("reading the campaign", &[200])?;
            match campaign["processing_status"].as_str() {
                Some("done") => return Ok(campaign),
                Some("failed") => bail!(
                    "campaign {id} failed to process: {}",
                    campaign["last_error"]
                ),
                _ if started.elapsed() > PROCESSING_TIMEOUT => {
                    bail!("campaign {id} was not processed within {PROCESSING_TIMEOUT:?}")
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// A second campaign starting tomorrow: activated now, it is `scheduled` and releases
    /// nothing until the scheduler (the relay's schedule) starts it at the start of tomorrow.
    pub(super) async fn scheduled_campaign(
        &mut self,
        offer_id: i64,
        campaigns: &str,
        today: chrono::NaiveDate,
    ) -> anyhow::Result<()> {
        let body = json!({
            "offer_id": offer_id,
            "name": "Platinum upgrade, second wave",
            "selection_criteria": {"segment": "platinum", "kyc_status": "verified"},
            "start_date": today + chrono::Days::new(1),
            "end_date": today + chrono::Days::new(31),
        });
        let created = self
            .api
            .send(
                Method::POST,
                campaigns,
                Some(Auth::Bearer(self.token(OPERATOR))),
                Some(&body),
            )
            .await?
            .expect(&format!("{OPERATOR} creating the second wave"), &[202])?;
        let id = created["id"].as_i64().context("the campaign has no id")?;
        let path = format!("{campaigns}/{id}");
        self.wait_processed(id, &path).await?;
        let scheduled = self
            .api
            .send(
                Method::PUT,
                &path,
                Some(Auth::Bearer(self.token("cc_admin"))),
                Some(&json!({"status": "active"})),
            )
            .await?
            .expect("the tenant admin activating the second wave", &[200])?;
        if scheduled["status"] != "scheduled" {
            bail!(
                "campaign {id}, starting tomorrow, is {} after activation",
                scheduled["status"]
            );
        }
        self.steps.push(format!(
            "campaign {id} (second wave) activated for tomorrow: scheduled, nothing released until {}",
            scheduled["starts_at"].as_str().unwrap_or("its start")
        ));
        Ok(())
    }

    /// A delivery provider pulling its feed and reporting every delivery (every tenth failed).
    pub(super) async fn provider(&mut self, campaign: &Campaigned) -> anyhow::Result<()> {
        let campaign_id = campaign.id;

        // 6. The delivery provider: pulls its feed, reports every delivery.
        let key = self.api
        .send(
            Method::POST,
            "/sa/webhook-keys",
            Some(self.as_admin()),
            Some(&json!({"tenant_name": TENANT, "name": format!("demo provider, campaign {campaign_id}")})),
        )
        .await?
        .expect("creating a webhook key", &[201])?;
        let key = key["key"]
            .as_str()
            .context("no key in the answer")?
            .to_owned();
        let mut customer_ids = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut path = format!("/system/campaigns/{campaign_id}/deliveries?limit=200");
            if let Some(after) = &after {
                path.push_str(&format!("&after={after}"));
            }
            let page = self
                .api
                .send(Method::GET, &path, Some(Auth::WebhookKey(&key)), None)
                .await?
                .expect("the provider fetching its deliveries", &[200])?;
            let ids: Vec<String> = page["deliveries"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|row| row["customer_id"].as_str().map(str::to_owned))
                .collect();
            customer_ids.extend(ids);
            match page["next_after"].as_str() {
                Some(next) => after = Some(next.to_owned()),
                None => break,
            }
        }
        let sent_at = chrono::Utc::now().to_rfc3339();
        let mut reports: Vec<Value> = customer_ids
        .iter()
        .enumerate()
        .map(|(i, customer_id)| {
            if i % 10 == 9 {
                json!({"campaign_id": campaign_id, "customer_id": customer_id, "status": "failed",
                       "sent_at": sent_at, "failure_reason": "mailbox full"})
            } else {
                json!({"campaign_id": campaign_id, "customer_id": customer_id, "status": "sent",
                       "sent_at": sent_at, "provider_message_id": format!("demo-{campaign_id}-{i}")})
            }
        })
        .collect();
        // Engagement, as providers report it: every sent message delivered, every second one
        // opened, every fifth clicked (stages of one delivery in one batch, in any order).
        let mut stages = Vec::new();
        for (i, customer_id) in customer_ids.iter().enumerate().filter(|(i, _)| i % 10 != 9) {
            for (stage, every) in [("clicked", 5), ("opened", 2), ("delivered", 1)] {
                if i % every == 0 {
                    stages.push(
                        json!({"campaign_id": campaign_id, "customer_id": customer_id,
                                       "status": stage, "occurred_at": sent_at}),
                    );
                }
            }
        }
        let engaged = stages.len();
        reports.extend(stages);
        for batch in reports.chunks(delivery_webhook::MAX_REPORTS) {
            let answer = self
                .api
                .send(
                    Method::POST,
                    "/system/campaigns/update-delivery-status",
                    Some(Auth::WebhookKey(&key)),
                    Some(&Value::Array(batch.to_vec())),
                )
                .await?
                .expect("the provider reporting deliveries", &[200])?;
            if answer["summary"]["updated"].as_u64() != Some(batch.len() as u64) {
                bail!(
                    "the webhook applied {} of {} reports",
                    answer["summary"]["updated"],
                    batch.len()
                );
            }
        }
        self.steps.push(format!(
        "a delivery provider (new webhook key) fetched its {} deliveries from the feed and reported them through the webhook, with {engaged} engagement events (delivered, opened, clicked)",
        customer_ids.len()
    ));
        Ok(())
    }

    /// The bank's systems reporting conversions by the model of [`converts`]: treated
    /// customers convert more often than held-out ones.
    pub(super) async fn conversions(&mut self, campaign: &Campaigned) -> anyhow::Result<()> {
        let mut items = Vec::new();
        // The treated group is every released delivery, whatever stage it reached.
        for (status, treated) in [
            ("pending", true),
            ("sent", true),
            ("failed", true),
            ("expired", true),
            ("delivered", true),
            ("opened", true),
            ("clicked", true),
            ("control", false),
        ] {
            for customer_id in self.customers(campaign, status).await? {
                if converts(&customer_id, treated) {
                    items.push(
                        json!({"event_id": format!("demo-{}-{customer_id}", campaign.id),
                        "customer_id": customer_id, "occurred_at": chrono::Utc::now(),
                        "value": CONVERSION_VALUE, "currency": "INR"}),
                    );
                }
            }
        }
        for batch in items.chunks(1000) {
            self.api
                .send(
                    Method::POST,
                    &format!("/tenants/{TENANT}/conversions"),
                    Some(Auth::Bearer(self.token("cc_admin"))),
                    Some(&json!({"conversions": batch})),
                )
                .await?
                .expect("the bank's systems reporting conversions", &[200])?;
        }
        self.steps.push(format!(
            "the bank's systems reported {} conversions (the demo's model: {} % of treated and \
             {} % of held-out customers, drawn by a hash of the customer id)",
            items.len(),
            TREATED_RATE * 100.0,
            CONTROL_RATE * 100.0
        ));
        Ok(())
    }

    /// Every customer of `campaign` whose delivery is in `status`.
    async fn customers(&self, campaign: &Campaigned, status: &str) -> anyhow::Result<Vec<String>> {
        let mut ids = Vec::new();
        let mut after = String::new();
        loop {
            let page = self
                .api
                .send(
                    Method::GET,
                    &format!(
                        "{}/customers?delivery_status={status}&limit=200{after}",
                        campaign.path
                    ),
                    Some(Auth::Bearer(self.token("cc_viewer"))),
                    None,
                )
                .await?
                .expect("listing the campaign's customers", &[200])?;
            let rows: Vec<String> = page
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|row| row["customer_id"].as_str().map(str::to_owned))
                .collect();
            let full = rows.len() == 200;
            if let Some(last) = rows.last() {
                after = format!("&after={last}");
            }
            ids.extend(rows);
            if !full {
                return Ok(ids);
            }
        }
    }

    /// The campaign's report, the offer's audit trail and the demo users.
    pub(super) async fn report(
        self,
        offer: &Offered,
        campaign: &Campaigned,
        version: Versioned,
    ) -> anyhow::Result<Report> {
        let (offer_id, offer_path) = (offer.id, &offer.path);
        let (campaign_id, campaign_path, matched) = (campaign.id, &campaign.path, campaign.matched);
        let Versioned {
            diff: version_diff,
            live_version,
            campaign_offer_version,
        } = version;

        // 7. The report.
        let summary = self
            .api
            .send(
                Method::GET,
                &format!("{campaign_path}/customers/summary"),
                Some(Auth::Bearer(self.token("cc_viewer"))),
                None,
            )
            .await?
            .expect("reading the delivery summary", &[200])?;
        let trail = self
            .api
            .send(
                Method::GET,
                &format!("{offer_path}/audit-logs"),
                Some(Auth::Bearer(self.token("cc_admin"))),
                None,
            )
            .await?
            .expect("reading the offer's audit trail", &[200])?;
        let audit = trail
            .as_array()
            .into_iter()
            .flatten()
            .map(audit_line)
            .collect();
        let results = self
            .api
            .send(
                Method::GET,
                &format!("{campaign_path}/results"),
                Some(Auth::Bearer(self.token("cc_viewer"))),
                None,
            )
            .await?
            .expect("reading the campaign's results", &[200])?;
        let count = |name: &str| summary[name].as_i64().unwrap_or_default();
        Ok(Report {
            steps: self.steps,
            offer_id,
            campaign_id,
            matched,
            sent: count("sent"),
            failed: count("failed"),
            pending: count("pending"),
            suppressed_by_consent: count("suppressed_by_consent"),
            suppressed_by_pressure: count("suppressed_by_pressure"),
            released: count("released"),
            control: count("control"),
            results,
            audit,
            version_diff,
            campaign_offer_version,
            live_version,
            users: self.users,
        })
    }
}

/// One entry of the offer's audit trail as a report line.
fn audit_line(entry: &Value) -> AuditLine {
    let status = |data: &Value| data["status"].as_str().unwrap_or("").to_owned();
    let comment = entry["comment"].as_str().unwrap_or("");
    let new_data = &entry["new_data"];
    let approved_as = match (status(new_data).as_str(), new_data["live_version"].as_i64()) {
        ("approved", Some(n)) => format!(" as version {n}"),
        _ => String::new(),
    };
    let note = match entry["action"].as_str() {
        Some("status_change") if comment.is_empty() => format!(
            "{} → {}{approved_as}",
            status(&entry["old_data"]),
            status(new_data)
        ),
        Some("status_change") => format!(
            "{} → {}{approved_as}: {comment}",
            status(&entry["old_data"]),
            status(new_data)
        ),
        Some("update") => match new_data["draft_base_version"].as_i64() {
            Some(base) => format!("content changed: a draft on top of version {base}"),
            None => "content changed".to_owned(),
        },
        _ => comment.to_owned(),
    };
    AuditLine {
        at: entry["created_at"].as_str().unwrap_or("").to_owned(),
        action: entry["action"].as_str().unwrap_or("").to_owned(),
        by: entry["performed_by"].as_str().unwrap_or("").to_owned(),
        note,
    }
}

/// The demo campaign's holdout, in percent.
const HOLDOUT_PERCENT: f64 = 10.0;
/// The demo's conversion model: the share of treated customers who convert…
const TREATED_RATE: f64 = 0.06;
/// …and of held-out customers (the rate without the campaign).
const CONTROL_RATE: f64 = 0.04;
/// What each conversion is worth, in INR (the card's first-year fee, say).
const CONVERSION_VALUE: f64 = 2500.0;

/// The demo's conversion model, deterministic: a customer converts when the first two bytes
/// of SHA-256("demo-conversion:" + id), as a big-endian number, fall below the group's rate
/// times 65,536.
pub fn converts(customer_id: &str, treated: bool) -> bool {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("demo-conversion:{customer_id}"));
    let draw = f64::from(u16::from_be_bytes([digest[0], digest[1]]));
    draw < 65_536.0 * if treated { TREATED_RATE } else { CONTROL_RATE }
}
