-- Holdout (control) groups, engagement stages and conversions: did an offer work
-- (issue 36).
--
-- * campaigns.holdout_percent: the share of the customers a release would contact that it
--   holds back instead, 0 to 50 with two decimals (0: no holdout). Fixed once the campaign
--   leaves draft, like conversion_window_days: the analysis is planned before the first
--   contact.
-- * campaigns.holdout_seed: 16 random bytes per campaign, the key of the assignment's hash.
--   It is shown with the campaign, so anyone can recompute the assignment.
-- * campaigns.conversion_window_days: conversions count until the campaign's end plus this
--   many days (0 to 365).
-- * campaign_customers.delivery_status 'control', with assigned_at: a customer the release
--   would have contacted now (consent given, cap not reached, window open), held back by the
--   holdout. Never released (released_at stays null, so never in the feed and never
--   reported), never in the contact ledger (nobody contacted them), never judged again.

alter table campaigns
    add column holdout_percent numeric(4, 2) not null default 0
        constraint campaigns_holdout_percent_range check (holdout_percent between 0 and 50),
    add column holdout_seed bytea not null default public.gen_random_bytes(16)
        constraint campaigns_holdout_seed_length check (length(holdout_seed) = 16),
    add column conversion_window_days integer not null default 30
        constraint campaigns_conversion_window_range
            check (conversion_window_days between 0 and 365);

alter table campaign_customers add column assigned_at timestamptz;

-- Engagement from providers: the first time each stage was reported. The delivery status
-- is the furthest stage reached (clicked, opened, delivered), else the latest result (sent
-- or failed). No index names these columns, so a report's update stays heap-only (V012).
alter table campaign_customers
    add column delivered_at timestamptz,
    add column opened_at timestamptz,
    add column clicked_at timestamptz;

-- Whether a delivery was sent: reported sent, or any engagement stage after it (the one
-- definition the summary and the results' funnel count by).
create function delivery_was_sent(delivery_status text) returns boolean
language sql immutable parallel safe
as $$
    select delivery_status in ('sent', 'delivered', 'opened', 'clicked')
$$;

-- The checks are added unvalidated and validated apart: validation scans the table under a
-- lock that lets reads and writes go on.
alter table campaign_customers drop constraint campaign_customers_delivery_status_known;
alter table campaign_customers add constraint campaign_customers_delivery_status_known
    check (delivery_status in ('pending', 'sent', 'failed', 'suppressed', 'expired', 'control',
                               'delivered', 'opened', 'clicked'))
    not valid;
alter table campaign_customers validate constraint campaign_customers_delivery_status_known;
alter table campaign_customers add constraint campaign_customers_control_assigned
    check ((delivery_status = 'control') = (assigned_at is not null)) not valid;
alter table campaign_customers validate constraint campaign_customers_control_assigned;

-- The assignment's draw: the first 4 bytes of HMAC-SHA256 (RFC 2104) keyed with the
-- campaign's seed over the customer id's 16 bytes (RFC 9562 byte order), read as an
-- unsigned big-endian integer, 0 to 2^32 - 1. In Python:
--   int.from_bytes(hmac.new(seed, uuid.UUID(customer).bytes, "sha256").digest()[:4], "big")
create function holdout_draw(seed bytea, customer uuid) returns bigint
language sql immutable parallel safe strict
as $$
    select ('x' || encode(substr(public.hmac(uuid_send(customer), seed, 'sha256'), 1, 4),
                          'hex'))::bit(32)::bigint
$$;

-- Whether a customer is in the campaign's control group: its draw lies below the holdout's
-- share of 2^32, compared exactly in integers (draw * 10000 < basis points * 2^32, a
-- basis point being 0.01 %).
create function in_holdout(seed bytea, customer uuid, holdout_percent numeric)
returns boolean
language sql immutable parallel safe
as $$
    select holdout_percent > 0
       and holdout_draw(seed, customer) * 10000
           < (holdout_percent * 100)::bigint * 4294967296
$$;

-- Conversions: what the bank's own systems saw a customer do (open the card, draw the
-- loan), one row per event, idempotent by the tenant's event id. Facts, like the audit
-- trails: the tenant role inserts and reads them, never changes them. Attribution to
-- campaigns is computed when results are read (shared::db::results), not stored.
create table conversions (
    tenant_name text not null references tenants (name) on delete cascade,
    event_id text not null
        constraint conversions_event_id_length check (length(event_id) between 1 and 200),
    customer_id uuid not null references customers (id) on delete cascade,
    occurred_at timestamptz not null,
    offer_id integer,
    value numeric(20, 4),
    currency text
        constraint conversions_currency_code check (currency ~ '^[A-Z]{3}$'),
    received_at timestamptz not null default now(),
    constraint conversions_pkey primary key (tenant_name, event_id),
    constraint conversions_value_has_currency check ((value is null) = (currency is null))
);
-- Results read a campaign's customers' conversions by customer, then time.
create index conversions_customer on conversions (customer_id, occurred_at);

alter table conversions enable row level security;
alter table conversions force row level security;
create policy tenant_isolation on conversions
    using (app_may_see_tenant(tenant_name)) with check (app_may_see_tenant(tenant_name));
revoke update, delete on conversions from offers_api;

-- conversion.write (POST /tenants/{t}/conversions) is held by the default admin role.
update tenant_roles
set permissions = array_append(permissions, 'conversion.write')
where role = 'admin' and is_default and not ('conversion.write' = any (permissions));

-- The counts a campaign's results are computed from, taken with its archive's export (null
-- for archives made before this migration). Housekeeping archives a campaign only once its
-- conversion window has closed, so these counts are final.
alter table campaign_archives add column results jsonb;
