-- V004: what customer data, campaigns and the campaign processor need on top of the seed
-- schema. The seed's CHECK constraints stay as they are.

-- CUSTOMERS
-- attributes: source fields without a column of their own (always a JSON object).
-- updated_at: last change by the API or an import.
-- The campaign processor scans customers by id ranges (the primary key) and the list pages
-- through them by id (keyset pagination), so no further index is needed for either; the
-- indexes below serve the list's filters.
alter table customers
    add column attributes jsonb not null default '{}',
    add column updated_at timestamptz not null default now(),
    alter column created_at type timestamptz using created_at at time zone 'UTC',
    alter column created_at set not null,
    add constraint customers_attributes_is_object check (jsonb_typeof(attributes) = 'object');

create index idx_customers_segment on customers (segment, id);
create index idx_customers_kyc_status on customers (kyc_status, id);

-- CAMPAIGNS
-- processing_status: idle (never processed), queued (a job is on the queue), running (the job
-- was split into ranges that are being expanded), done, failed (last_error says why).
-- processing_job: the job the processor acts on; a message of an older job is ignored.
-- ranges_total / ranges_done: how far a split job has got.
-- matched_count: rows in campaign_customers after the last finished job.
alter table campaigns
    alter column tenant_name set not null,
    alter column status set not null,
    alter column selection_criteria set default '{}',
    alter column created_at type timestamptz using created_at at time zone 'UTC',
    alter column created_at set not null,
    add column updated_at timestamptz not null default now(),
    add column processing_status text not null default 'idle',
    add column processing_job uuid,
    add column ranges_total integer not null default 0,
    add column ranges_done integer not null default 0,
    add column matched_count bigint not null default 0,
    add column processed_at timestamptz,
    add column last_error text,
    add constraint campaigns_processing_status_known
        check (processing_status in ('idle', 'queued', 'running', 'done', 'failed')),
    add constraint campaigns_dates_ordered check (start_date <= end_date),
    add constraint campaigns_criteria_is_object
        check (selection_criteria is null or jsonb_typeof(selection_criteria) = 'object');

create index idx_campaigns_tenant_created on campaigns (tenant_name, created_at desc, id desc);

-- One row per finished customer-id range of a processing job: a redelivered range message
-- finds its row and changes nothing.
create table campaign_processing_ranges (
    campaign_id integer not null references campaigns(id) on delete cascade,
    job_id uuid not null,
    range_index integer not null,
    inserted bigint not null,
    finished_at timestamptz not null default now(),
    primary key (campaign_id, job_id, range_index)
);

-- CAMPAIGN CUSTOMERS
-- updated_at: when the row last changed (selection or a delivery report).
-- provider_message_id / failure_reason: what the delivery provider reported.
-- Delivery reports update each row about once; no index covers the columns they change, and
-- pages keep free space, so those updates stay heap-only (HOT) and cheap. Pages of one
-- campaign's customers (also by status) walk the primary key (campaign_id, customer_id),
-- which also serves every lookup by campaign: the seed's single-column index on campaign_id
-- is redundant and only slows inserts down.
alter table campaign_customers
    alter column delivery_status set not null,
    alter column sent_at type timestamptz using sent_at at time zone 'UTC',
    add column updated_at timestamptz not null default now(),
    add column provider_message_id text,
    add column failure_reason text,
    set (fillfactor = 80);
drop index idx_campaign_customers_campaign_id;
