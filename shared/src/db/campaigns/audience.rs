//! Audience previews: how many customers criteria select now, held back for consent or the
//! contact cap, and a sample without contact details.

use crate::criteria::Compiled;
use crate::db::{GenericClient, TenantTx};
use crate::domain::Channel;
use crate::error::ApiError;
use serde::Serialize;
use uuid::Uuid;

/// How a previewed audience would fare if released now (see [`DeliverySummary`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PreviewBreakdown {
    /// Without consent for the channel (opted out, or unknown where unknown is not consent).
    pub suppressed_by_consent: i64,
    /// With consent, but at the platform's contact cap now.
    pub suppressed_by_pressure: i64,
    /// What a release now would give out.
    pub releasable: i64,
}

/// The consent and contact-pressure breakdown of the customers `criteria` (compiled from
/// `$1`) select, for a campaign of the transaction's tenant through `channel`.
///
/// # Errors
/// Database failures.
pub async fn preview_breakdown(
    tx: &TenantTx<'_>,
    criteria: &Compiled,
    channel: Channel,
) -> Result<PreviewBreakdown, ApiError> {
    let mut params = criteria.bind(&[]);
    let tenant_name = tx.tenant().as_str();
    let channel_name = channel.as_str();
    params.push(&tenant_name);
    params.push(&channel_name);
    let (t, ch) = (params.len() - 1, params.len());
    let row = tx
        .query_one(
            &format!(
                "with matched as (select c.id from customers c where {criteria}),
                 policy as (
                     select max_contacts, window_days,
                            (channel_limits ->> ${ch}::text)::integer as channel_max
                     from contact_policy
                 ),
                 judged as (
                     select m.id,
                            consent_allows(k.status, t.unknown_consent_allowed) as consented
                     from matched m
                     cross join (select unknown_consent_allowed from tenants
                                 where name = ${t}::text) t
                     left join customer_consents k
                       on k.customer_id = m.id and k.channel = ${ch}::text
                 ),
                 contacts as (
                     select l.customer_id, count(*) as total,
                            count(*) filter (where l.channel = ${ch}::text) as on_channel
                     from customer_contacts l join judged j on j.id = l.customer_id
                     where j.consented and exists (select 1 from policy)
                       and contact_counts(l.contact_at, l.open_until, l.settled,
                                          (select window_days from policy))
                     group by l.customer_id
                 ),
                 verdict as (
                     select j.consented,
                            contact_cap_reached(c.total, c.on_channel, p.max_contacts,
                                                p.channel_max) as over
                     from judged j
                     left join contacts c on c.customer_id = j.id
                     left join policy p on true
                 )
                 select count(*) filter (where not consented),
                        count(*) filter (where consented and over),
                        count(*) filter (where consented and not over)
                 from verdict",
                criteria = criteria.sql
            ),
            &params,
        )
        .await?;
    Ok(PreviewBreakdown {
        suppressed_by_consent: row.get(0),
        suppressed_by_pressure: row.get(1),
        releasable: row.get(2),
    })
}

/// A customer in an audience preview (no contact details).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AudienceMember {
    /// The customer.
    pub id: Uuid,
    /// Segment.
    pub segment: Option<String>,
    /// KYC status.
    pub kyc_status: Option<String>,
    /// Credit score.
    pub credit_score: Option<i32>,
    /// State.
    pub state: Option<String>,
    /// Active?
    pub is_active: bool,
}

/// How many customers match `criteria` (compiled from `$1`), and the first `sample` of them
/// in id order.
///
/// # Errors
/// Database failures.
pub async fn preview(
    tx: &TenantTx<'_>,
    criteria: &Compiled,
    sample: i64,
) -> Result<(i64, Vec<AudienceMember>), ApiError> {
    let params = criteria.bind(&[]);
    let count: i64 = tx
        .query_one(
            &format!("select count(*) from customers c where {}", criteria.sql),
            &params,
        )
        .await?
        .get(0);
    let mut params = params;
    params.push(&sample);
    let placeholder = params.len();
    let rows = tx
        .query(
            &format!(
                "select c.id, c.segment, c.kyc_status, c.credit_score, c.state,
                        coalesce(c.is_active, true) as is_active
                 from customers c where {} order by c.id limit ${placeholder}",
                criteria.sql
            ),
            &params,
        )
        .await?;
    let members = rows
        .iter()
        .map(|row| AudienceMember {
            id: row.get("id"),
            segment: row.get("segment"),
            kyc_status: row.get("kyc_status"),
            credit_score: row.get("credit_score"),
            state: row.get("state"),
            is_active: row.get("is_active"),
        })
        .collect();
    Ok((count, members))
}
