//! Conversion files through S3 (`conversions/<tenant>/…`): imported by the `customer-import`
//! function's handler on real S3 event JSON from the moto server, in one invocation and in
//! parts through the campaign processor's import steps. Checked against the conversions the
//! test itself expects from the file it wrote; a file naming an unknown customer or offer,
//! or with a bad row, records nothing; the same object version twice records once.

use std::collections::BTreeSet;

use bulk::import::{ImportResult, ImportStatus};
use campaign_processor::{ImportSteps, Processor};
use customer_import::Importer;
use integration_tests::{TestApp, TestOptions};
use serde_json::json;
use shared::queue::{InProcessReceiver, Queue};
use uuid::Uuid;

use crate::bulk::{bucket, created_event, gzip, put, result_object, s3_client};
use crate::import_parts::options;

/// Imports `file` at `key` through the function's handler; with parts, runs the processor
/// on every message the import outbox holds until none is left. Answers the result object.
async fn import(
    app: &TestApp,
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    file: Vec<u8>,
    part_bytes: u64,
) -> ImportResult {
    let importer = Importer {
        pool: app.state.platform.clone(),
        s3: s3.clone(),
        options: options(part_bytes),
    };
    let (etag, size) = put(s3, bucket, key, file).await;
    importer
        .handle(&created_event(bucket, key, &etag, size), None)
        .await
        .expect("import");
    let (queue, mut receiver): (Queue, InProcessReceiver) = Queue::in_process();
    let processor = Processor {
        pool: app.state.platform.clone(),
        queue,
        range_size: 1_000,
        imports: Some(ImportSteps {
            s3: s3.clone(),
            options: options(part_bytes),
        }),
    };
    loop {
        shared::relay::send_imports(&app.state.platform, &processor.queue)
            .await
            .expect("relay");
        let Ok(message) = receiver.messages.try_recv() else {
            break;
        };
        processor
            .handle_body(&message.body)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", message.body));
    }
    result_object(s3, bucket, key).await
}

/// The tenant's conversions as text, by event id.
async fn recorded(app: &TestApp, tenant: &str) -> Vec<String> {
    app.db()
        .await
        .query(
            "select concat_ws('|', event_id, customer_id,
                              to_char(occurred_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS'),
                              offer_id, value, currency)
             from conversions where tenant_name = $1 order by event_id",
            &[&tenant],
        )
        .await
        .expect("conversions")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// The demo customers' ids and e-mails, by e-mail.
async fn customers(app: &TestApp) -> Vec<(Uuid, String)> {
    app.db()
        .await
        .query("select id, email from customers order by email", &[])
        .await
        .expect("customers")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// A file of 3,000 conversions (every third customer named by e-mail, every fourth row with
/// the offer, every other with a value) plus 20 rows repeating earlier event ids; and the
/// rows the database must then hold (`event_id|customer|time|offer|value|currency`), the
/// first line of a repeated id winning.
fn conversion_file(people: &[(Uuid, String)], offer: i64) -> (Vec<u8>, BTreeSet<String>) {
    let mut file = String::from("event_id,customer_id,email,occurred_at,offer_id,value,currency\n");
    let mut expected = BTreeSet::new();
    let at = |i: usize| format!("2026-11-{:02}T{:02}:30:00+00:00", 1 + i % 28, i % 24);
    for i in 0..3_000 {
        let (id, email) = &people[i % people.len()];
        let offer_cell = if i % 4 == 0 {
            offer.to_string()
        } else {
            String::new()
        };
        let (value, currency) = if i % 2 == 0 {
            (format!("{}.{:02}", i, i % 100), "INR")
        } else {
            (String::new(), "")
        };
        let (id_cell, email_cell) = if i % 3 == 0 {
            (String::new(), email.clone())
        } else {
            (id.to_string(), String::new())
        };
        file.push_str(&format!(
            "ev-{i},{id_cell},{email_cell},{},{offer_cell},{value},{currency}\n",
            at(i)
        ));
        let value = if value.is_empty() {
            String::new()
        } else {
            format!("{value}00")
        };
        let stored_at = format!("2026-11-{:02} {:02}:30:00", 1 + i % 28, i % 24);
        let fields = [
            format!("ev-{i}"),
            id.to_string(),
            stored_at,
            offer_cell,
            value,
            currency.to_owned(),
        ];
        expected.insert(
            fields
                .into_iter()
                .filter(|f| !f.is_empty())
                .collect::<Vec<_>>()
                .join("|"),
        );
    }
    for i in 0..20 {
        // A repeat names another customer: the first line of the id wins.
        let (id, _) = &people[(i + 7) % people.len()];
        file.push_str(&format!("ev-{i},{id},,2026-11-30T00:00:00Z,,,\n"));
    }
    (file.into_bytes(), expected)
}

/// A platform with the demo customers and tenant `credit_card`, which already has conversion
/// `ev-5` through the API; the conversion file of [`conversion_file`] for it, and the rows
/// the tenant must hold once the file is imported.
async fn platform_with_one_conversion() -> (TestApp, Vec<u8>, BTreeSet<String>) {
    let app = TestApp::spawn_with(TestOptions::without_relay()).await;
    app.import_demo_customers().await;
    let fx = app.tenant_with_offer("credit_card").await;
    let people = customers(&app).await;
    app.post(
        "/tenants/credit_card/conversions",
        &fx.admin,
        json!({"conversions": [{"event_id": "ev-5", "customer_id": people[5].0,
                                "occurred_at": "2026-11-06T05:30:00Z"}]}),
    )
    .await
    .expect(axum::http::StatusCode::OK);
    let (file, mut expected) = conversion_file(&people, fx.offer_id);
    expected.retain(|row| !row.starts_with("ev-5|"));
    expected.insert(format!("ev-5|{}|2026-11-06 05:30:00", people[5].0));
    (app, file, expected)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversion_file_records_what_it_says_once_and_in_parts_the_same() {
    let s3 = s3_client();
    let bucket = bucket(&s3).await;

    // The tenant already has one of the file's events, through the API.
    let (whole, file, expected) = platform_with_one_conversion().await;
    let key = "conversions/credit_card/2026-11 conversions.csv";
    let result = import(&whole, &s3, &bucket, key, file.clone(), 1 << 30).await;
    assert_eq!(result.status, ImportStatus::Imported, "{result:?}");
    assert_eq!(result.kind, "conversions");
    assert_eq!(result.tenant.as_deref(), Some("credit_card"));
    let summary = result.summary.expect("summary");
    assert_eq!(
        (summary.rows, summary.inserted, summary.unchanged),
        (3_020, 2_999, 21)
    );
    let rows = recorded(&whole, "credit_card").await;
    assert_eq!(rows.into_iter().collect::<BTreeSet<_>>(), expected);

    // The same object version again: a duplicate, nothing recorded.
    let location = bulk::s3::Location {
        bucket: bucket.clone(),
        key: key.into(),
    };
    let object = bulk::import::current_object(&s3, &location)
        .await
        .expect("head");
    let again = Importer {
        pool: whole.state.platform.clone(),
        s3: s3.clone(),
        options: options(1 << 30),
    }
    .handle(&created_event(&bucket, key, &object.etag, file.len()), None)
    .await
    .expect("again");
    assert!(again[0].duplicate, "{again:?}");
    assert_eq!(
        whole.count("select count(*) from conversions", &[]).await,
        3_000
    );

    // In parts (gzip, planned into plain part objects), on another platform with the same
    // customers and the same API event first: the same rows.
    let (parts, file, expected) = platform_with_one_conversion().await;
    let part_bytes = file.len() as u64 / 6;
    let result = import(
        &parts,
        &s3,
        &bucket,
        "conversions/credit_card/in-parts.csv.gz",
        gzip(&file),
        part_bytes,
    )
    .await;
    assert_eq!(result.status, ImportStatus::Imported, "{result:?}");
    assert!(result.parts.expect("parts") >= 5, "{result:?}");
    let summary = result.summary.expect("summary");
    assert_eq!(
        (summary.rows, summary.inserted, summary.unchanged),
        (3_020, 2_999, 21)
    );
    let rows = recorded(&parts, "credit_card").await;
    assert_eq!(rows.into_iter().collect::<BTreeSet<_>>(), expected);
    assert_eq!(
        parts
            .count("select count(*) from conversion_import_rows", &[])
            .await,
        0,
        "staged rows are gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversion_file_naming_what_the_tenant_lacks_records_nothing() {
    let app = TestApp::spawn_with(TestOptions::without_relay()).await;
    app.import_demo_customers().await;
    let fx = app.tenant_with_offer("credit_card").await;
    let loans = app.tenant_with_offer("loan").await;
    let s3 = s3_client();
    let bucket = bucket(&s3).await;
    let people = customers(&app).await;
    let (good, _) = conversion_file(&people, fx.offer_id);
    let mut text = String::from_utf8(good).expect("utf-8");
    // Line 3,022: an unknown customer; 3,023: an unknown e-mail; 3,024: the other tenant's
    // offer; 3,025: a value with 5 decimals.
    text.push_str(&format!(
        "x-1,{},,2026-11-01T00:00:00Z,,,\n",
        Uuid::new_v4()
    ));
    text.push_str("x-2,,nobody@example.invalid,2026-11-01T00:00:00Z,,,\n");
    text.push_str(&format!(
        "x-3,{},,2026-11-01T00:00:00Z,{},,\n",
        people[0].0, loans.offer_id
    ));
    text.push_str(&format!(
        "x-4,{},,2026-11-01T00:00:00Z,,1.23456,INR\n",
        people[0].0
    ));
    let bad = text.into_bytes();
    let expected_problems = [
        (3_022, "customer_id"),
        (3_023, "email"),
        (3_024, "offer_id"),
        (3_025, "value"),
    ];
    for (key, part_bytes) in [
        ("conversions/credit_card/bad.csv", 1 << 30),
        (
            "conversions/credit_card/bad-in-parts.csv",
            bad.len() as u64 / 4,
        ),
    ] {
        let result = import(&app, &s3, &bucket, key, bad.clone(), part_bytes).await;
        assert_eq!(result.status, ImportStatus::Rejected, "{key}: {result:?}");
        assert_eq!(result.parts.is_some(), part_bytes < 1 << 30, "{result:?}");
        let named: Vec<(u64, &str)> = result
            .problems
            .iter()
            .map(|p| (p.line, p.column.as_deref().unwrap_or("")))
            .collect();
        assert_eq!(named, expected_problems, "{key}: {result:?}");
        assert_eq!(result.problems_total, 4);
        assert_eq!(app.count("select count(*) from conversions", &[]).await, 0);
    }
    assert_eq!(
        app.count("select count(*) from conversion_import_rows", &[])
            .await,
        0
    );

    // A key naming no tenant that exists, or outside both prefixes' shape: refused whole.
    for key in [
        "conversions/no_such_bank/file.csv",
        "conversions/credit_card",
    ] {
        let result = import(&app, &s3, &bucket, key, bad.clone(), 1 << 30).await;
        assert_eq!(result.status, ImportStatus::Rejected, "{key}: {result:?}");
        assert!(result.detail.contains("nothing was imported"), "{result:?}");
    }
    assert_eq!(app.count("select count(*) from conversions", &[]).await, 0);
}
