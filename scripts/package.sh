#!/usr/bin/env bash
# Builds every Lambda function (each crate under functions/) for arm64, as the zips Lambda runs:
#   cargo lambda build --release --arm64 --output-format zip
# prints each zip's size and fails if one exceeds 6 MiB.
#   scripts/package.sh [FUNCTION ...]   (default: every function; names limit it to those)
#
# Output: target/lambda/<function>/bootstrap.zip (cargo-lambda's layout; `sam build` copies the
# unzipped target/lambda/<function>/bootstrap from the same build). The aarch64 release build lives
# in target/aarch64-unknown-linux-gnu/release and target/release (its build scripts), never in
# target/debug, so it leaves the tests' and clippy's build alone. Cargo decides what to rebuild: a
# warm target/ relinks only what changed, a fresh clone builds everything (see the README for the
# times). CARGO_TARGET_DIR moves all of it, as for any cargo command.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-tools.sh package
# cargo-lambda, and zig (the cross-linker) through the venv's python.
export PATH="$PWD/.tools/venv/bin:$PATH"

limit=$((6 * 1024 * 1024))

# The functions: every bin target of the workspace members under functions/, and the target
# directory cargo will use.
meta="$(cargo metadata --no-deps --format-version 1 --locked)"
read_meta() {
  python3 -c '
import json, os, sys
m = json.load(sys.stdin)
root = os.path.join(m["workspace_root"], "functions") + os.sep
if sys.argv[1] == "target":
    print(m["target_directory"])
else:
    print("\n".join(sorted(t["name"] for p in m["packages"] if p["manifest_path"].startswith(root)
                           for t in p["targets"] if "bin" in t["kind"])))
' "$1" <<<"$meta"
}
mapfile -t functions < <(read_meta bins)
target_dir="$(read_meta target)"
if [ "$#" -gt 0 ]; then
  for f in "$@"; do
    printf '%s\n' "${functions[@]}" | grep -qx -- "$f" || { echo "package: no function $f" >&2; exit 2; }
  done
  functions=("$@")
fi
[ "${#functions[@]}" -gt 0 ] || { echo "package: no function crates under functions/" >&2; exit 1; }

# Remove the previous zips first, so a zip that the build did not write cannot pass for a new one.
args=()
for f in "${functions[@]}"; do
  rm -f "$target_dir/lambda/$f/bootstrap.zip"
  args+=(--bin "$f")
done

# One cargo invocation for all functions: the dependency graph is compiled once. `--bin` (not
# `-p`) keeps cargo's feature resolution the workspace's, the same as `sam build`'s per-function
# `cargo lambda build --bin NAME`, so the two share every compiled crate.
echo "package: building ${#functions[@]} functions for aarch64-unknown-linux-gnu (release)"
start=$SECONDS
cargo lambda build --release --arm64 --output-format zip --locked "${args[@]}"
echo "package: build took $((SECONDS - start)) s"

# The table and the size check.
python3 - "$target_dir/lambda" "$limit" "${functions[@]}" <<'PY'
import os, sys, zipfile

lambda_dir, limit, names = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
mib = 1024 * 1024
failed = []
print(f"\n{'function':<30} {'zip':>10} {'bootstrap':>10}")
for name in names:
    path = os.path.join(lambda_dir, name, "bootstrap.zip")
    if not os.path.isfile(path):
        print(f"{name:<30} {'missing':>10}")
        failed.append(f"{name}: {path} was not written")
        continue
    size = os.path.getsize(path)
    with zipfile.ZipFile(path) as z:
        unzipped = sum(i.file_size for i in z.infolist())
    mark = "  OVER THE LIMIT" if size > limit else ""
    print(f"{name:<30} {size / mib:>6.2f} MiB {unzipped / mib:>6.2f} MiB{mark}")
    if size > limit:
        failed.append(f"{name}: {size} bytes > {limit}")
if failed:
    print(f"\npackage: FAILED, limit {limit / mib:.0f} MiB per zip:", *failed, sep="\n  ")
    sys.exit(1)
print(f"\npackage: {len(names)} zips in {lambda_dir}, each within {limit / mib:.0f} MiB")
PY
