#!/usr/bin/env bash
# Installs what the project needs and the machine lacks; safe to run again (it only adds).
#   scripts/install-tools.sh test   rustfmt/clippy, moto's server, cfn-lint, PyJWT
#   scripts/install-tools.sh dev    the same plus cargo-lambda (local run)
# Python tools go to a project-local venv, .tools/venv, so nothing global is touched.
set -euo pipefail
cd "$(dirname "$0")/.."

mode="${1:-test}"
case "$mode" in
  test|dev) ;;
  *) echo "usage: $0 [test|dev]" >&2; exit 2 ;;
esac

say() { printf '[install-tools] %s\n' "$*"; }

# rustfmt and clippy for the checks.
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
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
"$venv/bin/python" -c 'import moto.server, flask_cors' 2>/dev/null || need+=('moto[server]>=5.0,<6')
[ -x "$venv/bin/cfn-lint" ] || need+=('cfn-lint>=1.0,<2')
# The independent token verifier of the tests (integration-tests/oidc_verify.py); boto3 (with
# moto) creates the local run's KMS key and secrets.
"$venv/bin/python" -c 'import jwt' 2>/dev/null || need+=('PyJWT>=2.8,<3')
if [ "$mode" = dev ]; then
  [ -x "$venv/bin/cargo-lambda" ] || need+=('cargo-lambda>=1.0,<2')
fi
if [ "${#need[@]}" -gt 0 ]; then
  say "pip install ${need[*]}"
  "$venv/bin/python" -m pip install -q "${need[@]}"
fi
say "ready ($mode)"
