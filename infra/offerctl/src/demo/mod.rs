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
//!    tenth `failed`, the others `sent`, then engagement: every sent one `delivered`, every
//!    second `opened`, every fifth `clicked`;
//! 6. the bank's systems report conversions by a stated model (6 % of the treated customers,
//!    4 % of the 10 % held out as the campaign's control group, drawn by a hash of the
//!    customer id);
//! 7. the report: customers matched, sent, failed, held out, the campaign's results (the
//!    lift with its interval), the change of version 2, and the offer's audit trail.
//!
//! It may be run again: the tenant and users are reused (their passwords reset), and each run
//! adds one offer, one campaign and one webhook key, leaving the database usable.

use std::fmt;
use std::time::Duration;

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
    /// Customers held out as the control group.
    pub control: i64,
    /// `GET …/results` of the campaign (docs/results.md).
    pub results: serde_json::Value,
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
        writeln!(f, "  control (held out) {:>6}", self.control)?;
        writeln!(f)?;
        write_results(f, self.campaign_id, &self.results)?;
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

/// The results section of the report: both groups, the lift with its interval, the notes.
fn write_results(
    f: &mut fmt::Formatter<'_>,
    campaign: i64,
    results: &serde_json::Value,
) -> fmt::Result {
    let pct = |v: &serde_json::Value| {
        v.as_f64()
            .map_or("-".to_owned(), |x| format!("{:.2} %", x * 100.0))
    };
    writeln!(
        f,
        "Campaign {campaign} results ({:.0} % confidence; docs/results.md)",
        results["confidence"].as_f64().unwrap_or_default() * 100.0
    )?;
    for group in ["treated", "control"] {
        let g = &results[group];
        writeln!(
            f,
            "  {group:<8} {:>6} customers, {:>5} converted ({})",
            g["customers"],
            g["converted"],
            pct(&g["conversion_rate"])
        )?;
    }
    let funnel = &results["funnel"];
    writeln!(
        f,
        "  funnel   released {} → sent {} → delivered {} → opened {} → clicked {} → converted {}",
        funnel["released"],
        funnel["sent"],
        funnel["delivered"],
        funnel["opened"],
        funnel["clicked"],
        funnel["converted"]
    )?;
    let lift = &results["lift"];
    if lift.is_null() {
        writeln!(f, "  no lift: see the notes")?;
    } else {
        writeln!(
            f,
            "  lift     {} (interval {} to {}, Newcombe's hybrid score), p = {:.4}",
            pct(&lift["absolute"]),
            pct(&lift["interval"][0]),
            pct(&lift["interval"][1]),
            lift["p_value"].as_f64().unwrap_or(f64::NAN)
        )?;
        writeln!(
            f,
            "  caused   {:.1} conversions (interval {:.1} to {:.1})",
            lift["incremental_conversions"].as_f64().unwrap_or_default(),
            lift["incremental_interval"][0].as_f64().unwrap_or_default(),
            lift["incremental_interval"][1].as_f64().unwrap_or_default()
        )?;
    }
    for note in results["notes"].as_array().into_iter().flatten() {
        writeln!(f, "  note: {}", note.as_str().unwrap_or_default())?;
    }
    Ok(())
}

mod api;
mod campaigns;

pub use campaigns::converts;
mod offers;
mod people;

use api::{Api, Auth};

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
    demo.conversions(&campaign).await?;
    demo.report(&offer, &campaign, version).await
}
