-- Third review, finding 11: `offerctl archive restore` brought a campaign's deliveries back,
-- and the next housekeeping run archived them again while the campaign was still past its
-- tenant's retention, undoing the restore without a word.
--
-- * campaigns.archive_held: set by a restore; housekeeping skips a held campaign. An
--   operator clears it with `offerctl archive release CAMPAIGN` when the deliveries may
--   leave again (docs/operations.md, "Archives").

alter table campaigns add column archive_held boolean not null default false;
