#!/usr/bin/env bash
# Starts the SQS emulator (moto_server from PyPI) on 127.0.0.1:${SQS_EMULATOR_PORT:-4566}
# unless something already answers there, and waits until it is ready. Prints the endpoint.
# The emulator runs in the background; its PID is written to .local/sqs-emulator.pid.
set -euo pipefail
cd "$(dirname "$0")/../.."

PORT="${SQS_EMULATOR_PORT:-4566}"
ENDPOINT="http://127.0.0.1:$PORT"
mkdir -p .local
rm -f .local/sqs-emulator.pid

ready() {
    python3 -c "import urllib.request, sys; urllib.request.urlopen(sys.argv[1], timeout=2)" \
        "$ENDPOINT/moto-api/" >/dev/null 2>&1
}

if ! ready; then
    BIN="$(infra/scripts/ensure-python-tools.sh)"
    nohup "$BIN/moto_server" -H 127.0.0.1 -p "$PORT" >.local/sqs-emulator.log 2>&1 &
    echo $! >.local/sqs-emulator.pid
    for _ in $(seq 1 50); do
        ready && break
        sleep 0.2
    done
    ready || {
        echo "the SQS emulator did not start; see .local/sqs-emulator.log" >&2
        exit 1
    }
fi
echo "$ENDPOINT"
