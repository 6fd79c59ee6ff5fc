//! The operator's commands: migrations, super admins, webhook keys, the calendar and the demo.

use anyhow::{Context, bail};
use secrecy::{ExposeSecret, SecretString};
use shared::auth::password::{PasswordHasher, check_policy};
use shared::config::DatabaseConfig;
use shared::db::{self, users};
use shared::domain::Username;

use crate::WebhookKeyCommand;

pub(crate) async fn demo(
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
pub(crate) async fn calendar(limit: i64, run: bool) -> anyhow::Result<()> {
    if run {
        let config = DatabaseConfig::from_env()?;
        let pool = db::pool(&config, db::Scope::Platform)?;
        let started = std::time::Instant::now();
        let batch = shared::config::ReleaseBatch::from_lookup(shared::config::env)?;
        let report = shared::scheduler::run(&pool, batch).await?;
        println!(
            "scheduler run: {} started, {} starts failed, {} completed, {} withdrawn (offer \
             retired), {} deliveries expired ({:.3} s)",
            report.started,
            report.starts_failed,
            report.completed,
            report.withdrawn,
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
pub(crate) async fn connect() -> anyhow::Result<deadpool_postgres::Object> {
    let config = DatabaseConfig::from_env()?;
    let pool = db::pool(&config, db::Scope::Platform)?;
    pool.get()
        .await
        .context("cannot connect to the database at DATABASE_URL")
}

/// Migrates as the tables' owner: `DATABASE_OWNER_URL` when set (the API's `DATABASE_URL`
/// names a role that owns nothing and cannot create tables), else `DATABASE_URL`.
pub(crate) async fn migrate() -> anyhow::Result<()> {
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

pub(crate) async fn create_super_admin(
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

pub(crate) async fn webhook_key(command: WebhookKeyCommand) -> anyhow::Result<()> {
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
