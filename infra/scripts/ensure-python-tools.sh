#!/usr/bin/env bash
# Creates (once) the project's Python virtual environment in .venv with the pinned tools the
# tests and checks use, and prints its bin directory. Extra pip requirements may be passed as
# arguments (they are installed if missing).
set -euo pipefail
cd "$(dirname "$0")/../.."

VENV=.venv
REQUIREMENTS=("moto[server]==5.2.5" "$@")

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV" >&2
fi
# pip is quick when everything is already installed.
"$VENV/bin/pip" install --quiet --disable-pip-version-check "${REQUIREMENTS[@]}" >&2
echo "$PWD/$VENV/bin"
