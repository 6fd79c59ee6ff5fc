-- The release of one campaign's prepared deliveries (shared::db::campaigns::release), with the
-- platform's contact cap applied, in one statement. $1: the campaign's id, $2: its tenant.
-- The caller holds the release lock, so the ledger read here includes every earlier release.
with campaign as (
    select id, channel from campaigns where id = $1 and tenant_name = $2
),
policy as (
    select max_contacts, window_days,
           (channel_limits ->> (select channel from campaign))::integer as channel_max
    from contact_policy
),
candidates as (
    select cc.customer_id from campaign_customers cc
    where cc.campaign_id = $1 and cc.tenant_name = $2
      and cc.delivery_status = 'pending' and cc.released_at is null
),
-- Contacts in the window, across every tenant (the ledger is readable platform-wide).
contacts as (
    select l.customer_id, count(*) as total,
           count(*) filter (where l.channel = (select channel from campaign)) as on_channel
    from customer_contacts l
    join candidates k on k.customer_id = l.customer_id
    where exists (select 1 from policy)
      and l.contact_at > now() - make_interval(days => (select window_days from policy))
    group by l.customer_id
),
judged as (
    select k.customer_id,
           coalesce(c.total >= p.max_contacts or c.on_channel >= p.channel_max, false) as over
    from candidates k
    left join contacts c on c.customer_id = k.customer_id
    left join policy p on true
),
suppressed as (
    update campaign_customers cc
    set delivery_status = 'suppressed', suppression_reason = 'contact_pressure',
        updated_at = now()
    from judged j
    where j.over and cc.campaign_id = $1 and cc.customer_id = j.customer_id
    returning cc.customer_id
),
released as (
    update campaign_customers cc
    set released_at = now(), updated_at = now()
    from judged j
    where not j.over and cc.campaign_id = $1 and cc.customer_id = j.customer_id
    returning cc.customer_id
),
ledger as (
    insert into customer_contacts (campaign_id, customer_id, tenant_name, channel, contact_at)
    select $1, r.customer_id, $2, (select channel from campaign), now() from released r
    on conflict do nothing
)
select (select count(*) from released), (select count(*) from suppressed)
