#!/usr/bin/env bash
# README command 2: installs what is missing, then every check CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-tools.sh test

# The integration tests start moto's server from this interpreter (one server per test binary).
export MOTO_PYTHON="$PWD/.tools/venv/bin/python"
# Only the tests' own servers are ever contacted; never a real AWS account.
unset AWS_PROFILE AWS_ENDPOINT_URL
export AWS_EC2_METADATA_DISABLED=true

step() { printf '\n== %s\n' "$*"; }

step "cfn-lint template.yaml"
.tools/venv/bin/cfn-lint template.yaml

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
cargo test --workspace --locked 2>&1 | tee "$log"

# One closing line for the whole run, summed over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed;/) p += $i; if ($(i+1) ~ /^failed;/) f += $i } }
     END { printf "\nsummary: %d passed, %d failed\n", p, f }' "$log"
