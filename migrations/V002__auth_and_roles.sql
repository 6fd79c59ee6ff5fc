-- V002: what authentication and role-based access need on top of the seed schema.

-- Timestamps: the seed's TIMESTAMP columns become TIMESTAMPTZ so every API answer carries an
-- unambiguous instant (RFC 3339 with offset). Existing values are read as UTC.
alter table users alter column created_at type timestamptz using created_at at time zone 'UTC';
alter table tenants alter column created_at type timestamptz using created_at at time zone 'UTC';
alter table offers alter column created_at type timestamptz using created_at at time zone 'UTC';
alter table offers alter column updated_at type timestamptz using updated_at at time zone 'UTC';
alter table offer_audit_logs alter column created_at type timestamptz using created_at at time zone 'UTC';
alter table customers alter column created_at type timestamptz using created_at at time zone 'UTC';
alter table campaigns alter column created_at type timestamptz using created_at at time zone 'UTC';
alter table campaign_customers alter column sent_at type timestamptz using sent_at at time zone 'UTC';

-- USERS
-- tokens_valid_after: access tokens issued before this instant are rejected (set on every
--   password change, so the change signs out every session).
-- failed_login_*: the per-account login throttle (10 failures within 15 minutes → 429).
alter table users
    alter column is_super_admin set not null,
    alter column created_at set not null,
    add column tokens_valid_after timestamptz not null default now(),
    add column failed_login_count integer not null default 0,
    add column failed_login_window_started_at timestamptz,
    add column updated_at timestamptz not null default now(),
    add constraint users_username_format check (username ~ '^[a-z0-9][a-z0-9._@-]{1,63}$'),
    add constraint users_failed_login_count_non_negative check (failed_login_count >= 0);

-- TENANTS
alter table tenants
    alter column created_at set not null,
    add column updated_at timestamptz not null default now(),
    add constraint tenants_name_format check (name ~ '^[a-z][a-z0-9_]{1,49}$');

-- TENANT ROLES
-- A role is a named set of permissions inside one tenant. Every tenant gets the four default
-- roles (admin, create, approver, read_only) when it is created; a super admin may add
-- custom ones. Permission names are those of shared::auth::Permission (e.g. 'offer.read').
create table tenant_roles (
    tenant_name text not null references tenants(name) on delete cascade,
    role text not null,
    description text,
    permissions text[] not null default '{}',
    is_default boolean not null default false,
    created_at timestamptz not null default now(),
    constraint tenant_roles_pkey primary key (tenant_name, role),
    constraint tenant_roles_role_format check (role ~ '^[a-z][a-z0-9_]{1,49}$')
);

-- Tenants and assignments that predate this migration: give existing tenants the default
-- roles (permissions as defined when this migration was written) and keep any other role
-- already assigned, with no permissions, so the foreign key below holds.
insert into tenant_roles (tenant_name, role, description, permissions, is_default)
select t.name, d.role, d.description, d.permissions, true
from tenants t
cross join (values
    ('admin', 'Full control of the tenant''s offers and campaigns',
     array['offer.read','offer.create','offer.edit','offer.edit_any','offer.submit','offer.review',
           'offer.comment','offer.delete','offer.audit','campaign.read','campaign.write',
           'campaign.manage','campaign.delete','campaign.process']),
    ('create', 'Writes offers and campaigns (maker)',
     array['offer.read','offer.create','offer.edit','offer.submit','offer.comment',
           'campaign.read','campaign.write']),
    ('approver', 'Approves or rejects submitted offers (checker)',
     array['offer.read','offer.review','campaign.read']),
    ('read_only', 'Reads offers and campaigns', array['offer.read','campaign.read'])
) as d(role, description, permissions);

insert into tenant_roles (tenant_name, role)
select distinct tenant_name, role from user_tenant_roles where tenant_name is not null
on conflict do nothing;

-- USER TENANT ROLES: an assignment must name a role that exists in that tenant; removing the
-- role, the tenant or the user removes the assignment.
alter table user_tenant_roles
    alter column username set not null,
    alter column tenant_name set not null,
    add column assigned_by text references users(username) on delete set null,
    add column assigned_at timestamptz not null default now(),
    add constraint user_tenant_roles_role_fkey foreign key (tenant_name, role)
        references tenant_roles (tenant_name, role) on delete cascade;

-- Seed offers.created_by / tenants.created_by keep their plain foreign keys: a user who
-- authored records cannot be deleted (the API answers 409 and suggests removing the roles).
