//! Customer files and archives: `import-customers`, `archive run|restore`, and the data
//! bucket's watcher of `offerctl serve`.

use anyhow::{Context, bail};
use shared::config::DatabaseConfig;
use shared::db;

use crate::ArchiveCommand;

pub(crate) async fn import_customers(file: &str, retry: bool) -> anyhow::Result<()> {
    if file.starts_with("s3://") {
        return import_s3(file, retry, "customers").await;
    }
    let config = DatabaseConfig::from_env()?;
    let pool = db::pool(&config, db::Scope::Platform)?;
    if retry {
        bail!("--retry applies to s3://… files (a local file keeps no ledger row)");
    }
    let source = std::fs::File::open(file).with_context(|| format!("cannot read {file}"))?;
    let config = shared::config::ImportConfig::from_lookup(shared::config::env)?;
    let limits =
        shared::db::customer_import::ImportLimits::with_file_bytes(config.max_decompressed_bytes);
    match shared::db::customer_import::import(&pool, source, limits, None).await {
        Ok(summary) => {
            println!(
                "imported {file}: {} rows, {} inserted, {} updated, {} unchanged",
                summary.rows, summary.inserted, summary.updated, summary.unchanged
            );
            Ok(())
        }
        Err(shared::db::customer_import::ImportError::Invalid { total, problems }) => {
            for problem in &problems {
                eprintln!("line {}: {}", problem.line, problem.reason);
            }
            bail!("{total} problem(s) in the file; nothing was imported")
        }
        Err(err) => Err(anyhow::Error::from(err)).context("import failed"),
    }
}

/// `import-conversions s3://bucket/conversions/<tenant>/KEY`: a tenant's conversion file,
/// through the `customer-import` function's code.
pub(crate) async fn import_conversions(file: &str, retry: bool) -> anyhow::Result<()> {
    if !file.starts_with("s3://") {
        bail!("{file}: conversion files are imported from S3 (s3://bucket/conversions/<tenant>/…)");
    }
    import_s3(file, retry, "conversions").await
}

/// An S3 object imported by the `customer-import` function's code (ledger, result object),
/// its result printed as JSON; `kind` is what the caller expects the key to hold.
async fn import_s3(file: &str, retry: bool, kind: &str) -> anyhow::Result<()> {
    let config = DatabaseConfig::from_env()?;
    let pool = db::pool(&config, db::Scope::Platform)?;
    let location = bulk::s3::Location::parse(file).map_err(anyhow::Error::msg)?;
    let found = shared::db::customer_import::FileKind::of_key(&location.key)
        .map_err(|reason| anyhow::anyhow!("{file}: {reason}"))?;
    if found.as_str() != kind {
        bail!("{file}: its key holds {}, not {kind}", found.as_str());
    }
    let s3 = bulk::s3::client_from_env().await;
    let object = bulk::import::current_object(&s3, &location).await?;
    if retry && !bulk::import::allow_retry(&pool, &object).await? {
        bail!("{file}: its current version has no failed import to retry");
    }
    // A file in parts runs every part and the merge here, as the functions would (and a
    // planned import whose messages were lost is finished by running this again).
    let options = bulk::import::ImportOptions {
        driver: shared::db::customer_import::parts::Driver::Inline,
        ..bulk::import::ImportOptions::from_env(None)?
    };
    let (result, _) = bulk::import::import_object(&pool, &s3, &object, options).await?;
    println!("{}", serde_json::to_string_pretty(&result)?);
    if result.status != bulk::import::ImportStatus::Imported {
        bail!("{}", result.detail);
    }
    Ok(())
}

/// `serve` with `DATA_BUCKET` set: polls the bucket's `imports/` and `conversions/` prefixes
/// every 5 s and
/// imports each new object, as the `customer-import` function does on S3 events in AWS
/// (results in `results/<key>.<version>.json`; the ledger skips objects already imported,
/// and a failed one until its next attempt is due).
pub(crate) async fn watch_bucket(
    pool: deadpool_postgres::Pool,
    bucket: String,
) -> anyhow::Result<()> {
    let s3 = bulk::s3::client_from_env().await;
    let options = bulk::import::ImportOptions::from_env(None)?;
    tracing::info!(bucket = %bucket, prefix = bulk::import::IMPORTS_PREFIX,
        "watching the data bucket for customer and conversion files");
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            ticks.tick().await;
            if let Err(err) = bulk::import::import_new(&pool, &s3, &bucket, options).await {
                tracing::warn!(error = %err, bucket = %bucket, "customer import from the bucket failed");
            }
        }
    });
    Ok(())
}

pub(crate) async fn archive(command: ArchiveCommand) -> anyhow::Result<()> {
    let config = DatabaseConfig::from_env()?;
    let pool = db::pool(&config, db::Scope::Platform)?;
    let s3 = bulk::s3::client_from_env().await;
    match command {
        ArchiveCommand::Run {
            bucket,
            max_campaigns,
        } => {
            let options = bulk::archive::HousekeepingOptions {
                bucket,
                report_grace_days: shared::config::ReportGrace::from_env()?.days,
                max_campaigns,
                delete_batch_rows: bulk::archive::DELETE_BATCH_ROWS,
            };
            let report = bulk::archive::run(&pool, &s3, &options).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        ArchiveCommand::Release { campaign } => {
            let held = bulk::archive::release_hold(&pool, campaign).await?;
            println!(
                "{}",
                if held {
                    "released: housekeeping archives it again once it is due"
                } else {
                    "it was not held"
                }
            );
        }
        ArchiveCommand::Restore { campaign } => {
            let report = bulk::archive::restore(&pool, &s3, campaign).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
    }
    Ok(())
}
