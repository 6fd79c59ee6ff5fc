//! `offerctl`: the operator CLI of the Offer Management Platform.
//!
//! - `serve [--listen ADDR]`: the local gateway (every function's routes on one port).
//! - `migrate`: applies the SQL migrations.
//! - `create-super-admin --username NAME`: creates a super admin; the password comes from
//!   `SUPER_ADMIN_PASSWORD`, else a prompt. `--reset-password` sets the password (and
//!   super admin flag) of an existing account instead of failing.
//!
//! - `import-customers FILE|s3://BUCKET/KEY`: imports a customer CSV, plain or
//!   gzip-compressed (all rows or none; see `POST /customers/import`). From S3 it runs the
//!   `customer-import` function's code (ledger, result object `results/<key>.<version>.json`) and
//!   prints the result as JSON.
//!
//! - `import-conversions s3://BUCKET/conversions/<tenant>/KEY`: imports a tenant's conversion
//!   file (docs/results.md) the same way, and prints the result as JSON.
//!
//! - `archive run [--bucket B]`: one housekeeping run (the `housekeeping` function's):
//!   archives the deliveries of completed campaigns past their tenant's retention to S3 and
//!   prunes the contact ledger. `archive restore CAMPAIGN`: brings a campaign's archived
//!   deliveries back.
//!
//! - `webhook-key create --name NAME --tenant TENANT [--signed]`, `webhook-key list`,
//!   `webhook-key assign ID --tenant TENANT` (binds a key made before keys were
//!   tenant-scoped), `webhook-key revoke ID`: API keys of the delivery webhook (the key and
//!   signing secret are printed once).
//!
//! - `demo [--url URL] [--username NAME]`: walks the whole story against a running server
//!   (see `offerctl::demo`) and prints its report.
//!
//! - `openapi [--output FILE] [--endpoint-table PAGE]`: prints (or writes) the OpenAPI 3.1
//!   document, as committed in `openapi.json` and served at `/openapi.json` (with Swagger UI
//!   at `/docs`); with `--endpoint-table docs/api.md`, rewrites that page's endpoint table
//!   from it.
//!
//! `serve` runs the campaign processor too: on an in-process queue by default, or polling
//! the SQS queue named by `CAMPAIGN_QUEUE_URL`; and the outbox relay with the re-drive of
//! stale jobs every `CAMPAIGN_RELAY_INTERVAL_SECONDS` (default 10), as the `outbox-relay`
//! function's schedule does on AWS.
//!
//! Exit status 0 on success; otherwise non-zero with a one-line reason on stderr.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

mod commands;

use commands::{
    archive, calendar, create_super_admin, demo, import_conversions, import_customers, migrate,
    serve, webhook_key,
};

#[derive(Parser)]
#[command(
    name = "offerctl",
    version,
    about = "Operate the Offer Management Platform"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve every function's routes on one port, as API Gateway would.
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:3000")]
        listen: SocketAddr,
    },
    /// Apply pending database migrations.
    Migrate,
    /// Create a super admin (password from SUPER_ADMIN_PASSWORD, else prompted).
    CreateSuperAdmin {
        /// The account's username.
        #[arg(long)]
        username: String,
        /// Display name.
        #[arg(long)]
        full_name: Option<String>,
        /// If the account exists, set its password and make it a super admin.
        #[arg(long)]
        reset_password: bool,
    },
    /// Manage the delivery webhook's API keys.
    #[command(subcommand)]
    WebhookKey(WebhookKeyCommand),
    /// Import customers from a CSV file, plain or gzip-compressed (header row of customers
    /// columns; upsert by email): a local path or s3://bucket/key.
    ImportCustomers {
        /// The CSV file: a path, or s3://bucket/key (AWS settings from the environment;
        /// AWS_ENDPOINT_URL for an S3-compatible server).
        file: String,
        /// For s3://…: try once more an import whose attempts all failed (after mending
        /// the cause); its result says `failed` with the reason.
        #[arg(long)]
        retry: bool,
    },
    /// Import a tenant's conversion file from S3 (s3://bucket/conversions/<tenant>/key; CSV
    /// or gzip-compressed CSV, all rows or none, once per object version), as the
    /// `customer-import` function does on its S3 event.
    ImportConversions {
        /// s3://bucket/conversions/<tenant>/key (AWS settings from the environment;
        /// AWS_ENDPOINT_URL for an S3-compatible server).
        file: String,
        /// Try once more an import whose attempts all failed.
        #[arg(long)]
        retry: bool,
    },
    /// Archive completed campaigns' deliveries to S3, or restore them.
    #[command(subcommand)]
    Archive(ArchiveCommand),
    /// Walk the whole story against a running server: tenant credit_card and its users, an
    /// offer under maker-checker, a campaign for verified gold and platinum card holders,
    /// delivery reports through the webhook, then a report with the offer's audit trail.
    Demo {
        /// The server's base URL.
        #[arg(long, default_value = "http://127.0.0.1:3000")]
        url: String,
        /// A super admin's username.
        #[arg(long, default_value = "admin")]
        username: String,
        /// File holding that super admin's password, used when SUPER_ADMIN_PASSWORD is not
        /// set (run-local.sh writes it).
        #[arg(long, default_value = ".local/super_admin_password")]
        password_file: std::path::PathBuf,
    },
    /// Show the campaign scheduler's next actions, earliest first: starts of scheduled
    /// campaigns and ends of running ones, due now or coming (the relay takes those due).
    Calendar {
        /// How many to show.
        #[arg(long, default_value_t = 20)]
        limit: i64,
        /// First take the actions due now, as the relay's scheduled run does, and print what
        /// was done.
        #[arg(long)]
        run: bool,
    },
    /// Print the OpenAPI 3.1 document (or write it to a file, e.g. the committed
    /// openapi.json).
    Openapi {
        /// Write here instead of standard output.
        #[arg(long)]
        output: Option<std::path::PathBuf>,
        /// Also rewrite the endpoint table of this page (docs/api.md) from the document.
        #[arg(long)]
        endpoint_table: Option<std::path::PathBuf>,
    },
}

#[derive(Subcommand)]
enum ArchiveCommand {
    /// One housekeeping run: archive every due campaign (completed, past its tenant's
    /// retention_days) to the bucket, then prune the contact ledger.
    Run {
        /// The data bucket (default: DATA_BUCKET).
        #[arg(long, env = "DATA_BUCKET")]
        bucket: String,
        /// Campaigns archived at most.
        #[arg(long, default_value_t = shared::config::ArchiveConfig::DEFAULT_MAX_CAMPAIGNS)]
        max_campaigns: i64,
    },
    /// Bring a campaign's archived deliveries back from S3 (verified against the archive's
    /// row count and SHA-256 first; all rows or none).
    Restore {
        /// The campaign's id.
        campaign: i32,
    },
    /// Let housekeeping archive a restored campaign again (a restore holds it from the next
    /// runs).
    Release {
        /// The campaign's id.
        campaign: i32,
    },
}

#[derive(Subcommand)]
enum WebhookKeyCommand {
    /// Create a key; prints it (and the signing secret) once.
    Create {
        /// What the key is for, e.g. the provider's name.
        #[arg(long)]
        name: String,
        /// The tenant whose campaigns the key reports on.
        #[arg(long, value_parser = parse_tenant)]
        tenant: shared::domain::TenantName,
        /// Also require Standard Webhooks signatures (prints a whsec_ secret).
        #[arg(long)]
        signed: bool,
    },
    /// List keys (never their secrets).
    List,
    /// Bind a key made before keys were tenant-scoped (listed with tenant `-`) to its tenant.
    Assign {
        /// The key's id (a UUID).
        id: uuid::Uuid,
        /// The tenant whose campaigns the key reports on.
        #[arg(long, value_parser = parse_tenant)]
        tenant: shared::domain::TenantName,
    },
    /// Revoke a key by id.
    Revoke {
        /// The key's id (a UUID).
        id: uuid::Uuid,
    },
}

/// mimalloc instead of glibc's allocator: `serve` answers many requests at once on a
/// multi-threaded runtime, where glibc's arena locks showed in profiles of the offers list
/// (about a sixth of the server's CPU in malloc and free). The Lambda functions serve one
/// request at a time per instance and keep the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // The one-shot commands print their own results; only warnings are logged there.
    let default_filter = match cli.command {
        Command::Serve { .. } => "info",
        _ => "warn",
    };
    shared::telemetry::init_with_default(default_filter);
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            match offerctl::missing_schema(&err) {
                Some(hint) => eprintln!("offerctl: {hint}"),
                None => eprintln!("offerctl: {err:#}"),
            }
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { listen } => serve(listen).await,
        Command::Migrate => migrate().await,
        Command::CreateSuperAdmin {
            username,
            full_name,
            reset_password,
        } => create_super_admin(&username, full_name.as_deref(), reset_password).await,
        Command::ImportCustomers { file, retry } => import_customers(&file, retry).await,
        Command::ImportConversions { file, retry } => import_conversions(&file, retry).await,
        Command::Archive(command) => archive(command).await,
        Command::WebhookKey(command) => webhook_key(command).await,
        Command::Demo {
            url,
            username,
            password_file,
        } => demo(url, username, &password_file).await,
        Command::Calendar { limit, run } => calendar(limit, run).await,
        Command::Openapi {
            output,
            endpoint_table,
        } => {
            if let Some(page) = endpoint_table {
                let text = std::fs::read_to_string(&page)
                    .with_context(|| format!("cannot read {}", page.display()))?;
                let rewritten = offerctl::with_endpoint_table(&text).with_context(|| {
                    format!(
                        "{} has no lines {:?} and {:?}",
                        page.display(),
                        offerctl::ENDPOINTS_BEGIN,
                        offerctl::ENDPOINTS_END
                    )
                })?;
                std::fs::write(&page, rewritten)
                    .with_context(|| format!("cannot write {}", page.display()))?;
            }
            let json = offerctl::openapi_json()?;
            match output {
                Some(path) => std::fs::write(&path, json)
                    .with_context(|| format!("cannot write {}", path.display()))?,
                None => print!("{json}"),
            }
            Ok(())
        }
    }
}

/// `--tenant` values: tenant names as the API accepts them.
fn parse_tenant(name: &str) -> Result<shared::domain::TenantName, String> {
    shared::domain::TenantName::parse(name).map_err(|e| e.to_string())
}
