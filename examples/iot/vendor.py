#!/usr/bin/env python3
"""Vendor the dashboard's one JavaScript dependency, MQTT.js, from the npm registry.

Theory of operation: the dashboard (static/) has no build step and the example
downloads nothing when it runs, so the browser client is committed under
static/vendor/mqtt/.  This script is how it gets there: it fetches the pinned
version's tarball from registry.npmjs.org, checks it against the
Subresource-Integrity value pinned below (sha512, npm's ``dist.integrity``) and
extracts only the ES module build the page imports plus the licence, then writes
a README saying what they are and how to refresh them.

Refresh (a new MQTT.js release):
    1. ``curl -s https://registry.npmjs.org/mqtt/<version>`` and read ``dist.integrity``;
    2. set VERSION and INTEGRITY below (read the release notes);
    3. ``python examples/iot/vendor.py``, run tests/examples/test_iot.py, commit the script and the files.

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

NAME = "mqtt"
VERSION = "5.16.0"
INTEGRITY = "sha512-G0VsEtuJz5sJUgZJaaADMVfW7SIFPzkIuHR+d6rk+tBeSwdCfd9BaIRycRfd2AbyFDEmLlFM+SDQeti/+IbOnw=="
LICENSE = "MIT"
TARBALL = f"https://registry.npmjs.org/{NAME}/-/{NAME}-{VERSION}.tgz"
#: member of the tarball -> file name under the vendor directory
FILES = {
    "package/dist/mqtt.esm.js": "mqtt.esm.js",
    "package/LICENSE.md": "LICENSE.md",
}
DEST = Path(__file__).resolve().parent / "static" / "vendor" / "mqtt"

README = f"""# MQTT.js {VERSION} (vendored)

- Package: `{NAME}` {VERSION} from the npm registry, {TARBALL}
- Integrity (npm `dist.integrity`, checked before extracting): `{INTEGRITY}`
- Licence: {LICENSE}, see LICENSE.md in this directory (Copyright (c) 2015-2016 MQTT.js contributors,
  2011-2014 Adam Rudd); the bundle's own header comments name the licences of what it bundles
- Upstream: https://github.com/mqttjs/MQTT.js
- Files: {", ".join(f"`{v}` (`{k.removeprefix('package/')}`)" for k, v in FILES.items())}, unchanged.

Written by `examples/iot/vendor.py`; do not edit these files. To refresh, set VERSION and
INTEGRITY in that script, run `python examples/iot/vendor.py`, run tests/examples/test_iot.py and commit.
"""


def sri(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def fetch() -> bytes:
    with urllib.request.urlopen(TARBALL, timeout=60) as r:
        data = r.read()
    got = sri(data)
    if got != INTEGRITY:
        sys.exit(f"vendor: {TARBALL} has integrity {got}, not the pinned {INTEGRITY}: refusing it")
    return data


def members(data: bytes) -> dict[str, bytes]:
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member, name in FILES.items():
            f = tar.extractfile(member)  # by exact name: nothing else of the tarball is read
            if f is None:
                sys.exit(f"vendor: {member} missing from {TARBALL}")
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
            print(f"vendor: {DEST / n} differs from {NAME} {VERSION}'s", file=sys.stderr)
        return 1 if bad else 0
    DEST.mkdir(parents=True, exist_ok=True)
    for old in DEST.iterdir():
        if old.name not in files:
            old.unlink()
    for n, b in files.items():
        (DEST / n).write_bytes(b)
    print(f"vendor: {NAME} {VERSION} ({LICENSE}) -> {DEST}: {', '.join(sorted(files))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
