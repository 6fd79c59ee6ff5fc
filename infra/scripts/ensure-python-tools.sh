#!/usr/bin/env bash
# Creates (once) the project's Python virtual environment with the pinned tools the tests and
# checks use, and prints its bin directory: .venv in the clone, or PYTHON_TOOLS_VENV (.ci/run
# keeps it in ~/.cache/offer-platform/venv, so a new clone reuses both the tools and the arm64
# build, whose fingerprints include the path of the zig linker installed here). Extra pip
# requirements may be passed as arguments (they are installed if missing).
set -euo pipefail
cd "$(dirname "$0")/../.."

VENV="${PYTHON_TOOLS_VENV:-.venv}"
REQUIREMENTS=("moto[server]==5.2.5" "$@")

if [ ! -x "$VENV/bin/pip" ]; then
    rm -rf "$VENV"
    if ! python3 -m venv "$VENV" >&2; then
        # Debian's python3 ships venv/ensurepip separately.
        rm -rf "$VENV"
        sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -q >&2
        $sudo apt-get install -y -q python3-venv >&2
        python3 -m venv "$VENV" >&2
    fi
fi
# pip is quick when everything is already installed.
"$VENV/bin/pip" install --quiet --disable-pip-version-check "${REQUIREMENTS[@]}" >&2
echo "$(cd "$VENV" && pwd)/bin"
