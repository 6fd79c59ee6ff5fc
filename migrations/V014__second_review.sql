-- V014: what the second outside review found in the database's own walls.
--
-- 1. THE PLATFORM SCOPE IS A ROLE, NOT A SETTING.
-- Until now a row was visible in the platform scope when the setting `app.scope` was
-- `platform`, and any session may set any setting: injected SQL on a tenant connection could
-- write `set app.scope = 'platform'` and see every tenant. The scope is now membership of the
-- group role `offers_platform` (NOLOGIN, a member of `offers_api` for its table privileges),
-- granted only to the platform pool's login role (DATABASE_PLATFORM_URL), checked with
-- `pg_has_role`. A session cannot give itself a role it was not granted, and `set role`
-- needs that membership too.
--
-- The rule of every policy (app_may_see_tenant):
--   * a transaction that set `app.tenant` (shared::db::tenant_transaction, TenantRead) sees
--     that tenant's rows only, on any connection, platform or not;
--   * otherwise a member of `offers_platform` sees every tenant's rows;
--   * otherwise nothing.
-- `app.scope` means nothing any more. `app.tenant` is still a setting: injected SQL on a
-- tenant connection could name another tenant (README, Security, says so).
--
-- The tables' owner (who runs migrations) is granted the role too, so a later data migration
-- sees every tenant under FORCE ROW LEVEL SECURITY; it owns the tables and could switch the
-- policies off in any case. A superuser bypasses row-level security altogether.
do $$
declare
    platform_role name;
begin
    if not exists (select from pg_roles where rolname = 'offers_platform') then
        create role offers_platform nologin nosuperuser nobypassrls nocreatedb nocreaterole
            in role offers_api;
    end if;
    if not pg_has_role('offers_platform', 'offers_api', 'member') then
        grant offers_api to offers_platform;
    end if;
    if not (select rolsuper from pg_roles where rolname = current_user) then
        execute format('grant offers_platform to %I', current_user);
    end if;
    -- An upgrade keeps working: a login role that the old scheme put in the platform scope
    -- (a role default `app.scope = platform`, as `ensure-api-role.sh … platform` made it)
    -- joins offers_platform now, so the platform paths see every tenant from this commit on.
    for platform_role in
        select distinct r.rolname from pg_db_role_setting s join pg_roles r on r.oid = s.setrole
        where s.setconfig @> array['app.scope=platform']
    loop
        if not pg_has_role(platform_role, 'offers_platform', 'member') then
            execute format('grant offers_platform to %I', platform_role);
        end if;
    end loop;
end
$$;

-- The setting is read first, so a tenant transaction never asks for role membership (the
-- hot path of every tenant route); the platform's membership check is cached per backend.
create or replace function app_may_see_tenant(row_tenant text) returns boolean
language sql stable parallel safe
as $$
    select case
        when coalesce(current_setting('app.tenant', true), '') <> ''
            then row_tenant = current_setting('app.tenant', true)
        else pg_has_role('offers_platform', 'member')
    end
$$;

-- 2. EVERY TABLE THAT CARRIES A TENANT HAS A POLICY.
-- campaign_processing_ranges and webhook_messages carry theirs through their parent (the
-- campaign, the key): a row is visible when its parent is, under the parent's own policy.
alter table campaign_processing_ranges enable row level security;
alter table campaign_processing_ranges force row level security;
create policy tenant_isolation on campaign_processing_ranges
    using (exists (select 1 from campaigns c where c.id = campaign_id))
    with check (exists (select 1 from campaigns c where c.id = campaign_id));

alter table webhook_messages enable row level security;
alter table webhook_messages force row level security;
create policy tenant_isolation on webhook_messages
    using (exists (select 1 from webhook_keys k where k.id = key_id))
    with check (exists (select 1 from webhook_keys k where k.id = key_id));

-- 3. AUDIT TRAILS ARE APPEND-ONLY FOR THE API.
-- The offer trail, which the four-eyes rule reads (who wrote the content since the last
-- version), joins the others (tenant_access_audit_logs, offer_versions, campaign_audit_logs,
-- customer_consent_history): insert and select only. Cascades from a deleted tenant still
-- run (referential actions run as the table's owner).
revoke update, delete, truncate on offer_audit_logs from offers_api;

-- 4. THE CONTACT LEDGER NEVER LOSES A ROW TO A DELETION.
-- Deleting a campaign (or a tenant) used to cascade into customer_contacts, freeing the
-- contact slots its deliveries held: other campaigns could then contact the same customers
-- inside the cap's window. A campaign that released anything is no longer deleted by the
-- API (409), and the database refuses to delete a campaign or a tenant that still has rows
-- in the ledger. A customer's own deletion still takes its rows (nobody is left to contact).
alter table customer_contacts
    drop constraint customer_contacts_campaign_id_fkey,
    add constraint customer_contacts_campaign_id_fkey
        foreign key (campaign_id) references campaigns (id) on delete restrict,
    drop constraint customer_contacts_tenant_name_fkey,
    add constraint customer_contacts_tenant_name_fkey
        foreign key (tenant_name) references tenants (name) on delete restrict;

-- Every deletion the API allows is in the campaign audit trail (which outlives the campaign).
alter table campaign_audit_logs drop constraint campaign_audit_logs_action_known;
alter table campaign_audit_logs add constraint campaign_audit_logs_action_known
    check (action in ('offer_version_change', 'delete'));
