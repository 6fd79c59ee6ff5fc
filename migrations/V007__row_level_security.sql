-- V007: row-level security, a second wall behind the `tenant_name = $1` of every query.
--
-- Roles. Migrations run as the tables' owner. The API connects as a login role that is a
-- member of the group role `offers_api` created here (NOLOGIN, no BYPASSRLS, owns nothing):
-- deployments create their own login role in it, e.g.
--     create role offers_lambda login password '…' in role offers_api;
-- (the local run command, the tests and the SAM deploy guide do so).
--
-- Scopes. Every policy lets a row through when
--   * its tenant_name equals the transaction's `app.tenant` (set by
--     shared::db::tenant_transaction, which also clears `app.scope` for the transaction), or
--   * `app.scope` is `platform`: set only on the connections of the platform pool
--     (shared::db::platform_pool: super-admin routes, principal lookup, the processor, the
--     webhook's key lookup, offerctl), never by tenant routes.
-- A connection with neither sees no tenant rows at all. FORCE applies the policies to the
-- owner too (a superuser still bypasses them); data migrations after this one start with
-- `set local app.scope = 'platform';`.

do $$
begin
    if not exists (select from pg_roles where rolname = 'offers_api') then
        create role offers_api nologin nosuperuser nobypassrls nocreatedb nocreaterole;
    end if;
end
$$;

grant usage on schema public to offers_api;
grant select, insert, update, delete on all tables in schema public to offers_api;
grant usage, select on all sequences in schema public to offers_api;
revoke all on refinery_schema_history from offers_api;
alter default privileges in schema public
    grant select, insert, update, delete on tables to offers_api;
alter default privileges in schema public grant usage, select on sequences to offers_api;

-- The policy of every tenant-owned table: the transaction's tenant, or the platform scope.
create function app_may_see_tenant(row_tenant text) returns boolean
language sql stable parallel safe
as $$
    select row_tenant = current_setting('app.tenant', true)
        or current_setting('app.scope', true) = 'platform'
$$;
grant execute on function app_may_see_tenant(text) to offers_api;

alter table offers enable row level security;
alter table offers force row level security;
create policy tenant_isolation on offers
    using (app_may_see_tenant(tenant_name)) with check (app_may_see_tenant(tenant_name));

alter table offer_audit_logs enable row level security;
alter table offer_audit_logs force row level security;
create policy tenant_isolation on offer_audit_logs
    using (app_may_see_tenant(tenant_name)) with check (app_may_see_tenant(tenant_name));

alter table campaigns enable row level security;
alter table campaigns force row level security;
create policy tenant_isolation on campaigns
    using (app_may_see_tenant(tenant_name)) with check (app_may_see_tenant(tenant_name));

alter table campaign_customers enable row level security;
alter table campaign_customers force row level security;
create policy tenant_isolation on campaign_customers
    using (app_may_see_tenant(tenant_name)) with check (app_may_see_tenant(tenant_name));

alter table tenant_roles enable row level security;
alter table tenant_roles force row level security;
create policy tenant_isolation on tenant_roles
    using (app_may_see_tenant(tenant_name)) with check (app_may_see_tenant(tenant_name));

alter table user_tenant_roles enable row level security;
alter table user_tenant_roles force row level security;
create policy tenant_isolation on user_tenant_roles
    using (app_may_see_tenant(tenant_name)) with check (app_may_see_tenant(tenant_name));

alter table webhook_keys enable row level security;
alter table webhook_keys force row level security;
create policy tenant_isolation on webhook_keys
    using (app_may_see_tenant(tenant_name)) with check (app_may_see_tenant(tenant_name));
