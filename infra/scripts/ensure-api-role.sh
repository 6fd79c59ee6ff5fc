#!/usr/bin/env bash
# ensure-api-role.sh ADMIN_URL ROLE PASSWORD: makes sure the login role ROLE exists with
# PASSWORD and is a member of `offers_api` (the group role created by migration V007: owns
# nothing, no BYPASSRLS, so row-level security applies to it). The API connects as ROLE;
# migrations run as the tables' owner. Run it after `offerctl migrate`. Safe to run again.
set -euo pipefail
admin_url="$1"; role="$2"; password="$3"
case "$role" in (*[!a-z0-9_]*|'') echo "ensure-api-role: bad role name $role" >&2; exit 2;; esac
psql "$admin_url" -v ON_ERROR_STOP=1 -qAt -v role="$role" -v password="$password" <<'SQL' >/dev/null
select format('create role %I login', :'role')
where not exists (select from pg_roles where rolname = :'role') \gexec
select format('alter role %I login nosuperuser nobypassrls password %L', :'role', :'password') \gexec
select format('grant offers_api to %I', :'role') \gexec
SQL
