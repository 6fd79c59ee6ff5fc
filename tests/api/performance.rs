//! The request path's statements: the tenant read's one-round-trip transaction (its row-level
//! security, its failure and cancellation paths), the statement cache, and the pgbench
//! scripts of `bench/ceiling/` being the statements the API runs.

use std::time::Duration;

use axum::http::StatusCode;
use integration_tests::{TenantFixture, TestApp};
use serde_json::json;
use shared::db::{CachedStatements, Executor, TenantRead, offers, users};
use shared::domain::{TenantName, Username};
use shared::pagination::Page;

/// Whitespace collapsed, the final `;` dropped.
fn normalized(sql: &str) -> String {
    sql.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .trim_end_matches(';')
        .trim_end()
        .to_owned()
}

/// The SQL commands of a pgbench script (comments and `\set` lines left out), each normalized
/// with its variables replaced as `variables` says.
fn pgbench_statements(file: &str, variables: &[(&str, &str)]) -> Vec<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../bench/ceiling")
        .join(file);
    let text = std::fs::read_to_string(&path).expect("pgbench script");
    let sql: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("--") && !l.trim_start().starts_with('\\'))
        .collect::<Vec<_>>()
        .join("\n");
    sql.split_inclusive(';')
        .map(|statement| {
            let mut statement = normalized(statement);
            for (variable, value) in variables {
                statement = statement.replace(variable, value);
            }
            statement
        })
        .filter(|s| !s.is_empty())
        .collect()
}

/// The statements prepared on `client`'s connection (protocol-level ones included), normalized.
async fn prepared(client: &deadpool_postgres::Client) -> Vec<String> {
    client
        .query("select statement from pg_prepared_statements", &[])
        .await
        .expect("prepared statements")
        .iter()
        .map(|r| normalized(r.get(0)))
        .collect()
}

/// Whether the connection sits in a transaction opened before this statement, and the tenant
/// setting it sees.
async fn leftover(client: &deadpool_postgres::Client) -> (bool, Option<String>) {
    // One simple-protocol query: outside a transaction it opens its own, which then started
    // with this statement.
    let messages = client
        .simple_query(
            "select transaction_timestamp() < statement_timestamp(),
                    nullif(current_setting('app.tenant', true), '')",
        )
        .await
        .expect("session state");
    let row = messages
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => Some(row),
            _ => None,
        })
        .expect("a row");
    (row.get(0) == Some("t"), row.get(1).map(str::to_owned))
}

#[tokio::test]
async fn the_ceiling_scripts_run_the_statements_the_api_prepares() {
    let app = TestApp::spawn().await;
    let fx = app.tenant_with_offer("credit_card").await;
    let tenant = TenantName::parse("credit_card").expect("name");
    let maker = Username::parse("credit-card.maker").expect("name");

    // The principal lookup runs on the platform pool; the offers list on the tenant pool.
    let platform = app.state.platform.get().await.expect("client");
    let record = users::load_principal(&platform, &maker)
        .await
        .expect("principal")
        .expect("the maker exists");
    assert_eq!(record.account.username, maker.as_str());
    let tenant_client = app.state.pool.get().await.expect("client");
    let page = Page {
        limit: 50,
        offset: 0,
    };
    let listed = offers::list(
        &TenantRead::new(&tenant_client, &tenant),
        &offers::OfferFilter::default(),
        page,
    )
    .await
    .expect("offers");
    assert_eq!(listed.len(), 1);

    let mut prepared_here = prepared(&platform).await;
    // pgbench cannot bind NULL: the script writes the three absent filters ($2, $3, $6) as
    // null.
    prepared_here.extend(prepared(&tenant_client).await.into_iter().map(|s| {
        if s.contains(" from offers ") {
            s.replace("$2", "null")
                .replace("$3", "null")
                .replace("$6", "null")
        } else {
            s
        }
    }));
    let variables = [
        (":username", "$1"),
        (":tenant", "$1"),
        (":limit", "$4"),
        (":offset", "$5"),
    ];
    for file in ["offers-list.pgbench", "users-me.pgbench"] {
        let statements = pgbench_statements(file, &variables);
        assert!(!statements.is_empty(), "{file}");
        for statement in statements {
            assert!(
                prepared_here.contains(&statement),
                "{file}: {statement}\nis not among the statements the API prepared:\n{prepared_here:#?}"
            );
        }
    }
    assert_eq!(
        pgbench_statements("offers-list.pgbench", &variables).len(),
        5
    );

    // Over HTTP too: the routes answer what these statements read.
    assert_eq!(app.get("/users/me", &fx.maker).await.status, StatusCode::OK);
    let list = app
        .get("/tenants/credit_card/offers?limit=50", &fx.maker)
        .await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.body.as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn users_me_answers_from_the_principal_statement_alone() {
    let app = TestApp::spawn().await;
    let fx = app.tenant_with_offer("credit_card").await;
    let me = app.get("/users/me", &fx.maker).await;
    assert_eq!(me.status, StatusCode::OK);
    let stored = app
        .db()
        .await
        .query_one(
            "select username, full_name, is_super_admin, created_at, updated_at
             from users where username = 'credit-card.maker'",
            &[],
        )
        .await
        .expect("user");
    let created: chrono::DateTime<chrono::Utc> = stored.get(3);
    let updated: chrono::DateTime<chrono::Utc> = stored.get(4);
    assert_eq!(me.body["username"], stored.get::<_, String>(0));
    assert_eq!(
        me.body["full_name"],
        serde_json::json!(stored.get::<_, Option<String>>(1))
    );
    assert_eq!(me.body["is_super_admin"], stored.get::<_, bool>(2));
    let at = |field: &str| {
        chrono::DateTime::parse_from_rfc3339(me.body[field].as_str().expect(field))
            .expect(field)
            .to_utc()
    };
    assert_eq!(at("created_at"), created);
    assert_eq!(at("updated_at"), updated);
    assert!(me.body.get("password_hash").is_none());
}

#[tokio::test]
async fn a_tenant_read_sees_only_its_tenant_on_either_pool() {
    let app = TestApp::spawn().await;
    app.tenant_with_offer("credit_card").await;
    app.tenant_with_offer("loan").await;
    let loan = TenantName::parse("loan").expect("name");
    for pool in [&app.state.pool, &app.state.platform] {
        let client = pool.get().await.expect("client");
        for table in [
            "offers",
            "offer_audit_logs",
            "tenant_roles",
            "user_tenant_roles",
        ] {
            // Deliberately no `where tenant_name = …`: the policy is the only filter.
            let tenants: Vec<String> = TenantRead::new(&client, &loan)
                .rows(
                    &format!("select distinct tenant_name from {table} order by 1"),
                    &[],
                )
                .await
                .expect("select")
                .iter()
                .map(|r| r.get(0))
                .collect();
            assert_eq!(tenants, ["loan"], "{table}");
        }
        // The setting ended with the read's transaction.
        assert_eq!(leftover(&client).await, (false, None));
    }
}

#[tokio::test]
async fn a_failed_or_abandoned_tenant_read_leaves_no_transaction_open() {
    let app = TestApp::spawn().await;
    app.tenant_with_offer("credit_card").await;
    let tenant = TenantName::parse("credit_card").expect("name");
    let client = app.state.pool.get().await.expect("client");
    let read = TenantRead::new(&client, &tenant);
    // The probe tells an open transaction.
    client.batch_execute("begin").await.expect("begin");
    assert!(leftover(&client).await.0);
    client.batch_execute("rollback").await.expect("rollback");

    // The statement fails on the server: the pipelined commit ends the aborted transaction.
    let failed = read
        .rows("select 1 / (count(*) - count(*)) from offers", &[])
        .await;
    assert_eq!(
        failed.expect_err("division by zero").code(),
        Some(&tokio_postgres::error::SqlState::DIVISION_BY_ZERO)
    );
    assert_eq!(leftover(&client).await, (false, None));

    // A parameter that does not encode: neither it nor the commit is sent; the read ends the
    // transaction it opened.
    let wrong: i64 = 7;
    let failed = read
        .rows("select id from offers where tenant_name = $1", &[&wrong])
        .await;
    assert!(failed.is_err());
    assert_eq!(leftover(&client).await, (false, None));

    // Dropped after its first poll (a client that went away): all four requests were sent,
    // so the transaction still completes on the connection.
    let slow = "select pg_sleep(0.3), count(*) from offers";
    read.rows(slow, &[])
        .await
        .expect("warm the statement cache");
    let abandoned = tokio::time::timeout(Duration::ZERO, read.rows(slow, &[])).await;
    assert!(
        abandoned.is_err(),
        "the read was still running when dropped"
    );
    assert_eq!(leftover(&client).await, (false, None));
    let count = read
        .rows("select count(*) from offers", &[])
        .await
        .expect("the connection works")[0]
        .get::<_, i64>(0);
    assert_eq!(count, 1);
}

#[tokio::test]
async fn hot_statements_are_prepared_once_per_connection() {
    let app = TestApp::spawn().await;
    let fx = app.tenant_with_offer("credit_card").await;
    let tenant = TenantName::parse("credit_card").expect("name");
    let client = app.state.pool.get().await.expect("client");
    let read = TenantRead::new(&client, &tenant);
    for _ in 0..3 {
        offers::get(&read, i32::try_from(fx.offer_id).expect("id"), false)
            .await
            .expect("offer")
            .expect("exists");
    }
    let texts = prepared(&client).await;
    let offer_reads = texts
        .iter()
        .filter(|s| s.starts_with("select id, tenant_name, status, data") && s.ends_with("id = $2"))
        .count();
    assert_eq!(offer_reads, 1, "{texts:#?}");
    for control in ["begin", "commit"] {
        assert_eq!(
            texts.iter().filter(|s| *s == control).count(),
            1,
            "{texts:#?}"
        );
    }
}

/// The definitions of `table`'s indexes and its storage options.
async fn indexes_and_options(app: &TestApp, table: &str) -> (Vec<String>, Vec<String>) {
    let db = app.db().await;
    let definitions = db
        .query(
            "select pg_get_indexdef(indexrelid) from pg_index where indrelid = $1::text::regclass",
            &[&table],
        )
        .await
        .expect("indexes")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let options = db
        .query_one(
            "select coalesce(reloptions, '{}') from pg_class where oid = $1::text::regclass",
            &[&table],
        )
        .await
        .expect("options")
        .get(0);
    (definitions, options)
}

#[tokio::test]
async fn no_index_names_a_column_a_delivery_report_writes() {
    // A report rewrites these columns of its delivery and of the delivery's contact-ledger
    // row; were any of them in an index (its predicate included), every report would be a
    // full update rewriting all of the table's index entries instead of a heap-only one (each
    // table's fillfactor 80 leaves the room for it).
    let app = TestApp::spawn().await;
    for (table, columns, at_least) in [
        (
            "campaign_customers",
            &[
                "delivery_status",
                "sent_at",
                "provider_message_id",
                "failure_reason",
                "updated_at",
                "delivered_at",
                "opened_at",
                "clicked_at",
            ][..],
            3,
        ),
        ("customer_contacts", &["contact_at"][..], 2),
    ] {
        let (definitions, options) = indexes_and_options(&app, table).await;
        assert!(definitions.len() >= at_least, "{table}: {definitions:#?}");
        for definition in &definitions {
            for column in columns {
                assert!(!definition.contains(column), "{definition} names {column}");
            }
        }
        assert!(
            options.contains(&"fillfactor=80".to_owned()),
            "{table}: {options:?}"
        );
    }
}

/// The plan (`EXPLAIN`, one line per node) of the report statement for `sent` reports of
/// `customers` in campaign `campaign` of tenant `credit_card`.
async fn report_statement_plan(
    db: &deadpool_postgres::Client,
    campaign: i32,
    customers: &[uuid::Uuid],
) -> String {
    let n = customers.len();
    let index: Vec<i32> = (0..i32::try_from(n).expect("n")).collect();
    let campaigns = vec![campaign; n];
    let status = vec!["sent"; n];
    let sent_at = vec![chrono::Utc::now(); n];
    let none: Vec<Option<&str>> = vec![None; n];
    let plan: Vec<String> = db
        .query(
            &format!(
                "explain {}",
                shared::db::campaigns::reports::APPLY_REPORTS_SQL
            ),
            &[
                &index,
                &campaigns,
                &customers,
                &status,
                &sent_at,
                &none,
                &none,
                &"credit_card",
                &7_i32,
            ],
        )
        .await
        .expect("plan")
        .iter()
        .map(|r| r.get(0))
        .collect();
    plan.join("\n")
}

#[tokio::test]
async fn the_report_statement_finds_the_reports_it_did_not_apply_by_hashing() {
    // 1,000 reports: the statement looks up, among the reports it accepted, those its update
    // skipped. As an anti join of two CTE scans that was a nested loop comparing each report
    // with each updated row (500,000 comparisons, 100 ms at 1,000 reports); it must be a
    // hashed subplan.
    let app = TestApp::spawn().await;
    let customers: Vec<uuid::Uuid> = (0..1000).map(|_| uuid::Uuid::new_v4()).collect();
    let plan = report_statement_plan(&app.db().await, 1, &customers).await;
    // The deliveries the update skipped (`found`); the ledger's insert for deliveries without
    // a row may anti-join `customer_contacts` by index, which is one probe per row.
    let found = &plan[plan.find("CTE found").expect("found")..];
    let found = &found[..found.find("InitPlan").unwrap_or(found.len())];
    assert!(!found.contains("Nested Loop Anti Join"), "{plan}");
    assert!(found.contains("NOT (hashed SubPlan"), "{plan}");
    assert!(
        !plan.contains("Anti Join")
            || plan.contains("Index Only Scan using customer_contacts")
            || plan.contains("Index Scan using customer_contacts"),
        "{plan}"
    );
}

#[tokio::test]
async fn the_report_statement_takes_each_delivery_by_its_key_in_key_order() {
    // Bank scale: a separate lock before the report statement joined the reported keys to
    // `campaign_customers` and PostgreSQL hashed a sequential scan of the whole table (45 ms
    // of a 78 ms request at 100,000 customers); then, probing by key, it still wrote each
    // row's lock into its page (9–14 ms at 1,000,000). The statement now takes the rows
    // itself: its reports sorted by key drive one primary-key probe each.
    let app = TestApp::spawn().await;
    app.import_demo_customers().await;
    let fx = app.tenant_with_offer("credit_card").await;
    let id = app.processed_campaign(&fx, "Everyone", json!({})).await;
    let db = app.db().await;
    db.batch_execute("analyze campaign_customers")
        .await
        .expect("analyze");
    let customers: Vec<uuid::Uuid> = db
        .query(
            "select customer_id from campaign_customers where campaign_id = $1
             order by customer_id desc limit 1000",
            &[&(id as i32)],
        )
        .await
        .expect("customers")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(customers.len(), 1000);
    let plan = report_statement_plan(&db, id as i32, &customers).await;
    assert!(!plan.contains("Seq Scan on campaign_customers"), "{plan}");
    let update = plan
        .find("Update on campaign_customers")
        .expect("the update");
    assert!(
        plan[update..].contains("Index Scan using campaign_customers_pkey"),
        "{plan}"
    );
    // The deliveries the update walks are in key order: sorted after their reports are
    // gathered, or gathered from reports sorted by key (and kept in that order).
    let deliveries = &plan[plan.find("CTE delivery").expect("the deliveries")..update];
    let by_key = |line: &str| {
        let key = line.trim().strip_prefix("Sort Key: ").unwrap_or_default();
        let columns: Vec<&str> = key.split(", ").collect();
        matches!(columns[..], [campaign, customer]
            if campaign.ends_with("campaign_id") && customer.ends_with("customer_id"))
    };
    assert!(
        deliveries.lines().any(by_key),
        "the deliveries are sorted by key: {plan}"
    );
    // The ledger's row is read for lateness only when the result is dated at or after the
    // campaign's released_until (V027): a one-time filter over the read, not a filter on
    // rows already read.
    let ledger = &deliveries[deliveries
        .find("One-Time Filter")
        .unwrap_or_else(|| panic!("a gate on the ledger's read: {plan}"))..];
    assert!(ledger.contains("on customer_contacts"), "{plan}");
}

/// The lines of an `explain`'s answer, as one text.
fn plan_text(rows: &[tokio_postgres::Row]) -> String {
    rows.iter()
        .map(|r| r.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The plan of a feed page of campaign `campaign` (its first page, e-mail), in a tenant
/// transaction of `credit_card`; with `as_the_feed_runs_it`, after
/// [`shared::db::campaigns::deliveries::walk_in_key_order`] as `feed` calls it.
async fn feed_plan(app: &TestApp, campaign: i32, as_the_feed_runs_it: bool) -> String {
    let tenant = TenantName::parse("credit_card").expect("tenant");
    shared::db::in_tenant(&app.state.platform, &tenant, async |tx| {
        if as_the_feed_runs_it {
            shared::db::campaigns::deliveries::walk_in_key_order(tx).await?;
        }
        let plan = tx
            .query_cached(
                &format!("explain {}", shared::db::campaigns::deliveries::FEED_SQL),
                &[
                    &campaign,
                    &"credit_card",
                    &None::<uuid::Uuid>,
                    &200_i64,
                    &"email",
                ],
            )
            .await?;
        Ok(plan_text(&plan))
    })
    .await
    .expect("the plan")
}

#[tokio::test]
async fn a_feed_page_walks_the_primary_key_even_on_stale_statistics() {
    // Bank scale: right after a release of 7,553,622 deliveries (10,000,000 customers) the
    // statistics still said none was released; the planner expected one matching row, sorted
    // a parallel sequential scan of the whole table, and the first feed page took 108 s.
    let app = TestApp::spawn().await;
    app.import_demo_customers().await;
    let fx = app.tenant_with_offer("credit_card").await;
    let id = app
        .processed_campaign(
            &fx,
            "Everyone",
            json!({"any": [{"is_active": true}, {"is_active": false}]}),
        )
        .await;
    // Statistics of the unreleased campaign, kept while it is released (autovacuum off for
    // the table, as when it has not caught up yet).
    let owner = app.owner_pool();
    let db = owner.get().await.expect("the owner");
    db.batch_execute(
        "alter table campaign_customers set (autovacuum_enabled = false);
         analyze campaign_customers",
    )
    .await
    .expect("statistics");
    app.activate_campaign("credit_card", id, &fx.admin)
        .await
        .expect(StatusCode::OK);
    let stale = feed_plan(&app, id as i32, false).await;
    assert!(
        stale.contains("Sort"),
        "the stale statistics' plan: {stale}"
    );
    // As the feed runs it: an index walked in customer-id order, stopped after the page.
    let plan = feed_plan(&app, id as i32, true).await;
    assert!(!plan.contains("Sort"), "{plan}");
    assert!(
        plan.contains("Index Scan using campaign_customers_pkey on campaign_customers")
            || plan.contains(
                "Index Scan using idx_campaign_customers_customer_id on campaign_customers"
            ),
        "{plan}"
    );
}

/// The plan of `sql` (parameters campaign `campaign`, tenant `credit_card`) in a tenant
/// transaction of `credit_card`; with `as_the_release_runs_it`, after
/// [`shared::db::campaigns::deliveries::plan_release`].
async fn tenant_plan(
    app: &TestApp,
    sql: &str,
    campaign: i32,
    as_the_release_runs_it: bool,
) -> String {
    let tenant = TenantName::parse("credit_card").expect("tenant");
    shared::db::in_tenant(&app.state.platform, &tenant, async |tx| {
        if as_the_release_runs_it {
            shared::db::campaigns::deliveries::plan_release(tx).await?;
        }
        let plan = tx
            .query_cached(&format!("explain {sql}"), &[&campaign, &"credit_card"])
            .await?;
        Ok(plan_text(&plan))
    })
    .await
    .expect("the plan")
}

/// The demo customers, `credit_card` with an offer, and a selected campaign over every
/// customer that the planner's statistics do not know: they were taken (autovacuum off for
/// `tables`, as when it has not caught up, or when a campaign is under a tenth of the table)
/// when only an earlier campaign existed. Answers the fixture, the campaign and the owner's
/// pool.
async fn campaign_on_stale_statistics(
    app: &TestApp,
    tables: &[&str],
) -> (TenantFixture, i32, deadpool_postgres::Pool) {
    app.import_demo_customers().await;
    let fx = app.tenant_with_offer("credit_card").await;
    let everyone = json!({"any": [{"is_active": true}, {"is_active": false}]});
    app.processed_campaign(&fx, "Analyzed", everyone.clone())
        .await;
    let owner = app.owner_pool();
    for table in tables {
        owner
            .get()
            .await
            .expect("the owner")
            .batch_execute(&format!(
                "alter table {table} set (autovacuum_enabled = false); analyze {table}"
            ))
            .await
            .expect("statistics");
    }
    let id = app.processed_campaign(&fx, "Fresh", everyone).await;
    (fx, id as i32, owner)
}

#[tokio::test]
async fn a_release_grows_with_its_candidates_even_on_statistics_that_predate_its_campaign() {
    // Bank scale: at 1,000,000 customers a campaign of 839,271 deliveries was activated right
    // after its selection, before autovacuum analyzed its rows. The planner expected one
    // candidate and joined each of the campaign's rows to a scan of all the judged
    // candidates (a nested loop with the CTE inside): the release ran for over 10 minutes.
    let app = TestApp::spawn().await;
    let (fx, id, _) = campaign_on_stale_statistics(&app, &["campaign_customers"]).await;
    // A join of the campaign's rows to the judged candidates by filter, row against row.
    let quadratic =
        |plan: &str| plan.contains("Join Filter: (cc_") && plan.contains("CTE Scan on judged");
    // Every customer id, as an activation's release runs it ($3 and $4 are the range).
    let release = shared::db::campaigns::deliveries::RELEASE_SQL
        .replace("$3", "'00000000-0000-0000-0000-000000000000'::uuid")
        .replace("$4", "'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid");
    let release = release.as_str();
    let stale = tenant_plan(&app, release, id, false).await;
    assert!(quadratic(&stale), "the stale statistics' plan: {stale}");
    let plan = tenant_plan(&app, release, id, true).await;
    assert!(!quadratic(&plan), "{plan}");
    assert!(
        plan.matches("Hash Join").count() >= 3,
        "the three updates: {plan}"
    );
    // And it releases as before.
    app.activate_campaign("credit_card", id.into(), &fx.admin)
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        app.count(
            "select count(*) from campaign_customers where campaign_id = $1 and released_at is not null",
            &[&id],
        )
        .await,
        10_127
    );
}

#[tokio::test]
async fn results_grow_with_the_campaign_even_on_statistics_that_predate_it() {
    // Results are read long after a campaign's selection, but at 10,000,000 customers a
    // campaign under a tenth of the table never triggers autovacuum's analyze: the planner
    // may know none of its rows. Joining the members to the converted customers then became a
    // nested loop comparing every member with every converted customer.
    let app = TestApp::spawn().await;
    let (fx, id, owner) =
        campaign_on_stale_statistics(&app, &["campaign_customers", "conversions"]).await;
    let db = owner.get().await.expect("the owner");
    app.activate_campaign("credit_card", id.into(), &fx.admin)
        .await
        .expect(StatusCode::OK);
    // Every member converts once, after the release.
    db.execute(
        "insert into conversions (tenant_name, event_id, customer_id, occurred_at)
         select 'credit_card', 'plan-' || customer_id, customer_id, now() + interval '1 second'
         from campaign_customers where campaign_id = $1 and released_at is not null",
        &[&id],
    )
    .await
    .expect("conversions");
    // Customer ids compared row against row: a nested loop without an index to probe.
    let quadratic = |plan: &str| {
        plan.lines()
            .any(|l| l.contains("Join Filter:") && l.contains("customer_id = "))
    };
    // The form the results had: a left join of the members to their distinct converted ones.
    let counts = shared::db::results::COUNTS_SQL
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let joined = counts
        .replace(
            "(select count(distinct a.customer_id) from attributed a \
             where a.control = m.control) as converted",
            "count(k.customer_id) as converted",
        )
        .replace(
            "from members m group by m.control",
            "from members m left join (select distinct customer_id from attributed) k \
             on k.customer_id = m.customer_id group by m.control",
        );
    assert!(
        joined.contains("count(k.customer_id) as converted") && joined.contains("left join"),
        "{joined}"
    );
    let stale = tenant_plan(&app, &joined, id, false).await;
    assert!(quadratic(&stale), "the joined form's plan: {stale}");
    let plan = tenant_plan(&app, shared::db::results::COUNTS_SQL, id, false).await;
    assert!(!quadratic(&plan), "{plan}");
    // And the counts are every member's.
    let results = app
        .get(
            &format!("/tenants/credit_card/campaigns/{id}/results"),
            &fx.admin,
        )
        .await;
    assert_eq!(results.status, StatusCode::OK, "{:?}", results.body);
    assert_eq!(results.body["treated"]["customers"], 10_127);
    assert_eq!(results.body["treated"]["converted"], 10_127);
}

#[tokio::test]
async fn an_expiry_slice_walks_the_key_from_its_start_and_updates_its_own_range_even_on_stale_statistics()
 {
    // Bank scale: at 10,000,000 customers the expiry of 7.55 M deliveries in one statement
    // (all locked in key order, then joined back to the table and updated) took 1.69x one
    // hand-written update. A slice finds its end through the primary key from its start,
    // then updates its key range through the primary key, in the order report batches take
    // rows: no sort, no scan of the table, no rows taken in physical order, on statistics
    // that predate the campaign as on fresh ones.
    let app = TestApp::spawn().await;
    let (fx, id, owner) = campaign_on_stale_statistics(&app, &["campaign_customers"]).await;
    app.activate_campaign("credit_card", id.into(), &fx.admin)
        .await
        .expect(StatusCode::OK);
    let tenant = TenantName::parse("credit_card").expect("tenant");
    for fresh in [false, true] {
        if fresh {
            owner
                .get()
                .await
                .expect("the owner")
                .batch_execute("analyze campaign_customers")
                .await
                .expect("statistics");
        }
        let plan = shared::db::in_tenant(&app.state.platform, &tenant, async |tx| {
            shared::db::campaigns::calendar::plan_expiry(tx).await?;
            let plan = tx
                .query_cached(
                    &format!("explain {}", shared::db::campaigns::calendar::EXPIRE_SQL),
                    &[&id, &"credit_card", &uuid::Uuid::nil(), &50_000_i64],
                )
                .await?;
            Ok(plan_text(&plan))
        })
        .await
        .expect("the plan");
        assert!(!plan.contains("Sort"), "{plan}");
        assert!(!plan.contains("Seq Scan on campaign_customers"), "{plan}");
        // A bitmap scan takes the rows in physical order, not in the reports' key order.
        assert!(!plan.contains("Bitmap"), "{plan}");
        assert!(plan.contains("Limit"), "{plan}");
        // The slice's end is read from the key from the slice's start, and the update
        // takes the slice's key range through the key, in its order.
        let by_key = plan
            .lines()
            .filter(|l| {
                l.contains("Index Scan using campaign_customers_pkey on campaign_customers")
            })
            .count();
        assert_eq!(by_key, 2, "{plan}");
        let bounded = plan
            .lines()
            .filter(|l| l.contains("Index Cond:") && l.contains("customer_id >= "))
            .collect::<Vec<_>>();
        assert_eq!(bounded.len(), 2, "{plan}");
        assert!(
            bounded.iter().any(|l| l.contains("customer_id <= $")),
            "{plan}"
        );
    }
}
