-- V011: marketing consent per customer and channel, campaign channels, contact pressure
-- across tenants, and the release of deliveries to providers.
set local app.scope = 'platform';

-- CONSENT. Customers are shared by every tenant, and so is what they said: one current state
-- per (customer, channel) — no row means `unknown` — and the history of every change.
--   source: where it came from (`api`, `csv import`, `provider: unsubscribed`, …).
--   recorded_by: the user, or the webhook key id for a provider.
create table customer_consents (
    customer_id uuid not null references customers (id) on delete cascade,
    channel text not null,
    status text not null,
    source text not null,
    recorded_at timestamptz not null default now(),
    recorded_by text,
    constraint customer_consents_pkey primary key (customer_id, channel),
    constraint customer_consents_channel_known check (channel in ('email', 'sms', 'push', 'call')),
    constraint customer_consents_status_known check (status in ('opted_in', 'opted_out'))
);

create table customer_consent_history (
    id bigint generated always as identity primary key,
    customer_id uuid not null references customers (id) on delete cascade,
    channel text not null,
    status text not null,
    source text not null,
    recorded_at timestamptz not null default now(),
    recorded_by text,
    constraint customer_consent_history_status_known
        check (status in ('opted_in', 'opted_out', 'unknown'))
);
create index customer_consent_history_customer on customer_consent_history (customer_id, id);
revoke update, delete on customer_consent_history from offers_api;

-- Whether a tenant treats `unknown` consent as consent (default: no, the GDPR-safe choice).
alter table tenants add column unknown_consent_allowed boolean not null default false;

-- CAMPAIGN CHANNEL: what a campaign is sent through (and so which consent it needs).
alter table campaigns
    add column channel text not null default 'email',
    add constraint campaigns_channel_known check (channel in ('email', 'sms', 'push', 'call'));

-- DELIVERIES.
--   suppressed (+ suppression_reason): matched, but never to be sent — `consent` (set at
--     selection: opted out, or unknown where unknown is not consent) or `contact_pressure`
--     (set at release: the customer is at the platform's cap).
--   released_at: when the delivery was released to the provider (activation, or
--     `…/release`); pending rows without it are prepared, not yet given out.
alter table campaign_customers drop constraint campaign_customers_delivery_status_check;
alter table campaign_customers
    add column suppression_reason text,
    add column released_at timestamptz,
    add constraint campaign_customers_delivery_status_known
        check (delivery_status in ('pending', 'sent', 'failed', 'suppressed')),
    add constraint campaign_customers_suppression_reason_known
        check (suppression_reason in ('consent', 'contact_pressure')),
    add constraint campaign_customers_suppressed_has_reason
        check ((delivery_status = 'suppressed') = (suppression_reason is not null));
-- Deliveries of campaigns activated before this migration were given out already.
update campaign_customers cc set released_at = coalesce(cc.sent_at, cc.updated_at, now())
from campaigns c where c.id = cc.campaign_id and c.status <> 'draft';
-- The providers' feed: released deliveries not yet reported, by customer id.
create index campaign_customers_feed on campaign_customers (campaign_id, customer_id)
    where released_at is not null and delivery_status = 'pending';

-- CONTACT POLICY: at most max_contacts contacts per customer per rolling window_days days,
-- across every tenant and channel, and optionally per channel (channel_limits:
-- {"sms": 1, …}). One row, or none (no cap). Set by super admins.
create table contact_policy (
    singleton boolean primary key default true,
    max_contacts integer not null,
    window_days integer not null,
    channel_limits jsonb not null default '{}',
    updated_by text,
    updated_at timestamptz not null default now(),
    constraint contact_policy_one_row check (singleton),
    constraint contact_policy_max_positive check (max_contacts >= 1),
    constraint contact_policy_window check (window_days between 1 and 366),
    constraint contact_policy_limits_is_object check (jsonb_typeof(channel_limits) = 'object')
);

-- CONTACT LEDGER: one row per released delivery that counts against a customer's cap — a
-- delivery awaiting its report (contact_at: its release) or reported sent (contact_at: when
-- sent); a failed delivery leaves it. Counting awaiting deliveries too is what keeps two
-- releases at the same moment from passing the cap together.
-- Row-level security: every tenant may READ the whole ledger (the cap spans tenants by
-- design; it holds ids and times, no content), but writes only its own rows.
create table customer_contacts (
    campaign_id integer not null references campaigns (id) on delete cascade,
    customer_id uuid not null references customers (id) on delete cascade,
    tenant_name text not null references tenants (name) on delete cascade,
    channel text not null,
    contact_at timestamptz not null,
    constraint customer_contacts_pkey primary key (campaign_id, customer_id)
);
create index customer_contacts_customer on customer_contacts (customer_id, contact_at);

alter table customer_contacts enable row level security;
alter table customer_contacts force row level security;
create policy contacts_read_everywhere on customer_contacts for select using (true);
create policy contacts_insert_own on customer_contacts for insert
    with check (app_may_see_tenant(tenant_name));
create policy contacts_update_own on customer_contacts for update
    using (app_may_see_tenant(tenant_name)) with check (app_may_see_tenant(tenant_name));
create policy contacts_delete_own on customer_contacts for delete
    using (app_may_see_tenant(tenant_name));

insert into customer_contacts (campaign_id, customer_id, tenant_name, channel, contact_at)
select cc.campaign_id, cc.customer_id, cc.tenant_name, c.channel,
       coalesce(cc.sent_at, cc.released_at)
from campaign_customers cc join campaigns c on c.id = cc.campaign_id
where cc.released_at is not null and cc.delivery_status in ('pending', 'sent');
