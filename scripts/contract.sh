#!/usr/bin/env bash
# The API contract against the running local API: schemathesis generates requests from
# api/openapi.yaml for every operation and checks every answer — no 5xx, only documented
# statuses, the documented content type, bodies valid against the documented schemas.
#
#   ./scripts/dev.sh            # in another terminal (or in the background): the local API
#   ./scripts/contract.sh       # exits non-zero on any finding; the last line is the summary
#
# Reads the API's URL and the local run's settings from .local/demo.env (written by dev.sh).
# It never touches the demo tenant or user: it creates its own tenant and user over the admin
# API (unsigned, as the local run allows) and a token for them with authctl, and the hooks
# (scripts/schemathesis_hooks.py) put that token and tenant into the generated requests.
#
# Settings: CONTRACT_MAX_EXAMPLES (cases per operation and phase, default 20),
# CONTRACT_SEED (a fixed schemathesis seed, to replay a run), CONTRACT_REPORT_DIR (where the
# JUnit report goes; default .local/contract).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$PWD"

venv=.tools/venv
env_file=.local/demo.env
report_dir="${CONTRACT_REPORT_DIR:-.local/contract}"
max_examples="${CONTRACT_MAX_EXAMPLES:-20}"

say() { printf '[contract] %s\n' "$*"; }
die() { printf '[contract] error: %s\n' "$*" >&2; printf 'contract: FAILED (%s)\n' "$*"; exit 1; }

[ -f "$env_file" ] || die "no $env_file: start ./scripts/dev.sh first"
# shellcheck source=/dev/null
source "$env_file"
[ -n "${API:-}" ] || die "$env_file sets no API"
curl -s -o /dev/null --max-time 60 "$API/.well-known/jwks.json" || die "the local API does not answer on $API"

if ! "$venv/bin/python" -c 'import importlib.metadata as m, sys; sys.exit(m.version("schemathesis") != "4.32.5")' 2>/dev/null; then
  scripts/install-tools.sh test
fi

authctl="${CARGO_TARGET_DIR:-target}/debug/authctl"
[ -x "$authctl" ] || die "$authctl is missing (dev.sh builds it)"
json_field() { "$venv/bin/python" -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
post() { curl -sf --max-time 60 -X POST "$API$1" -H 'content-type: application/json' -d "$2"; }

# A tenant and user of the run's own (admin API, unsigned in the local run), and a token.
run_id="$(date +%s)-$$"
tenant="$(post /v1/admin/tenants "{\"name\": \"Contract $run_id\", \"rp_id\": \"localhost\", \"origins\": [\"$API\"]}" | json_field tenant_id)" \
  || die "could not create the contract tenant over $API/v1/admin/tenants"
user="$(post "/v1/admin/tenants/$tenant/users" "{\"email\": \"contract-$run_id@example.com\", \"display_name\": \"Contract\"}" | json_field user_id)" \
  || die "could not create the contract user"
token="$("$authctl" token issue --tenant "$tenant" --user "$user" --ttl 86400 | json_field token)" \
  || die "authctl token issue failed"
export TENANT_ID="$tenant" USER_ID="$user" TOKEN="$token"
export SCHEMATHESIS_HOOKS="$PWD/scripts/schemathesis_hooks.py"

mkdir -p "$report_dir"
report_dir="$(cd "$report_dir" && pwd)"
spec="$PWD/api/openapi.yaml"
args=(run "$spec" --url "$API"
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance
  --max-examples "$max_examples"
  --request-timeout 30
  --report junit --report-junit-path "$report_dir/junit.xml"
  --generation-codec utf-8
  --no-color)
[ -n "${CONTRACT_SEED:-}" ] && args+=(--seed "$CONTRACT_SEED")

say "schemathesis against $API (tenant $tenant, $max_examples examples per operation and phase)"
status=0
# From the report directory: schemathesis keeps its state (.schemathesis/, .hypothesis/) in the
# working directory, and a new file in the source tree would make `cargo lambda watch` restart
# every function mid-run.
(cd "$report_dir" && "$root/$venv/bin/schemathesis" "${args[@]}") || status=$?
operations="$("$venv/bin/python" -c 'import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
print(sum(1 for item in doc["paths"].values() for m in item if m in ("get", "post", "put", "patch", "delete")))' "$spec")"
if [ "$status" = 0 ]; then
  printf 'contract: PASSED (%s operations of api/openapi.yaml against %s; report %s/junit.xml)\n' \
    "$operations" "$API" "$report_dir"
else
  printf 'contract: FAILED (schemathesis exit %s; %s operations against %s; report %s/junit.xml)\n' \
    "$status" "$operations" "$API" "$report_dir"
  exit 1
fi
