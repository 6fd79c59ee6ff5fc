#!/usr/bin/env bash
# Attacks the API with schemathesis (PyPI, pinned, in .venv), generating requests from the
# committed openapi.json: all checks on (server errors, status codes, content types, response
# headers and schemas, invalid data accepted, valid data refused, auth ignored, use after
# free, ...), a fixed number of examples per operation and a fixed seed, so a run is
# bounded and repeatable. Exits non-zero on any failure.
#
# It runs against its own server and database: a fresh database `offers_fuzz` (migrated,
# the demo customers imported), `offerctl serve` on FUZZ_LISTEN (default 127.0.0.1:3900),
# a super admin and a tenant `fuzz_bank` whose user holds every role there with an approved
# offer. Two passes: one as the super admin, one as the tenant user (with the tenant's name
# as the path parameter, so tenant routes get past authorization, and valid data only). Both
# passes send the delivery provider's key too. Then the docs page is loaded in headless
# Chromium (infra/scripts/check-docs-page.sh) to show it renders under its CSP. The server
# connects as a member of `offers_api`, so row-level security is in force throughout. All of
# it is torn down after.
#
# FUZZ_EXAMPLES (default 25) sets the examples per operation and FUZZ_SEED the seed; extra
# arguments go to `schemathesis run`.
set -euo pipefail
cd "$(dirname "$0")/../.."

"infra/scripts/ensure-postgres.sh"
venv="$(infra/scripts/ensure-python-tools.sh "schemathesis==4.32.5")"

listen="${FUZZ_LISTEN:-127.0.0.1:3900}"
base="http://$listen"
examples="${FUZZ_EXAMPLES:-25}"
seed="${FUZZ_SEED:-20261121}"
admin_url="postgres://postgres:postgres@127.0.0.1:5432/postgres"
db=offers_fuzz
report_dir=.local/fuzz
mkdir -p "$report_dir"

psql "$admin_url" -qc "drop database if exists $db with (force)" -c "create database $db"
# Migrations as the owner; the server as two members of offers_api (row-level security
# applies): tenant routes as offers_fuzz_api, cross-tenant paths as offers_fuzz_platform
# (also in offers_platform).
export DATABASE_OWNER_URL="postgres://postgres:postgres@127.0.0.1:5432/$db"
fuzz_role_password="$(head -c 18 /dev/urandom | base64 | tr -d '/+=\n')"
export DATABASE_URL="postgres://offers_fuzz_api:$fuzz_role_password@127.0.0.1:5432/$db"
export DATABASE_PLATFORM_URL="postgres://offers_fuzz_platform:$fuzz_role_password@127.0.0.1:5432/$db"
export JWT_SECRET="$(head -c 32 /dev/urandom | base64 | tr -d '/+=\n')"
export ACCESS_TOKEN_TTL_SECONDS=7200
export SUPER_ADMIN_PASSWORD="Fz-$(head -c 18 /dev/urandom | base64 | tr -d '/+=\n')"
export RUST_LOG="${RUST_LOG:-info}"

cargo build --quiet -p offerctl
offerctl="$(infra/scripts/target-dir.sh)/debug/offerctl"
"$offerctl" migrate >/dev/null
infra/scripts/ensure-api-role.sh "$DATABASE_OWNER_URL" offers_fuzz_api "$fuzz_role_password" tenant
infra/scripts/ensure-api-role.sh "$DATABASE_OWNER_URL" offers_fuzz_platform "$fuzz_role_password" platform
"$offerctl" create-super-admin --username fuzz_admin --full-name "Fuzzing super admin" >/dev/null
"$offerctl" import-customers infra/demo/customers_credit_card.csv >/dev/null

"$offerctl" serve --listen "$listen" >"$report_dir/server.log" 2>&1 &
server=$!
cleanup() {
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    psql "$admin_url" -qc "drop database if exists $db with (force)" || true
}
trap cleanup EXIT
for _ in $(seq 1 100); do
    curl -fsS "$base/health" >/dev/null 2>&1 && break
    sleep 0.1
done

# The fixtures: a tenant with one user holding every role, and an approved offer there.
tokens="$("$venv/python" - "$base" "$SUPER_ADMIN_PASSWORD" <<'PY'
import json, secrets, sys, urllib.request

base, admin_password = sys.argv[1], sys.argv[2]

def call(method, path, body=None, token=None, headers=None):
    request = urllib.request.Request(base + path, method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"content-type": "application/json",
                 **({"authorization": "Bearer " + token} if token else {}), **(headers or {})})
    with urllib.request.urlopen(request) as response:
        text = response.read()
        return json.loads(text) if text else None

def sign_in(username, password):
    return call("POST", "/auth/token", {"username": username, "password": password})["access_token"]

admin = sign_in("fuzz_admin", admin_password)
call("POST", "/sa/tenants", {"name": "fuzz_bank", "description": "schemathesis"}, admin)
user_password = "Fz-" + secrets.token_urlsafe(18)
call("POST", "/sa/users", {"username": "fuzz_user", "password": user_password}, admin)
call("POST", "/sa/user-tenant-roles", {"username": "fuzz_user", "tenant_name": "fuzz_bank",
     "roles": ["admin", "create", "approver", "read_only"]}, admin)
user = sign_in("fuzz_user", user_password)
# An approved offer: written by a maker (maker–checker forbids self-approval), approved by
# the user.
call("POST", "/sa/users", {"username": "fuzz_maker", "password": user_password}, admin)
call("POST", "/sa/user-tenant-roles", {"username": "fuzz_maker", "tenant_name": "fuzz_bank",
     "role": "create"}, admin)
maker = sign_in("fuzz_maker", user_password)
offer = call("POST", "/tenants/fuzz_bank/offers", {"data": {"title": "Fuzz offer"}}, maker)
submitted = call("POST", f"/tenants/fuzz_bank/offers/{offer['id']}/submit", None, maker)
call("POST", f"/tenants/fuzz_bank/offers/{offer['id']}/approve", None, user,
     {"if-match": f'"{submitted["version"]}"'})
# The delivery provider's key, so the webhook is exercised past authentication.
webhook_key = call("POST", "/sa/webhook-keys", {"tenant_name": "fuzz_bank", "name": "schemathesis"},
                   admin)["key"]
print(admin, user, webhook_key)
PY
)"
read -r admin_token user_token webhook_key <<<"$tokens"

run() { # run NAME TOKEN [schemathesis run args...]; configuration in infra/fuzz/NAME.toml
    local name=$1 token=$2
    shift 2
    echo "schemathesis as $name ($examples examples per operation)"
    "$venv/schemathesis" --config-file "infra/fuzz/$name.toml" run openapi.json --url "$base" \
        --header "Authorization: Bearer $token" --header "X-API-Key: $webhook_key" \
        --checks all --max-examples "$examples" --seed "$seed" --workers 1 \
        --report junit --report-dir "$report_dir" --report-junit-path "$report_dir/$name.xml" \
        "$@"
}

status=0
# Positive data only as the tenant user: its path's tenant name is fixed, so a generated
# invalid one would be replaced and "accepted". The super-admin pass sends the invalid data.
run tenant-user "$user_token" --mode positive "$@" || status=1
run super-admin "$admin_token" "$@" || status=1
# The docs page renders under its Content-Security-Policy (headless Chromium).
infra/scripts/check-docs-page.sh "$base" || status=1
if grep -q ' 5[0-9][0-9] ' "$report_dir/server.log" 2>/dev/null; then
    echo "the server logged 5xx answers; see $report_dir/server.log" >&2
fi
exit $status
