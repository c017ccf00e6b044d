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

# SAM's own lint (cfn-lint on the template as SAM reads it). --lint runs offline: no credentials and
# no AWS call, only a region to check against; telemetry off so nothing is sent either.
step "sam validate --lint"
AWS_DEFAULT_REGION=us-east-1 SAM_CLI_TELEMETRY=0 \
  .tools/venv/bin/sam validate --lint --template-file template.yaml

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
cargo test --workspace --locked 2>&1 | tee "$log"

# The demo page in Chromium against the local run (scripts/e2e.sh: starts and stops dev.sh, runs
# scripts/contract.sh if present). E2E=0 skips it (it needs Node.js and cargo-lambda, and a cold
# start builds every function first).
if [ "${E2E:-1}" != 0 ]; then
  step "browser end-to-end (scripts/e2e.sh)"
  scripts/e2e.sh
else
  step "browser end-to-end: skipped (E2E=0)"
fi

# One closing line for the whole run, summed over every test binary; printed last, after packaging.
summary="$(awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed;/) p += $i; if ($(i+1) ~ /^failed;/) f += $i } }
     END { printf "summary: %d passed, %d failed", p, f }' "$log")"

# The arm64 release build of every function (scripts/package.sh): in CI, or locally with
# PACKAGE=1. A cold build takes tens of minutes on two cores and every change to shared/ relinks
# all the functions, too slow for every local test run; CI (CI=true) always runs it.
if [ "${CI:-}" = true ] || [ "${PACKAGE:-}" = 1 ]; then
  step "package arm64 zips (scripts/package.sh)"
  scripts/package.sh
else
  step "package arm64 zips: skipped (CI=true or PACKAGE=1 runs scripts/package.sh)"
fi

printf '\n%s\n' "$summary"
