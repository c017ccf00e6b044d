#!/usr/bin/env bash
# Instruction counts of the CPU-bound core of a ceremony, under valgrind's callgrind: comparable
# between builds on a noisy machine, where CPU time is not.
#
#   bench/callgrind.sh [repetitions]        (default 50)
#
# Builds shared/examples/ceremony_core.rs with the workspace's release profile (into
# $CARGO_TARGET_DIR, else target/), then for each of its operations runs it under
# `valgrind --tool=callgrind` with 1 and with 1 + N repetitions; instructions per operation =
# (Ir(1 + N) - Ir(1)) / N, so setup, process start and first-use costs cancel out. Prints a
# Markdown table and writes it to bench/results/<UTC date and time>-callgrind.md.
# NO_BUILD=1 skips the build. Needs valgrind (`apt-get install valgrind`).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
reps="${1:-50}"
target="${CARGO_TARGET_DIR:-$root/target}"
bin="$target/release/examples/ceremony_core"
command -v valgrind >/dev/null || { echo "valgrind is missing: apt-get install valgrind" >&2; exit 1; }
if [ "${NO_BUILD:-0}" != 1 ]; then
  (cd "$root" && CARGO_TARGET_DIR="$target" nice -n 10 cargo build --release -p shared --example ceremony_core)
fi
[ -x "$bin" ] || { echo "$bin is not built" >&2; exit 1; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# Total instructions (Ir) of one run, from callgrind's summary line "I refs: 1,234,567" (older
# versions) or "Collected : 1234567".
irefs() {
  valgrind --tool=callgrind --callgrind-out-file="$tmp/out" "$bin" "$1" "$2" 2>"$tmp/err" >/dev/null \
    || { cat "$tmp/err" >&2; exit 1; }
  sed -n -e 's/.*Collected : *\([0-9]*\).*/\1/p' -e 's/.*I *refs: *\([0-9,]*\).*/\1/p' "$tmp/err" | tr -d , | head -1
}

now="$(date -u '+%Y-%m-%d %H:%M')"
cpu="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
rev="$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')"
{
  echo "# Instructions per operation (callgrind), $now UTC"
  echo
  echo "\`$bin\` (release profile), commit $rev; $(nproc) CPUs ($cpu); $(valgrind --version)."
  echo "Per operation: (Ir of 1 + $reps repetitions − Ir of 1) / $reps."
  echo
  echo "| operation | what | instructions |"
  echo "| --- | --- | ---: |"
  "$bin" list | while IFS=$'\t' read -r op what; do
    one="$(irefs "$op" 1)"
    many="$(irefs "$op" $((reps + 1)))"
    per=$(( (many - one) / reps ))
    printf '| %s | %s | %s |\n' "$op" "$what" "$(printf "%'d" "$per" 2>/dev/null || echo "$per")"
  done
} | tee "$tmp/table.md"
mkdir -p "$root/bench/results"
out="$root/bench/results/$(date -u +%Y-%m-%d-%H%M)-callgrind.md"
cp "$tmp/table.md" "$out"
echo "written to $out" >&2
