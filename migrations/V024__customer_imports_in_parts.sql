-- Bank scale, customer files of any size: a file one invocation cannot finish is imported by
-- several, through the queue (bulk::import::parts). One invocation plans it (reads it once,
-- cuts it at record boundaries into parts of about CUSTOMER_IMPORT_PART_BYTES), each part is
-- validated and staged by a message of its own, and when every part is staged the staged
-- rows are applied in batches, each its own transaction.
--
-- * customer_imports.status 'importing': the object version's parts are planned and in
--   progress (its result is written when they finish); neither an event nor the watcher
--   starts it again.
-- * customer_import_jobs: one per multi-part import, keyed like the ledger. `state`:
--     staging   parts are being staged; `parts_staged` of `parts` are
--     merging   every part is staged without a problem; rows up to line `merged_through`
--               are applied (with the counts so far), the rest are still staged
--     finished  the ledger row holds the result; nothing is staged any more
-- * customer_import_parts: one per part: where its bytes are (a byte range of the object,
--   or, for a gzip file, a plain object written by the plan), the file line of its first
--   record, and once staged its rows and problems (the first 100 by line, JSON).
-- * customer_import_rows: the staged rows of every part, by import and file line. A batch
--   of the merge applies its rows and deletes them in one transaction.
-- * import_outbox: the messages of a multi-part import (a part to stage, or the merge),
--   written in the transaction that needs them and sent by the relay like campaign_outbox's.
--
-- All of it is platform data (customer records span tenants): no tenant column, no row
-- policy, written through offers_platform only.

alter table customer_imports
    drop constraint customer_imports_status_known,
    add constraint customer_imports_status_known
        check (status in ('importing', 'imported', 'rejected', 'too_large', 'timed_out',
                          'superseded', 'failed'));

create table customer_import_jobs (
    id bigint generated always as identity primary key,
    bucket text not null,
    key text not null,
    version_id text not null,
    etag text not null,
    compressed boolean not null,
    header bytea not null,
    bytes bigint not null,
    parts integer not null constraint customer_import_jobs_parts_positive check (parts >= 1),
    parts_staged integer not null default 0,
    state text not null default 'staging'
        constraint customer_import_jobs_state_known
            check (state in ('staging', 'merging', 'finished')),
    merged_through bigint not null default 0,
    inserted bigint not null default 0,
    updated bigint not null default 0,
    consents_changed bigint not null default 0,
    attempts integer not null default 1,
    started_at timestamptz not null default now(),
    constraint customer_import_jobs_object unique (bucket, key, version_id, etag),
    constraint customer_import_jobs_staged_range check (parts_staged between 0 and parts)
);

create table customer_import_parts (
    import_id bigint not null references customer_import_jobs (id) on delete cascade,
    part integer not null,
    source_key text,
    source_etag text,
    start_byte bigint not null,
    end_byte bigint not null,
    first_line bigint not null,
    staged_at timestamptz,
    rows bigint,
    problems_total bigint,
    problems jsonb,
    constraint customer_import_parts_pkey primary key (import_id, part),
    constraint customer_import_parts_range check (0 <= start_byte and start_byte <= end_byte),
    constraint customer_import_parts_staged_whole
        check ((staged_at is null) = (rows is null) and (rows is null) = (problems is null)
               and (problems is null) = (problems_total is null))
);

create table customer_import_rows (
    import_id bigint not null references customer_import_jobs (id) on delete cascade,
    line bigint not null,
    full_name text, email text, phone text, dob date, gender text, kyc_status text,
    segment text, occupation text, annual_income numeric, credit_score integer, state text,
    city text, pin_code text, marital_status text, account_age_months integer,
    preferred_language text, is_active boolean, attributes jsonb,
    consent_email text, consent_sms text, consent_push text, consent_call text,
    constraint customer_import_rows_pkey primary key (import_id, line)
);

create table import_outbox (
    id bigint generated always as identity primary key,
    import_id bigint not null references customer_import_jobs (id) on delete cascade,
    part integer,
    created_at timestamptz not null default now()
);

revoke all on customer_import_jobs, customer_import_parts, customer_import_rows, import_outbox
from offers_api;
grant select, insert, update, delete on
    customer_import_jobs, customer_import_parts, customer_import_rows, import_outbox
to offers_platform;
