-- Campaigns keep their calendar.
--
-- * tenants.time_zone: the IANA name (PostgreSQL's own zone database, pg_timezone_names) in
--   which the tenant's campaign dates are days. The API validates it against that view.
-- * campaigns.starts_at / ends_at: the instants a campaign's dates mean there, the start of
--   start_date and the end of end_date (the start of the day after). A trigger computes them
--   from the dates and the tenant's zone on every write of either date, so no writer can
--   store dates and instants that disagree; a tenant's zone change rewrites the dates of its
--   unfinished campaigns (same values), which recomputes them.
-- * status `scheduled`: activated before its start; nothing is released until the scheduler
--   (shared::calendar) starts it.
-- * delivery status `expired` with expired_at: released, never reported by the end of the
--   campaign; its contact slot is freed. A late report within the grace period still applies.
-- * campaign_audit_logs action `status_change`: every lifecycle step, by a user or by the
--   scheduler (performed_by `scheduler`).

alter table tenants add column time_zone text not null default 'UTC';

alter table campaigns add column starts_at timestamptz, add column ends_at timestamptz;

create function campaign_instants() returns trigger
language plpgsql as $$
declare
    zone text;
begin
    select t.time_zone into zone from tenants t where t.name = new.tenant_name;
    new.starts_at := new.start_date::timestamp at time zone zone;
    new.ends_at := (new.end_date + 1)::timestamp at time zone zone;
    return new;
end;
$$;

create trigger campaigns_instants
    before insert or update of start_date, end_date, tenant_name on campaigns
    for each row execute function campaign_instants();

update campaigns set start_date = start_date;

alter table campaigns alter column starts_at set not null, alter column ends_at set not null;

alter table campaigns drop constraint campaigns_status_check;
alter table campaigns add constraint campaigns_status_known
    check (status in ('draft', 'scheduled', 'active', 'paused', 'completed'));

-- The scheduler's two questions: which scheduled campaigns reached their start, which
-- running ones their end.
create index campaigns_due_start on campaigns (starts_at) where status = 'scheduled';
create index campaigns_due_end on campaigns (ends_at)
    where status in ('scheduled', 'active', 'paused');

alter table campaign_customers add column expired_at timestamptz;
alter table campaign_customers drop constraint campaign_customers_delivery_status_known;
alter table campaign_customers add constraint campaign_customers_delivery_status_known
    check (delivery_status in ('pending', 'sent', 'failed', 'suppressed', 'expired'));

alter table campaign_audit_logs drop constraint campaign_audit_logs_action_known;
alter table campaign_audit_logs add constraint campaign_audit_logs_action_known
    check (action in ('offer_version_change', 'delete', 'status_change'));
