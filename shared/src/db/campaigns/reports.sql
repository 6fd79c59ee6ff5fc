-- The report statement (shared::db::campaigns::reports::APPLY_REPORTS_SQL, whose doc comment
-- gives its parameters, its answer and its rules): a batch of delivery reports applied to the
-- deliveries and the contact ledger, answered per delivery.
with report as materialized (
    select * from unnest($1::int4[], $2::int4[], $3::uuid[], $4::text[],
                         $5::timestamptz[], $6::text[], $7::text[])
      as r(index, campaign_id, customer_id, status, sent_at, provider_message_id,
           failure_reason)
),
campaign as materialized (
    select id, status in ('active', 'paused', 'completed') as open,
           now() > ends_at + make_interval(days => $9) as overdue, channel, ends_at,
           released_until
    from campaigns
    where tenant_name = $8 and id in (select distinct campaign_id from report)
),
accepted as (
    select r.*, c.channel, c.ends_at, c.released_until from report r
    join campaign c on c.id = r.campaign_id and c.open and not c.overdue
),
gathered as (
    select campaign_id, customer_id,
           max(index) filter (where status in ('sent', 'failed')) as result_index,
           max(status) filter (where status in ('sent', 'failed')) as result,
           max(sent_at) filter (where status in ('sent', 'failed')) as result_at,
           max(provider_message_id) filter (where status in ('sent', 'failed'))
               as provider_message_id,
           max(failure_reason) filter (where status in ('sent', 'failed'))
               as failure_reason,
           min(sent_at) filter (where status = 'delivered') as delivered,
           min(sent_at) filter (where status = 'opened') as opened,
           min(sent_at) filter (where status = 'clicked') as clicked,
           max(channel) as channel, max(ends_at) as ends_at,
           max(released_until) as released_until
    from accepted
    group by campaign_id, customer_id
),
delivery as materialized (
    select g.campaign_id, g.customer_id, g.delivered,
           g.opened, g.clicked, g.channel, g.provider_message_id, g.failure_reason,
           g.ends_at, g.released_until,
           -- The result, unless it is dated at or after the end its delivery was
           -- released under (then `late`).
           case when g.result_at >= least(g.ends_at, l.open_until)
                then g.result_index end as late,
           case when g.result_at < least(g.ends_at, l.open_until) then g.result end
               as result,
           case when g.result_at < least(g.ends_at, l.open_until) then g.result_at end
               as result_at
    from gathered g
    -- Read only for a result the campaign's earliest end released under (V027) does
    -- not already place before every end its deliveries were released under (and for
    -- a campaign that has none: its ledger rows were all pruned before V027).
    left join lateral (
        select l.open_until from customer_contacts l
        where (g.result_at >= g.released_until or g.released_until is null)
          and l.campaign_id = g.campaign_id and l.customer_id = g.customer_id
        -- Planned apart (not pulled up into a join), so the condition on the result
        -- is a one-time filter that skips the read rather than a filter after it.
        offset 0
    ) l on true
    order by g.campaign_id, g.customer_id
),
updated as (
    update campaign_customers cc
    set sent_at = case when d.result_at >= cc.released_at
                            and (cc.sent_at is null or d.result_at > cc.sent_at)
                       then d.result_at else cc.sent_at end,
        provider_message_id = case when d.result_at >= cc.released_at
                                        and (cc.sent_at is null or d.result_at > cc.sent_at)
                                   then d.provider_message_id
                                   else cc.provider_message_id end,
        failure_reason = case when d.result_at >= cc.released_at
                                   and (cc.sent_at is null or d.result_at > cc.sent_at)
                              then d.failure_reason else cc.failure_reason end,
        delivered_at = least(cc.delivered_at,
                             case when d.delivered >= cc.released_at then d.delivered end),
        opened_at = least(cc.opened_at,
                          case when d.opened >= cc.released_at then d.opened end),
        clicked_at = least(cc.clicked_at,
                           case when d.clicked >= cc.released_at then d.clicked end),
        delivery_status = case
            when cc.clicked_at is not null or d.clicked >= cc.released_at then 'clicked'
            when cc.opened_at is not null or d.opened >= cc.released_at then 'opened'
            when cc.delivered_at is not null or d.delivered >= cc.released_at
                then 'delivered'
            when d.result_at >= cc.released_at
                 and (cc.sent_at is null or d.result_at > cc.sent_at) then d.result
            else cc.delivery_status end,
        updated_at = now()
    from delivery d
    where cc.campaign_id = d.campaign_id and cc.customer_id = d.customer_id
      and cc.tenant_name = $8
      and cc.released_at is not null and cc.delivery_status <> 'suppressed'
      and ((d.result_at >= cc.released_at
            and (cc.sent_at is null or d.result_at > cc.sent_at))
           or (d.delivered >= cc.released_at
               and (cc.delivered_at is null or d.delivered < cc.delivered_at))
           or (d.opened >= cc.released_at
               and (cc.opened_at is null or d.opened < cc.opened_at))
           or (d.clicked >= cc.released_at
               and (cc.clicked_at is null or d.clicked < cc.clicked_at)))
    returning cc.campaign_id, cc.customer_id, d.channel, d.ends_at, d.released_until, cc.sent_at, cc.delivered_at, cc.opened_at, cc.clicked_at,
              -- The contact's time as this batch shows it: an applied `sent`, or the
              -- first stage (the settle caps it at open_until, which the unsettled
              -- row counted to).
              least(case when d.result = 'sent' and cc.sent_at = d.result_at
                         then d.result_at end,
                    case when d.delivered >= cc.released_at then d.delivered end,
                    case when d.opened >= cc.released_at then d.opened end,
                    case when d.clicked >= cc.released_at then d.clicked end)
                  as contact_at
),
settled as (
    update customer_contacts l
    set contact_at = least(case when l.settled then l.contact_at end, u.contact_at,
                           l.open_until),
        settled = true
    from updated u
    where u.contact_at is not null and l.tenant_name = $8
      and l.campaign_id = u.campaign_id and l.customer_id = u.customer_id
      and (not l.settled or least(u.contact_at, l.open_until) < l.contact_at)
    returning l.campaign_id, l.customer_id
),
-- A delivery without a ledger row (pruned): one, settled, under the latest end it can
-- have been released under that keeps V027's invariant.
recorded as (
    insert into customer_contacts (campaign_id, customer_id, tenant_name, channel,
                                   contact_at, open_until, settled)
    select u.campaign_id, u.customer_id, $8, u.channel,
           least(u.contact_at, greatest(u.ends_at, u.released_until)),
           greatest(u.ends_at, u.released_until), true
    from updated u
    where u.contact_at is not null
      and (u.campaign_id, u.customer_id) not in
              (select s.campaign_id, s.customer_id from settled s)
      and not exists (select 1 from customer_contacts l
                      where l.campaign_id = u.campaign_id
                        and l.customer_id = u.customer_id)
    on conflict (campaign_id, customer_id) do update
    set contact_at = case when customer_contacts.settled
                          then least(customer_contacts.contact_at, excluded.contact_at)
                          else excluded.contact_at end,
        settled = true
    where not customer_contacts.settled
       or excluded.contact_at < customer_contacts.contact_at
),
found as materialized (
    select d.campaign_id, d.customer_id, cc.released_at from delivery d
    join campaign_customers cc
      on cc.campaign_id = d.campaign_id and cc.customer_id = d.customer_id
     and cc.tenant_name = $8
    where (d.campaign_id, d.customer_id) not in
              (select u.campaign_id, u.customer_id from updated u)
      and cc.released_at is not null and cc.delivery_status <> 'suppressed'
)
-- Each per-delivery list in one pass over its CTE.
select u.*, f.*,
       coalesce((select array_agg(r.index) from report r
                 join campaign c on c.id = r.campaign_id and not c.open), '{}')
           as closed,
       coalesce((select array_agg(late) from delivery where late is not null), '{}')
           as late,
       coalesce((select array_agg(r.index) from report r
                 join campaign c on c.id = r.campaign_id and c.open and c.overdue), '{}')
           as overdue
from (select array_agg(campaign_id) as updated_campaigns,
             array_agg(customer_id) as updated_customers, array_agg(sent_at) as sent_at,
             array_agg(delivered_at) as delivered_at, array_agg(opened_at) as opened_at,
             array_agg(clicked_at) as clicked_at
      from updated) u,
     (select array_agg(campaign_id) as found_campaigns,
             array_agg(customer_id) as found_customers, array_agg(released_at) as released_at
      from found) f
