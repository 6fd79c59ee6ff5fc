//! Bank-scale data through S3 (`bulk`): customer files imported from a bucket by the
//! `customer-import` function's handler on real S3 event JSON, and completed campaigns'
//! deliveries archived, verified, deleted and restored by housekeeping, all through the real
//! S3 wire protocol (`aws-sdk-s3` against the moto server `infra/scripts/test.sh` starts for
//! SQS, which speaks S3 too, path-style).

use std::io::Write;
use std::time::Duration;

use aws_lambda_events::event::s3::S3Event;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use axum::http::StatusCode;
use bulk::archive::{self, HousekeepingOptions, Step};
use bulk::import::{ImportObject, ImportOptions, ImportResult, ImportRetry, ImportStatus};
use customer_import::Importer;
use integration_tests::{DEMO_CUSTOMERS_CSV, PLATFORM_ROLE, TenantFixture, TestApp, role_url_for};
use serde_json::{Value, json};
use shared::db::customer_import::ImportLimits;
use shared::domain::TenantName;

pub(crate) fn endpoint() -> String {
    std::env::var("SQS_TEST_ENDPOINT").expect(
        "SQS_TEST_ENDPOINT must name the moto server (S3 too); run the tests with \
         infra/scripts/test.sh",
    )
}

/// A client of the emulator with the platform's own settings (`bulk::s3::configure`).
pub(crate) fn s3_client() -> aws_sdk_s3::Client {
    let builder = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint())
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"));
    aws_sdk_s3::Client::from_conf(bulk::s3::configure(builder, true))
}

/// A fresh bucket of its own.
pub(crate) async fn bucket(s3: &aws_sdk_s3::Client) -> String {
    let name = format!("oms-test-{}", uuid::Uuid::new_v4().simple());
    s3.create_bucket()
        .bucket(&name)
        .send()
        .await
        .expect("create bucket");
    name
}

/// Puts `body` at `key`; answers its ETag and size.
pub(crate) async fn put(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    body: Vec<u8>,
) -> (String, usize) {
    let size = body.len();
    let put = s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body))
        .send()
        .await
        .expect("put object");
    (
        put.e_tag().expect("etag").trim_matches('"').to_owned(),
        size,
    )
}

pub(crate) async fn get(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    s3.get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("get {key}: {e:?}"))
        .body
        .collect()
        .await
        .expect("body")
        .into_bytes()
        .to_vec()
}

/// The event S3 sends for a new object (the documented notification shape, key
/// URL-encoded).
pub(crate) fn created_event(bucket: &str, key: &str, etag: &str, size: usize) -> S3Event {
    let encoded = key.replace(' ', "+");
    serde_json::from_value(json!({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": "2026-12-03T10:00:00.000Z", "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "AWS:EXAMPLE"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": "EXAMPLE", "x-amz-id-2": "EXAMPLE"},
        "s3": {
            "s3SchemaVersion": "1.0", "configurationId": "customer-files",
            "bucket": {"name": bucket, "ownerIdentity": {"principalId": "EXAMPLE"},
                       "arn": format!("arn:aws:s3:::{bucket}")},
            "object": {"key": encoded, "size": size, "eTag": etag, "sequencer": "0A1B2C3D4E5F678901"}
        }
    }]}))
    .expect("S3 event")
}

pub(crate) fn importer(app: &TestApp, s3: &aws_sdk_s3::Client) -> Importer {
    Importer {
        pool: app.state.platform.clone(),
        s3: s3.clone(),
        options: ImportOptions {
            max_bytes: shared::config::ImportConfig::DEFAULT_MAX_BYTES,
            limits: ImportLimits::with_file_bytes(
                shared::config::ImportConfig::DEFAULT_MAX_DECOMPRESSED_BYTES,
            ),
            deadline: None,
            retry: ImportRetry::default(),
            part_bytes: shared::config::ImportConfig::DEFAULT_PART_BYTES,
            driver: shared::db::customer_import::parts::Driver::Queue,
        },
    }
}

pub(crate) async fn result_object(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> ImportResult {
    let location = bulk::s3::Location {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
    };
    let object = bulk::import::current_object(s3, &location)
        .await
        .expect("the object");
    let results = bulk::import::result_location(&object);
    serde_json::from_slice(&get(s3, bucket, &results.key).await).expect("result object")
}

pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).expect("gzip");
    encoder.finish().expect("gzip")
}

#[tokio::test]
async fn csv_and_gzip_files_import_through_s3_events_and_their_results_match_sql() {
    let app = TestApp::spawn().await;
    let s3 = s3_client();
    let bucket = bucket(&s3).await;
    let importer = importer(&app, &s3);
    let csv = std::fs::read(DEMO_CUSTOMERS_CSV).expect("demo data");
    let key = "imports/card holders 2026-12.csv";
    let (etag, size) = put(&s3, &bucket, key, csv.clone()).await;
    let answers = importer
        .handle(&created_event(&bucket, key, &etag, size), None)
        .await
        .expect("import");
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].status, ImportStatus::Imported);
    assert!(!answers[0].duplicate);
    let result = result_object(&s3, &bucket, key).await;
    let in_database = app.count("select count(*) from customers", &[]).await;
    assert_eq!(result.status, ImportStatus::Imported, "{result:?}");
    let summary = result.summary.expect("summary");
    assert_eq!(summary.rows, 10_127);
    assert_eq!(i64::try_from(summary.inserted).unwrap_or(0), in_database);
    assert_eq!(result.bytes, size as u64);
    assert!(result.peak_rss_bytes.is_some());

    // The same customers, ten with another segment, gzip-compressed.
    let text = String::from_utf8(csv).expect("utf-8");
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let header: Vec<&str> = lines[0].split(',').collect();
    let segment = header
        .iter()
        .position(|h| *h == "segment")
        .expect("segment column");
    let email = header
        .iter()
        .position(|h| *h == "email")
        .expect("email column");
    let mut changed = Vec::new();
    for line in lines.iter_mut().skip(1).take(10) {
        let mut cells: Vec<String> = line.split(',').map(str::to_owned).collect();
        cells[segment] = "gzip-tested".into();
        changed.push(cells[email].clone());
        *line = cells.join(",");
    }
    let key = "imports/card-holders.csv.gz";
    let (etag, size) = put(
        &s3,
        &bucket,
        key,
        gzip((lines.join("\n") + "\n").as_bytes()),
    )
    .await;
    importer
        .handle(&created_event(&bucket, key, &etag, size), None)
        .await
        .expect("gzip import");
    let result = result_object(&s3, &bucket, key).await;
    let summary = result.summary.expect("summary");
    assert_eq!(
        (
            summary.rows,
            summary.inserted,
            summary.updated,
            summary.unchanged
        ),
        (10_127, 0, 10, 10_117),
        "{result:?}"
    );
    assert_eq!(
        app.count(
            "select count(*) from customers where segment = 'gzip-tested' and email = any($1)",
            &[&changed]
        )
        .await,
        10
    );
    assert_eq!(
        app.count(
            "select count(*) from customer_imports where status = 'imported'",
            &[]
        )
        .await,
        2
    );
}

#[tokio::test]
async fn a_bad_file_changes_nothing_and_its_result_names_the_lines() {
    let app = TestApp::spawn().await;
    let s3 = s3_client();
    let bucket = bucket(&s3).await;
    let before = app.count("select count(*) from customers", &[]).await;
    let file = "full_name,email,credit_score,consent_sms\n\
                Asha Rao,asha@example.com,720,opted_in\n\
                Bad Mail,not-an-address,700,\n\
                Ravi Iyer,ravi@example.com,ninety,\n\
                Asha Again,asha@example.com,650,\n\
                Meera Das,meera@example.com,810,maybe\n";
    let key = "imports/bad.csv";
    let (etag, size) = put(&s3, &bucket, key, file.as_bytes().to_vec()).await;
    let answers = importer(&app, &s3)
        .handle(&created_event(&bucket, key, &etag, size), None)
        .await
        .expect("a refused file is a result, not an error");
    assert_eq!(answers[0].status, ImportStatus::Rejected);
    let result = result_object(&s3, &bucket, key).await;
    assert_eq!(result.status, ImportStatus::Rejected);
    assert_eq!(result.summary, None);
    assert_eq!(result.problems_total, 4, "{result:?}");
    let named: Vec<(u64, Option<&str>, &str)> = result
        .problems
        .iter()
        .map(|p| (p.line, p.column.as_deref(), p.pointer.as_str()))
        .collect();
    assert_eq!(
        named,
        [
            (3, Some("email"), "/lines/3/email"),
            (4, Some("credit_score"), "/lines/4/credit_score"),
            (5, Some("email"), "/lines/5/email"),
            (6, Some("consent_sms"), "/lines/6/consent_sms"),
        ]
    );
    assert!(
        result.problems[2].reason.contains("also on line 2"),
        "{result:?}"
    );
    assert_eq!(
        app.count("select count(*) from customers", &[]).await,
        before
    );
    assert_eq!(
        app.count("select count(*) from customer_consent_history", &[])
            .await,
        0
    );
    assert_eq!(
        app.count(
            "select count(*) from customer_imports where status = 'rejected' and key = $1",
            &[&key]
        )
        .await,
        1
    );

    // A file that is not gzip beyond its magic number: refused, nothing written.
    let mut broken = gzip(file.as_bytes());
    broken.truncate(broken.len() / 2);
    let key = "imports/truncated.csv.gz";
    let (etag, size) = put(&s3, &bucket, key, broken).await;
    importer(&app, &s3)
        .handle(&created_event(&bucket, key, &etag, size), None)
        .await
        .expect("result");
    let result = result_object(&s3, &bucket, key).await;
    assert_eq!(result.status, ImportStatus::Rejected, "{result:?}");
    assert_eq!(
        app.count("select count(*) from customers", &[]).await,
        before
    );

    // Larger than the stated limit: refused before reading, with a clear result.
    let mut small = importer(&app, &s3);
    small.options.max_bytes = 10;
    let key = "imports/too-large.csv";
    let (etag, size) = put(&s3, &bucket, key, file.as_bytes().to_vec()).await;
    small
        .handle(&created_event(&bucket, key, &etag, size), None)
        .await
        .expect("result");
    let result = result_object(&s3, &bucket, key).await;
    assert_eq!(result.status, ImportStatus::TooLarge);
    assert!(
        result.detail.contains("CUSTOMER_IMPORT_MAX_BYTES"),
        "{}",
        result.detail
    );
}

#[tokio::test]
async fn a_duplicated_or_redelivered_event_changes_nothing() {
    let app = TestApp::spawn().await;
    let s3 = s3_client();
    let bucket = bucket(&s3).await;
    let importer = importer(&app, &s3);
    let key = "imports/customers.csv";
    let (etag, size) = put(
        &s3,
        &bucket,
        key,
        std::fs::read(DEMO_CUSTOMERS_CSV).expect("demo data"),
    )
    .await;
    let event = created_event(&bucket, key, &etag, size);
    // Two deliveries of the same event at once: one imports, the other waits and finds it.
    let (a, b) = tokio::join!(importer.handle(&event, None), importer.handle(&event, None));
    let (a, b) = (a.expect("first"), b.expect("second"));
    assert_eq!(a[0].status, ImportStatus::Imported);
    assert_eq!(b[0].status, ImportStatus::Imported);
    assert_eq!(
        [a[0].duplicate, b[0].duplicate]
            .iter()
            .filter(|d| **d)
            .count(),
        1,
        "{a:?} {b:?}"
    );
    assert_eq!(
        app.count("select count(*) from customers", &[]).await,
        10_127
    );

    // A customer changed since; a redelivery of the event must not put the file back.
    app.db()
        .await
        .execute(
            "update customers set segment = 'changed-since' where id = (select id from customers order by id limit 1)",
            &[],
        )
        .await
        .expect("update");
    let again = importer.handle(&event, None).await.expect("redelivery");
    assert!(again[0].duplicate);
    assert_eq!(
        app.count(
            "select count(*) from customers where segment = 'changed-since'",
            &[]
        )
        .await,
        1
    );
    assert_eq!(
        app.count("select count(*) from customer_imports", &[])
            .await,
        1
    );
    // The result object answers the first import, whichever delivery wrote it last.
    let result = result_object(&s3, &bucket, key).await;
    assert_eq!(result.summary.map(|s| s.inserted), Some(10_127));
}

/// A generated file of `rows` customers numbered from `first`, about 170 bytes a row.
pub(crate) fn generated_csv(rows: usize, first: usize) -> Vec<u8> {
    let mut csv = Vec::with_capacity(rows * 200);
    csv.extend_from_slice(
        b"full_name,email,phone,dob,gender,kyc_status,segment,occupation,annual_income,credit_score,state,city,pin_code\n",
    );
    for i in first..first + rows {
        writeln!(
            csv,
            "Generated Customer {i},generated.{i}@bulk.example.com,+91-98{i:08},1980-01-{:02},\
             female,verified,gold,Engineer at a large bank,{},{},Karnataka,Bengaluru,5600{:02}",
            1 + i % 28,
            500_000 + i,
            300 + i % 600,
            i % 100
        )
        .expect("write");
    }
    csv
}

/// The `offerctl` binary of the target directory (`infra/scripts/test.sh` builds it, with
/// `cargo build --workspace --bins`, before the tests).
pub(crate) fn offerctl_binary() -> std::path::PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent().map(|dir| dir.join("offerctl")))
        .filter(|path| path.exists())
        .expect(
            "the offerctl binary in the target directory: run infra/scripts/test.sh, or \
             cargo build -p offerctl before cargo test",
        )
}

/// A process's peak resident memory so far (`VmHWM` of `/proc/<pid>/status`), in bytes.
pub(crate) fn peak_rss_of(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = text
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse::<u64>()
        .ok()?;
    Some(kib * 1024)
}

/// Runs `offerctl` with `args` against the app's database (platform role) and the S3
/// emulator, in a process of its own so that its peak resident memory is its work's;
/// answers whether it succeeded, its standard output and error, and the peak the test read
/// from `/proc/<pid>/status` while it ran (VmHWM only grows: the last reading before the
/// process exits is its peak so far).
pub(crate) fn offerctl_in_child(
    app: &TestApp,
    args: &[&str],
    env: &[(&str, &str)],
) -> (bool, String, String, u64) {
    let mut child = std::process::Command::new(offerctl_binary())
        .args(args)
        .env("DATABASE_URL", role_url_for(PLATFORM_ROLE, &app.database))
        .env("AWS_ENDPOINT_URL", endpoint())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run offerctl");
    let pid = child.id();
    let mut watched_peak = 0_u64;
    let status = loop {
        if let Some(peak) = peak_rss_of(pid) {
            watched_peak = watched_peak.max(peak);
        }
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut output = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().expect("stdout"), &mut output)
        .expect("output");
    let mut errors = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().expect("stderr"), &mut errors)
        .expect("errors");
    (status.success(), output, errors, watched_peak)
}

/// Runs `offerctl import-customers s3://bucket/key` in a process of its own
/// ([`offerctl_in_child`]); answers whether it succeeded, its result and its peak resident
/// memory (the larger of what the test read and what the process reported).
pub(crate) fn s3_import_in_child(
    app: &TestApp,
    bucket: &str,
    key: &str,
    env: &[(&str, &str)],
) -> (bool, ImportResult, u64) {
    let (success, output, errors, watched_peak) = offerctl_in_child(
        app,
        &["import-customers", &format!("s3://{bucket}/{key}")],
        env,
    );
    let result: ImportResult =
        serde_json::from_str(&output).unwrap_or_else(|e| panic!("result JSON ({e}): {errors}"));
    let peak = result.peak_rss_bytes.unwrap_or(0).max(watched_peak);
    (success, result, peak)
}

/// [`s3_import_in_child`] of a file that must import.
fn import_in_child(app: &TestApp, bucket: &str, key: &str) -> (ImportResult, u64) {
    let (success, result, peak) = s3_import_in_child(app, bucket, key, &[]);
    assert!(success, "{result:?}");
    (result, peak)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_many_times_the_streaming_buffer_imports_within_the_memory_bound() {
    let app = TestApp::spawn().await;
    let s3 = s3_client();
    let bucket = bucket(&s3).await;
    // The process's own floor: the same import of a file of 1,000 rows.
    put(&s3, &bucket, "imports/small.csv", generated_csv(1_000, 0)).await;
    let large_rows = 400_000;
    let large = generated_csv(large_rows, 1_000);
    let size = large.len() as u64;
    let buffer = bulk_buffer_bytes();
    assert!(
        size > 10 * buffer,
        "{size} bytes is not many buffers ({buffer})"
    );
    put(&s3, &bucket, "imports/large.csv", large).await;
    let (small_result, floor) =
        tokio::task::block_in_place(|| import_in_child(&app, &bucket, "imports/small.csv"));
    assert_eq!(small_result.summary.map(|s| s.inserted), Some(1_000));
    let (result, peak) =
        tokio::task::block_in_place(|| import_in_child(&app, &bucket, "imports/large.csv"));
    assert_eq!(result.summary.map(|s| s.inserted), Some(large_rows as u64));
    let growth = peak.saturating_sub(floor);
    eprintln!(
        "memory bound: 1,000 rows peak RSS {floor} bytes; {large_rows} rows ({size} bytes) \
         peak RSS {peak} bytes: +{growth} bytes (streaming buffer {buffer} bytes, bound \
         +{MEMORY_GROWTH_BOUND_BYTES})"
    );
    assert!(
        growth < MEMORY_GROWTH_BOUND_BYTES,
        "a {size}-byte file raised the peak RSS by {growth} bytes (from {floor} to {peak})"
    );
    assert!(peak < LAMBDA_MEMORY_TARGET_BYTES, "peak RSS {peak} bytes");
    assert_eq!(
        app.count("select count(*) from customers", &[]).await,
        (large_rows + 1_000) as i64
    );
}

/// What a file 400,000 rows (about 68 MB) may add to the import process's peak resident
/// memory over a 1,000-row file: a few streaming buffers, far below the file's size.
const MEMORY_GROWTH_BOUND_BYTES: u64 = 24 << 20;
/// The import function's peak RSS target (issue: ≤ 256 MiB).
pub(crate) const LAMBDA_MEMORY_TARGET_BYTES: u64 = 256 << 20;

/// The import's streaming buffers: COPY chunks in the channel, one being filled, one being
/// sent.
fn bulk_buffer_bytes() -> u64 {
    (shared::db::customer_import::COPY_CHUNK_BYTES
        * (shared::db::customer_import::COPY_CHANNEL_SLOTS + 2)) as u64
}

/// A tenant with a released campaign over the demo customers whose deliveries have every
/// status, then completed and ended `ended_days_ago` days ago; answers its id.
async fn ended_campaign(app: &TestApp, fx: &TenantFixture, ended_days_ago: i32) -> i32 {
    let id = app
        .processed_campaign(
            fx,
            "Old wave",
            json!({"segment": {"in": ["gold", "platinum"]}}),
        )
        .await;
    app.activate_campaign(&fx.tenant, id, &fx.admin)
        .await
        .expect(StatusCode::OK);
    let id = i32::try_from(id).expect("id");
    app.db()
        .await
        .batch_execute(&format!(
            "update campaign_customers set delivery_status = 'sent', sent_at = now() - interval '1 day'
               where campaign_id = {id} and released_at is not null
                 and customer_id in (select customer_id from campaign_customers
                                     where campaign_id = {id} order by customer_id limit 40);
             update campaign_customers set delivery_status = 'failed'
               where campaign_id = {id} and released_at is not null and delivery_status = 'pending'
                 and customer_id in (select customer_id from campaign_customers
                                     where campaign_id = {id} order by customer_id desc limit 7);
             update campaigns set status = 'completed',
                    start_date = current_date - {}, end_date = current_date - {ended_days_ago}
               where id = {id};
             update customer_contacts l set open_until = c.ends_at
               from campaigns c where c.id = l.campaign_id and l.campaign_id = {id};
             update campaigns set released_until = ends_at where id = {id}",
            ended_days_ago + 30
        ))
        .await
        .expect("age the campaign");
    id
}

/// The campaign as its tenant's admin reads it.
async fn campaign_json(app: &TestApp, fx: &TenantFixture, id: i32) -> Value {
    app.get(&format!("/tenants/{}/campaigns/{id}", fx.tenant), &fx.admin)
        .await
        .expect(StatusCode::OK)
        .body
}

/// Every delivery row of a campaign, as text, in key order.
async fn delivery_rows(app: &TestApp, campaign: i32) -> Vec<String> {
    app.db()
        .await
        .query(
            "select row_to_json(cc)::text from campaign_customers cc
             where campaign_id = $1 order by customer_id",
            &[&campaign],
        )
        .await
        .expect("rows")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

fn options(bucket: &str) -> HousekeepingOptions {
    HousekeepingOptions {
        bucket: bucket.to_owned(),
        report_grace_days: 7,
        max_campaigns: 20,
        // Several batches even for the test's campaigns.
        delete_batch_rows: 25,
    }
}

#[tokio::test]
async fn archive_then_restore_gives_identical_rows_and_the_campaign_keeps_its_summary() {
    let app = TestApp::spawn().await;
    app.import_demo_customers().await;
    let fx = app.tenant_with_offer("archive_co").await;
    let old = ended_campaign(&app, &fx, 450).await;
    let recent = ended_campaign(&app, &fx, 30).await;
    let rows = delivery_rows(&app, old).await;
    assert!(rows.len() > 50, "{} rows", rows.len());
    let summary_path = format!("/tenants/{}/campaigns/{old}/customers/summary", fx.tenant);
    let summary = app
        .get(&summary_path, &fx.admin)
        .await
        .expect(StatusCode::OK)
        .body;
    let recent_rows = delivery_rows(&app, recent).await;

    let s3 = s3_client();
    let bucket = bucket(&s3).await;
    let report = archive::run(&app.state.platform, &s3, &options(&bucket))
        .await
        .expect("housekeeping");
    assert_eq!(report.campaigns_archived, 1, "{report:?}");
    assert_eq!(report.deliveries_archived, rows.len() as u64);
    assert_eq!(delivery_rows(&app, old).await.len(), 0);
    assert_eq!(
        delivery_rows(&app, recent).await,
        recent_rows,
        "inside retention: kept"
    );
    // The campaign keeps its counts, its audit trail and a pointer to the archive.
    assert_eq!(
        app.get(&summary_path, &fx.admin)
            .await
            .expect(StatusCode::OK)
            .body,
        summary
    );
    let campaign = campaign_json(&app, &fx, old).await;
    let key = format!("archive/archive_co/{old}.csv.gz");
    assert_eq!(
        campaign["archive"]["location"],
        format!("s3://{bucket}/{key}")
    );
    assert_eq!(campaign["archive"]["state"], "archived");
    assert_eq!(campaign["archive"]["rows"], rows.len());
    let manifest: Value = serde_json::from_slice(
        &get(
            &s3,
            &bucket,
            &format!("archive/archive_co/{old}.manifest.json"),
        )
        .await,
    )
    .expect("manifest");
    assert_eq!(manifest["rows"], rows.len());
    assert_eq!(manifest["sha256"], campaign["archive"]["sha256"]);
    // The object holds every row, by customer id (the export reads its staged copy in the
    // order it was filled).
    let object = get(&s3, &bucket, &key).await;
    let mut csv = csv::Reader::from_reader(flate2::read::MultiGzDecoder::new(&object[..]));
    let at = csv
        .headers()
        .expect("header")
        .iter()
        .position(|c| c == "customer_id")
        .expect("customer_id column");
    let ids: Vec<uuid::Uuid> = csv
        .records()
        .map(|r| r.expect("record")[at].parse().expect("uuid"))
        .collect();
    assert_eq!(ids.len(), rows.len());
    assert!(ids.is_sorted(), "by customer id");
    // Its customer list is in the archive now: 409 pointing there, not an empty 200 that
    // reads like an empty audience (review 3, finding 11).
    let listed = app
        .get(
            &format!("/tenants/{}/campaigns/{old}/customers", fx.tenant),
            &fx.admin,
        )
        .await
        .expect(StatusCode::CONFLICT);
    assert!(
        listed.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains(&format!("s3://{bucket}/{key}"))),
        "{:?}",
        listed.body
    );
    // A second run finds nothing to do.
    let again = archive::run(&app.state.platform, &s3, &options(&bucket))
        .await
        .expect("second run");
    assert_eq!(again.campaigns_archived, 0, "{again:?}");

    // Retention is the tenant's setting: shorter, and the recent campaign goes too.
    let sa = app.super_admin_token().await;
    let refused = app
        .put("/sa/tenants/archive_co", &sa, json!({"retention_days": 0}))
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        refused.body["errors"][0]["pointer"], "/retention_days",
        "{}",
        refused.body
    );
    let tenant = app
        .put("/sa/tenants/archive_co", &sa, json!({"retention_days": 20}))
        .await
        .expect(StatusCode::OK);
    assert_eq!(tenant.body["retention_days"], 20);
    // Past retention, but its conversion window (30 days after its end) is still open: its
    // results may still change, so it stays.
    let open = archive::run(&app.state.platform, &s3, &options(&bucket))
        .await
        .expect("run with the window open");
    assert_eq!(open.campaigns_archived, 0, "{open:?}");
    app.db()
        .await
        .execute(
            "update campaigns set conversion_window_days = 7 where id = $1",
            &[&recent],
        )
        .await
        .expect("a shorter window");
    let shorter = archive::run(&app.state.platform, &s3, &options(&bucket))
        .await
        .expect("run after the change");
    assert_eq!(shorter.campaigns_archived, 1, "{shorter:?}");
    assert_eq!(delivery_rows(&app, recent).await.len(), 0);

    let restored = archive::restore(&app.state.platform, &s3, old)
        .await
        .expect("restore");
    assert_eq!(restored.restored, rows.len() as i64);
    assert_eq!(
        delivery_rows(&app, old).await,
        rows,
        "identical rows after the round trip"
    );
    let campaign = campaign_json(&app, &fx, old).await;
    assert_eq!(campaign["archive"], Value::Null);
    // The restore holds: the next run leaves the campaign as it is, though it is past its
    // retention (review 3, finding 11), until an operator releases it.
    let held = archive::run(&app.state.platform, &s3, &options(&bucket))
        .await
        .expect("run after the restore");
    assert_eq!(held.campaigns_archived, 0, "{held:?}");
    assert_eq!(delivery_rows(&app, old).await, rows);
    assert!(
        archive::release_hold(&app.state.platform, old)
            .await
            .expect("release")
    );
    let again = archive::run(&app.state.platform, &s3, &options(&bucket))
        .await
        .expect("run after the release");
    assert_eq!(again.campaigns_archived, 1, "{again:?}");
    assert_eq!(delivery_rows(&app, old).await.len(), 0);
}

#[tokio::test]
async fn a_kill_at_any_step_of_an_archive_loses_nothing_and_deletes_nothing_unverified() {
    let app = TestApp::spawn().await;
    app.import_demo_customers().await;
    let fx = app.tenant_with_offer("killed_co").await;
    let id = ended_campaign(&app, &fx, 450).await;
    let rows = delivery_rows(&app, id).await;
    let s3 = s3_client();
    let bucket = bucket(&s3).await;
    let tenant = TenantName::parse("killed_co").expect("tenant");
    let pool = &app.state.platform;
    let options = options(&bucket);
    let next_step = || archive::step(pool, &s3, &options, &tenant, id);

    // Killed during the export (its connection dies mid-COPY): no archive row, nothing gone.
    let export = next_step();
    let killer = async {
        tokio::time::sleep(Duration::from_millis(5)).await;
        app.terminate_backends().await
    };
    let (outcome, _) = tokio::join!(export, killer);
    // Let the pools notice their killed connections before using them again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    if outcome.is_err() {
        assert_eq!(
            app.count("select count(*) from campaign_archives", &[])
                .await,
            0
        );
    }
    assert_eq!(delivery_rows(&app, id).await, rows);

    // Stopped after the export, then the object damaged before the check: nothing deleted,
    // the archive row gone, so the next run exports again.
    let mut step = next_step().await.expect("step");
    if step == Step::Verified {
        // The killed attempt above had committed its export; start again from scratch.
        app.db()
            .await
            .execute("update campaign_archives set state = 'exported'", &[])
            .await
            .expect("reset");
        step = Step::Exported;
    }
    assert_eq!(step, Step::Exported);
    let key = format!("archive/killed_co/{id}.csv.gz");
    // The export recorded the object's composite checksum (each part sent with its SHA-256)
    // and size, and S3 reports the same for the stored object: what the verification
    // compares, reading nothing of the object (V028).
    let (checksum, bytes): (String, i64) = {
        let row = app
            .db()
            .await
            .query_one(
                "select object_checksum, object_bytes from campaign_archives
                 where campaign_id = $1",
                &[&id],
            )
            .await
            .expect("archive row");
        (row.get(0), row.get(1))
    };
    let head = s3
        .head_object()
        .bucket(&bucket)
        .key(&key)
        .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
        .send()
        .await
        .expect("head");
    assert!(
        bulk::s3::checksum_matches(head.checksum_sha256().unwrap_or_default(), &checksum),
        "{head:?} against {checksum}"
    );
    assert!(checksum.ends_with("-1"), "{checksum}");
    assert_eq!(head.content_length(), Some(bytes));
    // An archive exported before V028 has no checksum to compare: it is not verified,
    // nothing is deleted, and the next run exports it again.
    app.db()
        .await
        .execute("update campaign_archives set object_checksum = null", &[])
        .await
        .expect("pre-V028 row");
    assert_eq!(next_step().await.expect("verify"), Step::Unverified);
    assert_eq!(delivery_rows(&app, id).await, rows);
    assert_eq!(next_step().await.expect("export again"), Step::Exported);
    // A campaign no longer in the state the export was taken in (here held by an operator
    // meanwhile) is not verified: its rows could differ from the object's.
    let shared_app = &app;
    let hold = |held: bool| async move {
        shared_app
            .db()
            .await
            .execute(
                "update campaigns set archive_held = $2 where id = $1",
                &[&id, &held],
            )
            .await
            .expect("hold");
    };
    hold(true).await;
    assert_eq!(next_step().await.expect("verify"), Step::Unverified);
    assert_eq!(delivery_rows(&app, id).await, rows);
    hold(false).await;
    assert_eq!(
        next_step().await.expect("export after the hold"),
        Step::Exported
    );
    // The object written again by someone else: not what the export sent (even its own
    // bytes, put again without the parts' SHA-256s, would not verify).
    put(&s3, &bucket, &key, gzip(b"customer_id\nnot the rows\n")).await;
    assert_eq!(next_step().await.expect("verify"), Step::Unverified);
    assert_eq!(delivery_rows(&app, id).await, rows);
    assert_eq!(
        app.count("select count(*) from campaign_archives", &[])
            .await,
        0
    );

    // Export and verify again, then "killed" after one batch of deletions.
    assert_eq!(next_step().await.expect("export"), Step::Exported);
    assert_eq!(next_step().await.expect("verify"), Step::Verified);
    let first = next_step().await.expect("delete");
    assert!(
        matches!(first, Step::Deleted { rows } if rows > 0),
        "{first:?}"
    );
    let left = delivery_rows(&app, id).await.len();
    assert!(left < rows.len());
    // The batch recorded where it stopped, in its own transaction: the next batch starts
    // after that key instead of walking the entries deleted before it (V023), and every
    // row up to it is gone, every row after it still there.
    let db = app.db().await;
    let mark: uuid::Uuid = db
        .query_one(
            "select deleted_through from campaign_archives where campaign_id = $1",
            &[&id],
        )
        .await
        .expect("mark")
        .get(0);
    let (through, after): (i64, i64) = {
        let row = db
            .query_one(
                "select count(*) filter (where customer_id <= $2),
                        count(*) filter (where customer_id > $2)
                 from campaign_customers where campaign_id = $1",
                &[&id, &mark],
            )
            .await
            .expect("counts");
        (row.get(0), row.get(1))
    };
    assert_eq!((through, after), (0, left as i64));
    // Mid-deletion the summary already answers from the archive's counts.
    let summary = app
        .get(
            &format!("/tenants/killed_co/campaigns/{id}/customers/summary"),
            &fx.admin,
        )
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(summary["total"], rows.len());
    // The next run resumes deleting and finishes.
    let report = archive::run(pool, &s3, &options).await.expect("resume");
    assert_eq!(report.campaigns_archived, 1, "{report:?}");
    assert_eq!(delivery_rows(&app, id).await.len(), 0);
    // Interrupted or not, the rows come back whole.
    archive::restore(pool, &s3, id).await.expect("restore");
    assert_eq!(delivery_rows(&app, id).await, rows);
}

#[tokio::test]
async fn an_empty_slice_of_the_id_space_does_not_end_the_deletes() {
    let app = TestApp::spawn().await;
    app.import_demo_customers().await;
    let fx = app.tenant_with_offer("sparse_co").await;
    let id = ended_campaign(&app, &fx, 450).await;
    // Customer ids as a bank may assign them, not spread evenly: none of the campaign's
    // deliveries in the second quarter of the id space.
    let (low, high) = shared::queue::IdRange { index: 1, count: 4 }
        .bounds()
        .expect("bounds");
    app.db()
        .await
        .execute(
            "delete from campaign_customers
             where campaign_id = $1 and customer_id between $2 and $3",
            &[&id, &low, &high],
        )
        .await
        .expect("clustered ids");
    let rows = delivery_rows(&app, id).await.len() as i64;
    let s3 = s3_client();
    let bucket = bucket(&s3).await;
    // Four slices of the id space, the second empty.
    let options = HousekeepingOptions {
        delete_batch_rows: (rows + 3) / 4,
        ..options(&bucket)
    };
    assert_eq!(
        (rows + options.delete_batch_rows - 1) / options.delete_batch_rows,
        4
    );
    let report = archive::run(&app.state.platform, &s3, &options)
        .await
        .expect("housekeeping");
    assert_eq!(report.campaigns_archived, 1, "{report:?}");
    assert_eq!(report.deliveries_archived, rows as u64);
    assert_eq!(
        delivery_rows(&app, id).await.len(),
        0,
        "the slices after the empty one deleted too"
    );
}

#[tokio::test]
async fn the_ledger_prune_keeps_every_row_a_policy_can_still_count() {
    let app = TestApp::spawn().await;
    app.import_demo_customers().await;
    let fx = app.tenant_with_offer("ledger_co").await;
    let ancient = ended_campaign(&app, &fx, 400).await;
    let last_year = ended_campaign(&app, &fx, 200).await;
    let db = app.db().await;
    // The old campaign's contacts are as old as it; one (a late-dated contact, say) is not.
    db.execute(
        "update customer_contacts set contact_at = now() - interval '420 days'
         where campaign_id = $1",
        &[&ancient],
    )
    .await
    .expect("age");
    db.execute(
        "update customer_contacts set contact_at = now() - interval '300 days'
         where campaign_id = $1 and customer_id = (select customer_id
               from customer_contacts where campaign_id = $1 order by customer_id limit 1)",
        &[&ancient],
    )
    .await
    .expect("one younger");
    // The other campaign's contacts are older than any window, but the campaign is not.
    db.execute(
        "update customer_contacts set contact_at = now() - interval '380 days'
         where campaign_id = $1",
        &[&last_year],
    )
    .await
    .expect("age");
    let ancient_rows = app
        .count(
            "select count(*) from customer_contacts where campaign_id = $1",
            &[&ancient],
        )
        .await;
    let last_year_rows = app
        .count(
            "select count(*) from customer_contacts where campaign_id = $1",
            &[&last_year],
        )
        .await;
    assert!(ancient_rows > 1);

    let pruned = archive::prune_contacts(&app.state.platform, 7)
        .await
        .expect("prune");
    assert_eq!(pruned, u64::try_from(ancient_rows - 1).unwrap_or(0));
    assert_eq!(
        app.count(
            "select count(*) from customer_contacts
             where contact_at > now() - interval '366 days'",
            &[]
        )
        .await,
        1,
        "the contact a 366-day window still counts stays"
    );
    assert_eq!(
        app.count(
            "select count(*) from customer_contacts where campaign_id = $1",
            &[&last_year]
        )
        .await,
        last_year_rows
    );
    // The longest window the code assumes is the one the database enforces.
    let refused = db
        .execute(
            "insert into contact_policy (max_contacts, window_days) values (1, $1)",
            &[&(archive::MAX_POLICY_WINDOW_DAYS + 1)],
        )
        .await;
    assert!(
        refused.is_err(),
        "a window longer than MAX_POLICY_WINDOW_DAYS was accepted"
    );
}

/// Third review, finding 4: an import that fails for a reason not in its file ends with a
/// ledger row and a result object, is tried again a bounded number of times, and blocks no
/// other key, through the bucket watcher and through the function's events alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_import_is_recorded_retried_a_bounded_number_of_times_and_blocks_no_other() {
    let app = TestApp::spawn().await;
    let s3 = s3_client();
    let bucket = bucket(&s3).await;
    // A value the database refuses though the file's checks pass: a constraint the test
    // adds stands for any failure the import cannot foresee.
    let owner = app.owner_pool().get().await.expect("owner");
    owner
        .batch_execute(
            "alter table customers add constraint test_poison check (full_name <> 'Poison Pill')",
        )
        .await
        .expect("poison");
    let poison = "full_name,email\nPoison Pill,poison@x.example\n";
    let (etag, _) = put(&s3, &bucket, "imports/a-poison.csv", poison.into()).await;
    put(&s3, &bucket, "imports/b-good.csv", generated_csv(10, 0)).await;
    let mut options = importer(&app, &s3).options;
    options.retry.backoff = Duration::ZERO;
    let pool = &app.state.platform;

    // The watcher: the poisoned key fails, is recorded, and the key after it is imported.
    let first = bulk::import::import_new(pool, &s3, &bucket, options)
        .await
        .expect("the watcher goes on");
    assert_eq!(
        first
            .iter()
            .map(|r| (r.key.as_str(), r.status))
            .collect::<Vec<_>>(),
        [("imports/b-good.csv", ImportStatus::Imported)]
    );
    let ledger = |key: &'static str| {
        let pool = pool.clone();
        async move {
            pool.get()
                .await
                .expect("client")
                .query_one(
                    "select status, attempts, retry_after is not null from customer_imports
                     where key = $1",
                    &[&key],
                )
                .await
                .map(|row| {
                    (
                        row.get::<_, String>(0),
                        row.get::<_, i32>(1),
                        row.get::<_, bool>(2),
                    )
                })
                .expect("a ledger row")
        }
    };
    assert_eq!(
        ledger("imports/a-poison.csv").await,
        ("failed".into(), 1, true)
    );
    let result = result_object(&s3, &bucket, "imports/a-poison.csv").await;
    assert_eq!((result.status, result.attempts), (ImportStatus::Failed, 1));
    assert!(result.detail.contains("test_poison"), "{}", result.detail);

    // A backoff not yet passed: the watcher leaves it alone.
    let mut patient = options;
    patient.retry.backoff = Duration::from_secs(3600);
    let object = ImportObject {
        location: bulk::s3::Location {
            bucket: bucket.clone(),
            key: "imports/a-poison.csv".into(),
        },
        version_id: String::new(),
        etag,
        size: Some(poison.len() as u64),
    };
    pool.get()
        .await
        .expect("client")
        .execute(
            "update customer_imports set retry_after = now() + interval '1 hour'
             where key = 'imports/a-poison.csv'",
            &[],
        )
        .await
        .expect("later");
    assert!(
        bulk::import::import_new(pool, &s3, &bucket, patient)
            .await
            .expect("watch")
            .is_empty()
    );
    bulk::import::allow_retry(pool, &object)
        .await
        .expect("due again");

    // The event path: a failed attempt with attempts left fails the invocation (Lambda
    // retries the event); the third is final, answered as a result, with its alarm metric.
    let event = created_event(&bucket, "imports/a-poison.csv", &object.etag, poison.len());
    let mut function = importer(&app, &s3);
    function.options = options;
    function.handle(&event, None).await.expect_err("retried");
    assert_eq!(
        ledger("imports/a-poison.csv").await,
        ("failed".into(), 2, true)
    );
    let last = function.handle(&event, None).await.expect("final");
    assert_eq!(last[0].status, ImportStatus::Failed);
    assert_eq!(
        ledger("imports/a-poison.csv").await,
        ("failed".into(), 3, false)
    );
    let result = result_object(&s3, &bucket, "imports/a-poison.csv").await;
    assert_eq!((result.status, result.attempts), (ImportStatus::Failed, 3));
    assert!(
        result.detail.contains("no attempt is left"),
        "{}",
        result.detail
    );
    // Final: neither the watcher nor a redelivered event tries it again.
    assert!(
        bulk::import::import_new(pool, &s3, &bucket, options)
            .await
            .expect("watch")
            .is_empty()
    );
    let again = function.handle(&event, None).await.expect("recorded");
    assert_eq!(
        (again[0].status, again[0].duplicate),
        (ImportStatus::Failed, true)
    );

    // Mended, an operator's retry imports it.
    owner
        .batch_execute("alter table customers drop constraint test_poison")
        .await
        .expect("mend");
    assert!(
        bulk::import::allow_retry(pool, &object)
            .await
            .expect("due again")
    );
    let (result, _) = bulk::import::import_object(pool, &s3, &object, options)
        .await
        .expect("import");
    assert_eq!(
        (result.status, result.attempts),
        (ImportStatus::Imported, 4)
    );
    assert_eq!(
        ledger("imports/a-poison.csv").await,
        ("imported".into(), 4, false)
    );
    assert_eq!(app.count("select count(*) from customers", &[]).await, 11);
}

/// Third review, finding 11: each version of a key has a result object of its own, so that
/// a later upload's import cannot overwrite an earlier one's result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_version_of_a_key_keeps_its_own_result_object() {
    let app = TestApp::spawn().await;
    let s3 = s3_client();
    let bucket = bucket(&s3).await;
    let key = "imports/daily.csv";
    let function = importer(&app, &s3);
    let mut results = Vec::new();
    for file in [generated_csv(3, 0), b"full_name\nNo E-mail\n".to_vec()] {
        let (etag, size) = put(&s3, &bucket, key, file).await;
        let answers = function
            .handle(&created_event(&bucket, key, &etag, size), None)
            .await
            .expect("result");
        results.push(answers[0].result.clone());
    }
    assert_ne!(results[0], results[1]);
    let mut statuses = Vec::new();
    for result in &results {
        let location = bulk::s3::Location::parse(result).expect("s3 url");
        let result: ImportResult =
            serde_json::from_slice(&get(&s3, &bucket, &location.key).await).expect("result");
        statuses.push(result.status);
    }
    assert_eq!(statuses, [ImportStatus::Imported, ImportStatus::Rejected]);
}

/// Bank scale, operating notes: reading a multipart-uploaded file made the SDK log a WARN
/// ("part-level checksum which can't be validated") for every import. The import now checks
/// what can be checked (a whole-object checksum, by the SDK as the bytes are read), says
/// once in its result and log how the bytes were checked, and leaves the SDK quiet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_objects_checksum_is_checked_where_it_can_be_and_the_result_says_how() {
    use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
    let app = TestApp::spawn().await;
    let s3 = s3_client();
    let bucket = bucket(&s3).await;
    let function = importer(&app, &s3);

    // One part, with a CRC32 of the whole object.
    let key = "imports/single.csv";
    let put = s3
        .put_object()
        .bucket(&bucket)
        .key(key)
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .body(ByteStream::from(generated_csv(10, 0)))
        .send()
        .await
        .expect("put");
    let etag = put.e_tag().expect("etag").trim_matches('"').to_owned();
    function
        .handle(&created_event(&bucket, key, &etag, 0), None)
        .await
        .expect("import");
    let result = result_object(&s3, &bucket, key).await;
    assert_eq!(result.status, ImportStatus::Imported, "{result:?}");
    assert_eq!(result.integrity.as_deref(), Some("checked"));

    // Two parts (the first at S3's 5 MiB minimum), with per-part CRC32s.
    let key = "imports/multipart.csv";
    let file = generated_csv(40_000, 100);
    let (first, second) = file.split_at(5 << 20);
    let upload = s3
        .create_multipart_upload()
        .bucket(&bucket)
        .key(key)
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .send()
        .await
        .expect("start");
    let id = upload.upload_id().expect("upload id");
    let mut parts = Vec::new();
    for (number, body) in [(1, first), (2, second)] {
        let part = s3
            .upload_part()
            .bucket(&bucket)
            .key(key)
            .upload_id(id)
            .part_number(number)
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .body(ByteStream::from(body.to_vec()))
            .send()
            .await
            .expect("part");
        parts.push(
            CompletedPart::builder()
                .part_number(number)
                .e_tag(part.e_tag().expect("etag"))
                .set_checksum_crc32(part.checksum_crc32().map(str::to_owned))
                .build(),
        );
    }
    let done = s3
        .complete_multipart_upload()
        .bucket(&bucket)
        .key(key)
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .expect("complete");
    let etag = done.e_tag().expect("etag").trim_matches('"').to_owned();
    function
        .handle(&created_event(&bucket, key, &etag, file.len()), None)
        .await
        .expect("import");
    let result = result_object(&s3, &bucket, key).await;
    assert_eq!(result.status, ImportStatus::Imported, "{result:?}");
    assert_eq!(result.integrity.as_deref(), Some("per_part"));
    assert_eq!(result.summary.map(|s| s.inserted), Some(40_000));
}
