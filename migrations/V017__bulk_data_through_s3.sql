-- Bank-scale data through S3: customer files in, finished campaigns' deliveries out.
--
-- * customer_imports: the ledger of S3 imports (shared::bulk::import). S3 delivers an event
--   at least once; an import records its object's bucket, key, version id and ETag in the
--   same transaction as the rows it writes, so a redelivered or duplicated event for that
--   object version finds its row and changes nothing (it only writes the result object
--   again from `result`). A refused file (bad lines, too large, out of time) is recorded
--   too, in a transaction of its own after the import's was rolled back.
-- * tenants.retention_days: how long the deliveries of a tenant's completed campaigns stay
--   in the database after the campaign's end (default 400). The housekeeping function
--   (shared::bulk::archive) then exports them to S3 and deletes them.
-- * campaign_archives: one row per campaign whose deliveries were exported. `state` is
--   the archive's progress, each step committed before the next begins:
--     exported  the object and its manifest are written; nothing deleted yet
--     deleting  the object was read back and matched the manifest; rows are being
--               deleted in batches (only now, and only in this state)
--     archived  every delivery row is gone; `summary` answers the campaign's counts
--   A restore puts the rows back and deletes this row.

create table customer_imports (
    bucket text not null,
    key text not null,
    version_id text not null default '',
    etag text not null,
    status text not null,
    result jsonb not null,
    finished_at timestamptz not null default now(),
    constraint customer_imports_pkey primary key (bucket, key, version_id, etag),
    constraint customer_imports_status_known
        check (status in ('imported', 'rejected', 'too_large', 'timed_out', 'superseded'))
);

alter table tenants add column retention_days integer not null default 400
    constraint tenants_retention_days_range check (retention_days between 1 and 3650);

create table campaign_archives (
    campaign_id integer primary key references campaigns (id) on delete cascade,
    tenant_name text not null references tenants (name) on delete cascade,
    bucket text not null,
    key text not null,
    manifest_key text not null,
    rows bigint not null,
    sha256 text not null,
    columns text[] not null,
    summary jsonb not null,
    state text not null,
    exported_at timestamptz not null default now(),
    archived_at timestamptz,
    constraint campaign_archives_state_known check (state in ('exported', 'deleting', 'archived')),
    constraint campaign_archives_archived_has_time check ((state = 'archived') = (archived_at is not null))
);
create index campaign_archives_tenant on campaign_archives (tenant_name);

alter table campaign_archives enable row level security;
alter table campaign_archives force row level security;
create policy tenant_isolation on campaign_archives
    using (app_may_see_tenant(tenant_name)) with check (app_may_see_tenant(tenant_name));

-- Housekeeping's questions: which completed campaigns ended before their tenant's retention
-- (archive), and before the longest window a contact policy can count (ledger prune, which
-- then deletes by the ledger's primary key, campaign first: no index on contact_at, which
-- would end the heap-only updates of V013).
create index campaigns_completed_end on campaigns (ends_at) where status = 'completed';
