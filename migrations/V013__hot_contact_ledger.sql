-- A delivery report moves its contact-ledger row's contact_at (from the release to when the
-- provider sent it) in place: a heap-only tuple update, as V012 made of the delivery's own.
--
-- V011's customer_contacts_customer index held (customer_id, contact_at); naming contact_at
-- ruled such an update out, so every report also wrote new entries into both of the table's
-- indexes (and their pages into the WAL). The cap's reads (a release, a preview) look a
-- candidate's contacts up by customer_id and read channel and contact_at from the row in any
-- case, so the index keeps customer_id alone. Fillfactor 80 leaves room on each page for the
-- new row version; pages written before this migration get it as they are rewritten.
-- tests/api/performance.rs keeps both so.
drop index customer_contacts_customer;
create index customer_contacts_customer on customer_contacts (customer_id);
alter table customer_contacts set (fillfactor = 80);
