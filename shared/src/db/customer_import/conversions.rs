//! Conversion files (`conversions/<tenant>/…` in the data bucket): one tenant's conversions
//! as CSV, imported by the same streaming, all-or-nothing, once-per-object-version path as
//! customer files ([`super::import_file`], and in parts [`super::parts`]).
//!
//! The header names columns of [`CONVERSION_COLUMNS`] in any order: `event_id` and
//! `occurred_at` (RFC 3339) are required, and `customer_id` or `email` (or both, one cell
//! filled per row); `offer_id`, `value` and `currency` are optional. Each row is checked
//! with the rules and messages of `POST /tenants/{t}/conversions`
//! ([`crate::db::conversions`]). Once every row is read, a row naming a customer or an
//! offer the tenant does not have is a problem too, naming its line: then nothing is
//! recorded. Otherwise every row is inserted in file order; an `event_id` the tenant already
//! has, or an earlier line of the file has, changes nothing (counted `unchanged`), as in the
//! API. Rows are written in the tenant's scope (row-level security holds the tenant).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::db::conversions::{
    UNKNOWN_CUSTOMER, UNKNOWN_OFFER, check_amount, check_currency, check_event_id,
    check_occurred_at, customer_ref,
};

/// The columns a conversion file may have.
pub const CONVERSION_COLUMNS: [&str; 7] = [
    "event_id",
    "customer_id",
    "email",
    "occurred_at",
    "offer_id",
    "value",
    "currency",
];

/// The staged columns after the line number, in COPY order.
pub const STAGED_COLUMNS: &str =
    "event_id, customer_id, email, occurred_at, offer_id, value, currency";

/// The staging table of a whole file's import (dropped at commit), and the COPY into it.
pub(super) const TEMPORARY_TABLE_SQL: &str = "create temporary table conversion_import (
         line bigint, event_id text, customer_id uuid, email text, occurred_at timestamptz,
         offer_id integer, value numeric(20, 4), currency text) on commit drop";
/// The COPY of a whole file's rows.
pub(super) const TEMPORARY_COPY_SQL: &str = "copy conversion_import (line, event_id, \
     customer_id, email, occurred_at, offer_id, value, currency) from stdin (format csv)";
/// The COPY of one part's rows into the staged rows of its import (V026).
pub(super) const PART_COPY_SQL: &str = "copy conversion_import_rows (import_id, line, \
     event_id, customer_id, email, occurred_at, offer_id, value, currency) from stdin \
     (format csv)";

/// A conversion file's header: no column outside [`CONVERSION_COLUMNS`]; `event_id`,
/// `occurred_at` and one of `customer_id` and `email` present.
///
/// # Errors
/// The reason, as a sentence.
pub(super) fn check_header(names: &[String]) -> Result<(), String> {
    if let Some(unknown) = names
        .iter()
        .find(|n| !CONVERSION_COLUMNS.contains(&n.as_str()))
    {
        return Err(format!(
            "column {unknown:?} is not a conversion field (the fields: {})",
            CONVERSION_COLUMNS.join(", ")
        ));
    }
    for required in ["event_id", "occurred_at"] {
        if !names.iter().any(|n| n == required) {
            return Err(format!("the header has no {required} column"));
        }
    }
    if !names.iter().any(|n| n == "customer_id" || n == "email") {
        return Err("the header has neither a customer_id nor an email column".into());
    }
    Ok(())
}

/// One conversion row, read at `now`: its COPY cells ([`STAGED_COLUMNS`] after the line
/// number; `None` for a bad row, which is not staged) and its problems by column.
pub(super) fn check_row(
    names: &[String],
    row: &csv::StringRecord,
    line: u64,
    now: DateTime<Utc>,
) -> (Option<Vec<String>>, Vec<(String, String)>) {
    let mut problems: Vec<(String, String)> = Vec::new();
    let cell = |name: &str| {
        names
            .iter()
            .position(|n| n == name)
            .and_then(|i| row.get(i))
            .map(str::trim)
            .filter(|c| !c.is_empty())
    };
    let mut flag = |column: &str, reason: String| problems.push((column.to_owned(), reason));
    let event_id = cell("event_id").unwrap_or_default();
    if let Err(reason) = check_event_id(event_id) {
        flag("event_id", reason);
    }
    let id_cell = cell("customer_id");
    let customer = match id_cell.map(Uuid::parse_str).transpose() {
        Err(_) => {
            flag("customer_id", "customer_id is not a UUID".into());
            None
        }
        Ok(id) => match customer_ref(id, cell("email").map(str::to_owned)) {
            Ok(customer) => Some(customer),
            Err(reason) => {
                flag(
                    if id_cell.is_some() {
                        "customer_id"
                    } else {
                        "email"
                    },
                    reason,
                );
                None
            }
        },
    };
    let occurred_at = match cell("occurred_at").map(DateTime::parse_from_rfc3339) {
        Some(Ok(at)) => {
            let at = at.with_timezone(&Utc);
            match check_occurred_at(at, now) {
                Ok(()) => Some(at),
                Err(reason) => {
                    flag("occurred_at", reason);
                    None
                }
            }
        }
        Some(Err(_)) => {
            flag(
                "occurred_at",
                "occurred_at is not an RFC 3339 date and time".into(),
            );
            None
        }
        None => {
            flag("occurred_at", "occurred_at is required".into());
            None
        }
    };
    let offer_id = match cell("offer_id").map(str::parse::<i32>).transpose() {
        Ok(offer) => offer,
        Err(_) => {
            flag("offer_id", "offer_id is not a whole number".into());
            None
        }
    };
    let (value, currency) = (cell("value"), cell("currency"));
    match (value, currency) {
        (None, None) => {}
        (Some(value), Some(currency)) => {
            if let Err(reason) = check_amount(value) {
                flag("value", reason);
            }
            if let Err(reason) = check_currency(currency) {
                flag("currency", reason);
            }
        }
        (Some(_), None) => flag("currency", "value and currency go together".into()),
        (None, Some(_)) => flag("value", "value and currency go together".into()),
    }
    if !problems.is_empty() {
        return (None, problems);
    }
    let (Some(customer), Some(occurred_at)) = (customer, occurred_at) else {
        return (None, problems);
    };
    let (id, email) = match customer {
        crate::db::conversions::CustomerRef::Id(id) => (id.to_string(), String::new()),
        crate::db::conversions::CustomerRef::Email(email) => (String::new(), email),
    };
    let cells = vec![
        line.to_string(),
        event_id.to_owned(),
        id,
        email,
        occurred_at.to_rfc3339(),
        offer_id.map(|o| o.to_string()).unwrap_or_default(),
        value.unwrap_or_default().to_owned(),
        currency.unwrap_or_default().to_owned(),
    ];
    (Some(cells), problems)
}

/// Where staged conversion rows are, as a relation named `i`, and the parameter number of
/// the tenant in statements over it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Staged {
    /// The whole file's temporary table (the tenant is `$1`).
    Temporary,
    /// Every staged row of a split file's import `$1` (the tenant is `$2`).
    Whole,
    /// One batch of a split file's staged rows: import `$1`, lines `$2 < line <= $3` (the
    /// tenant is `$4`).
    Batch,
}

impl Staged {
    const fn relation(self) -> &'static str {
        match self {
            Self::Temporary => "conversion_import i",
            Self::Whole => "(select * from conversion_import_rows where import_id = $1) i",
            Self::Batch => {
                "(select * from conversion_import_rows
                  where import_id = $1 and line > $2 and line <= $3) i"
            }
        }
    }

    const fn tenant(self) -> &'static str {
        match self {
            Self::Temporary => "$1",
            Self::Whole => "$2",
            Self::Batch => "$4",
        }
    }
}

/// The staged rows naming a customer that does not exist or an offer the tenant does not
/// have: `(count of all, line, column, reason)` for the first `limit` by line (`limit` is
/// the last parameter, after the tenant).
pub(super) fn unknown_references_sql(staged: Staged) -> String {
    let source = staged.relation();
    let tenant = staged.tenant();
    let limit = match staged {
        Staged::Temporary => "$2",
        Staged::Whole => "$3",
        Staged::Batch => "$5",
    };
    format!(
        "select count(*) over (), line, col, reason from (
             select i.line, 'customer_id' as col, '{UNKNOWN_CUSTOMER}' as reason from {source}
             where i.customer_id is not null
               and not exists (select 1 from customers c where c.id = i.customer_id)
             union all
             select i.line, 'email', '{UNKNOWN_CUSTOMER}' from {source}
             where i.customer_id is null
               and not exists (select 1 from customers c where c.email = i.email)
             union all
             select i.line, 'offer_id', '{UNKNOWN_OFFER}' from {source}
             where i.offer_id is not null
               and not exists (select 1 from offers o
                               where o.id = i.offer_id and o.tenant_name = {tenant})
         ) p
         order by line limit {limit}"
    )
}

/// Inserts the staged rows in file order for the tenant, an `event_id` it already has (or an
/// earlier line has) left alone; answers how many were recorded.
pub(super) fn insert_sql(staged: Staged) -> String {
    let source = staged.relation();
    let tenant = staged.tenant();
    format!(
        "with recorded as (
             insert into conversions (tenant_name, event_id, customer_id, occurred_at,
                                      offer_id, value, currency)
             select {tenant}, i.event_id, coalesce(i.customer_id, c.id), i.occurred_at,
                    i.offer_id, i.value, i.currency
             from {source}
             left join customers c on i.customer_id is null and c.email = i.email
             order by i.line
             on conflict (tenant_name, event_id) do nothing
             returning 1)
         select count(*) from recorded"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(header: &str) -> Vec<String> {
        header.split(',').map(str::to_owned).collect()
    }

    fn check(header: &str, row: &[&str]) -> (Option<Vec<String>>, Vec<(String, String)>) {
        check_row(
            &names(header),
            &csv::StringRecord::from(row.to_vec()),
            2,
            Utc::now(),
        )
    }

    #[test]
    fn a_header_names_the_event_its_time_and_the_customer() {
        assert!(check_header(&names("event_id,customer_id,occurred_at")).is_ok());
        assert!(check_header(&names("email,occurred_at,event_id,value,currency")).is_ok());
        let no_customer = check_header(&names("event_id,occurred_at")).expect_err("refused");
        assert!(no_customer.contains("neither a customer_id nor an email"));
        let unknown =
            check_header(&names("event_id,email,occurred_at,amount")).expect_err("refused");
        assert!(unknown.contains("\"amount\" is not a conversion field"));
        assert!(check_header(&names("email,occurred_at")).is_err());
    }

    #[test]
    fn rows_follow_the_apis_rules() {
        let header = "event_id,customer_id,email,occurred_at,offer_id,value,currency";
        let id = Uuid::new_v4().to_string();
        let (cells, problems) = check(
            header,
            &[
                "e-1",
                &id,
                "",
                "2026-01-02T03:04:05+01:00",
                "7",
                "12.5",
                "INR",
            ],
        );
        assert!(problems.is_empty(), "{problems:?}");
        let cells = cells.expect("valid");
        assert_eq!(cells[0], "2");
        assert_eq!(cells[2], id);
        assert_eq!(cells[4], "2026-01-02T02:04:05+00:00");
        assert_eq!(cells[5..], ["7", "12.5", "INR"]);
        let bad = [
            (
                ["", &id, "", "2026-01-02T03:04:05Z", "", "", ""],
                "event_id",
            ),
            (
                ["e", &id, "a@x.io", "2026-01-02T03:04:05Z", "", "", ""],
                "customer_id",
            ),
            (["e", "", "", "2026-01-02T03:04:05Z", "", "", ""], "email"),
            (
                ["e", "nope", "", "2026-01-02T03:04:05Z", "", "", ""],
                "customer_id",
            ),
            (["e", &id, "", "2026-01-02", "", "", ""], "occurred_at"),
            (
                ["e", &id, "", "2999-01-02T03:04:05Z", "", "", ""],
                "occurred_at",
            ),
            (
                ["e", &id, "", "2026-01-02T03:04:05Z", "x", "", ""],
                "offer_id",
            ),
            (
                ["e", &id, "", "2026-01-02T03:04:05Z", "", "1.23456", "INR"],
                "value",
            ),
            (
                ["e", &id, "", "2026-01-02T03:04:05Z", "", "-1", "INR"],
                "value",
            ),
            (
                ["e", &id, "", "2026-01-02T03:04:05Z", "", "1e3", "INR"],
                "value",
            ),
            (
                ["e", &id, "", "2026-01-02T03:04:05Z", "", "1", "inr"],
                "currency",
            ),
            (
                ["e", &id, "", "2026-01-02T03:04:05Z", "", "1", ""],
                "currency",
            ),
        ];
        for (row, column) in bad {
            let (cells, problems) = check(header, &row);
            assert!(cells.is_none(), "{row:?}");
            assert!(
                problems.iter().any(|(c, _)| c == column),
                "{row:?}: {problems:?}"
            );
        }
    }
}
