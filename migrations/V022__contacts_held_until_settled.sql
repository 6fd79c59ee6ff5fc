-- The contact cap as an invariant (third review): a model-based test found three ways two
-- contacts could still fall within one window, all from a delivery whose send time the
-- ledger did not yet know.
--
-- * A provider may send a released delivery at any time until its campaign's end, and
--   report it then. The ledger counted the delivery at its release only, so eight days
--   after the release (under a seven-day window) another tenant reached the customer, and
--   the first campaign's report of a send made just before put two contacts in a day.
-- * A `failed` report deleted the delivery's ledger row; the provider's retry, reported
--   `sent` later, came back after another tenant had taken the slot.
-- * Moving a running campaign's end later stretched the time its earlier deliveries could
--   be reported sent, after other releases had relied on the old end.
--
-- So a ledger row now says until when its contact may still happen:
--
-- * customer_contacts.open_until: the campaign's `ends_at` when the delivery was released.
--   A report dated at or after it is `after_end` for that delivery (a later end applies to
--   deliveries released after the move).
-- * customer_contacts.settled: false from the release until a `sent` report is accepted,
--   which moves `contact_at` to the send's time and settles the row (later `sent` reports
--   leave it: the first send is the contact). A `failed` report changes nothing in the
--   ledger: the provider may still retry until `open_until`.
-- * The cap counts a row while `contact_at` lies within the window, and an unsettled row
--   while `open_until` does (the send may come at any time before it).

alter table customer_contacts
    add column open_until timestamptz,
    add column settled boolean not null default true;

update customer_contacts l
set open_until = c.ends_at,
    settled = exists (
        select 1 from campaign_customers cc
        where cc.campaign_id = l.campaign_id and cc.customer_id = l.customer_id
          and cc.delivery_status = 'sent')
from campaigns c
where c.id = l.campaign_id;

alter table customer_contacts
    alter column open_until set not null,
    alter column settled set default false;

-- Whether a ledger row counts toward the cap now, under a window of `window_days` days:
-- its contact lies within the window, or, unsettled, its send may still come at a time that
-- does (before `open_until`). Stable (it reads the clock); PostgreSQL inlines it into the
-- release and the audience preview, which both call it.
create function contact_counts(contact_at timestamptz, open_until timestamptz,
                               settled boolean, window_days integer)
returns boolean
language sql stable parallel safe
as $$
    select contact_at > now() - make_interval(days => window_days)
        or (not settled and open_until > now() - make_interval(days => window_days))
$$;
