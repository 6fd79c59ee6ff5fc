#!/usr/bin/env bash
# check-docs-page.sh BASE_URL: loads BASE_URL/docs/ in headless Chromium (Debian's
# `chromium`, installed with apt if missing) and checks that Swagger UI renders the API's
# operations under the page's Content-Security-Policy, with no CSP violation reported.
set -euo pipefail
base="${1:?usage: check-docs-page.sh BASE_URL}"

if ! command -v chromium >/dev/null 2>&1; then
  echo "check-docs-page: installing chromium with apt-get" >&2
  as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
# The flags keep Chromium off the network it cannot reach (background services, updates).
dom="$(chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$profile" --enable-logging=stderr --v=0 \
    --virtual-time-budget=15000 --dump-dom "$base/docs/" 2>"$profile/console.log")"

if grep -Ei "content security policy|refused to (load|execute|apply|connect|frame)" "$profile/console.log"; then
  echo "check-docs-page: the docs page broke its Content-Security-Policy (above)" >&2
  exit 1
fi
operations="$(grep -o 'opblock-summary-path' <<<"$dom" | wc -l)"
if [ "$operations" -lt 10 ]; then
  echo "check-docs-page: Swagger UI rendered $operations operations at $base/docs/" >&2
  exit 1
fi
echo "check-docs-page: Swagger UI rendered $operations operations under its CSP"
