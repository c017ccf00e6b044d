#!/usr/bin/env bash
# Installs what bench/compare.py needs besides the Rust release build, into bench-only places:
#   bench/.venv                          Python: the Flask equivalent's packages and the driver's
#                                        software authenticator (fido2), pinned in requirements.txt
#   bench/equivalents/node/node_modules  Node: the node:http equivalent's packages, from
#                                        package-lock.json (npm ci)
# Both are git-ignored. BENCH_VENV chooses another venv path. Idempotent: re-run after a pin changes.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${BENCH_VENV:-$here/../.venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/python/requirements.txt"
(cd "$here/node" && npm ci --no-audit --no-fund --loglevel=error)
echo "bench equivalents installed: $venv, $here/node/node_modules"
