#!/usr/bin/env bash
# Fills the sample events' placeholders ({{token}}, {{tenant_id}}, {{challenge_id}}, …) from the
# local run and writes the copies to target/events/<function>/<file>.json, so they can be
# replayed with `cargo lambda invoke`. The templates in events/ are never changed.
#
#   ./scripts/dev.sh                        (in another terminal: moto + cargo lambda watch)
#   ./scripts/fill-events.sh [FUNCTION …]   every function's events, or only these
#   ./scripts/fill-events.sh --check [FUNCTION …]
#                                           and replay each filled event with `cargo lambda
#                                           invoke`, checking the status its file name promises
#
# Each event with placeholders gets its own tenant and user (authctl), a token from
# `authctl token issue`, and a passkey enrolled through the API by a software passkey
# (scripts/fill_events.py); see events/README.md. Single-use values (challenges, ceremonies,
# refresh tokens) are fresh per event: each filled event replays once. Run again for new ones.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf '[fill-events] %s\n' "$*"; }
die() { printf '[fill-events] error: %s\n' "$*" >&2; exit 1; }

check=0
if [ "${1:-}" = --check ]; then
  check=1
  shift
fi

# The local run's address: dev.sh writes it to .local/demo.env.
api="${API:-}"
if [ -z "$api" ] && [ -r .local/demo.env ]; then
  api="$(sed -n 's/^export API=//p' .local/demo.env)"
fi
api="${api:-http://localhost:3000}"
port="${api##*:}"
port="${port%%/*}"

status="$(curl -s -o /dev/null -w '%{http_code}' --max-time 60 "$api/.well-known/jwks.json" || true)"
[ "$status" = 200 ] || die "no local run answers on $api (start ./scripts/dev.sh first)"

python=.tools/venv/bin/python
[ -x "$python" ] || python=python3

# authctl signs tokens with the local run's KMS key, which dev.sh exports in demo.env.
if [ -r .local/demo.env ]; then
  # shellcheck disable=SC1091
  source .local/demo.env
fi
cargo build -q --bin authctl
out=target/events
"$python" scripts/fill_events.py --api "$api" --authctl "${CARGO_TARGET_DIR:-target}/debug/authctl" --out "$out" "$@"

[ "$check" = 1 ] || exit 0

# --- replay every filled event through `cargo lambda invoke` ----------------------------------
[ -x .tools/venv/bin/cargo-lambda ] && export PATH="$PWD/.tools/venv/bin:$PATH"
command -v cargo-lambda >/dev/null || die "cargo-lambda is missing (scripts/install-tools.sh dev)"
failed=0
total=0
for template in events/*/*.json; do
  function="$(basename "$(dirname "$template")")"
  if [ "$#" -gt 0 ] && ! printf '%s\n' "$@" | grep -qx "$function"; then continue; fi
  file="$out/$function/$(basename "$template")"
  expected="$(basename "$file")"
  expected="${expected%%-*}"
  answer="$(cargo lambda invoke --invoke-address 127.0.0.1 --invoke-port "$port" \
    --output-format json "$function" --data-file "$file" 2>&1)" || true
  got="$(printf '%s' "$answer" | "$python" -c 'import json, sys; print(json.load(sys.stdin)["statusCode"])' 2>/dev/null || echo "?")"
  total=$((total + 1))
  if [ "$got" = "$expected" ]; then
    say "ok   $got $file"
  else
    failed=$((failed + 1))
    say "FAIL $got $file (expected $expected): $answer"
  fi
done
[ "$failed" = 0 ] || die "$failed of $total events did not answer the status in their name"
say "all $total events answered the status in their name"
