//! The demo's offer: written, submitted and approved under maker–checker (stage 2), then
//! its second version drafted, read as a JSON Patch and approved (stage 4).

use anyhow::{Context, bail};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::*;

impl Demo {
    /// An offer written and submitted by the maker, refused to its maker and to the operator (403), approved by the approver with the version it read.
    pub(super) async fn offer(&mut self) -> anyhow::Result<Offered> {
        // 2. The offer, under maker–checker.
        let offers = format!("/tenants/{TENANT}/offers");
        let body = json!({
            "data": {
                "title": "Platinum upgrade: lounge access and 5x rewards",
                "annual_fee": 4999,
                "benefits": ["airport lounge access", "5x reward points on travel", "fee waived on 4 lakh yearly spend"]
            },
            "comments": "For verified gold and platinum holders"
        });
        let offer = self
            .api
            .send(
                Method::POST,
                &offers,
                Some(Auth::Bearer(self.token("cc_maker"))),
                Some(&body),
            )
            .await?
            .expect("the maker writing the offer", &[201])?;
        let offer_id = offer["id"].as_i64().context("the offer has no id")?;
        let offer_path = format!("{offers}/{offer_id}");
        let submitted = self
            .api
            .send(
                Method::POST,
                &format!("{offer_path}/submit"),
                Some(Auth::Bearer(self.token("cc_maker"))),
                None,
            )
            .await?;
        // The version the approver reviews: approving names it (If-Match).
        let reviewed = submitted.etag.clone();
        submitted.expect("the maker submitting the offer", &[200])?;
        // Neither the maker (four eyes) nor the operator (no offer.approve) may approve it.
        self.approval_refused(&offer_path, "cc_maker", "the maker's own")
            .await?;
        self.approval_refused(&offer_path, OPERATOR, &format!("{OPERATOR}'s"))
            .await?;
        self.api
            .send_if_match(
                Method::POST,
                &format!("{offer_path}/approve"),
                Some(Auth::Bearer(self.token("cc_approver"))),
                Some(&json!({"comments": "Fees and benefits checked"})),
                reviewed.as_deref(),
            )
            .await?
            .expect("the approver approving the offer", &[200])?;
        self.steps.push(format!(
        "offer {offer_id} written and submitted by cc_maker; its maker's approval refused (403), so was {OPERATOR}'s (403); approved by cc_approver"
    ));
        Ok(Offered {
            id: offer_id,
            path: offer_path,
        })
    }

    /// `user`'s approval of the offer at `offer_path` must be refused (403).
    async fn approval_refused(
        &self,
        offer_path: &str,
        user: &str,
        whose: &str,
    ) -> anyhow::Result<()> {
        let answer = self
            .api
            .send(
                Method::POST,
                &format!("{offer_path}/approve"),
                Some(Auth::Bearer(self.token(user))),
                None,
            )
            .await?;
        if answer.status != StatusCode::FORBIDDEN {
            bail!("{whose} approval answered {} instead of 403", answer.status);
        }
        Ok(())
    }

    /// Version 2 of the offer, drafted on top of the live one, read as a JSON Patch and approved, while the campaign keeps version 1.
    pub(super) async fn second_version(
        &mut self,
        offer: &Offered,
        campaign: &Campaigned,
    ) -> anyhow::Result<Versioned> {
        let (offer_id, offer_path) = (offer.id, &offer.path);
        let (campaign_id, campaign_path) = (campaign.id, &campaign.path);

        // 5. A second version: drafted on top of the live one, read as a patch, approved.
        self.draft_second_version(offer_path).await?;
        let diff = self
            .api
            .send(
                Method::GET,
                &format!("{offer_path}/draft-diff"),
                Some(Auth::Bearer(self.token("cc_approver"))),
                None,
            )
            .await?;
        // The approval names the version the diff showed (its ETag).
        let reviewed = diff.etag.clone();
        let patch = diff.expect("the approver reading the change", &[200])?;
        let approved = self
            .api
            .send_if_match(
                Method::POST,
                &format!("{offer_path}/approve"),
                Some(Auth::Bearer(self.token("cc_approver"))),
                Some(&json!({"comments": "New fee checked"})),
                reviewed.as_deref(),
            )
            .await?
            .expect("the approver approving version 2", &[200])?;

        let live_version = approved["live_version"].as_i64().unwrap_or_default();
        let version_diff = patch_lines(&patch);
        let pinned = self
            .api
            .send(
                Method::GET,
                campaign_path,
                Some(Auth::Bearer(self.token("cc_viewer"))),
                None,
            )
            .await?
            .expect("reading the campaign", &[200])?;
        let campaign_offer_version = pinned["offer_version"].as_i64().unwrap_or_default();
        self.steps.push(format!(
        "offer {offer_id} version {live_version} drafted by cc_maker on top of version 1 ({} change(s), read by cc_approver as a JSON Patch) and approved; campaign {campaign_id} still delivers version {campaign_offer_version}",
        version_diff.len()
    ));
        Ok(Versioned {
            diff: version_diff,
            live_version,
            campaign_offer_version,
        })
    }

    /// The maker's draft of version 2 on top of the live version 1, submitted.
    async fn draft_second_version(&mut self, offer_path: &str) -> anyhow::Result<()> {
        let body = json!({
            "data": {
                "title": "Platinum upgrade: lounge access and 5x rewards",
                "annual_fee": 3999,
                "benefits": ["airport lounge access", "5x reward points on travel",
                             "fee waived on 4 lakh yearly spend", "2 free airport transfers a year"]
            },
            "comments": "Lower fee, one more benefit"
        });
        let draft = self
            .api
            .send(
                Method::PUT,
                offer_path,
                Some(Auth::Bearer(self.token("cc_maker"))),
                Some(&body),
            )
            .await?
            .expect("the maker drafting version 2", &[200])?;
        if draft["live_version"] != json!(1) || draft["draft_pending"] != json!(true) {
            bail!("the draft of version 2 did not leave version 1 live: {draft}");
        }
        self.api
            .send(
                Method::POST,
                &format!("{offer_path}/submit"),
                Some(Auth::Bearer(self.token("cc_maker"))),
                None,
            )
            .await?
            .expect("the maker submitting version 2", &[200])?;
        Ok(())
    }
}

/// A JSON Patch as report lines: `op  path  value`.
fn patch_lines(patch: &Value) -> Vec<String> {
    patch
        .as_array()
        .into_iter()
        .flatten()
        .map(|op| {
            let (kind, path) = (
                op["op"].as_str().unwrap_or(""),
                op["path"].as_str().unwrap_or(""),
            );
            match op.get("value") {
                Some(value) => format!("{kind:<8} {path}  {value}"),
                None => format!("{kind:<8} {path}"),
            }
        })
        .collect()
}
