-- Third review, finding 4: an import that failed for a reason not in its file (the database
-- or S3 failed, or PostgreSQL refused a value the checks let through) left no ledger row and
-- no result object, and the local bucket watcher retried it every 5 s for ever, importing no
-- key after it.
--
-- * customer_imports.status 'failed': the import failed `attempts` times. While
--   `retry_after` is set it is tried again (by the function's retried event, or by the
--   watcher once that time has passed, backing off); once the attempts are spent
--   `retry_after` is null and the row is final: its result says why, and the ImportsFailed
--   metric has raised its alarm.
-- * Every other status is final; `attempts` counts the failed attempts before it and the
--   one that finished it.

alter table customer_imports
    drop constraint customer_imports_status_known,
    add constraint customer_imports_status_known
        check (status in ('imported', 'rejected', 'too_large', 'timed_out', 'superseded', 'failed')),
    add column attempts integer not null default 1
        constraint customer_imports_attempts_positive check (attempts >= 1),
    add column retry_after timestamptz,
    add constraint customer_imports_retry_only_failed
        check (retry_after is null or status = 'failed');
