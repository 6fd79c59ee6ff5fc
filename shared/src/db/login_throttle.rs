//! The sign-in throttle's counters (`login_failures`) and the rule that reads them.
//!
//! Following OWASP's Authentication Cheat Sheet and NIST SP 800-63B §5.2.2, failures are
//! counted per (username, client address), per client address and per username, over a
//! sliding [`WINDOW`] after the last failure; an unknown username is counted exactly like a
//! known one. The rule ([`Counters::refusal`]):
//!
//! | counter | refused (429, `Retry-After`) when |
//! |---|---|
//! | (username, client) | from the [`PAIR_FREE_FAILURES`]th failure on, until `2^(n − 5)` s after the last one (1 s, 2 s, 4 s, … capped at the window); from [`PAIR_MAX_FAILURES`] on, until the window ends |
//! | client | [`CLIENT_MAX_FAILURES`] failures within the window (a password spray from one address) |
//! | username | [`ACCOUNT_CEILING_FAILURES`] within the window (a distributed attack), and then only for clients that failed recently themselves: a client with no recent failures still signs in with the right password |
//!
//! A success clears its (username, client) counter. Subjects are stored as SHA-256 digests:
//! what strangers type as a username (sometimes a password) is never stored as typed.
//!
//! Limits: an attempt is checked before it is counted, so a burst of parallel guesses can
//! pass the free failures by as many as run at once (bounded per process by
//! `PASSWORD_HASH_CONCURRENCY`, as every guess costs one argon2 verification). Counters live
//! in PostgreSQL, so they hold across Lambda instances and restarts.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::{CachedStatements, GenericClient};
use crate::error::ApiError;

/// How long failures are remembered after the last one.
pub const WINDOW_SECS: i64 = 15 * 60;
/// [`WINDOW_SECS`] as a duration.
pub const WINDOW: std::time::Duration = std::time::Duration::from_secs(WINDOW_SECS as u64);
/// Failures of one (username, client) pair answered without delay.
pub const PAIR_FREE_FAILURES: i32 = 5;
/// Failures of one pair after which it is refused until the window ends.
pub const PAIR_MAX_FAILURES: i32 = 20;
/// Failures from one client address (any usernames) after which it is refused.
pub const CLIENT_MAX_FAILURES: i32 = 100;
/// Failures for one username (all clients) after which clients that failed recently are
/// refused.
pub const ACCOUNT_CEILING_FAILURES: i32 = 1000;

/// One counter: failures and when its window began and last grew.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counter {
    /// Failures within the window (0 when none).
    pub failures: i32,
    /// The last failure, if any within the window.
    pub last_failure_at: Option<DateTime<Utc>>,
}

/// The three counters of one sign-in attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    /// (username, client address).
    pub pair: Counter,
    /// Client address.
    pub client: Counter,
    /// Username.
    pub account: Counter,
}

impl Counters {
    /// Seconds the client must wait before this attempt is heard, if it is refused at `now`
    /// (see the module's table).
    pub fn refusal(&self, now: DateTime<Utc>) -> Option<u64> {
        let until = |last: Option<DateTime<Utc>>, secs: i64| {
            last.map(|l| l + chrono::Duration::seconds(secs))
                .filter(|end| *end > now)
        };
        let window_end = |c: Counter| until(c.last_failure_at, WINDOW_SECS);
        let mut ends = Vec::new();
        if self.pair.failures >= PAIR_MAX_FAILURES {
            ends.push(window_end(self.pair));
        } else if self.pair.failures >= PAIR_FREE_FAILURES {
            let exponent = u32::try_from(self.pair.failures - PAIR_FREE_FAILURES).unwrap_or(0);
            let delay = 2i64.checked_pow(exponent).unwrap_or(WINDOW_SECS);
            ends.push(until(self.pair.last_failure_at, delay.min(WINDOW_SECS)));
        }
        if self.client.failures >= CLIENT_MAX_FAILURES {
            ends.push(window_end(self.client));
        }
        let failed_recently = self.pair.failures > 0 || self.client.failures > 0;
        if self.account.failures >= ACCOUNT_CEILING_FAILURES && failed_recently {
            ends.push(window_end(self.account));
        }
        ends.into_iter()
            .flatten()
            .max()
            .map(|end| u64::try_from((end - now).num_seconds()).unwrap_or(0) + 1)
    }
}

/// The hashed subjects of one attempt.
#[derive(Debug, Clone)]
pub struct Subjects {
    pair: Vec<u8>,
    client: Vec<u8>,
    account: Vec<u8>,
}

impl Subjects {
    /// Subjects for `username` (as typed: unknown and malformed names are counted too) from
    /// `client_address`.
    pub fn new(username: &str, client_address: &str) -> Self {
        let digest = |parts: &[&str]| {
            let mut hash = Sha256::new();
            for part in parts {
                // Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
                hash.update((part.len() as u64).to_be_bytes());
                hash.update(part.as_bytes());
            }
            hash.finalize().to_vec()
        };
        Self {
            pair: digest(&[username, client_address]),
            client: digest(&[client_address]),
            account: digest(&[username]),
        }
    }

    /// The username's digest as logs show it: the first 16 hexadecimal digits of the account
    /// subject (SHA-256 of the length-prefixed name, as the throttle stores it), so a failed
    /// sign-in under a name that is no account is traceable to its throttle row without the
    /// text typed (which may be someone's password or personal data, or forge log lines).
    #[must_use]
    pub fn account_digest(&self) -> String {
        self.account[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// Reads the three counters of an attempt (rows older than the window count as zero).
///
/// # Errors
/// Database failures.
pub async fn counters(
    client: &impl GenericClient,
    subjects: &Subjects,
) -> Result<Counters, ApiError> {
    let rows = client
        .query_cached(
            "select kind, failures, last_failure_at from login_failures
             where (kind, subject) in (('pair', $1), ('client', $2), ('account', $3))
               and last_failure_at > now() - make_interval(secs => $4)",
            &[
                &subjects.pair,
                &subjects.client,
                &subjects.account,
                &(WINDOW_SECS as f64),
            ],
        )
        .await?;
    let mut counters = Counters::default();
    for row in rows {
        let counter = Counter {
            failures: row.get("failures"),
            last_failure_at: Some(row.get("last_failure_at")),
        };
        match row.get::<_, &str>("kind") {
            "pair" => counters.pair = counter,
            "client" => counters.client = counter,
            _ => counters.account = counter,
        }
    }
    Ok(counters)
}

/// Counts one failure on all three counters in one statement (concurrent failures are all
/// counted; a counter idle for a whole window starts again at 1), and forgets counters idle
/// for longer than the window.
///
/// # Errors
/// Database failures.
pub async fn record_failure(
    client: &impl GenericClient,
    subjects: &Subjects,
) -> Result<(), ApiError> {
    client
        .execute_cached(
            "with forgotten as (
                 delete from login_failures
                 where last_failure_at < now() - make_interval(secs => $4)
             )
             insert into login_failures as f
                 (kind, subject, failures, window_started_at, last_failure_at)
             values ('pair', $1, 1, now(), now()), ('client', $2, 1, now(), now()),
                    ('account', $3, 1, now(), now())
             on conflict (kind, subject) do update set
                 failures = case when f.last_failure_at > now() - make_interval(secs => $4)
                                 then f.failures + 1 else 1 end,
                 window_started_at = case
                     when f.last_failure_at > now() - make_interval(secs => $4)
                     then f.window_started_at else now() end,
                 last_failure_at = now()",
            &[
                &subjects.pair,
                &subjects.client,
                &subjects.account,
                &(WINDOW_SECS as f64),
            ],
        )
        .await?;
    Ok(())
}

/// Clears the (username, client) counter after a successful sign-in; the client's and the
/// username's counters keep counting (a spray from one address does not reset by one
/// success of its own).
///
/// # Errors
/// Database failures.
pub async fn record_success(
    client: &impl GenericClient,
    subjects: &Subjects,
) -> Result<(), ApiError> {
    client
        .execute_cached(
            "delete from login_failures where kind = 'pair' and subject = $1",
            &[&subjects.pair],
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter(failures: i32, secs_ago: i64, now: DateTime<Utc>) -> Counter {
        Counter {
            failures,
            last_failure_at: Some(now - chrono::Duration::seconds(secs_ago)),
        }
    }

    #[test]
    fn a_pair_slows_down_then_is_refused_for_the_window() {
        let now = Utc::now();
        let pair = |failures, secs_ago| Counters {
            pair: counter(failures, secs_ago, now),
            ..Counters::default()
        };
        assert_eq!(pair(4, 0).refusal(now), None);
        // Fifth failure: 1 s; sixth: 2 s; tenth: 32 s.
        assert_eq!(pair(5, 0).refusal(now), Some(2));
        assert_eq!(pair(5, 1).refusal(now), None);
        assert_eq!(pair(6, 1).refusal(now), Some(2));
        assert_eq!(pair(10, 30).refusal(now), Some(3));
        assert_eq!(pair(10, 32).refusal(now), None);
        assert_eq!(pair(19, 899).refusal(now), Some(2));
        assert_eq!(pair(20, 600).refusal(now), Some(301));
        assert_eq!(pair(20, 900).refusal(now), None);
    }

    #[test]
    fn a_client_spraying_usernames_is_refused() {
        let now = Utc::now();
        let client = |failures| Counters {
            client: counter(failures, 60, now),
            ..Counters::default()
        };
        assert_eq!(client(99).refusal(now), None);
        assert_eq!(client(100).refusal(now), Some(841));
    }

    #[test]
    fn the_account_ceiling_never_refuses_a_client_without_recent_failures() {
        let now = Utc::now();
        let flooded = counter(5000, 1, now);
        let clean = Counters {
            account: flooded,
            ..Counters::default()
        };
        assert_eq!(clean.refusal(now), None);
        let failed_once = Counters {
            account: flooded,
            pair: counter(1, 10, now),
            ..Counters::default()
        };
        assert_eq!(failed_once.refusal(now), Some(900));
        let below = Counters {
            account: counter(999, 1, now),
            client: counter(3, 1, now),
            ..Counters::default()
        };
        assert_eq!(below.refusal(now), None);
    }

    #[test]
    fn subjects_do_not_collide_across_boundaries() {
        let a = Subjects::new("ab", "c");
        let b = Subjects::new("a", "bc");
        assert_ne!(a.pair, b.pair);
        assert_eq!(
            Subjects::new("x", "1").account,
            Subjects::new("x", "2").account
        );
        assert_eq!(
            Subjects::new("x", "1").client,
            Subjects::new("y", "1").client
        );
    }
}
