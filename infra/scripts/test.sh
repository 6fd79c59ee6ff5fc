#!/usr/bin/env bash
# Runs every test: unit tests and the integration tests against real PostgreSQL (installed
# and started if missing). Each integration test gets its own database cloned from a
# migrated template. TEST_DATABASE_URL must be able to create databases. The queue tests talk
# to an SQS emulator (moto, from PyPI, in .venv) that is started here if none is running.
set -euo pipefail
cd "$(dirname "$0")/../.."

"infra/scripts/ensure-postgres.sh"
export TEST_DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres:postgres@127.0.0.1:5432/postgres}"

export SQS_TEST_ENDPOINT="${SQS_TEST_ENDPOINT:-$(infra/scripts/start-sqs-emulator.sh)}"
started_pid="$(cat .local/sqs-emulator.pid 2>/dev/null || true)"
cleanup() {
    if [ -n "$started_pid" ]; then
        kill "$started_pid" 2>/dev/null || true
        rm -f .local/sqs-emulator.pid
    fi
}
trap cleanup EXIT

cargo test --workspace --all-targets "$@"
