//! The contact cap as an invariant, tested as one (third review). A model-based property
//! test (`proptest`): random sequences of launches (activation now or a scheduled start),
//! time passing (with the production scheduler's starts, ends and expiries), provider
//! reports (early, on time, late, after the grace period; `sent` and `failed`), pauses,
//! resumptions, completions, moves of either date, tenant time-zone changes, deletions and
//! housekeeping (archives of finished campaigns' deliveries, the ledger's prune),
//! over two tenants and three customers every campaign reaches, under a policy of one
//! contact per seven days. After every step it checks:
//!
//! - **the invariant**: for every customer, no two contacts the platform accepted lie within
//!   seven days of each other, a contact being a delivery's first accepted `sent` report, or
//!   its release while it has none (ARCHITECTURE.md, "The contact cap");
//! - **the ledger agrees with the deliveries**: exactly one ledger row per released delivery,
//!   at the delivery's contact time, settled exactly when a `sent` report was accepted;
//! - no answer of the API is a 5xx, and no campaign that released anything is deleted.
//!
//! Time passes by moving every stored instant and date into the past (as `age` does in
//! `calendar.rs` for one campaign). Cases: `PROPTEST_CASES` (default 64, what CI runs, in
//! about 15 s); `PROPTEST_CASES=2000` locally. The review probe's two scenarios are fixed cases beside it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use chrono::{DateTime, SubsecRound, Utc};
use integration_tests::{NewCampaign, TenantFixture, TestApp, TestOptions, USER_PASSWORD};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value, json};

use bulk::archive::HousekeepingOptions;
use shared::config::ReportGrace;

use crate::webhook::report;

/// The policy under test: one contact per seven days.
const WINDOW_DAYS: i64 = 7;
/// Customers every campaign reaches.
const CUSTOMERS: usize = 3;
/// Zones a tenant moves between (the farthest apart: UTC−8 to UTC+14).
const ZONES: [&str; 4] = [
    "UTC",
    "Asia/Kolkata",
    "America/Los_Angeles",
    "Pacific/Kiritimati",
];

/// When a report says the message was sent.
#[derive(Debug, Clone, Copy)]
enum When {
    /// An hour before the delivery's release.
    Early,
    /// At `percent` of the way from its release to now (or to the campaign's end, if
    /// sooner).
    Within(u8),
    /// A minute after the campaign's end.
    Late,
}

/// One step of a sequence. Campaign and customer indexes are taken modulo how many there
/// are.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// A campaign of tenant `tenant` from `start` days from today for `days` days, processed,
    /// then activated (active, or scheduled if its start lies ahead).
    Launch { tenant: u8, start: i8, days: u8 },
    /// `days` days pass; the scheduler runs.
    Pass { days: u8 },
    /// The scheduler runs.
    Tick,
    /// A provider report of campaign `campaign`'s delivery to customer `customer`.
    Report {
        campaign: u8,
        customer: u8,
        sent: bool,
        when: When,
    },
    /// `PUT {"status": …}`: paused, active or completed.
    Status { campaign: u8, status: u8 },
    /// Moves the end date `by` days.
    MoveEnd { campaign: u8, by: i8 },
    /// Moves the start date `by` days.
    MoveStart { campaign: u8, by: i8 },
    /// The super admin moves a tenant to another zone.
    Zone { tenant: u8, zone: u8 },
    /// A tenant admin deletes a campaign.
    Delete { campaign: u8 },
    /// Housekeeping runs: it archives the deliveries of campaigns past their tenant's
    /// retention (one day here) and the grace period, and prunes ledger rows no policy can
    /// count any more.
    Housekeeping,
}

fn step() -> impl Strategy<Value = Step> {
    let when = prop_oneof![
        Just(When::Early),
        (0u8..=100).prop_map(When::Within),
        Just(When::Late),
    ];
    prop_oneof![
        3 => (0u8..2, -1i8..=2, 1u8..=10)
            .prop_map(|(tenant, start, days)| Step::Launch { tenant, start, days }),
        3 => (1u8..=12).prop_map(|days| Step::Pass { days }),
        1 => Just(Step::Tick),
        5 => (any::<u8>(), any::<u8>(), any::<bool>(), when).prop_map(
            |(campaign, customer, sent, when)| Step::Report { campaign, customer, sent, when }
        ),
        2 => (any::<u8>(), 0u8..3).prop_map(|(campaign, status)| Step::Status { campaign, status }),
        1 => (any::<u8>(), -3i8..=5).prop_map(|(campaign, by)| Step::MoveEnd { campaign, by }),
        1 => (any::<u8>(), -2i8..=3).prop_map(|(campaign, by)| Step::MoveStart { campaign, by }),
        1 => (0u8..2, 0u8..4).prop_map(|(tenant, zone)| Step::Zone { tenant, zone }),
        1 => any::<u8>().prop_map(|campaign| Step::Delete { campaign }),
        2 => Just(Step::Housekeeping),
    ]
}

/// A delivery as the model knows it: its release, and its first accepted `sent` report.
#[derive(Debug, Clone, Copy)]
struct Delivery {
    released_at: DateTime<Utc>,
    first_sent: Option<DateTime<Utc>>,
}

impl Delivery {
    /// The contact it counts as.
    fn contact(&self) -> DateTime<Utc> {
        self.first_sent.unwrap_or(self.released_at)
    }
}

/// The world of one case: two tenants on one app, the campaigns launched, the model.
struct World<'a> {
    app: &'a TestApp,
    tenants: &'a [Tenant; 2],
    customers: &'a [String],
    data: &'a Data,
    campaigns: Vec<(usize, i64)>,
    deliveries: BTreeMap<(i64, String), Delivery>,
    log: Vec<String>,
}

/// What the sequences exercised, counted over a run (printed at its end, so that a run
/// that never reached an archive or a late report says so).
#[derive(Debug, Default)]
struct Coverage {
    releases: AtomicU64,
    sent_accepted: AtomicU64,
    failed_accepted: AtomicU64,
    reports_refused: AtomicU64,
    campaigns_archived: AtomicU64,
    contacts_pruned: AtomicU64,
    deletions: AtomicU64,
}

static COVERAGE: Coverage = Coverage {
    releases: AtomicU64::new(0),
    sent_accepted: AtomicU64::new(0),
    failed_accepted: AtomicU64::new(0),
    reports_refused: AtomicU64::new(0),
    campaigns_archived: AtomicU64::new(0),
    contacts_pruned: AtomicU64::new(0),
    deletions: AtomicU64::new(0),
};

fn count(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// A tenant of the test: its fixture (tokens refreshed as they age) and webhook key.
struct Tenant {
    fx: TenantFixture,
    key: String,
}

impl<'a> World<'a> {
    async fn now(&self) -> DateTime<Utc> {
        self.app
            .db()
            .await
            .query_one("select now()", &[])
            .await
            .expect("now")
            .get(0)
    }

    /// The tenant and id of campaign `index` (modulo), if any was launched.
    fn campaign(&self, index: u8) -> Option<(&'a Tenant, i64)> {
        (!self.campaigns.is_empty()).then(|| {
            let (tenant, id) = self.campaigns[usize::from(index) % self.campaigns.len()];
            (&self.tenants[tenant], id)
        })
    }

    /// An API answer: a 5xx fails the case.
    fn answered(&mut self, what: String, status: StatusCode, body: &Value) -> Result<(), String> {
        self.log.push(format!("{what} -> {}", status.as_u16()));
        if status.is_server_error() {
            return Err(format!("{what} answered {status}: {body}"));
        }
        Ok(())
    }

    async fn run(&mut self, step: Step) -> Result<(), String> {
        match step {
            Step::Launch {
                tenant,
                start,
                days,
            } => self.launch(tenant, start, days).await,
            Step::Pass { days } => {
                pass(self.app, i32::from(days)).await;
                for delivery in self.deliveries.values_mut() {
                    let by = chrono::Duration::days(i64::from(days));
                    delivery.released_at -= by;
                    delivery.first_sent = delivery.first_sent.map(|t| t - by);
                }
                self.log.push(format!("{days} days pass"));
                self.tick().await
            }
            Step::Tick => self.tick().await,
            Step::Report {
                campaign,
                customer,
                sent,
                when,
            } => self.report(campaign, customer, sent, when).await,
            Step::Status { campaign, status } => {
                let Some((tenant, id)) = self.campaign(campaign) else {
                    return Ok(());
                };
                let status = ["paused", "active", "completed"][usize::from(status)];
                let path = format!("/tenants/{}/campaigns/{id}", tenant.fx.tenant);
                let answer = self
                    .app
                    .put(&path, &tenant.fx.admin, json!({"status": status}))
                    .await;
                self.answered(format!("{path} {status}"), answer.status, &answer.body)
            }
            Step::MoveEnd { campaign, by } => self.move_date(campaign, "end_date", by).await,
            Step::MoveStart { campaign, by } => self.move_date(campaign, "start_date", by).await,
            Step::Zone { tenant, zone } => {
                let name = &self.tenants[usize::from(tenant)].fx.tenant;
                let zone = ZONES[usize::from(zone)];
                let sa = self.app.super_admin_token().await;
                let path = format!("/sa/tenants/{name}");
                let answer = self.app.put(&path, &sa, json!({"time_zone": zone})).await;
                self.answered(format!("{path} {zone}"), answer.status, &answer.body)
            }
            Step::Housekeeping => {
                let options = HousekeepingOptions {
                    bucket: self.data.bucket.clone(),
                    report_grace_days: ReportGrace::DEFAULT_DAYS,
                    max_campaigns: 20,
                    delete_batch_rows: 2,
                };
                let report = bulk::archive::run(&self.app.state.platform, &self.data.s3, &options)
                    .await
                    .map_err(|e| format!("housekeeping: {e}"))?;
                count(&COVERAGE.campaigns_archived, report.campaigns_archived);
                count(&COVERAGE.contacts_pruned, report.contacts_pruned);
                self.log.push(format!("housekeeping {report:?}"));
                Ok(())
            }
            Step::Delete { campaign } => {
                let Some((tenant, id)) = self.campaign(campaign) else {
                    return Ok(());
                };
                let path = format!("/tenants/{}/campaigns/{id}", tenant.fx.tenant);
                let answer = self.app.delete(&path, &tenant.fx.admin).await;
                self.answered(format!("DELETE {path}"), answer.status, &answer.body)?;
                if answer.status == StatusCode::NO_CONTENT {
                    if self.deliveries.keys().any(|(c, _)| *c == id) {
                        return Err(format!("campaign {id} released, then was deleted"));
                    }
                    self.campaigns.retain(|(_, c)| *c != id);
                    count(&COVERAGE.deletions, 1);
                }
                Ok(())
            }
        }
    }

    async fn launch(&mut self, tenant: u8, start: i8, days: u8) -> Result<(), String> {
        let index = usize::from(tenant);
        let fx = &self.tenants[index].fx;
        let zone: String = self
            .app
            .db()
            .await
            .query_one(
                "select time_zone from tenants where name = $1",
                &[&fx.tenant],
            )
            .await
            .expect("zone")
            .get(0);
        let first = crate::calendar::zone_day(self.app, &zone, i32::from(start)).await;
        let last =
            crate::calendar::zone_day(self.app, &zone, i32::from(start) + i32::from(days)).await;
        let created = NewCampaign::of(fx.offer_id)
            .with("start_date", json!(first))
            .with("end_date", json!(last))
            .post(self.app, &fx.tenant, &fx.maker)
            .await;
        self.answered(
            format!("launch {} {first}..{last}", fx.tenant),
            created.status,
            &created.body,
        )?;
        if created.status != StatusCode::ACCEPTED {
            return Ok(());
        }
        let id = created.body["id"].as_i64().expect("id");
        let done = self
            .app
            .wait_for_processing(&fx.tenant, id, &fx.admin)
            .await;
        if done["processing_status"] != "done" {
            return Err(format!("campaign {id} not processed: {done}"));
        }
        let activated = self.app.activate_campaign(&fx.tenant, id, &fx.admin).await;
        self.answered(format!("activate {id}"), activated.status, &activated.body)?;
        self.campaigns.push((index, id));
        Ok(())
    }

    async fn tick(&mut self) -> Result<(), String> {
        let report = shared::scheduler::run(&self.app.state.platform, self.app.state.release_batch)
            .await
            .map_err(|e| format!("scheduler: {e}"))?;
        self.log.push(format!("scheduler {report:?}"));
        Ok(())
    }

    async fn move_date(&mut self, campaign: u8, field: &str, by: i8) -> Result<(), String> {
        let Some((tenant, id)) = self.campaign(campaign) else {
            return Ok(());
        };
        let path = format!("/tenants/{}/campaigns/{id}", tenant.fx.tenant);
        let current = self
            .app
            .get(&path, &tenant.fx.admin)
            .await
            .expect(StatusCode::OK)
            .body;
        let date = current[field]
            .as_str()
            .and_then(|d| d.parse::<chrono::NaiveDate>().ok())
            .expect("a date")
            + chrono::Duration::days(i64::from(by));
        let answer = self
            .app
            .put(&path, &tenant.fx.admin, json!({ field: date.to_string() }))
            .await;
        self.answered(
            format!("{path} {field} {date}"),
            answer.status,
            &answer.body,
        )
    }

    async fn report(
        &mut self,
        campaign: u8,
        customer: u8,
        sent: bool,
        when: When,
    ) -> Result<(), String> {
        let Some((tenant, id)) = self.campaign(campaign) else {
            return Ok(());
        };
        let key = tenant.key.clone();
        let customer = self.customers[usize::from(customer) % CUSTOMERS].clone();
        let now = self.now().await;
        let row = self
            .app
            .db()
            .await
            .query_one(
                "select cc.released_at, c.ends_at from campaigns c
                 left join campaign_customers cc
                   on cc.campaign_id = c.id and cc.customer_id = $2::text::uuid
                 where c.id = $1",
                &[&(id as i32), &customer],
            )
            .await
            .expect("delivery");
        let released: Option<DateTime<Utc>> = row.get(0);
        let ends_at: DateTime<Utc> = row.get(1);
        let from = released.unwrap_or(now - chrono::Duration::minutes(1));
        let sent_at = match when {
            When::Early => from - chrono::Duration::hours(1),
            When::Late => (ends_at + chrono::Duration::minutes(1)).min(now),
            When::Within(percent) => {
                let until = now.min(ends_at - chrono::Duration::seconds(1)).max(from);
                from + (until - from) * i32::from(percent) / 100
            }
        };
        // PostgreSQL keeps microseconds.
        let sent_at = sent_at.trunc_subsecs(6);
        let status = if sent { "sent" } else { "failed" };
        let mut item = json!({"campaign_id": id, "customer_id": customer, "status": status,
                              "sent_at": sent_at.to_rfc3339()});
        if !sent {
            item["failure_reason"] = json!("mailbox full");
        }
        let answer = report(self.app, &key, &json!([item])).await;
        self.answered(
            format!("report {id} {customer} {status} at {sent_at}"),
            answer.status,
            &answer.body,
        )?;
        let accepted = answer.status == StatusCode::OK && answer.body["summary"]["updated"] == 1;
        count(
            match (accepted, sent) {
                (false, _) => &COVERAGE.reports_refused,
                (true, true) => &COVERAGE.sent_accepted,
                (true, false) => &COVERAGE.failed_accepted,
            },
            1,
        );
        if accepted && sent {
            let delivery = self
                .deliveries
                .get_mut(&(id, customer.clone()))
                .ok_or_else(|| format!("a report for {id}/{customer} was accepted unreleased"))?;
            delivery.first_sent.get_or_insert(sent_at);
        }
        Ok(())
    }

    /// Takes in the deliveries released since the last step.
    async fn observe(&mut self) {
        let rows = self
            .app
            .db()
            .await
            .query(
                "select campaign_id::int8, customer_id::text, released_at
                 from campaign_customers where released_at is not null",
                &[],
            )
            .await
            .expect("deliveries");
        for row in rows {
            self.deliveries
                .entry((row.get(0), row.get(1)))
                .or_insert_with(|| {
                    count(&COVERAGE.releases, 1);
                    Delivery {
                        released_at: row.get(2),
                        first_sent: None,
                    }
                });
        }
    }

    /// The invariant and the ledger's agreement with the deliveries.
    async fn check(&self) -> Result<(), String> {
        let mut contacts: BTreeMap<&str, Vec<(i64, DateTime<Utc>)>> = BTreeMap::new();
        for ((campaign, customer), delivery) in &self.deliveries {
            contacts
                .entry(customer)
                .or_default()
                .push((*campaign, delivery.contact()));
        }
        let window = chrono::Duration::days(WINDOW_DAYS);
        for (customer, times) in &contacts {
            for (i, (a, at)) in times.iter().enumerate() {
                for (b, bt) in &times[i + 1..] {
                    if (*at - *bt).abs() < window {
                        return Err(format!(
                            "customer {customer}: contacts of campaigns {a} ({at}) and {b} \
                             ({bt}) within {WINDOW_DAYS} days"
                        ));
                    }
                }
            }
        }
        let rows = self
            .app
            .db()
            .await
            .query(
                "select campaign_id::int8, customer_id::text, contact_at, settled
                 from customer_contacts",
                &[],
            )
            .await
            .expect("ledger");
        let ledger: BTreeMap<(i64, String), (DateTime<Utc>, bool)> = rows
            .iter()
            .map(|r| ((r.get(0), r.get(1)), (r.get(2), r.get(3))))
            .collect();
        let released: BTreeSet<_> = self.deliveries.keys().cloned().collect();
        if let Some(extra) = ledger.keys().find(|key| !released.contains(*key)) {
            return Err(format!(
                "the ledger holds {extra:?}, which was never released"
            ));
        }
        // Housekeeping prunes a row only once no policy can count it: its campaign ended
        // longer ago than the window and the grace period, so its contact did too.
        let now = self.now().await;
        let pruned_before =
            now - chrono::Duration::days(WINDOW_DAYS + i64::from(ReportGrace::DEFAULT_DAYS));
        for (key, delivery) in &self.deliveries {
            let Some(&(contact_at, settled)) = ledger.get(key) else {
                if delivery.contact() >= pruned_before {
                    return Err(format!(
                        "{key:?}: its ledger row went while it still counts"
                    ));
                }
                continue;
            };
            if (contact_at, settled) != (delivery.contact(), delivery.first_sent.is_some()) {
                return Err(format!(
                    "{key:?}: the ledger says {contact_at} (settled {settled}), the model \
                     {delivery:?}"
                ));
            }
        }
        Ok(())
    }
}

/// `days` days pass: every stored instant and date of the campaigns, their deliveries and
/// the ledger moves that far into the past (the trigger recomputes the campaigns' instants).
async fn pass(app: &TestApp, days: i32) {
    let owner = app.owner_pool().get().await.expect("owner");
    owner
        .batch_execute(&format!(
            "update campaigns set start_date = start_date - {days}, end_date = end_date - {days},
                 created_at = created_at - interval '{days} days',
                 updated_at = updated_at - interval '{days} days',
                 processed_at = processed_at - interval '{days} days',
                 first_released_at = first_released_at - interval '{days} days',
                 released_until = released_until - interval '{days} days';
             update campaign_customers
                 set released_at = released_at - interval '{days} days',
                     sent_at = sent_at - interval '{days} days',
                     expired_at = expired_at - interval '{days} days',
                     updated_at = updated_at - interval '{days} days';
             update customer_contacts
                 set contact_at = contact_at - interval '{days} days',
                     open_until = open_until - interval '{days} days';"
        ))
        .await
        .expect("time passes");
}

/// Where housekeeping archives to.
struct Data {
    s3: aws_sdk_s3::Client,
    bucket: String,
}

/// The app every case shares: two tenants with an approved offer, a retention of one day
/// and a webhook key each, three customers, the policy, a bucket. Each case starts from no
/// campaign at all.
async fn setup() -> (TestApp, [Tenant; 2], Vec<String>, Data) {
    let app = TestApp::spawn_with(TestOptions::without_relay()).await;
    let s3 = crate::bulk::s3_client();
    let bucket = crate::bulk::bucket(&s3).await;
    let sa = app.super_admin_token().await;
    app.put(
        "/sa/contact-policy",
        &sa,
        json!({"max_contacts": 1, "window_days": WINDOW_DAYS}),
    )
    .await
    .expect(StatusCode::OK);
    let mut csv = String::from("full_name,email\n");
    for i in 0..CUSTOMERS {
        csv.push_str(&format!("Shared Customer {i},shared.{i}@cap.example\n"));
    }
    app.import_customers_csv(&sa, csv.into_bytes())
        .await
        .expect(StatusCode::OK);
    let customers = app
        .db()
        .await
        .query("select id::text from customers order by email", &[])
        .await
        .expect("customers")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut tenants = Vec::new();
    for name in ["credit_card", "loan"] {
        let fx = app.tenant_with_offer(name).await;
        let (key, _) = app.issue_webhook_key(name, false).await;
        app.put(
            &format!("/sa/tenants/{name}"),
            &sa,
            json!({"retention_days": 1}),
        )
        .await
        .expect(StatusCode::OK);
        tenants.push(Tenant { fx, key });
    }
    let tenants = <[Tenant; 2]>::try_from(tenants).unwrap_or_else(|_| unreachable!());
    (app, tenants, customers, Data { s3, bucket })
}

/// Signs the tenants' users in again (tokens live 15 minutes; a long local run outlives
/// them).
async fn refresh(app: &TestApp, tenants: &mut [Tenant; 2]) {
    for tenant in tenants.iter_mut() {
        let prefix = tenant.fx.tenant.replace('_', "-");
        tenant.fx.admin = app.login(&format!("{prefix}.admin"), USER_PASSWORD).await;
        tenant.fx.maker = app.login(&format!("{prefix}.maker"), USER_PASSWORD).await;
    }
}

/// Back to no campaign: every campaign and what hangs from it (the tenants, offers, users,
/// customers and keys stay), the tenants back in UTC.
async fn reset(app: &TestApp) {
    app.owner_pool()
        .get()
        .await
        .expect("owner")
        .batch_execute(
            "truncate campaigns, customer_contacts cascade;
             update tenants set time_zone = 'UTC';",
        )
        .await
        .expect("reset");
}

/// Runs `steps` from no campaign, checking after each.
async fn run_case(
    app: &TestApp,
    tenants: &[Tenant; 2],
    customers: &[String],
    data: &Data,
    steps: &[Step],
) -> Result<(), String> {
    reset(app).await;
    let mut world = World {
        app,
        tenants,
        customers,
        data,
        campaigns: Vec::new(),
        deliveries: BTreeMap::new(),
        log: Vec::new(),
    };
    for step in steps {
        let outcome = world.run(*step).await;
        world.observe().await;
        if let Err(problem) = outcome.and(world.check().await) {
            return Err(format!(
                "{problem}\nafter the steps:\n  {}",
                world.log.join("\n  ")
            ));
        }
    }
    Ok(())
}

#[test]
fn the_contact_cap_holds_over_random_sequences_of_every_operation() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (app, tenants, customers, data) = runtime.block_on(setup());
    let tenants = std::cell::RefCell::new(tenants);
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(64);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 200,
        ..Config::default()
    });
    let started = Instant::now();
    let refreshed = std::cell::Cell::new(Instant::now());
    let ran = std::cell::Cell::new(0_u32);
    let outcome = runner.run(&prop::collection::vec(step(), 1..=16), |steps| {
        if refreshed.get().elapsed() > Duration::from_secs(600) {
            runtime.block_on(refresh(&app, &mut tenants.borrow_mut()));
            refreshed.set(Instant::now());
        }
        ran.set(ran.get() + 1);
        runtime
            .block_on(run_case(&app, &tenants.borrow(), &customers, &data, &steps))
            .map_err(TestCaseError::fail)
    });
    eprintln!(
        "the contact cap: {} sequences (shrinking included) in {:.1} s; {COVERAGE:?}",
        ran.get(),
        started.elapsed().as_secs_f64()
    );
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
    drop(app);
}

/// Runs fixed `steps` as one case of the property.
fn fixed_case(steps: &[Step]) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let (app, tenants, customers, data) = setup().await;
        if let Err(problem) = run_case(&app, &tenants, &customers, &data, steps).await {
            panic!("{problem}");
        }
    });
}

/// The probe's first scenario (finding 1): a campaign ends, its unreported deliveries
/// expire, another tenant's campaign comes, and the provider's late reports, dated inside
/// the first window, arrive during the grace period.
#[test]
fn probe_expiry_then_late_reports_within_the_grace_period() {
    let mut steps = vec![
        Step::Launch {
            tenant: 0,
            start: -1,
            days: 2,
        },
        Step::Pass { days: 2 },
        Step::Launch {
            tenant: 1,
            start: 0,
            days: 5,
        },
    ];
    for customer in 0..3 {
        steps.push(Step::Report {
            campaign: 0,
            customer,
            sent: true,
            when: When::Within(99),
        });
    }
    fixed_case(&steps);
}

/// The probe's second scenario (finding 2): a running campaign's tenant moves east, the
/// scheduler runs, another tenant's campaign comes, reports of the first arrive.
#[test]
fn probe_a_zone_change_under_a_running_campaign() {
    let mut steps = vec![
        Step::Launch {
            tenant: 0,
            start: 0,
            days: 10,
        },
        Step::Zone { tenant: 0, zone: 3 },
        Step::Tick,
        Step::Launch {
            tenant: 1,
            start: 0,
            days: 5,
        },
    ];
    for customer in 0..3 {
        steps.push(Step::Report {
            campaign: 0,
            customer,
            sent: true,
            when: When::Within(50),
        });
    }
    fixed_case(&steps);
}

/// Found by the property: a provider may send any time until the campaign's end, so a
/// delivery released eight days ago and still unreported is not out of the window: another
/// tenant's release now, then the first's report of a send just now, made two contacts in
/// a day.
#[test]
fn found_a_delivery_unreported_for_longer_than_the_window_still_holds_its_slot() {
    fixed_case(&[
        Step::Launch {
            tenant: 0,
            start: 0,
            days: 20,
        },
        Step::Pass { days: 8 },
        Step::Launch {
            tenant: 1,
            start: 0,
            days: 5,
        },
        Step::Report {
            campaign: 0,
            customer: 0,
            sent: true,
            when: When::Within(100),
        },
    ]);
}

/// Found by the property: a `failed` report freed the slot, another tenant's campaign took
/// it, and the provider's retry was then reported `sent`.
#[test]
fn found_a_failed_delivery_retried_by_its_provider_keeps_its_slot() {
    fixed_case(&[
        Step::Launch {
            tenant: 0,
            start: 0,
            days: 20,
        },
        Step::Report {
            campaign: 0,
            customer: 0,
            sent: false,
            when: When::Within(0),
        },
        Step::Launch {
            tenant: 1,
            start: 0,
            days: 5,
        },
        Step::Report {
            campaign: 0,
            customer: 0,
            sent: true,
            when: When::Within(100),
        },
    ]);
}

/// Found by the property: moving a running campaign's end later let reports for deliveries
/// released before the move count later than the end they were released under, after
/// another tenant had reached the customers.
#[test]
fn found_a_later_end_does_not_stretch_what_was_released_before_it() {
    fixed_case(&[
        Step::Launch {
            tenant: 0,
            start: 0,
            days: 2,
        },
        Step::Pass { days: 2 },
        Step::MoveEnd {
            campaign: 0,
            by: 10,
        },
        Step::Pass { days: 9 },
        Step::Launch {
            tenant: 1,
            start: 0,
            days: 5,
        },
        Step::Report {
            campaign: 0,
            customer: 0,
            sent: true,
            when: When::Within(100),
        },
    ]);
}

/// Housekeeping in the middle of things: a finished campaign's deliveries archived, a newer
/// campaign reaching the same customers, the older ledger rows pruned once no policy counts
/// them.
#[test]
fn archives_and_the_prune_keep_the_cap() {
    fixed_case(&[
        Step::Launch {
            tenant: 0,
            start: 0,
            days: 1,
        },
        Step::Report {
            campaign: 0,
            customer: 0,
            sent: true,
            when: When::Within(50),
        },
        Step::Report {
            campaign: 0,
            customer: 1,
            sent: false,
            when: When::Within(50),
        },
        Step::Pass { days: 10 },
        Step::Housekeeping,
        Step::Launch {
            tenant: 1,
            start: 0,
            days: 3,
        },
        Step::Report {
            campaign: 1,
            customer: 2,
            sent: true,
            when: When::Within(100),
        },
        Step::Pass { days: 8 },
        Step::Housekeeping,
        Step::Delete { campaign: 0 },
        Step::Launch {
            tenant: 0,
            start: 0,
            days: 3,
        },
    ]);
}
