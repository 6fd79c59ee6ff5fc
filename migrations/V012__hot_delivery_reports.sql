-- Delivery reports update their rows in place again (heap-only tuple updates).
--
-- campaign_customers has fillfactor 80 (V004) so that a report's update finds room on its
-- page and skips the indexes. V011's feed index named delivery_status in its predicate; a
-- column in any index, predicate included, rules such an update out, so every report
-- rewrote the entries of all four indexes. The feed index now covers every released
-- delivery; the feed's `delivery_status = 'pending'` is checked on the row. No index names a
-- column a report writes (delivery_status, sent_at, provider_message_id, failure_reason,
-- updated_at); tests/api/performance.rs keeps it so.
drop index campaign_customers_feed;
create index campaign_customers_feed on campaign_customers (campaign_id, customer_id)
    where released_at is not null;
