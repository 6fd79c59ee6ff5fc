-- V003: what the offer workflow needs on top of the seed schema.

-- TENANTS
-- offer_schema: a JSON Schema every offer's data in the tenant must satisfy (null: any object).
-- require_maker_checker: nobody approves or rejects an offer they created or last edited.
alter table tenants
    add column offer_schema jsonb,
    add column require_maker_checker boolean not null default true,
    add constraint tenants_offer_schema_is_object
        check (offer_schema is null or jsonb_typeof(offer_schema) = 'object');

-- OFFERS
-- version: optimistic concurrency (sent as the ETag; a stale If-Match answers 412).
-- last_edited_by: the last maker, for the maker-checker rule.
alter table offers
    alter column tenant_name set not null,
    alter column created_at set not null,
    alter column updated_at set not null,
    add column version integer not null default 1,
    add column last_edited_by text references users(username),
    add constraint offers_data_is_object check (jsonb_typeof(data) = 'object');

create index idx_offers_tenant_created on offers (tenant_name, created_at desc, id desc);

-- OFFER AUDIT LOGS
-- The trail must outlive the offer: the row of a deletion would otherwise be removed by the
-- cascade from offers. offer_id stays a plain column; the tenant scopes (and, when a tenant
-- is deleted, removes) the trail.
alter table offer_audit_logs drop constraint offer_audit_logs_offer_id_fkey;
alter table offer_audit_logs add column tenant_name text references tenants(name) on delete cascade;
update offer_audit_logs l set tenant_name = o.tenant_name from offers o where o.id = l.offer_id;
delete from offer_audit_logs where tenant_name is null;
alter table offer_audit_logs
    alter column tenant_name set not null,
    alter column offer_id set not null,
    alter column created_at set not null,
    add constraint offer_audit_logs_action_known
        check (action in ('create', 'update', 'status_change', 'comment', 'delete'));
create index idx_offer_audit_logs_tenant_offer on offer_audit_logs (tenant_name, offer_id, id);
