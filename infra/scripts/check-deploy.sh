#!/usr/bin/env bash
# Offline deploy checks (run by CI after the tests):
#   1. cfn-lint template.yaml and sam validate --lint (from PyPI, pinned, in .venv);
#   2. cargo lambda build --arm64 of every function (zig as the cross linker, from PyPI too),
#      printing each bootstrap's size: with the `lambda-check` profile by default (the same
#      code and target, built without optimisation, so CI proves that every function
#      cross-compiles and links in minutes), or with `--release` the deploy profile (thin
#      LTO, one codegen unit; what `sam build` ships, and the sizes bench/run reports).
# The route/queue rules of template.yaml are checked by the test suite (tests/api/template.rs).
set -euo pipefail
cd "$(dirname "$0")/../.."

BIN="$(infra/scripts/ensure-python-tools.sh 'cfn-lint==1.58.0' 'aws-sam-cli==1.170.0' 'cargo-lambda==1.9.2' 'ziglang==0.17.0')"
export PATH="$BIN:$PATH"
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}" SAM_CLI_TELEMETRY=0

echo "== cfn-lint template.yaml"
cfn-lint template.yaml
echo "== sam validate --lint"
sam validate --lint --template template.yaml

profile=lambda-check
if [ "${1:-}" = "--release" ]; then profile=release; fi
FUNCTIONS=(auth-api admin-api offers-api campaigns-api customers-api delivery-webhook campaign-processor outbox-relay customer-import housekeeping migrate)
echo "== cargo lambda build --arm64 --profile $profile (${FUNCTIONS[*]})"
rustup target add aarch64-unknown-linux-gnu >/dev/null 2>&1 || true
packages=()
for f in "${FUNCTIONS[@]}"; do packages+=(--package "$f"); done
cargo lambda build --arm64 --profile "$profile" "${packages[@]}"

target_dir="$(infra/scripts/target-dir.sh)"
echo "== bootstrap sizes (arm64, profile $profile)"
for f in "${FUNCTIONS[@]}"; do
    file="$target_dir/lambda/$f/bootstrap"
    [ -f "$file" ] || { echo "missing $file" >&2; exit 1; }
    printf '%-20s %8d KiB\n' "$f" "$(( $(stat -c %s "$file") / 1024 ))"
done
