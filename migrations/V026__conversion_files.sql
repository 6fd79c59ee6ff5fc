-- Conversions through S3: a tenant's conversion file, `conversions/<tenant>/<name>` in the
-- data bucket, is imported by the customer files' path (shared::db::customer_import, the
-- ledger `customer_imports` and, for a file larger than a part, the jobs and parts of V024).
-- The key names the file's kind and tenant, so the ledger and the jobs need no new column.
--
-- * conversion_import_rows: the staged rows of a conversion file's parts, by import and
--   file line: who (customer_id, or email resolved when merged), when, the offer and the
--   value. A batch of the merge inserts its rows into `conversions` (in the tenant's scope)
--   and deletes them in one transaction, as customer_import_rows' do.
--
-- Platform data like the other staging tables: no tenant column of its own (the job's key
-- names the tenant), no row policy, written through offers_platform only.
create table conversion_import_rows (
    import_id bigint not null references customer_import_jobs (id) on delete cascade,
    line bigint not null,
    event_id text not null,
    customer_id uuid,
    email text,
    occurred_at timestamptz not null,
    offer_id integer,
    value numeric(20, 4),
    currency text,
    constraint conversion_import_rows_pkey primary key (import_id, line)
);

revoke all on conversion_import_rows from offers_api;
grant select, insert, update, delete on conversion_import_rows to offers_platform;
