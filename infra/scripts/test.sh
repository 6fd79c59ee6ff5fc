#!/usr/bin/env bash
# Runs every test: unit tests and the integration tests against real PostgreSQL (installed
# and started if missing). Each integration test gets its own database cloned from a
# migrated template. TEST_DATABASE_URL must be able to create databases.
set -euo pipefail
cd "$(dirname "$0")/../.."

"infra/scripts/ensure-postgres.sh"
export TEST_DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres:postgres@127.0.0.1:5432/postgres}"

cargo test --workspace --all-targets "$@"
