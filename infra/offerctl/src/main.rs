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
//!   `customer-import` function's code (ledger, result object `results/<key>.json`) and
//!   prints the result as JSON.
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

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use secrecy::{ExposeSecret, SecretString};
use shared::AppState;
use shared::auth::password::{PasswordHasher, check_policy};
use shared::config::{
    Config, DatabaseConfig, ProcessorConfig, QueueConfig, RelayConfig, S3Config, env,
};
use shared::db::{self, users};
use shared::domain::Username;

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
        Command::ImportCustomers { file } => import_customers(&file).await,
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

async fn demo(
    base_url: String,
    username: String,
    password_file: &std::path::Path,
) -> anyhow::Result<()> {
    let operator = shared::config::OperatorConfig::from_lookup(shared::config::env);
    let password = match operator.super_admin_password {
        Some(p) => p.expose_secret().to_owned(),
        None => std::fs::read_to_string(password_file)
            .map(|p| p.trim().to_owned())
            .with_context(|| {
                format!(
                    "SUPER_ADMIN_PASSWORD is not set and {} cannot be read",
                    password_file.display()
                )
            })?,
    };
    println!("Offer Management Platform demo against {base_url}");
    let started = std::time::Instant::now();
    let report = offerctl::demo::run(&offerctl::demo::Options {
        base_url: base_url.clone(),
        username,
        password: SecretString::from(password),
    })
    .await?;
    print!("{report}");
    println!(
        "\nDone in {:.1} s. API docs: {base_url}{}/",
        started.elapsed().as_secs_f64(),
        offerctl::DOCS_PATH
    );
    Ok(())
}

/// Prints the scheduler's next `limit` actions ([`db::campaigns::calendar::actions`]); with
/// `run`, first takes those due ([`shared::scheduler::run`]).
async fn calendar(limit: i64, run: bool) -> anyhow::Result<()> {
    if run {
        let config = DatabaseConfig::from_env()?;
        let pool = db::pool(&config, db::Scope::Platform)?;
        let started = std::time::Instant::now();
        let report = shared::scheduler::run(&pool).await?;
        println!(
            "scheduler run: {} started, {} starts failed, {} completed, {} deliveries expired \
             ({:.3} s)",
            report.started,
            report.starts_failed,
            report.completed,
            report.expired,
            started.elapsed().as_secs_f64()
        );
    }
    let client = connect().await?;
    let now = db::campaigns::calendar::now(&client).await?;
    let actions = db::campaigns::calendar::actions(&client, false, limit.max(1)).await?;
    if actions.is_empty() {
        println!("no scheduled starts or running campaigns");
        return Ok(());
    }
    println!(
        "{:<26} {:<6} {:<8} {:<22} campaign",
        "at", "due", "when", "tenant"
    );
    for action in actions {
        let when = if action.at <= now { "now" } else { "coming" };
        let due = match action.due {
            db::campaigns::calendar::Due::Start => "start",
            db::campaigns::calendar::Due::End => "end",
        };
        println!(
            "{:<26} {due:<6} {when:<8} {:<22} {}",
            action.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            action.tenant_name.as_str(),
            action.campaign_id
        );
    }
    Ok(())
}

/// A connection in the platform scope (operator commands span tenants).
async fn connect() -> anyhow::Result<deadpool_postgres::Object> {
    let config = DatabaseConfig::from_env()?;
    let pool = db::pool(&config, db::Scope::Platform)?;
    pool.get()
        .await
        .context("cannot connect to the database at DATABASE_URL")
}

/// Migrates as the tables' owner: `DATABASE_OWNER_URL` when set (the API's `DATABASE_URL`
/// names a role that owns nothing and cannot create tables), else `DATABASE_URL`.
async fn migrate() -> anyhow::Result<()> {
    // The owner's connection (a member of offers_platform, migration V014, so data
    // migrations see every tenant's rows where the policies are forced on the owner).
    let config = DatabaseConfig::owner_from_lookup(shared::config::env)?;
    let pool = db::pool(&config, db::Scope::Platform)?;
    let mut client = pool.get().await.context(
        "cannot connect to the database as its owner (DATABASE_OWNER_URL or DATABASE_URL)",
    )?;
    let applied = db::migrate(&mut client).await?;
    if applied.is_empty() {
        println!("database is up to date");
    } else {
        for name in applied {
            println!("applied {name}");
        }
    }
    Ok(())
}

async fn create_super_admin(
    username: &str,
    full_name: Option<&str>,
    reset_password: bool,
) -> anyhow::Result<()> {
    let username = Username::parse(username)?;
    let operator = shared::config::OperatorConfig::from_lookup(shared::config::env);
    let password = match operator.super_admin_password {
        Some(p) => p,
        None => SecretString::from(
            rpassword::prompt_password(format!("Password for {username}: "))
                .context("SUPER_ADMIN_PASSWORD is not set and no password could be read")?,
        ),
    };
    if let Err(reason) = check_policy(password.expose_secret(), username.as_str()) {
        bail!("password {reason}");
    }
    let hash = PasswordHasher::new(1).hash(password).await?;
    let client = connect().await?;
    let new = users::NewUser {
        username: &username,
        password_hash: &hash,
        full_name,
        is_super_admin: true,
    };
    match users::create(&client, &new).await {
        Ok(_) => println!("created super admin {username}"),
        Err(shared::ApiError::Conflict(_)) if reset_password => {
            users::set_password(&client, &username, &hash, chrono::Utc::now()).await?;
            users::update(&client, &username, None, Some(true)).await?;
            println!("reset the password of super admin {username}");
        }
        Err(shared::ApiError::Conflict(_)) => {
            bail!("user {username} already exists (use --reset-password to set its password)")
        }
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

/// `--tenant` values: tenant names as the API accepts them.
fn parse_tenant(name: &str) -> Result<shared::domain::TenantName, String> {
    shared::domain::TenantName::parse(name).map_err(|e| e.to_string())
}

async fn webhook_key(command: WebhookKeyCommand) -> anyhow::Result<()> {
    let client = connect().await?;
    match command {
        WebhookKeyCommand::Create {
            name,
            tenant,
            signed,
        } => {
            let issued =
                admin_api::issue_webhook_key(&client, &tenant, &name, signed, None).await?;
            println!("id:             {}", issued.key.id);
            println!("key:            {}", issued.api_key);
            if let Some(secret) = &issued.signing_secret {
                println!("signing secret: {secret}");
            }
            println!("(shown once: send the key as X-API-Key; only its hash is stored)");
        }
        WebhookKeyCommand::List => {
            let keys = shared::db::webhook_keys::list_keys(&client, None).await?;
            for key in keys {
                println!(
                    "{}  {:<24} tenant={:<20} signed={:<5} created={} last_used={} revoked={}",
                    key.id,
                    key.name,
                    key.tenant_name.as_deref().unwrap_or("-"),
                    key.signed,
                    key.created_at.format("%Y-%m-%dT%H:%M:%SZ"),
                    key.last_used_at
                        .map_or("-".into(), |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
                    key.revoked_at
                        .map_or("-".into(), |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
                );
            }
        }
        WebhookKeyCommand::Assign { id, tenant } => {
            shared::db::webhook_keys::assign_tenant(&client, id, &tenant).await?;
            println!("webhook key {id} now reports on tenant {tenant}'s campaigns only");
        }
        WebhookKeyCommand::Revoke { id } => {
            let found = shared::db::webhook_keys::revoke_key(&client, id).await?;
            if !found {
                bail!("no webhook key {id}");
            }
            println!("revoked webhook key {id}");
        }
    }
    Ok(())
}

async fn import_customers(file: &str) -> anyhow::Result<()> {
    let config = DatabaseConfig::from_env()?;
    let pool = db::pool(&config, db::Scope::Platform)?;
    if file.starts_with("s3://") {
        let location = bulk::s3::Location::parse(file).map_err(anyhow::Error::msg)?;
        let s3 = bulk::s3::client_from_env().await;
        let object = bulk::import::current_object(&s3, &location).await?;
        let options = bulk::import::ImportOptions::from_env(None)?;
        let (result, _) = bulk::import::import_object(&pool, &s3, &object, options).await?;
        println!("{}", serde_json::to_string_pretty(&result)?);
        if result.status != bulk::import::ImportStatus::Imported {
            bail!("{}", result.detail);
        }
        return Ok(());
    }
    let source = std::fs::File::open(file).with_context(|| format!("cannot read {file}"))?;
    match shared::db::customer_import::import(&pool, source, None).await {
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

/// `serve` with `DATA_BUCKET` set: polls the bucket's `imports/` prefix every 5 s and
/// imports each new object, as the `customer-import` function does on S3 events in AWS
/// (results in `results/<key>.json`; the ledger skips objects already imported).
async fn watch_bucket(pool: deadpool_postgres::Pool, bucket: String) -> anyhow::Result<()> {
    let s3 = bulk::s3::client_from_env().await;
    let options = bulk::import::ImportOptions::from_env(None)?;
    tracing::info!(bucket = %bucket, prefix = bulk::import::IMPORTS_PREFIX,
        "watching the data bucket for customer files");
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

async fn archive(command: ArchiveCommand) -> anyhow::Result<()> {
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
        ArchiveCommand::Restore { campaign } => {
            let report = bulk::archive::restore(&pool, &s3, campaign).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
    }
    Ok(())
}

async fn serve(listen: SocketAddr) -> anyhow::Result<()> {
    let config = Config::from_env()?;
    let range_size = ProcessorConfig::from_lookup(env)?.range_size;
    let queue_url = QueueConfig::from_lookup(env).url;
    let relay = RelayConfig::from_lookup(env)?;
    let s3 = S3Config::from_lookup(env);
    let state = AppState::new(&config)?;
    let queue =
        offerctl::start_processor(state.platform.clone(), queue_url.clone(), range_size).await;
    let policy = relay.redrive;
    if queue_url.is_none() {
        // The in-process queue of a previous process died with it: its jobs go again now.
        let report = offerctl::redrive_after_restart(
            state.platform.clone(),
            queue.clone(),
            policy.max_attempts,
        )
        .await
        .context("re-driving the jobs of the previous process")?;
        if report.sweep.jobs_redriven + report.sweep.ranges_redriven > 0 {
            tracing::info!(
                jobs = report.sweep.jobs_redriven,
                ranges = report.sweep.ranges_redriven,
                "re-drove the unfinished jobs of the previous process"
            );
        }
    }
    let relay_interval = relay.interval;
    offerctl::start_relay(
        state.platform.clone(),
        queue.clone(),
        policy,
        relay_interval,
    );
    tracing::info!(
        relay.interval_s = relay_interval.as_secs(),
        relay.stale_after_s = policy.stale_after.as_secs(),
        relay.max_attempts = policy.max_attempts,
        "outbox relay started"
    );
    if let Some(bucket) = s3.data_bucket {
        watch_bucket(state.platform.clone(), bucket).await?;
    }
    let state = state.with_queue(queue);
    match &queue_url {
        Some(url) => tracing::info!(queue.url = %url, "campaign jobs go to SQS; polling it"),
        None => tracing::info!("campaign jobs go to the in-process queue"),
    }
    // Fail fast, naming the problem, rather than on the first request.
    drop(
        state
            .pool
            .get()
            .await
            .context("cannot connect to the database at DATABASE_URL")?,
    );
    drop(
        state
            .platform
            .get()
            .await
            .context("cannot connect to the database at DATABASE_PLATFORM_URL")?,
    );
    let app = shared::http::into_service(offerctl::app(state));
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    tracing::info!(%listen, "offerctl serving");
    println!("listening on http://{listen}");
    // The peer address reaches the handlers (the sign-in throttle counts per client).
    axum::serve(
        listener,
        axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<
            SocketAddr,
        >(app),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
