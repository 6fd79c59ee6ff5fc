#!/usr/bin/env bash
# ensure-api-role.sh ADMIN_URL ROLE PASSWORD [tenant|platform]: makes sure the login role ROLE
# exists with PASSWORD and is a member of `offers_api` (the group role of migration V007: owns
# nothing, no BYPASSRLS, so row-level security applies to it).
#   tenant (the default): the role of DATABASE_URL; it is taken out of `offers_platform` if it
#     was in it, so its connections see a tenant's rows only inside a tenant transaction.
#   platform: the role of DATABASE_PLATFORM_URL; it is made a member of `offers_platform` (the
#     group role of migration V014), whose members see every tenant's rows. Use a different
#     role from DATABASE_URL's: a session cannot give itself a role it was not granted, which
#     is the whole point.
# Migrations run as the tables' owner. Run it after `offerctl migrate`, as a superuser (or
# RDS's master user). Safe to run again.
set -euo pipefail
admin_url="$1"; role="$2"; password="$3"; scope="${4:-tenant}"
case "$role" in (*[!a-z0-9_]*|'') echo "ensure-api-role: bad role name $role" >&2; exit 2;; esac
case "$scope" in
  platform) scope_sql="select format('grant offers_platform to %I', :'role')
    where not pg_has_role(:'role', 'offers_platform', 'member') \\gexec" ;;
  tenant) scope_sql="select format('revoke offers_platform from %I', :'role')
    where pg_has_role(:'role', 'offers_platform', 'member') \\gexec" ;;
  *) echo "ensure-api-role: the scope is tenant or platform, not $scope" >&2; exit 2 ;;
esac
psql "$admin_url" -v ON_ERROR_STOP=1 -qAt -v role="$role" -v password="$password" <<SQL >/dev/null
set client_min_messages = warning;
select format('create role %I login', :'role')
where not exists (select from pg_roles where rolname = :'role') \gexec
select format('alter role %I login nosuperuser nobypassrls password %L', :'role', :'password') \gexec
select format('alter role %I reset app.scope', :'role') \gexec
select format('grant offers_api to %I', :'role')
where not pg_has_role(:'role', 'offers_api', 'member') \gexec
$scope_sql
SQL
