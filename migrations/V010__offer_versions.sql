-- V010: offer versions. Every approved content of an offer is an immutable, numbered version;
-- campaigns pin one; an offer can be retired.
set local app.scope = 'platform';

-- OFFER VERSIONS: what a checker approved, exactly, numbered 1, 2, … per offer. Written once,
-- by the approval that made it (never updated: the API role may only insert and read).
--   authors: who created or changed the content since the previous version (the people the
--     four-eyes rule barred from approving it).
create table offer_versions (
    tenant_name text not null references tenants (name) on delete cascade,
    offer_id integer not null references offers (id) on delete cascade,
    version_number integer not null,
    data jsonb not null,
    comments text,
    authors text[] not null default '{}',
    approved_by text not null,
    approved_at timestamptz not null default now(),
    approval_comment text,
    constraint offer_versions_pkey primary key (offer_id, version_number),
    constraint offer_versions_number_positive check (version_number >= 1),
    constraint offer_versions_data_is_object check (jsonb_typeof(data) = 'object')
);
create index offer_versions_tenant on offer_versions (tenant_name, offer_id);

alter table offer_versions enable row level security;
alter table offer_versions force row level security;
create policy tenant_isolation on offer_versions
    using (app_may_see_tenant(tenant_name)) with check (app_may_see_tenant(tenant_name));
revoke update, delete on offer_versions from offers_api;

-- OFFERS
--   live_version: the approved version campaigns get by default (null until the first
--     approval).
--   draft_base_version: the live version a pending draft was opened from (null when no
--     draft of an approved offer is pending); its approval must find it still live.
--   retired_*: a retired offer takes no new campaigns and no edits; campaigns keep their
--     pinned version.
alter table offers
    add column live_version integer,
    add column draft_base_version integer,
    add column retired_at timestamptz,
    add column retired_by text,
    add column retirement_reason text,
    add constraint offers_live_version_exists
        foreign key (id, live_version) references offer_versions (offer_id, version_number)
        deferrable initially deferred;

-- Existing approved offers become version 1, approved by whoever approved them last (from the
-- audit trail), at that time.
insert into offer_versions (tenant_name, offer_id, version_number, data, comments, authors,
                            approved_by, approved_at, approval_comment)
select o.tenant_name, o.id, 1, o.data, o.comments,
       array(select distinct a from unnest(array[o.created_by, o.last_edited_by]) a
             where a is not null order by a),
       coalesce(a.performed_by, o.last_edited_by, o.created_by, 'unknown'),
       coalesce(a.created_at, o.updated_at), a.comment
from offers o
left join lateral (
    select performed_by, created_at, comment from offer_audit_logs l
    where l.tenant_name = o.tenant_name and l.offer_id = o.id and l.action = 'status_change'
      and l.new_data ->> 'status' = 'approved'
    order by l.id desc limit 1
) a on true
where o.status = 'approved';
update offers set live_version = 1 where status = 'approved';

-- The audit trail knows retirement.
alter table offer_audit_logs drop constraint offer_audit_logs_action_known;
alter table offer_audit_logs add constraint offer_audit_logs_action_known
    check (action in ('create', 'update', 'status_change', 'comment', 'delete', 'retire'));

-- CAMPAIGNS pin the version they deliver. Existing campaigns pin version 1 (their offer was
-- approved when they were created, and approved offers never changed before versions).
-- Null only for a campaign whose offer has no version (data from before this API).
alter table campaigns
    add column offer_version integer,
    add constraint campaigns_offer_version_exists
        foreign key (offer_id, offer_version) references offer_versions (offer_id, version_number);
update campaigns c set offer_version = 1
where exists (select 1 from offer_versions v where v.offer_id = c.offer_id and v.version_number = 1);

-- CAMPAIGN AUDIT LOGS: who moved a campaign to another offer version, and when (more
-- actions may follow). Like the offer trail it outlives its campaign: campaign_id is a
-- plain column, the tenant scopes it.
create table campaign_audit_logs (
    id bigint generated always as identity primary key,
    tenant_name text not null references tenants (name) on delete cascade,
    campaign_id integer not null,
    action text not null,
    performed_by text not null,
    old_data jsonb,
    new_data jsonb,
    comment text,
    created_at timestamptz not null default now(),
    constraint campaign_audit_logs_action_known check (action in ('offer_version_change'))
);
create index campaign_audit_logs_campaign on campaign_audit_logs (tenant_name, campaign_id, id);

alter table campaign_audit_logs enable row level security;
alter table campaign_audit_logs force row level security;
create policy tenant_isolation on campaign_audit_logs
    using (app_may_see_tenant(tenant_name)) with check (app_may_see_tenant(tenant_name));
revoke update, delete on campaign_audit_logs from offers_api;
