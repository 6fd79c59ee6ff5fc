#!/usr/bin/env bash
# ensure-api-role.sh ADMIN_URL ROLE PASSWORD [platform]: makes sure the login role ROLE exists
# with PASSWORD and is a member of `offers_api` (the group role created by migration V007:
# owns nothing, no BYPASSRLS, so row-level security applies to it). With `platform`, the
# role's connections start in the platform scope (`ALTER ROLE … SET app.scope = 'platform'`:
# the role for DATABASE_PLATFORM_URL); without, that default is removed. The API connects as
# such roles; migrations run as the tables' owner. Run it after `offerctl migrate`, as a
# superuser (or RDS's master user). Safe to run again.
set -euo pipefail
admin_url="$1"; role="$2"; password="$3"; scope="${4:-tenant}"
case "$role" in (*[!a-z0-9_]*|'') echo "ensure-api-role: bad role name $role" >&2; exit 2;; esac
case "$scope" in
  platform) scope_sql="select format('alter role %I set app.scope = %L', :'role', 'platform') \\gexec" ;;
  tenant) scope_sql="select format('alter role %I reset app.scope', :'role') \\gexec" ;;
  *) echo "ensure-api-role: the scope is platform or nothing, not $scope" >&2; exit 2 ;;
esac
psql "$admin_url" -v ON_ERROR_STOP=1 -qAt -v role="$role" -v password="$password" <<SQL >/dev/null
set client_min_messages = warning;
select format('create role %I login', :'role')
where not exists (select from pg_roles where rolname = :'role') \gexec
select format('alter role %I login nosuperuser nobypassrls password %L', :'role', :'password') \gexec
select format('grant offers_api to %I', :'role') \gexec
$scope_sql
SQL
