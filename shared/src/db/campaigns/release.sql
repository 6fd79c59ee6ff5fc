-- The release of one campaign's prepared deliveries (shared::db::campaigns::release), with
-- consent judged again (it may have changed since selection), the platform's contact cap
-- applied, and the campaign's holdout split off (V025), in one statement. $1: the
-- campaign's id, $2: its tenant, $3 and $4: the customer ids released, inclusive (the nil and
-- the max UUID for all; a range of a release job, V029, otherwise). The caller holds the
-- release lock, so the ledger read here includes every earlier release.
with campaign as (
    select c.id, c.channel, c.ends_at, c.holdout_percent, c.holdout_seed,
           t.unknown_consent_allowed
    from campaigns c join tenants t on t.name = c.tenant_name
    where c.id = $1 and c.tenant_name = $2
),
policy as (
    select max_contacts, window_days,
           (channel_limits ->> (select channel from campaign))::integer as channel_max
    from contact_policy
),
candidates as (
    select cc.customer_id from campaign_customers cc
    where cc.campaign_id = $1 and cc.tenant_name = $2
      and cc.customer_id between $3 and $4
      and cc.delivery_status = 'pending' and cc.released_at is null
),
-- Each candidate judged by its own index probes (its consent row; its contacts in the window,
-- across every tenant: the ledger is readable platform-wide, a settled contact counted by its
-- send, an unsettled one while its send may still come, V022), so the work grows with the
-- candidates whatever the planner's statistics say (`deliveries::release`).
judged as (
    select k.customer_id,
           case
               when not consent_allows(
                        (select s.status from customer_consents s
                         where s.customer_id = k.customer_id
                           and s.channel = (select channel from campaign)),
                        (select unknown_consent_allowed from campaign))
                   then 'consent'
               when contact_cap_reached(c.total, c.on_channel, p.max_contacts, p.channel_max)
                   then 'contact_pressure'
               -- Only a customer who would be contacted now can be held out: consent and
               -- the cap do not bias the control group.
               when in_holdout((select holdout_seed from campaign), k.customer_id,
                               (select holdout_percent from campaign))
                   then 'control'
           end as held
    from candidates k
    left join policy p on true
    left join lateral (
        select count(*) as total,
               count(*) filter (where l.channel = (select channel from campaign)) as on_channel
        from customer_contacts l
        where p.max_contacts is not null
          and l.customer_id = k.customer_id
          and contact_counts(l.contact_at, l.open_until, l.settled, p.window_days)
    ) c on true
),
suppressed as (
    update campaign_customers cc
    set delivery_status = 'suppressed', suppression_reason = j.held, updated_at = now()
    from judged j
    where j.held in ('consent', 'contact_pressure') and cc.campaign_id = $1
      and cc.customer_id between $3 and $4 and cc.customer_id = j.customer_id
    returning cc.suppression_reason
),
-- The control group: assigned now, never released, never in the ledger.
control as (
    update campaign_customers cc
    set delivery_status = 'control', assigned_at = now(), updated_at = now()
    from judged j
    where j.held = 'control' and cc.campaign_id = $1
      and cc.customer_id between $3 and $4 and cc.customer_id = j.customer_id
    returning cc.customer_id
),
released as (
    update campaign_customers cc
    set released_at = now(), updated_at = now()
    from judged j
    where j.held is null and cc.campaign_id = $1
      and cc.customer_id between $3 and $4 and cc.customer_id = j.customer_id
    returning cc.customer_id
),
ledger as (
    insert into customer_contacts (campaign_id, customer_id, tenant_name, channel, contact_at,
                                   open_until, settled)
    select $1, r.customer_id, $2, (select channel from campaign), now(),
           (select ends_at from campaign), false
    from released r
    on conflict do nothing
),
-- The campaign remembers its first release (V018): deletion is judged from it, not from
-- rows archiving or the ledger's prune remove. And the earliest end it released under
-- (V027: no ledger row's open_until is earlier), which the report statement reads; the row
-- is written only when either changes.
first_release as (
    update campaigns
    set first_released_at = coalesce(first_released_at, now()),
        released_until = least(released_until, (select ends_at from campaign))
    where id = $1 and tenant_name = $2 and exists (select 1 from released)
      and (first_released_at is null or released_until is null
           or released_until > (select ends_at from campaign))
)
select (select count(*) from released),
       (select count(*) from suppressed where suppression_reason = 'contact_pressure'),
       (select count(*) from suppressed where suppression_reason = 'consent'),
       (select count(*) from control)
