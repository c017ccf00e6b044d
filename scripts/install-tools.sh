#!/usr/bin/env bash
# Installs what the project needs and the machine lacks; safe to run again (it only adds).
#   scripts/install-tools.sh test     rustfmt/clippy, moto's server, cfn-lint, PyJWT, SAM CLI (sam validate),
#                                     schemathesis (scripts/contract.sh)
#   scripts/install-tools.sh dev      rustfmt/clippy, moto's server, cfn-lint, cargo-lambda (local run);
#                                     Swagger UI for the docs page (npm ci in web/docs) if npm exists
#   scripts/install-tools.sh e2e      Chromium (apt-get, if /usr/bin/chromium is missing), playwright-core
#                                     (npm ci in e2e/) and Swagger UI: scripts/e2e.sh; needs Node.js 18+
#   scripts/install-tools.sh package  cargo-lambda (with zig, the cross-linker) and the rust target
#                                     aarch64-unknown-linux-gnu (scripts/package.sh)
# Python tools go to a project-local venv, .tools/venv, so nothing global is touched; the rust
# target is added to the active rustup toolchain; npm packages go to the node_modules/ beside their
# committed package-lock.json (installed with --ignore-scripts: they are plain files).
set -euo pipefail
cd "$(dirname "$0")/.."

mode="${1:-test}"
case "$mode" in
  test|dev|package|e2e) ;;
  *) echo "usage: $0 [test|dev|package|e2e]" >&2; exit 2 ;;
esac

say() { printf '[install-tools] %s\n' "$*"; }

# `npm ci` in a directory with a committed package-lock.json, unless its node_modules is already
# that lock's install (npm writes node_modules/.package-lock.json).
npm_ci() {
  local dir="$1"
  if [ -f "$dir/node_modules/.package-lock.json" ] &&
     [ ! "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    return 0
  fi
  say "npm ci in $dir"
  (cd "$dir" && SCARF_ANALYTICS=false npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
}

if [ "$mode" = e2e ]; then
  command -v node >/dev/null && command -v npm >/dev/null || {
    echo "[install-tools] Node.js and npm are required for the e2e test" >&2; exit 1; }
  if [ ! -x /usr/bin/chromium ]; then
    say "installing chromium (apt-get)"
    sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium ||
      { $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium; }
  fi
  npm_ci e2e
  npm_ci web/docs
  say "ready ($mode)"
  exit 0
fi

# rustfmt and clippy for the checks.
if [ "$mode" != package ] && { ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; }; then
  say "adding rustfmt and clippy"
  rustup component add rustfmt clippy
fi

venv=.tools/venv
if [ ! -x "$venv/bin/python" ]; then
  say "creating $venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
fi

need=()
if [ "$mode" != package ]; then
  "$venv/bin/python" -c 'import moto.server, flask_cors' 2>/dev/null || need+=('moto[server]>=5.0,<6')
  [ -x "$venv/bin/cfn-lint" ] || need+=('cfn-lint>=1.0,<2')
  # The independent token verifier of the tests (integration-tests/oidc_verify.py); boto3 (with
  # moto) creates the local run's KMS key and secrets.
  "$venv/bin/python" -c 'import jwt' 2>/dev/null || need+=('PyJWT>=2.8,<3')
fi
# SAM CLI for `sam validate --lint` (and `sam build`/`sam deploy`); 1.170 is the version tested,
# whose rust-cargolambda build method is no longer a beta feature.
if [ "$mode" = test ]; then
  { [ -x "$venv/bin/sam" ] && "$venv/bin/python" -c 'import samcli' 2>/dev/null; } ||
    need+=('aws-sam-cli>=1.170,<2')
  # schemathesis for scripts/contract.sh (api/openapi.yaml against the local API); pinned: its
  # CLI flags and checks change between releases.
  "$venv/bin/python" -c 'import importlib.metadata as m, sys; sys.exit(m.version("schemathesis") != "4.32.5")' 2>/dev/null ||
    need+=('schemathesis==4.32.5')
fi
if [ "$mode" = dev ] || [ "$mode" = package ]; then
  [ -x "$venv/bin/cargo-lambda" ] || need+=('cargo-lambda>=1.9,<2')
fi
if [ "${#need[@]}" -gt 0 ]; then
  say "pip install ${need[*]}"
  "$venv/bin/python" -m pip install -q "${need[@]}"
fi

# The Lambda functions run on arm64 (Graviton): cargo-lambda cross-compiles with zig as the linker
# and needs the target's standard library from rustup.
if [ "$mode" = package ]; then
  arm=aarch64-unknown-linux-gnu
  installed="$(rustup target list --installed)"
  if ! grep -qx "$arm" <<<"$installed"; then
    say "adding the rust target $arm"
    rustup target add "$arm"
  fi
fi

# The docs page's Swagger UI (served by scripts/web_server.py at /docs/), never from a CDN.
if [ "$mode" = dev ]; then
  if command -v npm >/dev/null; then
    npm_ci web/docs
  else
    say "npm not found: the local run's /docs/ page will not render (Swagger UI is vendored with npm)"
  fi
fi
say "ready ($mode)"
