#!/usr/bin/env bash
# Prints cargo's target directory for this workspace (CARGO_TARGET_DIR, a cargo config, or
# ./target), so scripts find the binaries wherever they were built.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])'
