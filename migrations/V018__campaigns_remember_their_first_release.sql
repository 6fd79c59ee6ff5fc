-- Third review, finding 5: "a campaign that ever released anything is never deleted" was
-- judged from rows that archiving (campaign_customers) and the ledger's prune
-- (customer_contacts) remove, so every archived campaign became deletable in time, taking
-- its archive record with it. The fact is now kept on the campaign itself:
--
-- * campaigns.first_released_at: when the campaign first released a delivery to providers
--   (activation, a scheduled start or `…/release`; set once by the release statement,
--   shared/src/db/campaigns/release.sql). Null: nothing was ever released. Deletion and the
--   start date of a started campaign are judged from it.
--
-- Existing campaigns take it from their earliest released delivery, else their earliest
-- ledger row, else, when archived, the archive's export if its summary counted releases.

alter table campaigns add column first_released_at timestamptz;

update campaigns c
set first_released_at = coalesce(
    (select min(cc.released_at) from campaign_customers cc
     where cc.campaign_id = c.id and cc.released_at is not null),
    (select min(l.contact_at) from customer_contacts l where l.campaign_id = c.id),
    (select a.exported_at from campaign_archives a
     where a.campaign_id = c.id and coalesce((a.summary ->> 'released')::bigint, 0) > 0)
);
