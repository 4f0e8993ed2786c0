#!/usr/bin/env python3
"""Vendor the web UI's one JavaScript dependency, uPlot, from the npm registry.

Theory of operation: the UI has no build step and downloads nothing at install or
test time, so its chart library is committed under
src/warrenmq/management/www/static/vendor/uplot/. This script is how those files
get there: it fetches the pinned version's tarball from registry.npmjs.org, checks it
against the Subresource-Integrity value pinned below (sha512, npm's
``dist.integrity``), and extracts only the files the UI loads plus the licence,
then writes a README saying what they are and how to refresh them.

Refresh (a new uPlot release):
    1. ``curl -s https://registry.npmjs.org/uplot/<version>`` and read ``dist.integrity``;
    2. set VERSION and INTEGRITY below (review the release's changes);
    3. ``python scripts/vendor_ui.py``, run tests/ui, commit the script and the files together.

``--check`` only verifies that the committed files are the pinned tarball's (no write).
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import io
import sys
import tarfile
import urllib.request
from pathlib import Path

NAME = "uplot"
VERSION = "1.6.32"
INTEGRITY = "sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw=="
LICENSE = "MIT"
TARBALL = f"https://registry.npmjs.org/{NAME}/-/{NAME}-{VERSION}.tgz"
#: member of the tarball -> file name under the vendor directory
FILES = {
    "package/dist/uPlot.esm.js": "uPlot.esm.js",
    "package/dist/uPlot.min.css": "uPlot.min.css",
    "package/LICENSE": "LICENSE",
}
DEST = Path(__file__).resolve().parent.parent / "src/warrenmq/management/www/static/vendor/uplot"

README = f"""# uPlot {VERSION} (vendored)

- Package: `{NAME}` {VERSION} from the npm registry, {TARBALL}
- Integrity (npm `dist.integrity`, checked before extracting): `{INTEGRITY}`
- Licence: {LICENSE}, see LICENSE in this directory (Copyright (c) Leon Sorokin)
- Upstream: https://github.com/leeoniya/uPlot
- Files: {", ".join(f"`{v}` (`{k.removeprefix('package/')}`)" for k, v in FILES.items())}, unchanged.

Written by `scripts/vendor_ui.py`; do not edit these files. To refresh, set VERSION and
INTEGRITY in that script, run `python scripts/vendor_ui.py`, run tests/ui and commit.
"""


def sri(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def fetch() -> bytes:
    with urllib.request.urlopen(TARBALL, timeout=60) as r:
        data = r.read()
    got = sri(data)
    if got != INTEGRITY:
        sys.exit(f"vendor_ui: {TARBALL} has integrity {got}, not the pinned {INTEGRITY}: refusing it")
    return data


def members(data: bytes) -> dict[str, bytes]:
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member, name in FILES.items():
            f = tar.extractfile(member)  # by exact name: nothing else of the tarball is read
            if f is None:
                sys.exit(f"vendor_ui: {member} missing from {TARBALL}")
            out[name] = f.read()
    out["README.md"] = README.encode()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="compare the committed files with the tarball's")
    args = ap.parse_args(argv)
    files = members(fetch())
    if args.check:
        bad = [n for n, b in files.items() if not (DEST / n).is_file() or (DEST / n).read_bytes() != b]
        for n in bad:
            print(f"vendor_ui: {DEST / n} differs from {NAME} {VERSION}'s", file=sys.stderr)
        return 1 if bad else 0
    DEST.mkdir(parents=True, exist_ok=True)
    for old in DEST.iterdir():
        if old.name not in files:
            old.unlink()
    for n, b in files.items():
        (DEST / n).write_bytes(b)
    print(f"vendor_ui: {NAME} {VERSION} ({LICENSE}) -> {DEST}: {', '.join(sorted(files))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
