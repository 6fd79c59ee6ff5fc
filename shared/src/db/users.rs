//! The `users` aggregate: accounts, credentials, the login throttle, and the principal query.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{CachedStatements, Executor, GenericClient, TenantTx, violated_constraint};
use crate::auth::{Permission, Principal, TenantAccess};
use crate::domain::{RoleName, TenantName, Username};
use crate::error::ApiError;
use crate::pagination::Page;

/// A user as the API shows it (never the password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct User {
    /// Primary key.
    pub username: String,
    /// Display name.
    pub full_name: Option<String>,
    /// Whether the user is a super admin.
    pub is_super_admin: bool,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
    /// When the account was last changed.
    pub updated_at: DateTime<Utc>,
}

const USER_COLUMNS: &str = "username, full_name, is_super_admin, created_at, updated_at";

fn user(row: &tokio_postgres::Row) -> User {
    User {
        username: row.get("username"),
        full_name: row.get("full_name"),
        is_super_admin: row.get("is_super_admin"),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    }
}

/// What a login needs to know about an account.
#[derive(Debug, Clone)]
pub struct LoginRecord {
    /// argon2id PHC string.
    pub password_hash: String,
}

/// Reads the credentials of `username`.
///
/// # Errors
/// Database failures.
pub async fn login_record(
    client: &impl GenericClient,
    username: &Username,
) -> Result<Option<LoginRecord>, ApiError> {
    let row = client
        .query_opt_cached(
            "select password_hash from users where username = $1",
            &[&username.as_str()],
        )
        .await?;
    Ok(row.map(|row| LoginRecord {
        password_hash: row.get(0),
    }))
}

/// A principal with the instant before which its tokens are void.
#[derive(Debug, Clone)]
pub struct PrincipalRecord {
    /// The user with roles and permissions per tenant.
    pub principal: Principal,
    /// Tokens issued before this instant are rejected.
    pub tokens_valid_after: DateTime<Utc>,
    /// The account as `GET /users/me` shows it, read by the same statement.
    pub account: User,
}

/// Loads a user (its account too) with every role assignment and its permissions, in one
/// indexed query.
/// Permission names this build does not know are skipped (logged), never granted.
///
/// # Errors
/// Database failures.
pub async fn load_principal(
    client: &impl Executor,
    username: &Username,
) -> Result<Option<PrincipalRecord>, ApiError> {
    let rows = client
        .rows(
            "select u.full_name, u.is_super_admin, u.tokens_valid_after, u.created_at,
                    u.updated_at, utr.tenant_name, utr.role, tr.permissions
             from users u
             left join user_tenant_roles utr on utr.username = u.username
             left join tenant_roles tr
                    on tr.tenant_name = utr.tenant_name and tr.role = utr.role
             where u.username = $1
             order by utr.tenant_name, utr.role",
            &[&username.as_str()],
        )
        .await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    // By position (the select list above), as the hottest statement of all: a lookup by name
    // compares column names per value. Debug builds check the names.
    debug_assert!(
        super::columns_are(
            first,
            &[
                "full_name",
                "is_super_admin",
                "tokens_valid_after",
                "created_at",
                "updated_at",
                "tenant_name",
                "role",
                "permissions",
            ]
        ),
        "the principal statement's columns"
    );
    let mut tenants: BTreeMap<TenantName, TenantAccess> = BTreeMap::new();
    for row in &rows {
        let (Some(tenant), Some(role)) = (
            row.get::<_, Option<String>>(5),
            row.get::<_, Option<String>>(6),
        ) else {
            continue;
        };
        let (Ok(tenant), Ok(role)) = (TenantName::parse(tenant), RoleName::parse(role)) else {
            continue;
        };
        let access = tenants.entry(tenant).or_default();
        access.roles.push(role);
        let permissions: Vec<&str> = row.get::<_, Option<Vec<&str>>>(7).unwrap_or_default();
        for name in permissions {
            match name.parse::<Permission>() {
                Ok(p) => {
                    access.permissions.insert(p);
                }
                Err(err) => tracing::warn!(%err, "ignoring unknown permission in tenant_roles"),
            }
        }
    }
    Ok(Some(PrincipalRecord {
        principal: Principal {
            username: username.clone(),
            full_name: first.get(0),
            is_super_admin: first.get(1),
            tenants,
        },
        tokens_valid_after: first.get(2),
        account: User {
            username: username.as_str().to_owned(),
            full_name: first.get(0),
            is_super_admin: first.get(1),
            created_at: first.get(3),
            updated_at: first.get(4),
        },
    }))
}

/// A user to insert.
#[derive(Debug)]
pub struct NewUser<'a> {
    /// Primary key.
    pub username: &'a Username,
    /// argon2id PHC string.
    pub password_hash: &'a str,
    /// Display name.
    pub full_name: Option<&'a str>,
    /// Super admin flag.
    pub is_super_admin: bool,
}

/// Inserts a user.
///
/// # Errors
/// 409 if the username is taken; database failures.
pub async fn create(client: &impl GenericClient, new: &NewUser<'_>) -> Result<User, ApiError> {
    let row = client
        .query_one_cached(
            &format!(
                "insert into users (username, password_hash, full_name, is_super_admin)
                 values ($1, $2, $3, $4) returning {USER_COLUMNS}"
            ),
            &[
                &new.username.as_str(),
                &new.password_hash,
                &new.full_name,
                &new.is_super_admin,
            ],
        )
        .await
        .map_err(|err| match violated_constraint(&err) {
            Some("users_pkey") => {
                ApiError::Conflict(format!("user {} already exists", new.username))
            }
            _ => err.into(),
        })?;
    Ok(user(&row))
}

/// Reads one user.
///
/// # Errors
/// Database failures.
pub async fn get(
    client: &impl GenericClient,
    username: &Username,
) -> Result<Option<User>, ApiError> {
    let row = client
        .query_opt_cached(
            &format!("select {USER_COLUMNS} from users where username = $1"),
            &[&username.as_str()],
        )
        .await?;
    Ok(row.as_ref().map(user))
}

/// Lists users by username, optionally only (non-)super admins.
///
/// # Errors
/// Database failures.
pub async fn list(
    client: &impl GenericClient,
    is_super_admin: Option<bool>,
    page: Page,
) -> Result<Vec<User>, ApiError> {
    let rows = client
        .query_cached(
            &format!(
                "select {USER_COLUMNS} from users
                 where ($1::boolean is null or is_super_admin = $1)
                 order by username limit $2 offset $3"
            ),
            &[&is_super_admin, &page.limit, &page.offset],
        )
        .await?;
    Ok(rows.iter().map(user).collect())
}

/// Changes a user's display name and/or super admin flag; `None` leaves a field as it is.
///
/// # Errors
/// Database failures.
pub async fn update(
    client: &impl GenericClient,
    username: &Username,
    full_name: Option<Option<&str>>,
    is_super_admin: Option<bool>,
) -> Result<Option<User>, ApiError> {
    let row = client
        .query_opt_cached(
            &format!(
                "update users set
                    full_name = case when $2 then $3 else full_name end,
                    is_super_admin = coalesce($4, is_super_admin),
                    updated_at = now()
                 where username = $1 returning {USER_COLUMNS}"
            ),
            &[
                &username.as_str(),
                &full_name.is_some(),
                &full_name.flatten(),
                &is_super_admin,
            ],
        )
        .await?;
    Ok(row.as_ref().map(user))
}

/// Replaces a password hash and voids every token issued before `valid_after`. Answers
/// whether the user exists.
///
/// # Errors
/// Database failures.
pub async fn set_password(
    client: &impl GenericClient,
    username: &Username,
    password_hash: &str,
    valid_after: DateTime<Utc>,
) -> Result<bool, ApiError> {
    let n = client
        .execute_cached(
            "update users set password_hash = $2, tokens_valid_after = $3, updated_at = now()
             where username = $1",
            &[&username.as_str(), &password_hash, &valid_after],
        )
        .await?;
    Ok(n == 1)
}

/// Usernames of all super admins, locked until the transaction ends (used to keep at least
/// one super admin).
///
/// # Errors
/// Database failures.
pub async fn lock_super_admins(client: &impl GenericClient) -> Result<Vec<String>, ApiError> {
    let rows = client
        .query_cached(
            "select username from users where is_super_admin order by username for update",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Whether `username` is a super admin (`None`: no such user), with the user's row locked
/// (`for share`) until the transaction ends, so a concurrent promotion waits for it.
///
/// # Errors
/// Database failures.
pub async fn lock_is_super_admin(
    tx: &TenantTx<'_>,
    username: &Username,
) -> Result<Option<bool>, ApiError> {
    let row = tx
        .query_opt_cached(
            "select is_super_admin from users where username = $1 for share",
            &[&username.as_str()],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// Deletes a user; role assignments go with it. Answers whether the user existed.
///
/// # Errors
/// 409 if the user authored records that keep a reference to it (tenants, offers, audit
/// entries, campaigns); database failures.
pub async fn delete(client: &impl GenericClient, username: &Username) -> Result<bool, ApiError> {
    let n = client
        .execute_cached(
            "delete from users where username = $1",
            &[&username.as_str()],
        )
        .await
        .map_err(|err| match err.as_db_error().map(|e| e.code().code()) {
            Some("23503") => ApiError::Conflict(format!(
                "user {username} is named as the author of tenants, offers, campaigns or audit \
                 entries and cannot be deleted; remove the user's roles instead"
            )),
            _ => err.into(),
        })?;
    Ok(n == 1)
}
