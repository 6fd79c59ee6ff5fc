//! Customer files imported in parts (`bulk::import::parts`): planned by the S3 event's
//! invocation, each part staged and the staged rows merged by queue messages the campaign
//! processor handles, through the moto S3 server. Checked against the same file imported in
//! one invocation; with bad rows in the last part and e-mails repeated across parts; with
//! steps delivered twice; and with `offerctl import-customers s3://…` killed (`kill -9`)
//! while it stages and while it merges, its memory read from `/proc`. The apps run no
//! background relay: each test hands the import outbox's messages to its processor itself.

use std::time::Duration;

use bulk::import::{ImportOptions, ImportResult, ImportRetry, ImportStatus};
use campaign_processor::{ImportSteps, Processor};
use customer_import::Importer;
use integration_tests::{DEMO_CUSTOMERS_CSV, PLATFORM_ROLE, TestApp, TestOptions, role_url_for};
use shared::db::customer_import::ImportLimits;
use shared::db::customer_import::parts::Driver;
use shared::queue::{InProcessReceiver, Queue};

use crate::bulk::{
    LAMBDA_MEMORY_TARGET_BYTES, bucket, created_event, endpoint, generated_csv, gzip,
    offerctl_binary, peak_rss_of, put, result_object, s3_client,
};

/// The import's options with `part_bytes`, parts driven by the queue.
pub(crate) fn options(part_bytes: u64) -> ImportOptions {
    ImportOptions {
        max_bytes: shared::config::ImportConfig::DEFAULT_MAX_BYTES,
        limits: ImportLimits::with_file_bytes(
            shared::config::ImportConfig::DEFAULT_MAX_DECOMPRESSED_BYTES,
        ),
        deadline: None,
        retry: ImportRetry::default(),
        part_bytes,
        driver: Driver::Queue,
    }
}

/// The demo file with a consent column (opted in, opted out, or empty by row).
fn demo_with_consents() -> Vec<u8> {
    let text = std::fs::read_to_string(DEMO_CUSTOMERS_CSV).expect("demo data");
    let mut lines = text.lines();
    let mut file = format!("{},consent_email\n", lines.next().expect("header"));
    for (i, line) in lines.enumerate() {
        let consent = ["opted_in", "opted_out", ""][i % 3];
        file.push_str(&format!("{line},{consent}\n"));
    }
    file.into_bytes()
}

/// The customers and consents, as text, in e-mail order.
async fn snapshot(app: &TestApp) -> Vec<String> {
    let db = app.db().await;
    let mut rows: Vec<String> = db
        .query(
            "select row(email, full_name, phone, dob, gender, kyc_status, segment, occupation,
                        annual_income, credit_score, state, city, pin_code, marital_status,
                        account_age_months, preferred_language, is_active, attributes)::text
             from customers order by email",
            &[],
        )
        .await
        .expect("customers")
        .iter()
        .map(|r| r.get(0))
        .collect();
    rows.extend(
        db.query(
            "select row(c.email, k.channel, k.status, k.source)::text
             from customer_consents k join customers c on c.id = k.customer_id
             order by c.email, k.channel",
            &[],
        )
        .await
        .expect("consents")
        .iter()
        .map(|r| r.get::<_, String>(0)),
    );
    rows
}

/// A processor that runs import steps, fed by an in-process queue.
fn processor(
    app: &TestApp,
    s3: &aws_sdk_s3::Client,
    part_bytes: u64,
) -> (Processor, InProcessReceiver) {
    let (queue, receiver) = Queue::in_process();
    (
        Processor {
            pool: app.state.platform.clone(),
            queue,
            range_size: 1_000,
            imports: Some(ImportSteps {
                s3: s3.clone(),
                options: options(part_bytes),
            }),
        },
        receiver,
    )
}

/// Relays the import outbox and handles every message until none is left; answers the
/// message bodies handled.
async fn drain(
    app: &TestApp,
    processor: &Processor,
    receiver: &mut InProcessReceiver,
) -> Vec<String> {
    let mut handled = Vec::new();
    loop {
        shared::relay::send_imports(&app.state.platform, &processor.queue)
            .await
            .expect("relay");
        let Ok(message) = receiver.messages.try_recv() else {
            return handled;
        };
        processor
            .handle_body(&message.body)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", message.body));
        handled.push(message.body);
    }
}

/// Imports `file` at `key` through the function's handler with `part_bytes`, then runs its
/// steps; answers the planned result and the final one.
async fn import_in_parts(
    app: &TestApp,
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    file: Vec<u8>,
    part_bytes: u64,
) -> (ImportResult, ImportResult) {
    let importer = Importer {
        pool: app.state.platform.clone(),
        s3: s3.clone(),
        options: options(part_bytes),
    };
    let (etag, size) = put(s3, bucket, key, file).await;
    let answers = importer
        .handle(&created_event(bucket, key, &etag, size), None)
        .await
        .expect("plan");
    assert_eq!(answers[0].status, ImportStatus::Importing, "{answers:?}");
    let planned = result_object(s3, bucket, key).await;
    let (processor, mut receiver) = processor(app, s3, part_bytes);
    drain(app, &processor, &mut receiver).await;
    (planned, result_object(s3, bucket, key).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_in_parts_applies_exactly_the_rows_one_invocation_gives() {
    let s3 = s3_client();
    let bucket = bucket(&s3).await;
    let file = demo_with_consents();
    let size = file.len() as u64;

    let whole = TestApp::spawn_with(TestOptions::without_relay()).await;
    let importer = Importer {
        pool: whole.state.platform.clone(),
        s3: s3.clone(),
        options: options(size + 1),
    };
    let (etag, stored) = put(&s3, &bucket, "imports/whole.csv", file.clone()).await;
    let answers = importer
        .handle(
            &created_event(&bucket, "imports/whole.csv", &etag, stored),
            None,
        )
        .await
        .expect("import");
    assert_eq!(answers[0].status, ImportStatus::Imported);
    let expected = snapshot(&whole).await;
    assert_eq!(
        whole.count("select count(*) from customers", &[]).await,
        10_127
    );

    // Plain: byte ranges of the object.
    let plain = TestApp::spawn_with(TestOptions::without_relay()).await;
    let (planned, result) = import_in_parts(
        &plain,
        &s3,
        &bucket,
        "imports/plain.csv",
        file.clone(),
        size / 5,
    )
    .await;
    let parts = planned.parts.expect("parts");
    assert!(parts >= 4, "{parts} parts");
    assert_eq!(result.status, ImportStatus::Imported, "{result:?}");
    assert_eq!(result.parts, Some(parts));
    let summary = result.summary.expect("summary");
    assert_eq!((summary.rows, summary.inserted), (10_127, 10_127));
    assert!(summary.consents_changed > 0);
    assert_eq!(snapshot(&plain).await, expected);
    assert_eq!(
        plain
            .count("select count(*) from customer_import_rows", &[])
            .await,
        0,
        "staged rows are gone"
    );

    // Gzip: decompressed once into plain part objects, deleted at the end.
    let compressed = TestApp::spawn_with(TestOptions::without_relay()).await;
    let (planned, result) = import_in_parts(
        &compressed,
        &s3,
        &bucket,
        "imports/compressed.csv.gz",
        gzip(&file),
        size / 5,
    )
    .await;
    assert!(planned.parts.expect("parts") >= 4, "{planned:?}");
    assert_eq!(result.status, ImportStatus::Imported, "{result:?}");
    assert_eq!(snapshot(&compressed).await, expected);
    let left = bulk::s3::list(&s3, &bucket, bulk::import::parts::PARTS_PREFIX)
        .await
        .expect("list");
    assert!(left.is_empty(), "part objects left: {left:?}");

    // The same event again changes nothing.
    let importer = Importer {
        pool: plain.state.platform.clone(),
        s3: s3.clone(),
        options: options(size / 5),
    };
    let location = bulk::s3::Location {
        bucket: bucket.clone(),
        key: "imports/plain.csv".into(),
    };
    let object = bulk::import::current_object(&s3, &location)
        .await
        .expect("head");
    let again = importer
        .handle(
            &created_event(&bucket, "imports/plain.csv", &object.etag, stored),
            None,
        )
        .await
        .expect("again");
    assert!(again[0].duplicate);
    assert_eq!(again[0].status, ImportStatus::Imported);
    assert_eq!(snapshot(&plain).await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_row_in_the_last_part_or_an_email_repeated_across_parts_applies_nothing() {
    let app = TestApp::spawn_with(TestOptions::without_relay()).await;
    let s3 = s3_client();
    let bucket = bucket(&s3).await;
    let text = String::from_utf8(demo_with_consents()).expect("utf-8");
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let last = lines.len(); // the file line of the last row (the header is line 1)
    let header: Vec<&str> = lines[0].split(',').collect();
    let score = header
        .iter()
        .position(|h| *h == "credit_score")
        .expect("column");
    let email = header.iter().position(|h| *h == "email").expect("column");
    // The demo rows quote their attributes (commas inside), after the plain columns. The
    // last part has two bad rows, the first part none.
    for line in [last - 1, last - 2] {
        let mut cells: Vec<String> = lines[line]
            .splitn(score + 2, ',')
            .map(str::to_owned)
            .collect();
        cells[score] = "very good".into();
        lines[line] = cells.join(",");
    }
    let bad_last = (lines.join("\n") + "\n").into_bytes();
    let size = bad_last.len() as u64;
    let (_, result) = import_in_parts(
        &app,
        &s3,
        &bucket,
        "imports/bad-last.csv",
        bad_last,
        size / 5,
    )
    .await;
    assert_eq!(result.status, ImportStatus::Rejected, "{result:?}");
    assert_eq!(result.problems_total, 2, "{result:?}");
    let lines_named: Vec<u64> = result.problems.iter().map(|p| p.line).collect();
    assert_eq!(lines_named, [last as u64 - 1, last as u64]);
    assert_eq!(result.problems[1].column.as_deref(), Some("credit_score"));
    assert_eq!(app.count("select count(*) from customers", &[]).await, 0);
    assert_eq!(
        app.count("select count(*) from customer_import_rows", &[])
            .await,
        0
    );

    // Line 10,001 repeats line 2's e-mail: found across parts.
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let first_email = lines[1].split(',').nth(email).expect("email").to_owned();
    let mut cells: Vec<String> = lines[10_000]
        .splitn(email + 2, ',')
        .map(str::to_owned)
        .collect();
    cells[email] = first_email.clone();
    lines[10_000] = cells.join(",");
    let repeated = (lines.join("\n") + "\n").into_bytes();
    let size = repeated.len() as u64;
    let (_, result) = import_in_parts(
        &app,
        &s3,
        &bucket,
        "imports/repeated.csv",
        repeated,
        size / 5,
    )
    .await;
    assert_eq!(result.status, ImportStatus::Rejected, "{result:?}");
    assert_eq!(result.problems_total, 1, "{result:?}");
    assert_eq!(result.problems[0].line, 10_001);
    assert!(
        result.problems[0].reason.contains("also on line 2"),
        "{result:?}"
    );
    assert_eq!(app.count("select count(*) from customers", &[]).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_delivered_twice_or_at_once_apply_every_row_once() {
    let app = TestApp::spawn_with(TestOptions::without_relay()).await;
    let s3 = s3_client();
    let bucket = bucket(&s3).await;
    let file = generated_csv(120_000, 0);
    let part_bytes = file.len() as u64 / 6;
    let importer = Importer {
        pool: app.state.platform.clone(),
        s3: s3.clone(),
        options: options(part_bytes),
    };
    let key = "imports/twice.csv";
    let (etag, size) = put(&s3, &bucket, key, file).await;
    importer
        .handle(&created_event(&bucket, key, &etag, size), None)
        .await
        .expect("plan");
    let (processor, mut receiver) = processor(&app, &s3, part_bytes);
    shared::relay::send_imports(&app.state.platform, &processor.queue)
        .await
        .expect("relay");
    // Every part message twice, the copies at once.
    let mut parts = Vec::new();
    while let Ok(message) = receiver.messages.try_recv() {
        parts.push(message.body);
    }
    assert!(parts.len() >= 5, "{} parts", parts.len());
    for body in &parts {
        let (first, second) =
            tokio::join!(processor.handle_body(body), processor.handle_body(body));
        first.expect("stage");
        second.expect("stage again");
    }
    // The merge's message, twice at once, then once more.
    shared::relay::send_imports(&app.state.platform, &processor.queue)
        .await
        .expect("relay");
    let merge = receiver
        .messages
        .try_recv()
        .expect("the merge's message")
        .body;
    assert!(merge.contains("\"part\":null"), "{merge}");
    assert!(receiver.messages.try_recv().is_err(), "one merge message");
    let (first, second) =
        tokio::join!(processor.handle_body(&merge), processor.handle_body(&merge));
    first.expect("merge");
    second.expect("merge again");
    // A merge killed after its commit, before its result object: the object still says
    // `importing` until the redelivered message writes it from the ledger.
    let location = bulk::s3::Location {
        bucket: bucket.clone(),
        key: key.into(),
    };
    let object = bulk::import::current_object(&s3, &location)
        .await
        .expect("head");
    let results = bulk::import::result_location(&object);
    let finished = result_object(&s3, &bucket, key).await;
    let stale = ImportResult {
        status: ImportStatus::Importing,
        summary: None,
        ..finished
    };
    put(
        &s3,
        &bucket,
        &results.key,
        serde_json::to_vec(&stale).expect("json"),
    )
    .await;
    processor
        .handle_body(&merge)
        .await
        .expect("merge once more");
    let result = result_object(&s3, &bucket, key).await;
    assert_eq!(result.status, ImportStatus::Imported, "{result:?}");
    let summary = result.summary.expect("summary");
    assert_eq!(
        (summary.rows, summary.inserted, summary.updated),
        (120_000, 120_000, 0)
    );
    assert_eq!(
        app.count("select count(*) from customers", &[]).await,
        120_000
    );
}

/// `offerctl import-customers s3://…` in a child process with `part_bytes`, killed with
/// SIGKILL once `kill_when` (a query answering one boolean) is true, or run to its end when
/// none; answers whether it was killed, and its peak resident memory.
fn run_offerctl(
    app: &TestApp,
    bucket: &str,
    key: &str,
    part_bytes: u64,
    kill_when: Option<&str>,
) -> (bool, u64) {
    let mut child = std::process::Command::new(offerctl_binary())
        .args(["import-customers", &format!("s3://{bucket}/{key}")])
        .env("DATABASE_URL", role_url_for(PLATFORM_ROLE, &app.database))
        .env("AWS_ENDPOINT_URL", endpoint())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("CUSTOMER_IMPORT_PART_BYTES", part_bytes.to_string())
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("run offerctl");
    let pid = child.id();
    let runtime = tokio::runtime::Handle::current();
    let mut peak = 0;
    loop {
        if let Some(now) = peak_rss_of(pid) {
            peak = peak.max(now);
        }
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(
                status.success() || kill_when.is_some(),
                "offerctl failed: {status}"
            );
            return (false, peak);
        }
        if let Some(sql) = kill_when {
            let due = runtime.block_on(async {
                app.db()
                    .await
                    .query_one(sql, &[])
                    .await
                    .map(|r| r.get::<_, Option<bool>>(0).unwrap_or(false))
                    .unwrap_or(false)
            });
            if due {
                child.kill().expect("kill -9");
                child.wait().expect("reap");
                return (true, peak);
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_while_staging_and_while_merging_the_import_ends_with_every_row_applied_once() {
    let app = TestApp::spawn_with(TestOptions::without_relay()).await;
    let s3 = s3_client();
    let bucket = bucket(&s3).await;
    let rows = 300_000;
    let file = generated_csv(rows, 0);
    let part_bytes = 2 << 20;
    let size = file.len() as u64;
    assert!(
        size > 20 * part_bytes,
        "{size} bytes is not many parts of {part_bytes}"
    );
    let key = "imports/killed.csv";
    put(&s3, &bucket, key, file).await;

    let staging = "select parts_staged >= 2 and parts_staged < parts from customer_import_jobs";
    let (killed, staging_peak) =
        tokio::task::block_in_place(|| run_offerctl(&app, &bucket, key, part_bytes, Some(staging)));
    assert!(killed, "the import ended before two parts were staged");
    let merging = "select state = 'merging' and merged_through > 0 from customer_import_jobs";
    let (killed, merging_peak) =
        tokio::task::block_in_place(|| run_offerctl(&app, &bucket, key, part_bytes, Some(merging)));
    assert!(killed, "the import ended before its merge was under way");
    let applied = app.count("select count(*) from customers", &[]).await;
    assert!(
        applied > 0 && applied < rows as i64,
        "{applied} rows applied at the kill"
    );

    let (_, last_peak) =
        tokio::task::block_in_place(|| run_offerctl(&app, &bucket, key, part_bytes, None));
    let result = result_object(&s3, &bucket, key).await;
    assert_eq!(result.status, ImportStatus::Imported, "{result:?}");
    let summary = result.summary.expect("summary");
    assert_eq!(summary.rows, rows as u64);
    assert_eq!(
        summary.inserted + summary.updated + summary.unchanged,
        rows as u64
    );
    assert_eq!(summary.inserted, rows as u64, "{summary:?}");
    assert_eq!(
        app.count("select count(*) from customers", &[]).await,
        rows as i64
    );
    assert_eq!(
        app.count(
            "select count(*) from customers where email like 'generated.%@bulk.example.com'",
            &[]
        )
        .await,
        rows as i64
    );
    assert_eq!(
        app.count("select count(*) from customer_import_rows", &[])
            .await,
        0
    );
    let peak = staging_peak.max(merging_peak).max(last_peak);
    eprintln!(
        "{size} bytes in {} parts of {part_bytes}: peak RSS staging {staging_peak}, \
         merging {merging_peak}, to the end {last_peak} bytes",
        result.parts.unwrap_or(0)
    );
    assert!(peak < LAMBDA_MEMORY_TARGET_BYTES, "peak RSS {peak} bytes");
}
