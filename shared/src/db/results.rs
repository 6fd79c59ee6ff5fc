//! A campaign's results: its treated and control groups, who of them converted, and the
//! treated group's funnel, counted in one statement (one snapshot). The lift and its
//! interval are computed from these counts by [`crate::uplift`].
//!
//! Attribution (docs/results.md): a conversion of the campaign's tenant counts for the
//! campaign when it names no offer or the campaign's offer, and its customer is
//! - in the treated group (released to providers) and it occurred at or after their release,
//!   or in the control group and it occurred at or after their assignment;
//! - and it occurred before the campaign's end plus `conversion_window_days`.
//!
//! A customer converts at most once per campaign; the values of all their conversions that
//! count are summed, per currency. Groups are compared as assigned (intention to treat): a
//! treated customer whose delivery failed or expired stays treated.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::campaigns::deliveries::DeliveryRows;
use super::{CachedStatements, TenantTx};
use crate::error::ApiError;

/// One group's counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GroupCounts {
    /// Customers in the group.
    pub customers: i64,
    /// Of them, customers with at least one conversion that counts.
    pub converted: i64,
    /// The summed value of the conversions that count, per ISO 4217 currency code.
    pub value: BTreeMap<String, f64>,
}

/// The treated group's path from release to conversion: customers at each stage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Funnel {
    /// Released to providers (the treated group).
    pub released: i64,
    /// Reported sent by the provider (or any later stage).
    pub sent: i64,
    /// Reported delivered (or opened or clicked).
    pub delivered: i64,
    /// Reported opened (or clicked).
    pub opened: i64,
    /// With a click reported.
    pub clicked: i64,
    /// Converted.
    pub converted: i64,
}

/// Everything the results of a campaign are computed from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResultCounts {
    /// Released customers.
    pub treated: GroupCounts,
    /// Held-out customers.
    pub control: GroupCounts,
    /// The treated group's funnel.
    pub funnel: Funnel,
}

/// The statement behind [`counts`]: parameters `$1` the campaign id (`integer`), `$2` the
/// tenant's name. One row per group with its counts (`currency` null), then one per group
/// and currency with the value converted in it.
///
/// No join in it compares every member with every other row: the members' conversions are
/// index probes of `conversions (customer_id, occurred_at)` (or one hash join) and the
/// converted customers are counted within the attributed rows of each group. Planned on
/// statistics that predate the campaign (at 10,000,000 customers a campaign under a tenth
/// of the table never triggers autovacuum's analyze), a left join of the members to the
/// converted became a nested loop over a scan of every converted customer, growing with
/// the square of the campaign.
pub const COUNTS_SQL: &str = "with campaign as (
         select offer_id,
                ends_at + make_interval(days => conversion_window_days) as until
         from campaigns where id = $1 and tenant_name = $2
     ),
     members as materialized (
         select cc.customer_id, cc.delivery_status = 'control' as control,
                coalesce(cc.released_at, cc.assigned_at) as since,
                delivery_was_sent(cc.delivery_status) as sent,
                coalesce(cc.delivered_at, cc.opened_at, cc.clicked_at) is not null
                    as delivered,
                coalesce(cc.opened_at, cc.clicked_at) is not null as opened,
                cc.clicked_at is not null as clicked
         from campaign_customers cc
         where cc.campaign_id = $1 and cc.tenant_name = $2
           and (cc.released_at is not null or cc.delivery_status = 'control')
     ),
     attributed as materialized (
         select m.customer_id, m.control, v.value, v.currency
         from members m
         join conversions v on v.customer_id = m.customer_id and v.tenant_name = $2
         where v.occurred_at >= m.since
           and v.occurred_at < (select until from campaign)
           and (v.offer_id is null or v.offer_id = (select offer_id from campaign))
     )
     select m.control, null::text as currency, count(*) as customers,
            (select count(distinct a.customer_id) from attributed a
             where a.control = m.control) as converted,
            count(*) filter (where m.sent) as sent,
            count(*) filter (where m.delivered) as delivered,
            count(*) filter (where m.opened) as opened,
            count(*) filter (where m.clicked) as clicked, null::float8 as value
     from members m
     group by m.control
     union all
     select control, currency, null, null, null, null, null, null, sum(value)::float8
     from attributed where currency is not null
     group by control, currency";

/// Where [`COUNTS_SQL`] names the delivery rows, replaced by [`counts_of`] for another
/// source.
const MEMBERS_FROM: &str = "from campaign_customers cc";

/// [`COUNTS_SQL`] reading the delivery rows from `rows`.
fn counts_sql(rows: DeliveryRows) -> std::borrow::Cow<'static, str> {
    match rows {
        DeliveryRows::Live => COUNTS_SQL.into(),
        other => COUNTS_SQL
            .replacen(MEMBERS_FROM, &format!("from {} cc", other.table()), 1)
            .into(),
    }
}

/// Counts campaign `campaign`'s results from its delivery rows and the tenant's conversions
/// (see the module for the attribution), in one statement.
///
/// # Errors
/// Database failures.
pub async fn counts(tx: &TenantTx<'_>, campaign: i32) -> Result<ResultCounts, ApiError> {
    counts_of(tx, campaign, DeliveryRows::Live).await
}

/// [`counts`], reading campaign `campaign`'s delivery rows from `rows` (an archive's export
/// reads its staged copy).
///
/// # Errors
/// Database failures (the staged table missing outside an export's transaction).
pub async fn counts_of(
    tx: &TenantTx<'_>,
    campaign: i32,
    source: DeliveryRows,
) -> Result<ResultCounts, ApiError> {
    let rows = tx
        .query_cached(&counts_sql(source), &[&campaign, &tx.tenant().as_str()])
        .await?;
    let mut counts = ResultCounts::default();
    for row in &rows {
        let control: bool = row.get("control");
        let group = if control {
            &mut counts.control
        } else {
            &mut counts.treated
        };
        match row.get::<_, Option<String>>("currency") {
            Some(currency) => {
                group.value.insert(currency, row.get("value"));
            }
            None => {
                group.customers = row.get("customers");
                group.converted = row.get("converted");
                if !control {
                    counts.funnel = Funnel {
                        released: group.customers,
                        sent: row.get("sent"),
                        delivered: row.get("delivered"),
                        opened: row.get("opened"),
                        clicked: row.get("clicked"),
                        converted: group.converted,
                    };
                }
            }
        }
    }
    Ok(counts)
}

/// Campaign `campaign`'s result counts: live from its rows, or, once housekeeping began
/// deleting them for its archive, the counts kept with the archive. `None` for a campaign
/// archived before results were kept (V025).
///
/// # Errors
/// Database failures; stored counts that do not parse.
pub async fn stored_or_live(
    tx: &TenantTx<'_>,
    campaign: i32,
) -> Result<Option<ResultCounts>, ApiError> {
    let archived = tx
        .query_opt_cached(
            "select results from campaign_archives
             where campaign_id = $1 and tenant_name = $2 and state in ('deleting', 'archived')",
            &[&campaign, &tx.tenant().as_str()],
        )
        .await?;
    match archived {
        Some(row) => row
            .get::<_, Option<serde_json::Value>>(0)
            .map(serde_json::from_value)
            .transpose()
            .map_err(ApiError::internal),
        None => counts(tx, campaign).await.map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_staged_statement_reads_the_staged_rows_only() {
        assert!(COUNTS_SQL.matches(MEMBERS_FROM).count() == 1);
        let staged = counts_sql(DeliveryRows::Staged);
        assert!(!staged.contains("campaign_customers"), "{staged}");
        assert!(
            staged.contains("from pg_temp.archived_deliveries cc"),
            "{staged}"
        );
        assert_eq!(counts_sql(DeliveryRows::Live), COUNTS_SQL);
    }
}
