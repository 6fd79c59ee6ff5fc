//! Third review, finding 3: an import's limits hold on the decompressed file, whatever its
//! shape. Each bomb (a gzip file of a few hundred kilobytes expanding to hundreds of MiB:
//! one huge header line, a header of too many columns, one huge cell, one huge row, millions
//! of rows) is refused naming the limit it passed, nothing is written, and the peak resident
//! memory of each process that read it stays under the import function's 256 MiB: the API
//! (`offerctl serve`), the CLI on a local file, and the S3 import the function runs
//! (`offerctl import-customers s3://…`, the same `bulk::import` code; the Lambda invoke
//! test sends a bomb through the function's own binary too).

use std::io::Write;
use std::time::Duration;

use flate2::Compression;
use flate2::write::GzEncoder;
use integration_tests::{API_ROLE, JWT_SECRET, PLATFORM_ROLE, TestApp, role_url_for};
use serde_json::Value;

use crate::bulk::{
    LAMBDA_MEMORY_TARGET_BYTES, bucket, offerctl_binary, offerctl_in_child, peak_rss_of, put,
    s3_client, s3_import_in_child,
};
use bulk::import::ImportStatus;

/// One gzip member of `data`.
fn member(data: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    encoder.write_all(data).expect("compress");
    encoder.finish().expect("compress")
}

/// A gzip file of `prefix`, then `mib` MiB of `filler` repeated, then `suffix`: concatenated
/// members (which every gzip reader, and ours, reads in turn), the filler's MiB compressed
/// once, so that hundreds of MiB cost the test a few hundred kilobytes.
fn gzip_bomb(prefix: &str, filler: &str, mib: usize, suffix: &str) -> Vec<u8> {
    let chunk: Vec<u8> = filler.bytes().cycle().take(1 << 20).collect();
    let chunk = member(&chunk);
    let mut file = member(prefix.as_bytes());
    for _ in 0..mib {
        file.extend_from_slice(&chunk);
    }
    file.extend_from_slice(&member(suffix.as_bytes()));
    file
}

/// The bombs: name, file, and the limit each must be refused by.
fn bombs() -> Vec<(&'static str, Vec<u8>)> {
    let wide: Vec<String> = (0..300).map(|i| format!("c{i}")).collect();
    vec![
        // The review's 306 KB file holding a 300 MiB header line.
        (
            "header_bytes",
            gzip_bomb("full_name,email,", "h", 300, "\n"),
        ),
        (
            "header_columns",
            member(format!("full_name,email,{}\nA,a@x.example\n", wide.join(",")).as_bytes()),
        ),
        // The review's 408 KB file with one 400 MiB cell.
        (
            "field_bytes",
            gzip_bomb("full_name,email\nA,", "x", 400, "\n"),
        ),
        (
            "record_bytes",
            gzip_bomb("full_name,email\nA,a@x.example,", "x,", 300, "\n"),
        ),
        // The review's file of 6 million rows (about 190 MiB).
        (
            "file_bytes",
            gzip_bomb(
                "full_name,email\n",
                "Bomb Customer,bomb@x.example\n",
                190,
                "",
            ),
        ),
    ]
}

/// The decompressed limit the CLI and the S3 import run under here (the API's own).
const FILE_BYTES: &str = "67108864";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bomb_is_refused_naming_its_limit_within_the_memory_bound_in_each_process() {
    let app = TestApp::spawn().await;
    let s3 = s3_client();
    let bucket = bucket(&s3).await;
    let dir = std::env::temp_dir().join(format!("oms-bombs-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let env = [("CUSTOMER_IMPORT_MAX_DECOMPRESSED_BYTES", FILE_BYTES)];
    let server = Server::start(&app);
    let token = app.super_admin_token().await;
    let http = reqwest::Client::new();
    for (limit, file) in bombs() {
        assert!(file.len() < 6 << 20, "{limit}: {} bytes", file.len());

        // The API.
        let response = http
            .post(format!("{}/customers/import", server.url))
            .bearer_auth(&token)
            .header("content-type", "text/csv")
            .body(file.clone())
            .send()
            .await
            .expect("POST /customers/import");
        assert_eq!(response.status().as_u16(), 413, "{limit}");
        let problem: Value = response.json().await.expect("problem");
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains(&format!("(limit {limit})")),
            "{limit}: {problem}"
        );

        // The CLI on a local file.
        let path = dir.join(format!("{limit}.csv.gz"));
        std::fs::write(&path, &file).expect("write bomb");
        let (success, _, errors, peak) = tokio::task::block_in_place(|| {
            offerctl_in_child(
                &app,
                &["import-customers", path.to_str().expect("path")],
                &env,
            )
        });
        assert!(!success, "{limit}: the CLI imported a bomb");
        assert!(
            errors.contains(&format!("(limit {limit})")),
            "{limit}: {errors}"
        );
        assert!(
            peak < LAMBDA_MEMORY_TARGET_BYTES,
            "{limit}: CLI peak RSS {peak} bytes"
        );
        eprintln!("{limit}: {} bytes; CLI peak RSS {peak} bytes", file.len());

        // The S3 import, as the function runs it.
        let key = format!("imports/{limit}.csv.gz");
        put(&s3, &bucket, &key, file).await;
        let (success, result, peak) =
            tokio::task::block_in_place(|| s3_import_in_child(&app, &bucket, &key, &env));
        assert!(!success, "{limit}: the S3 import imported a bomb");
        assert_eq!(result.status, ImportStatus::TooLarge, "{limit}: {result:?}");
        assert_eq!(result.limit.as_deref(), Some(limit), "{result:?}");
        assert!(
            peak < LAMBDA_MEMORY_TARGET_BYTES,
            "{limit}: S3 peak RSS {peak} bytes"
        );
        eprintln!("{limit}: S3 import peak RSS {peak} bytes");
    }
    let api_peak = peak_rss_of(server.pid()).expect("the server's VmHWM");
    eprintln!("API (offerctl serve) peak RSS after every bomb: {api_peak} bytes");
    assert!(
        api_peak < LAMBDA_MEMORY_TARGET_BYTES,
        "API peak RSS {api_peak} bytes"
    );
    assert_eq!(app.count("select count(*) from customers", &[]).await, 0);
    std::fs::remove_dir_all(&dir).ok();
}

/// `offerctl serve` on a free port of loopback, on the app's database and JWT key; stopped
/// when dropped.
struct Server {
    child: std::process::Child,
    url: String,
}

impl Server {
    fn start(app: &TestApp) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = std::process::Command::new(offerctl_binary())
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env("DATABASE_URL", role_url_for(API_ROLE, &app.database))
            .env(
                "DATABASE_PLATFORM_URL",
                role_url_for(PLATFORM_ROLE, &app.database),
            )
            .env("JWT_SECRET", JWT_SECRET)
            .env("RUST_LOG", "warn")
            .env_remove("DATA_BUCKET")
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("offerctl serve");
        let server = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        for _ in 0..300 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return server;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Dropping the server stops the process.
        panic!("offerctl serve did not listen on {port}");
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
