//! `offerctl demo`: the whole story against a running server, over HTTP, as its users would
//! live it, on the customers already loaded (the README's run command imports the 10,127 real
//! card holders of `infra/demo`):
//!
//! 1. the super admin creates tenant `credit_card` and one user per default role
//!    (`cc_admin`, `cc_maker`, `cc_approver`, `cc_viewer`), a custom role
//!    `campaign_operator` (campaign read, write and process; no offer permission) and the
//!    user `cc_operator`, to whom the tenant admin `cc_admin` gives that role
//!    (`POST /tenants/credit_card/members`);
//! 2. the maker writes an offer and submits it; the maker's own approval is refused (403,
//!    maker–checker), so is the operator's (403: its role does not review offers), and the
//!    approver approves it;
//! 3. the operator creates a campaign for verified gold and platinum card holders; the demo
//!    waits for the processor to select them, and the tenant admin activates it;
//! 4. the maker changes the approved offer (a lower fee, one more benefit): a draft on top of
//!    version 1, which stays live; the checker reads the change as an RFC 6902 JSON Patch
//!    (`…/draft-diff`) and approves it as version 2, while the running campaign keeps
//!    delivering version 1;
//! 5. a delivery provider, with a new webhook key, reports every delivery in one call: every
//!    tenth `failed`, the others `sent`;
//! 6. the report: customers matched, sent, failed, the change of version 2, and the offer's
//!    audit trail.
//!
//! It may be run again: the tenant and users are reused (their passwords reset), and each run
//! adds one offer, one campaign and one webhook key, leaving the database usable.

use std::fmt;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The demo's tenant.
pub const TENANT: &str = "credit_card";
/// The demo's users and their roles in [`TENANT`].
pub const USERS: [(&str, &str); 4] = [
    ("cc_admin", "admin"),
    ("cc_maker", "create"),
    ("cc_approver", "approver"),
    ("cc_viewer", "read_only"),
];
/// The demo's custom role: runs campaigns, never touches offers.
pub const CUSTOM_ROLE: &str = "campaign_operator";
/// Its permissions.
pub const CUSTOM_ROLE_PERMISSIONS: [&str; 3] =
    ["campaign.read", "campaign.write", "campaign.process"];
/// The demo user who holds [`CUSTOM_ROLE`], given it by the tenant admin.
pub const OPERATOR: &str = "cc_operator";
/// The demo's contact policy: at most this many contacts per customer per this many days,
/// across every tenant.
pub const CONTACT_CAP: (i32, i32) = (3, 7);
/// How long the demo waits for the processor, at most.
pub const PROCESSING_TIMEOUT: Duration = Duration::from_secs(120);

/// Where and as whom the demo runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The server's base URL, e.g. `http://127.0.0.1:3000` (plain HTTP: a local server).
    pub base_url: String,
    /// A super admin's username.
    pub username: String,
    /// Its password.
    pub password: secrecy::SecretString,
}

/// One row of the offer's audit trail, as printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditLine {
    /// When (RFC 3339).
    pub at: String,
    /// `create`, `status_change`, …
    pub action: String,
    /// Who.
    pub by: String,
    /// The status change (`draft → submitted`) or the comment, if any.
    pub note: String,
}

/// What the demo did and found.
#[derive(Debug, Clone)]
pub struct Report {
    /// One line per step, in order.
    pub steps: Vec<String>,
    /// The offer's id.
    pub offer_id: i64,
    /// The campaign's id.
    pub campaign_id: i64,
    /// Customers the campaign matched.
    pub matched: i64,
    /// Deliveries reported `sent`.
    pub sent: i64,
    /// Deliveries reported `failed`.
    pub failed: i64,
    /// Deliveries with no report.
    pub pending: i64,
    /// Matched customers without consent for e-mail.
    pub suppressed_by_consent: i64,
    /// Matched customers held back by the contact cap.
    pub suppressed_by_pressure: i64,
    /// Deliveries released to the provider.
    pub released: i64,
    /// The offer's audit trail, oldest first.
    pub audit: Vec<AuditLine>,
    /// Version 2's change against version 1: one RFC 6902 operation per line.
    pub version_diff: Vec<String>,
    /// The offer version the campaign delivers (pinned when it was created).
    pub campaign_offer_version: i64,
    /// The offer's live version at the end.
    pub live_version: i64,
    /// The demo users' username, role and password (for signing in on the docs page).
    pub users: Vec<(String, String, String)>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for step in &self.steps {
            writeln!(f, "  {step}")?;
        }
        writeln!(f)?;
        writeln!(f, "Campaign {} report", self.campaign_id)?;
        writeln!(f, "  customers matched  {:>6}", self.matched)?;
        writeln!(f, "  no consent         {:>6}", self.suppressed_by_consent)?;
        writeln!(f, "  contact cap        {:>6}", self.suppressed_by_pressure)?;
        writeln!(f, "  released           {:>6}", self.released)?;
        writeln!(f, "  sent               {:>6}", self.sent)?;
        writeln!(f, "  failed             {:>6}", self.failed)?;
        writeln!(f, "  pending            {:>6}", self.pending)?;
        writeln!(f)?;
        writeln!(
            f,
            "Offer {} version {} against version 1 (RFC 6902; campaign {} still delivers version {})",
            self.offer_id, self.live_version, self.campaign_id, self.campaign_offer_version
        )?;
        for line in &self.version_diff {
            writeln!(f, "  {line}")?;
        }
        writeln!(f)?;
        writeln!(f, "Audit trail of offer {}", self.offer_id)?;
        for line in &self.audit {
            writeln!(
                f,
                "  {:<27}  {:<13}  {:<11}  {}",
                line.at, line.action, line.by, line.note
            )?;
        }
        writeln!(f)?;
        writeln!(f, "Demo users (tenant {TENANT}):")?;
        for (username, role, password) in &self.users {
            writeln!(f, "  {username:<11}  {role:<17}  password {password}")?;
        }
        Ok(())
    }
}

/// A JSON client of the API.
struct Api {
    http: reqwest::Client,
    base: String,
}

/// An answer: status, `ETag` (if any) and JSON body (`null` when empty).
struct Answer {
    status: StatusCode,
    etag: Option<String>,
    body: Value,
}

impl Answer {
    /// The body if the status is one of `expected`, else an error with the problem detail.
    fn expect(self, what: &str, expected: &[u16]) -> anyhow::Result<Value> {
        if expected.contains(&self.status.as_u16()) {
            return Ok(self.body);
        }
        let detail = self.body["detail"].as_str().unwrap_or("no detail");
        bail!("{what}: the server answered {} ({detail})", self.status)
    }
}

/// Credentials of a request.
enum Auth<'a> {
    Bearer(&'a str),
    WebhookKey(&'a str),
}

impl Api {
    async fn send(
        &self,
        method: Method,
        path: &str,
        auth: Option<Auth<'_>>,
        body: Option<&Value>,
    ) -> anyhow::Result<Answer> {
        self.send_if_match(method, path, auth, body, None).await
    }

    /// As [`Api::send`], with `If-Match: if_match` when given (a checker's approval names
    /// the version reviewed).
    async fn send_if_match(
        &self,
        method: Method,
        path: &str,
        auth: Option<Auth<'_>>,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> anyhow::Result<Answer> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(tag) = if_match {
            request = request.header("if-match", tag);
        }
        request = match auth {
            Some(Auth::Bearer(token)) => request.bearer_auth(token),
            Some(Auth::WebhookKey(key)) => request.header("x-api-key", key),
            None => request,
        };
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.with_context(|| {
            format!("cannot reach {} (is `offerctl serve` running?)", self.base)
        })?;
        let status = response.status();
        let etag = response
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = response.bytes().await?;
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        Ok(Answer { status, etag, body })
    }

    async fn sign_in(&self, username: &str, password: &str) -> anyhow::Result<String> {
        let body = json!({"username": username, "password": password});
        let answer = self
            .send(Method::POST, "/auth/token", None, Some(&body))
            .await?;
        let token = answer.expect(&format!("signing in as {username}"), &[200])?;
        token["access_token"]
            .as_str()
            .map(str::to_owned)
            .context("the token answer has no access_token")
    }
}

/// Creates `username` with a new password, or resets the password of an existing one;
/// answers the password.
async fn ensure_user(
    api: &Api,
    admin_token: &str,
    username: &str,
    full_name: &str,
) -> anyhow::Result<String> {
    let password = new_password();
    let body = json!({"username": username, "password": password, "full_name": full_name});
    let created = api
        .send(
            Method::POST,
            "/sa/users",
            Some(Auth::Bearer(admin_token)),
            Some(&body),
        )
        .await?;
    if created.status == StatusCode::CONFLICT {
        let body = json!({"new_password": password});
        api.send(
            Method::POST,
            &format!("/sa/users/{username}/change-password"),
            Some(Auth::Bearer(admin_token)),
            Some(&body),
        )
        .await?
        .expect(&format!("resetting {username}'s password"), &[204])?;
    } else {
        created.expect(&format!("creating {username}"), &[201])?;
    }
    Ok(password)
}

/// A password for a demo user: `Demo-` and 32 hex digits of a random (v4) UUID, 122 bits from
/// the operating system's generator.
fn new_password() -> String {
    format!("Demo-{}", uuid::Uuid::new_v4().simple())
}

/// The offer the demo wrote: its id and path.
struct Offered {
    id: i64,
    path: String,
}

/// The demo's campaign: its id, path and how many customers it selected.
struct Campaigned {
    id: i64,
    path: String,
    matched: i64,
}

/// Version 2 of the offer: its changes against version 1, the live version after its
/// approval, and the version the campaign still delivers.
struct Versioned {
    diff: Vec<String>,
    live_version: i64,
    campaign_offer_version: i64,
}

/// The demo's state between its stages: the API, the super admin's token, the demo users'
/// tokens and passwords, and the steps done so far.
struct Demo {
    api: Api,
    admin_token: String,
    tokens: std::collections::HashMap<&'static str, String>,
    users: Vec<(String, String, String)>,
    steps: Vec<String>,
}

impl Demo {
    fn as_admin(&self) -> Auth<'_> {
        Auth::Bearer(&self.admin_token)
    }

    fn token(&self, name: &str) -> &str {
        self.tokens
            .get(name)
            .map(String::as_str)
            .unwrap_or_default()
    }

    /// The tenant, its users (one per default role) and the custom role the tenant admin gives the operator.
    async fn tenant_and_users(&mut self) -> anyhow::Result<()> {
        // 1. The tenant and its users.
        let tenant_path = format!("/sa/tenants/{TENANT}");
        let existing = self
            .api
            .send(Method::GET, &tenant_path, Some(self.as_admin()), None)
            .await?;
        if existing.status == StatusCode::NOT_FOUND {
            let body = json!({
                "name": TENANT,
                "description": "Credit cards",
                "require_maker_checker": true,
                "offer_schema": {
                    "type": "object",
                    "required": ["title", "annual_fee"],
                    "properties": {
                        "title": {"type": "string", "minLength": 1},
                        "annual_fee": {"type": "number", "minimum": 0},
                        "benefits": {"type": "array", "items": {"type": "string"}}
                    }
                }
            });
            self.api
                .send(
                    Method::POST,
                    "/sa/tenants",
                    Some(self.as_admin()),
                    Some(&body),
                )
                .await?
                .expect("creating the tenant", &[201])?;
            self.steps.push(format!(
                "created tenant {TENANT} (offers need a checker's approval)"
            ));
        } else {
            existing.expect("reading the tenant", &[200])?;
            self.steps.push(format!("reused tenant {TENANT}"));
        }
        for (username, role) in USERS {
            let password = ensure_user(
                &self.api,
                &self.admin_token,
                username,
                &format!("Demo {role}"),
            )
            .await?;
            let body = json!({"username": username, "tenant_name": TENANT, "role": role});
            self.api
                .send(
                    Method::POST,
                    "/sa/user-tenant-roles",
                    Some(self.as_admin()),
                    Some(&body),
                )
                .await?
                .expect(&format!("giving {username} the {role} role"), &[200, 201])?;
            self.tokens
                .insert(username, self.api.sign_in(username, &password).await?);
            self.users
                .push((username.to_owned(), role.to_owned(), password));
        }
        self.steps.push(format!(
            "users {}",
            USERS
                .iter()
                .map(|(u, r)| format!("{u} ({r})"))
                .collect::<Vec<_>>()
                .join(", ")
        ));

        // The custom role (created, or reset to its permissions on a later run), given to the
        // operator by the tenant's own admin.
        let role_body = json!({
            "name": CUSTOM_ROLE,
            "description": "Runs campaigns; never reviews offers",
            "permissions": CUSTOM_ROLE_PERMISSIONS,
        });
        let created = self
            .api
            .send(
                Method::POST,
                &format!("/sa/tenants/{TENANT}/roles"),
                Some(self.as_admin()),
                Some(&role_body),
            )
            .await?;
        if created.status == StatusCode::CONFLICT {
            self.api
                .send(
                    Method::PUT,
                    &format!("/sa/tenants/{TENANT}/roles/{CUSTOM_ROLE}"),
                    Some(self.as_admin()),
                    Some(&json!({"permissions": CUSTOM_ROLE_PERMISSIONS})),
                )
                .await?
                .expect(&format!("resetting role {CUSTOM_ROLE}"), &[200])?;
        } else {
            created.expect(&format!("creating role {CUSTOM_ROLE}"), &[201])?;
        }
        let password = ensure_user(
            &self.api,
            &self.admin_token,
            OPERATOR,
            "Demo campaign operator",
        )
        .await?;
        let cc_admin = self.tokens.get("cc_admin").cloned().unwrap_or_default();
        self.api
            .send(
                Method::POST,
                &format!("/tenants/{TENANT}/members"),
                Some(Auth::Bearer(&cc_admin)),
                Some(&json!({"username": OPERATOR, "role": CUSTOM_ROLE})),
            )
            .await?
            .expect(
                &format!("cc_admin giving {OPERATOR} the {CUSTOM_ROLE} role"),
                &[200, 201],
            )?;
        self.tokens
            .insert(OPERATOR, self.api.sign_in(OPERATOR, &password).await?);
        self.users
            .push((OPERATOR.to_owned(), CUSTOM_ROLE.to_owned(), password));
        self.steps.push(format!(
        "custom role {CUSTOM_ROLE} ({}) defined by the super admin; cc_admin gave it to {OPERATOR}",
        CUSTOM_ROLE_PERMISSIONS.join(", ")
    ));
        Ok(())
    }

    /// An offer written and submitted by the maker, refused to its maker and to the operator (403), approved by the approver with the version it read.
    async fn offer(&mut self) -> anyhow::Result<Offered> {
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
        let self_approval = self
            .api
            .send(
                Method::POST,
                &format!("{offer_path}/approve"),
                Some(Auth::Bearer(self.token("cc_maker"))),
                None,
            )
            .await?;
        if self_approval.status != StatusCode::FORBIDDEN {
            bail!(
                "the maker's own approval answered {} instead of 403",
                self_approval.status
            );
        }
        let operator_approval = self
            .api
            .send(
                Method::POST,
                &format!("{offer_path}/approve"),
                Some(Auth::Bearer(self.token(OPERATOR))),
                None,
            )
            .await?;
        if operator_approval.status != StatusCode::FORBIDDEN {
            bail!(
                "{OPERATOR}'s approval answered {} instead of 403",
                operator_approval.status
            );
        }
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

    /// Consent recorded for the gold and platinum holders (every tenth says no) and the platform's contact cap.
    async fn consent_and_cap(&mut self) -> anyhow::Result<()> {
        // 3. Consent and the contact cap: the bank's data team records what the gold and
        //    platinum card holders said about e-mail (every tenth said no), and the platform
        //    caps contacts across every tenant.
        let mut consented = 0;
        let mut refused = 0;
        for segment in ["gold", "platinum"] {
            let mut after: Option<String> = None;
            loop {
                let mut path =
                    format!("/customers?segment={segment}&kyc_status=verified&limit=200");
                if let Some(after) = &after {
                    path.push_str(&format!("&after={after}"));
                }
                let page = self
                    .api
                    .send(Method::GET, &path, Some(self.as_admin()), None)
                    .await?
                    .expect("listing the audience's customers", &[200])?;
                let ids: Vec<String> = page
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c["id"].as_str().map(str::to_owned))
                    .collect();
                for id in &ids {
                    let status = if (consented + refused) % 10 == 9 {
                        refused += 1;
                        "opted_out"
                    } else {
                        consented += 1;
                        "opted_in"
                    };
                    self.api
                        .send(
                            Method::PUT,
                            &format!("/customers/{id}/consents/email"),
                            Some(self.as_admin()),
                            Some(
                                &json!({"status": status, "source": "demo: branch consent forms"}),
                            ),
                        )
                        .await?
                        .expect("recording a consent", &[200])?;
                }
                let full = ids.len() == 200;
                after = ids.last().cloned();
                if !full {
                    break;
                }
            }
        }
        self.api
            .send(
                Method::PUT,
                "/sa/contact-policy",
                Some(self.as_admin()),
                Some(&json!({"max_contacts": CONTACT_CAP.0, "window_days": CONTACT_CAP.1})),
            )
            .await?
            .expect("setting the contact policy", &[200])?;
        self.steps.push(format!(
        "e-mail consent recorded for {} gold and platinum holders ({refused} opted out); contacts capped at {} per {} days across tenants",
        consented + refused,
        CONTACT_CAP.0,
        CONTACT_CAP.1
    ));
        Ok(())
    }

    /// The campaign for them, created by the operator, selected by the processor, activated by the tenant admin.
    async fn campaign(&mut self, offer: &Offered) -> anyhow::Result<Campaigned> {
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
        self.steps
            .push(format!("campaign {campaign_id} activated by cc_admin"));
        self.scheduled_campaign(offer_id, &campaigns, today).await?;
        Ok(Campaigned {
            id: campaign_id,
            path: campaign_path,
            matched,
        })
    }

    /// Polls campaign `id` at `path` until its selection is `done` (its state then), failing
    /// on `failed` or after [`PROCESSING_TIMEOUT`].
    async fn wait_processed(&mut self, id: i64, path: &str) -> anyhow::Result<Value> {
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
    async fn scheduled_campaign(
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

    /// Version 2 of the offer, drafted on top of the live one, read as a JSON Patch and approved, while the campaign keeps version 1.
    async fn second_version(
        &mut self,
        offer: &Offered,
        campaign: &Campaigned,
    ) -> anyhow::Result<Versioned> {
        let (offer_id, offer_path) = (offer.id, &offer.path);
        let (campaign_id, campaign_path) = (campaign.id, &campaign.path);

        // 5. A second version: drafted on top of the live one, read as a patch, approved.
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
        let version_diff: Vec<String> = patch
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
            .collect();
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

    /// A delivery provider pulling its feed and reporting every delivery (every tenth failed).
    async fn provider(&mut self, campaign: &Campaigned) -> anyhow::Result<()> {
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
        let reports: Vec<Value> = customer_ids
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
        "a delivery provider (new webhook key) fetched its {} deliveries from the feed and reported them through the webhook",
        reports.len()
    ));
        Ok(())
    }

    /// The campaign's report, the offer's audit trail and the demo users.
    async fn report(
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
            .map(|entry| {
                let status = |data: &Value| data["status"].as_str().unwrap_or("").to_owned();
                let comment = entry["comment"].as_str().unwrap_or("");
                let new_data = &entry["new_data"];
                let approved_as =
                    match (status(new_data).as_str(), new_data["live_version"].as_i64()) {
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
            })
            .collect();
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
            audit,
            version_diff,
            campaign_offer_version,
            live_version,
            users: self.users,
        })
    }
}

/// Runs the demo (see the module documentation).
///
/// # Errors
/// The first step that fails, with the server's problem detail: an unreachable server, wrong
/// super admin credentials, no customers loaded, a campaign not processed in
/// [`PROCESSING_TIMEOUT`].
pub async fn run(options: &Options) -> anyhow::Result<Report> {
    use secrecy::ExposeSecret;
    let api = Api {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?,
        base: options.base_url.trim_end_matches('/').to_owned(),
    };
    let admin_token = api
        .sign_in(&options.username, options.password.expose_secret())
        .await?;
    let mut demo = Demo {
        api,
        admin_token,
        tokens: std::collections::HashMap::new(),
        users: Vec::new(),
        steps: Vec::new(),
    };
    demo.tenant_and_users().await?;
    let offer = demo.offer().await?;
    demo.consent_and_cap().await?;
    let campaign = demo.campaign(&offer).await?;
    let version = demo.second_version(&offer, &campaign).await?;
    demo.provider(&campaign).await?;
    demo.report(&offer, &campaign, version).await
}
