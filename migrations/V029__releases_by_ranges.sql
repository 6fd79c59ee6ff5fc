-- V029: a large campaign's release runs by customer-id ranges, on the campaign queue.
--
-- A release (release.sql) of a campaign with millions of prepared deliveries took 21 minutes
-- at 10,000,000 customers inside the activation request: longer than API Gateway's 30 s and
-- Lambda's 15 minutes. For a campaign of more than CAMPAIGN_RELEASE_BATCH selected customers (matched_count), the activation (and
-- `…/release`, and the scheduler's start) now makes the campaign active and writes one
-- release message per customer-id range to campaign_outbox, in the same transaction; the
-- campaign processor releases each range in its own transaction under the release lock.
--
-- RELEASE JOB (campaigns)
-- release_job: the current release job, null before the first queued release.
-- release_status: 'running' while ranges remain, 'done' once every range released,
--   'stopped' when a range found the campaign no longer active (paused or completed: the
--   rest is released by the next activation, as a new job), 'failed' when the relay gave
--   the job up after CAMPAIGN_MAX_ATTEMPTS re-drives (`…/release` starts a new job).
-- release_ranges_total / release_ranges_done: its ranges, and those finished.
-- release_attempts / release_heartbeat: as processing_attempts and processing_heartbeat
--   (V008): the relay re-drives a running job's unfinished ranges once it made no progress
--   for CAMPAIGN_STALE_AFTER_SECONDS and has no unsent message.
alter table campaigns
    add column release_job uuid,
    add column release_status text,
    add column release_ranges_total integer not null default 0,
    add column release_ranges_done integer not null default 0,
    add column release_attempts integer not null default 0,
    add column release_heartbeat timestamptz,
    add constraint campaigns_release_status_valid
        check (release_status in ('running', 'done', 'stopped', 'failed')),
    add constraint campaigns_release_job_complete
        check ((release_job is null) = (release_status is null)),
    add constraint campaigns_release_ranges_valid
        check (release_ranges_done >= 0 and release_ranges_total >= 0
               and release_attempts >= 0);

create index idx_campaigns_running_releases on campaigns (release_heartbeat)
    where release_status = 'running';

-- RELEASE RANGES
-- One row per finished range of a release job, with what it did; written in the range's
-- transaction, so a redelivered message finds it and changes nothing. Visible through its
-- campaign's policy, as campaign_processing_ranges (V014).
create table campaign_release_ranges (
    campaign_id integer not null references campaigns(id) on delete cascade,
    job_id uuid not null,
    range_index integer not null,
    released bigint not null default 0,
    suppressed_by_pressure bigint not null default 0,
    suppressed_by_consent bigint not null default 0,
    control bigint not null default 0,
    finished_at timestamptz not null default now(),
    primary key (campaign_id, job_id, range_index),
    constraint campaign_release_ranges_index_valid check (range_index >= 0)
);

alter table campaign_release_ranges enable row level security;
alter table campaign_release_ranges force row level security;
create policy tenant_isolation on campaign_release_ranges
    using (exists (select 1 from campaigns c where c.id = campaign_id))
    with check (exists (select 1 from campaigns c where c.id = campaign_id));

-- OUTBOX
-- step: what a campaign_outbox message asks: 'select' (a selection job's plan or range, as
-- before) or 'release' (a range of a release job; job_id is the release job).
alter table campaign_outbox
    add column step text not null default 'select',
    add constraint campaign_outbox_step_valid check (step in ('select', 'release')),
    add constraint campaign_outbox_release_has_range
        check (step = 'select' or range_index is not null);
