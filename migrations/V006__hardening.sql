-- V006: fixes of the outside security review (sign-in throttle, tenant-scoped webhook keys,
-- contact details behind a permission). Row-level security follows in V007.

-- LOGIN THROTTLE
-- The per-account lockout (users.failed_login_*) let anyone lock any account. Failures are now
-- counted per (username, client address), per client address, and per username (a high
-- ceiling only), whether or not the username exists; see auth-api for the thresholds.
-- subject: SHA-256 of the counted key (usernames typed by strangers are not stored as typed).
alter table users
    drop constraint users_failed_login_count_non_negative,
    drop column failed_login_count,
    drop column failed_login_window_started_at;

create table login_failures (
    kind text not null,
    subject bytea not null,
    failures integer not null,
    window_started_at timestamptz not null,
    last_failure_at timestamptz not null,
    constraint login_failures_pkey primary key (kind, subject),
    constraint login_failures_kind_known check (kind in ('pair', 'client', 'account')),
    constraint login_failures_failures_positive check (failures > 0)
);
create index idx_login_failures_last_failure on login_failures (last_failure_at);

-- WEBHOOK KEYS
-- A key now belongs to one tenant: it reports deliveries of that tenant's campaigns only.
-- Existing keys: when exactly one tenant exists they are bound to it (they keep working);
-- otherwise they stay unbound and are refused (401) until an operator binds each one with
-- `offerctl webhook-key assign ID --tenant NAME` (README, "Delivery webhook keys").
alter table webhook_keys
    add column tenant_name text references tenants(name) on delete cascade;
update webhook_keys set tenant_name = (select name from tenants)
where (select count(*) from tenants) = 1;
create index idx_webhook_keys_tenant on webhook_keys (tenant_name, created_at desc);

-- CAMPAIGN CUSTOMERS
-- The tenant of each delivery row, so the row-level security policy of V007 filters it
-- without a join (and the webhook's tenant check is a column comparison).
alter table campaign_customers add column tenant_name text;
update campaign_customers cc set tenant_name = c.tenant_name
from campaigns c where c.id = cc.campaign_id;
alter table campaign_customers alter column tenant_name set not null;

-- CONTACT DETAILS
-- Names, e-mail addresses and phone numbers of the shared customer base appear in campaign
-- customer lists only for principals holding customer.contact.read: the default admin role
-- of every existing tenant gets it (as new tenants' admin role does).
update tenant_roles
set permissions = array_append(permissions, 'customer.contact.read')
where role = 'admin' and is_default and not ('customer.contact.read' = any(permissions));
