-- The earliest end a campaign's deliveries were released under: campaigns.released_until.
--
-- A delivery report's result is late when dated at or after the end its delivery was
-- released under (the contact ledger's open_until, V022), or the campaign's end if that is
-- earlier. The report statement read every delivery's ledger row for it. The end a delivery
-- was released under differs from today's end only when the end moved later after a
-- release, so a lower bound of the ledger's open_until per campaign lets the statement read
-- the row only for a result dated at or after that bound (shared::db::campaigns::reports).
--
-- Invariant: every ledger row of a campaign has open_until >= its released_until. The
-- release (release.sql) lowers it to the campaign's end as it writes rows with that end; the
-- report statement's insert of a missing row writes an open_until no earlier than it. Null:
-- no ledger row was written (the row is then never read for lateness: the campaign's end
-- decides, as for a pruned row).
alter table campaigns add column released_until timestamptz;

update campaigns c set released_until = l.earliest
from (select campaign_id, min(open_until) as earliest
      from customer_contacts group by campaign_id) l
where l.campaign_id = c.id;
