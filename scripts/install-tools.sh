#!/usr/bin/env bash
# Installs what the project needs and the machine lacks; safe to run again (it only adds).
#   scripts/install-tools.sh test     rustfmt/clippy, moto's server, cfn-lint, PyJWT, SAM CLI (sam validate),
#                                     schemathesis (scripts/contract.sh)
#   scripts/install-tools.sh dev      rustfmt/clippy, moto's server, cfn-lint, cargo-lambda (local run)
#   scripts/install-tools.sh package  cargo-lambda (with zig, the cross-linker) and the rust target
#                                     aarch64-unknown-linux-gnu (scripts/package.sh)
# Python tools go to a project-local venv, .tools/venv, so nothing global is touched; the rust
# target is added to the active rustup toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."

mode="${1:-test}"
case "$mode" in
  test|dev|package) ;;
  *) echo "usage: $0 [test|dev|package]" >&2; exit 2 ;;
esac

say() { printf '[install-tools] %s\n' "$*"; }

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
say "ready ($mode)"
