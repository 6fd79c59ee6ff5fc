#!/usr/bin/env bash
# Runs the platform locally on its embedded defaults: PostgreSQL on 127.0.0.1:5432 (installed
# and started if missing), database `offers` created and migrated, a super admin `admin`
# whose credentials are printed, the demo customers (infra/demo, 10,127 real card holders)
# imported, and every function's routes plus the campaign processor served by `offerctl serve`
# (in-process queue; set CAMPAIGN_QUEUE_URL to use an SQS queue instead), with the OpenAPI
# document at /openapi.json and Swagger UI at /docs/. `offerctl demo` then walks the whole
# story against it.
#
# Three database roles, as in production: migrations run as the tables' owner
# (DATABASE_OWNER_URL, the local `postgres`); tenant routes connect as `offers_local_api`, a
# member of `offers_api` that owns nothing, so row-level security confines it to the tenant of
# each transaction; paths that span tenants (super-admin routes, the principal lookup, the
# processor, the webhook's key lookup, offerctl's commands) connect as
# `offers_local_platform`, also in `offers_platform` (migration V014).
#
# Local secrets (JWT key, admin password, role passwords) are generated once into .local/
# (git-ignored). Override with DATABASE_OWNER_URL, DATABASE_URL, DATABASE_PLATFORM_URL,
# JWT_SECRET, SUPER_ADMIN_PASSWORD, LISTEN, RUST_LOG, CAMPAIGN_STALE_AFTER_SECONDS (default
# here 120).
set -euo pipefail
cd "$(dirname "$0")/../.."

"infra/scripts/ensure-postgres.sh"

mkdir -p .local
secret() { # secret FILE: a random URL-safe string, generated once
  [ -s "$1" ] || (head -c 32 /dev/urandom | base64 | tr -d '/+=\n' > "$1")
  cat "$1"
}

export DATABASE_OWNER_URL="${DATABASE_OWNER_URL:-postgres://postgres:postgres@127.0.0.1:5432/offers}"
db_name="${DATABASE_OWNER_URL##*/}"; db_name="${db_name%%\?*}"
server="${DATABASE_OWNER_URL#*://}"; server="${server#*@}"; server="${server%%/*}"
api_role=offers_local_api
api_password="$(secret .local/api_role_password)"
platform_role=offers_local_platform
platform_password="$(secret .local/platform_role_password)"
export DATABASE_URL="${DATABASE_URL:-postgres://$api_role:$api_password@$server/$db_name}"
export DATABASE_PLATFORM_URL="${DATABASE_PLATFORM_URL:-postgres://$platform_role:$platform_password@$server/$db_name}"
export DATABASE_POOL_SIZE="${DATABASE_POOL_SIZE:-10}"
# The in-process queue's messages die with the process: `offerctl serve` re-drives the
# unfinished jobs of a killed process as it starts; while it runs, the relay re-drives a job
# that made no progress for this long (AWS: 600 s).
export CAMPAIGN_STALE_AFTER_SECONDS="${CAMPAIGN_STALE_AFTER_SECONDS:-120}"
export JWT_SECRET="${JWT_SECRET:-$(secret .local/jwt_secret)}"
export SUPER_ADMIN_PASSWORD="${SUPER_ADMIN_PASSWORD:-$(secret .local/super_admin_password)}"
LISTEN="${LISTEN:-127.0.0.1:3000}"

admin_url="${DATABASE_OWNER_URL%/*}/postgres"
if [ "$(psql "$admin_url" -Atqc "select 1 from pg_database where datname = '$db_name'")" != 1 ]; then
  psql "$admin_url" -qc "create database \"$db_name\""
fi

cargo build --quiet -p offerctl
offerctl="$(infra/scripts/target-dir.sh)/debug/offerctl"
"$offerctl" migrate
infra/scripts/ensure-api-role.sh "$DATABASE_OWNER_URL" "$api_role" "$api_password" tenant
infra/scripts/ensure-api-role.sh "$DATABASE_OWNER_URL" "$platform_role" "$platform_password" platform
"$offerctl" create-super-admin --username admin --full-name "Local super admin" --reset-password >/dev/null
# Idempotent: a second run reports every row unchanged.
"$offerctl" import-customers infra/demo/customers_credit_card.csv

cat <<TXT

  Offer Management Platform: http://$LISTEN
  API docs:     http://$LISTEN/docs/   (Swagger UI; the document is /openapi.json)
  Super admin:  username admin   password $SUPER_ADMIN_PASSWORD

  The whole story on the demo customers, from another terminal:
    $offerctl demo

  Sign in:
    curl -s http://$LISTEN/auth/token -H 'content-type: application/json' \\
      -d '{"username":"admin","password":"$SUPER_ADMIN_PASSWORD"}'

TXT
exec "$offerctl" serve --listen "$LISTEN"
