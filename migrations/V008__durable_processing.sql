-- V008: durable campaign processing.
--
-- TRANSACTIONAL OUTBOX
-- A campaign job message is written in the same transaction as the campaign change that
-- needs it (a campaign created, `process-customers`, a plan split into ranges, a stale job
-- re-driven). The relay (shared::relay: right after each commit, and on a schedule) sends
-- unsent rows to the campaign queue and deletes them in one transaction; a crash between the
-- send and the delete sends the message again, which the processor ignores (it is
-- idempotent). So no job is lost between a commit and the queue.
-- range_index / range_count: null for a plan message, both set for a range message.
set local app.scope = 'platform';

create table campaign_outbox (
    id bigint generated always as identity primary key,
    campaign_id integer not null references campaigns(id) on delete cascade,
    tenant_name text not null,
    job_id uuid not null,
    range_index integer,
    range_count integer,
    created_at timestamptz not null default now(),
    constraint campaign_outbox_range_complete
        check ((range_index is null) = (range_count is null)),
    constraint campaign_outbox_range_valid
        check (range_index is null or (range_index >= 0 and range_index < range_count))
);
create index idx_campaign_outbox_job on campaign_outbox (job_id);

alter table campaign_outbox enable row level security;
alter table campaign_outbox force row level security;
create policy tenant_isolation on campaign_outbox
    using (app_may_see_tenant(tenant_name)) with check (app_may_see_tenant(tenant_name));

-- STALE JOBS
-- processing_heartbeat: when the current job was queued, re-driven or last finished a range.
-- A queued or running job whose heartbeat is older than the relay's stale-after time (and
-- that has no unsent outbox message) is re-driven: its plan, or its unfinished ranges, are
-- written to the outbox again and processing_attempts grows. At the relay's maximum number of
-- attempts it becomes `failed` with a last_error saying so.
-- processing_queued_at: when the current job was queued (job duration in the metrics).
alter table campaigns
    add column processing_attempts integer not null default 0,
    add column processing_heartbeat timestamptz,
    add column processing_queued_at timestamptz,
    add constraint campaigns_processing_attempts_non_negative check (processing_attempts >= 0);

create index idx_campaigns_unfinished_jobs on campaigns (processing_heartbeat)
    where processing_status in ('queued', 'running');

-- Jobs left queued or running by the old enqueue-after-commit path (possibly lost): the relay
-- re-drives them once they are stale.
update campaigns
set processing_attempts = 1, processing_heartbeat = now(), processing_queued_at = now()
where processing_status in ('queued', 'running');
