#!/usr/bin/env bash
# Runs the whole API locally: http://localhost:3000, every endpoint at its production path.
#
#   ./scripts/dev.sh        (from any directory; Ctrl-C stops everything it started)
#
# 1. installs what is missing into .tools/venv (moto's server, cargo-lambda)
# 2. starts moto's server on 127.0.0.1:8000 (DynamoDB, KMS, Secrets Manager; log: .local/moto.log)
# 3. creates the token-signing key in KMS and the pepper and concealment secrets in Secrets
#    Manager (scripts/local_keys.py), the tables, a demo tenant, a demo user and a token for
#    them with authctl;
#    moto keeps data in memory, so every start gets a fresh tenant and user
#    (written to .local/demo.env)
# 4. builds the functions and serves them with `cargo lambda watch`, which rebuilds and
#    restarts a function when its code changes. Routes: [workspace.metadata.lambda.watch.router]
#    in Cargo.toml.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$PWD"

venv=.tools/venv
state=.local
moto_port=8000
api_port=3000
api="http://localhost:$api_port"

say() { printf '[dev] %s\n' "$*"; }
die() { printf '[dev] error: %s\n' "$*" >&2; exit 1; }

# --- cleanup: stop what this run started ------------------------------------------------------
# Background jobs run in their own process groups (set -m), so one kill reaches a job's children
# too (cargo lambda watch starts `cargo run` and the function binaries).
set -m
started=()
cleanup() {
  trap - EXIT INT TERM
  [ "${#started[@]}" -gt 0 ] || return 0
  say "stopping..."
  local pid
  for pid in "${started[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  for _ in $(seq 50); do
    local alive=0
    for pid in "${started[@]}"; do kill -0 -- "-$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.2
  done
  for pid in "${started[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  say "stopped"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
is_moto() { [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$moto_port/moto-api/data.json")" = 200 ]; }
json_field() { "$venv/bin/python" -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

# --- 1. tools ---------------------------------------------------------------------------------
for tool in cargo python3 curl; do
  command -v "$tool" >/dev/null || die "$tool is required (Rust: https://rustup.rs)"
done
if [ -x scripts/install-tools.sh ]; then
  scripts/install-tools.sh dev
else
  [ -x "$venv/bin/python" ] || { say "creating $venv"; python3 -m venv "$venv"; }
  need=()
  "$venv/bin/python" -c 'import moto.server, flask_cors' 2>/dev/null || need+=('moto[server]')
  [ -x "$venv/bin/cargo-lambda" ] || need+=(cargo-lambda)
  if [ "${#need[@]}" -gt 0 ]; then
    say "pip install ${need[*]}"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "${need[@]}"
  fi
fi
[ -x "$venv/bin/cargo-lambda" ] || die "$venv/bin/cargo-lambda is missing"
export PATH="$root/$venv/bin:$PATH"

port_open "$api_port" && die "port $api_port is in use (another dev.sh?); stop that first"

mkdir -p "$state"
chmod 700 "$state"

# --- 2. DynamoDB (moto) -----------------------------------------------------------------------
if port_open "$moto_port"; then
  is_moto || die "port $moto_port is in use by something that is not moto; stop it first"
  say "reusing the moto server already on 127.0.0.1:$moto_port (not started here, left running)"
else
  say "starting moto on 127.0.0.1:$moto_port (log: $state/moto.log)"
  "$venv/bin/python" scripts/moto_server.py -H 127.0.0.1 -p "$moto_port" </dev/null >"$state/moto.log" 2>&1 &
  moto_pid=$!
  started+=("$moto_pid")
  for _ in $(seq 100); do
    is_moto && break
    kill -0 "$moto_pid" 2>/dev/null || { tail -n 20 "$state/moto.log" >&2; die "moto exited"; }
    sleep 0.2
  done
  is_moto || die "moto did not answer on 127.0.0.1:$moto_port within 20 s (see $state/moto.log)"
fi

# --- 3. environment (inherited by authctl and every function) ---------------------------------
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local
export AWS_ENDPOINT_URL="http://127.0.0.1:$moto_port"
export TENANTS_TABLE=passkey-local-tenants USERS_TABLE=passkey-local-users
export CREDENTIALS_TABLE=passkey-local-credentials CHALLENGES_TABLE=passkey-local-challenges
export BACKUP_CODES_TABLE=passkey-local-backup-codes SESSIONS_TABLE=passkey-local-sessions
export DEVICES_TABLE=passkey-local-devices AUDIT_TABLE=passkey-local-audit
export JWT_ISSUER="$api" JWT_AUDIENCE=passkey-local
export RUST_LOG=info

say "building (first time: a few minutes)"
cargo build --bins

authctl="${CARGO_TARGET_DIR:-target}/debug/authctl"
# The same key and secret sources as the deployed stack: a KMS signing key (ES256, or RS256
# with TOKEN_ALGORITHM=RS256) and the two generated secrets, in moto's KMS and Secrets Manager.
keys="$("$venv/bin/python" scripts/local_keys.py "$AWS_ENDPOINT_URL" "${TOKEN_ALGORITHM:-ES256}")" \
  || die "could not create the local KMS key and secrets (see above)"
eval "$keys"
# There is no API Gateway locally to verify SigV4: the admin API accepts unsigned requests here
# (and only here; the banner says so). Deployed, every /v1/admin route requires AWS_IAM.
export ADMIN_API_WITHOUT_IAM=1

"$authctl" tables create >/dev/null
tenant="$("$authctl" tenant create --name Demo --rp-id localhost --origin "$api" | json_field tenant_id)"
user="$("$authctl" user create --tenant "$tenant" --email demo@example.com --display-name "Demo User" | json_field user_id)"
token="$("$authctl" token issue --tenant "$tenant" --user "$user" --ttl 86400 | json_field token)"
(umask 077 && cat >"$state/demo.env") <<EOF
# Written by scripts/dev.sh; valid while it runs (moto keeps data in memory).
export API=$api
export TENANT_ID=$tenant
export USER_ID=$user
export TOKEN=$token
# authctl token issue signs with the local run's KMS key:
export AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL
export JWT_KMS_KEY_IDS=$JWT_KMS_KEY_IDS
export JWT_KMS_SIGNING_KEY_ID=$JWT_KMS_SIGNING_KEY_ID
export JWT_ISSUER=$JWT_ISSUER JWT_AUDIENCE=$JWT_AUDIENCE
EOF

# --- 4. API -----------------------------------------------------------------------------------
# The functions inherit this environment. cargo-lambda reads RUST_LOG as well and is very chatty
# at info, so it runs with its own default and the functions get RUST_LOG through --env-var.
say "starting cargo lambda watch on $api"
env -u RUST_LOG cargo lambda watch --invoke-address 127.0.0.1 --invoke-port "$api_port" \
  --env-var "RUST_LOG=$RUST_LOG" </dev/null &
watch_pid=$!
started+=("$watch_pid")
for _ in $(seq 600); do
  port_open "$api_port" && break
  kill -0 "$watch_pid" 2>/dev/null || die "cargo lambda watch exited"
  sleep 0.2
done
port_open "$api_port" || die "cargo lambda watch did not listen on port $api_port within 120 s"

# Start every function now, so the first real request is fast: requests without credentials or
# body get their documented refusal (401 without a token, 400 without a body).
for check in "POST /v1/users/me/mfa/webauthn/register 401" \
             "POST /v1/users/me/mfa/webauthn/register/complete 401" \
             "POST /v1/auth/mfa/webauthn/options 400" \
             "POST /v1/auth/mfa/webauthn/complete 400" \
             "POST /v1/auth/mfa/backup_code/complete 400" \
             "GET /.well-known/jwks.json 200" \
             "GET /.well-known/openid-configuration 200" \
             "POST /api/v1/webauthn/authenticate/begin 400" \
             "POST /api/v1/webauthn/authenticate/complete 400" \
             "POST /api/v1/auth/refresh 400" \
             "POST /api/v1/auth/logout 400" \
             "GET /v1/users/me/mfa/webauthn/credentials 401" \
             "PATCH /v1/users/me/mfa/webauthn/credentials/AAAA 401" \
             "DELETE /v1/users/me/mfa/webauthn/credentials/AAAA 401" \
             "GET /v1/users/me/mfa/backup_codes 401" \
             "POST /v1/users/me/mfa/backup_codes 401" \
             "GET /v1/users/me/sessions 401" \
             "DELETE /v1/users/me/sessions/00000000-0000-4000-8000-000000000000 401" \
             "DELETE /v1/users/me/sessions 401" \
             "POST /v1/admin/tenants/not-a-uuid/users 400" \
             "GET /v1/admin/tenants/not-a-uuid/users 400" \
             "DELETE /v1/admin/tenants/not-a-uuid/users/not-a-uuid 400" \
             "POST /v1/admin/tenants/not-a-uuid/users/not-a-uuid/mfa-challenges 400" \
             "DELETE /v1/admin/tenants/not-a-uuid/users/not-a-uuid/sessions 400" \
             "POST /v1/admin/tenants 400" \
             "GET /v1/admin/tenants?limit=0 400" \
             "GET /v1/admin/tenants/not-a-uuid 400" \
             "PATCH /v1/admin/tenants/not-a-uuid 400" \
             "GET /v1/admin/tenants/not-a-uuid/users/not-a-uuid 400" \
             "PATCH /v1/admin/tenants/not-a-uuid/users/not-a-uuid 400" \
             "GET /v1/admin/tenants/not-a-uuid/users/not-a-uuid/credentials 400" \
             "DELETE /v1/admin/tenants/not-a-uuid/users/not-a-uuid/credentials/AAAA 400" \
             "GET /v1/admin/tenants/not-a-uuid/audit 400"; do
  read -r method path expected <<<"$check"
  status="$(curl -s -o /dev/null -w '%{http_code}' --max-time 60 -X "$method" "$api$path")" || true
  [ "$status" = "$expected" ] || say "warning: $method $path answered $status, expected $expected; see the log above"
done

cat <<EOF

==================================================================================================
 API ready on $api (moto on 127.0.0.1:$moto_port). Ctrl-C stops everything.
 LOCAL RUN: the admin API (/v1/admin/...) accepts requests WITHOUT IAM authorization.

 Demo tenant, user and a 24 h token (also in $state/demo.env):
   export TENANT_ID=$tenant
   export USER_ID=$user
   export TOKEN=$token

 Try (after the exports above, or: source $root/$state/demo.env):
   curl -s -X POST "$api/v1/users/me/mfa/webauthn/register?method_type=webauthn_passkey" \\
     -H "Authorization: Bearer \$TOKEN" -H "X-Tenant-ID: \$TENANT_ID"
   curl -s "$api/.well-known/openid-configuration"   # → jwks_uri
   curl -s "$api/.well-known/jwks.json"
   # an MFA challenge, as the primary login would create it:
   target/debug/authctl mfa-challenge create --tenant \$TENANT_ID --user \$USER_ID
   curl -s -X POST "$api/v1/users/me/mfa/webauthn/register/complete" \\
     -H "Authorization: Bearer \$TOKEN" -H "X-Tenant-ID: \$TENANT_ID" -H 'Content-Type: application/json' \\
     -d '{"credential": <PublicKeyCredential from the browser>, "device_name": "Laptop", "method_type": "webauthn_passkey"}'
   # passwordless login (after enrolling a passkey), then its audit trail:
   curl -s -X POST "$api/api/v1/webauthn/authenticate/begin" -H "X-Tenant-ID: \$TENANT_ID" \
     -H 'Content-Type: application/json' -d '{"email": "demo@example.com"}'
   target/debug/authctl audit list --tenant \$TENANT_ID
==================================================================================================

EOF

status=0
wait "$watch_pid" || status=$?
die "cargo lambda watch exited (status $status)"
