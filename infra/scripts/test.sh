#!/usr/bin/env bash
# Runs every test: unit tests and the integration tests against real PostgreSQL (installed
# and started if missing), then every Lambda function's real binary invoked through
# `cargo lambda watch` / `cargo lambda invoke` with the events in events/
# (infra/scripts/lambda-invoke-test.py; skipped when arguments select particular tests). Each integration test gets its own database cloned from a
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

started=$SECONDS
# The tests run some binaries as processes of their own (offerctl's import, to measure its
# memory alone), which `cargo test` does not build outside its harness: build them first.
cargo build --workspace --bins
cargo test --workspace --all-targets "$@"
echo "cargo test: $((SECONDS - started)) s"
if [ "$#" -eq 0 ]; then
    started=$SECONDS
    venv="$(infra/scripts/ensure-python-tools.sh 'cargo-lambda==1.9.2')"
    "$venv/python" infra/scripts/lambda-invoke-test.py
    echo "lambda invoke test: $((SECONDS - started)) s"
fi
