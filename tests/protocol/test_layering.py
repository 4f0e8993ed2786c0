"""Each layer imports only those below it: checked on the source, statically.

protocol/ (sans-I/O AMQP) < store/ < broker/ (the domain: no sockets, no event loop, no concrete store)
< amqp/ (the session adapter), management/ (the HTTP API), prometheus/ (the metrics) < transport/, testing/, cli/, app.py.  Every package under src/warrenmq
must have its rules here, so a new package cannot slip by unchecked.
"""
import ast
from pathlib import Path

import pytest

import warrenmq

PKG = Path(warrenmq.__file__).parent

#: packages that do not exist yet but have a place in the layout: forbidden below where they belong
FUTURE: set = set()
_IO = {"asyncio", "socket", "selectors", "ssl"}
_ABOVE_BROKER = {"warrenmq.amqp", "warrenmq.mqtt", "warrenmq.management", "warrenmq.prometheus", "warrenmq.transport",
                 "warrenmq.cli", "warrenmq.testing", "warrenmq.app", "warrenmq.stomp", "warrenmq.links",
                 "warrenmq.shovel", "warrenmq.federation"} | FUTURE
#: the concrete stores: only the factory (warrenmq.store.open_storage) and the application choose them
_CONCRETE_STORES = {"warrenmq.store.segments", "warrenmq.store.memory", "warrenmq.store.metadata",
                    "warrenmq.store.MemoryStore", "warrenmq.store.SegmentStore", "warrenmq.store.memory_storage"}

# package -> modules it must never import (absolute names, or warrenmq subpackages and their modules)
FORBIDDEN = {
    "protocol": _IO | _ABOVE_BROKER | {"warrenmq.broker", "warrenmq.store"},
    "store": _IO | _ABOVE_BROKER | {"warrenmq.broker"},
    # the domain knows no frames: the AMQP connection (frame splitting and encoding) is the adapter's
    "broker": _IO | _ABOVE_BROKER | _CONCRETE_STORES | {"fcntl", "shutil", "warrenmq.protocol.connection"},
    "amqp": _IO | {"warrenmq.management", "warrenmq.prometheus", "warrenmq.transport", "warrenmq.cli", "warrenmq.testing", "warrenmq.app"}
    | FUTURE | _CONCRETE_STORES,
    # MQTT: codec and connection sans-I/O (tests/mqtt checks they import no broker), session.py the adapter
    "mqtt": _IO | {"warrenmq.amqp", "warrenmq.management", "warrenmq.prometheus", "warrenmq.transport", "warrenmq.cli",
                   "warrenmq.testing", "warrenmq.app"} | FUTURE | _CONCRETE_STORES,
    # STOMP: codec.py sans-I/O (tests/stomp checks it imports nothing), session.py the adapter on the domain
    "stomp": _IO | {"warrenmq.amqp", "warrenmq.management", "warrenmq.transport", "warrenmq.cli",
                    "warrenmq.testing", "warrenmq.app", "warrenmq.mqtt", "warrenmq.prometheus"} | FUTURE | _CONCRETE_STORES,
    # the management HTTP API: an adapter beside amqp/ (it reads the domain and the AMQP listeners' sessions)
    "management": {"warrenmq.cli", "warrenmq.testing", "warrenmq.app", "warrenmq.prometheus"} | FUTURE
    | _CONCRETE_STORES,
    # the Prometheus metrics: an adapter beside management/ (it reads the domain and the management's names)
    "prometheus": {"warrenmq.cli", "warrenmq.testing", "warrenmq.app"} | FUTURE | _CONCRETE_STORES,
    # the outgoing AMQP links (aiormq to a remote broker, a direct session on the domain for a local vhost):
    # beside amqp/, whose server properties a link announces
    "links": {"warrenmq.management", "warrenmq.prometheus", "warrenmq.transport", "warrenmq.cli",
              "warrenmq.testing", "warrenmq.app", "warrenmq.mqtt", "warrenmq.stomp", "warrenmq.shovel"}
    | FUTURE | _CONCRETE_STORES,
    # shovels run on links; the management API shows them (management may import shovel, not the reverse)
    "shovel": {"warrenmq.management", "warrenmq.prometheus", "warrenmq.transport", "warrenmq.cli",
               "warrenmq.testing", "warrenmq.app", "warrenmq.mqtt", "warrenmq.stomp"} | FUTURE | _CONCRETE_STORES,
    "transport": {"warrenmq.cli", "warrenmq.testing", "warrenmq.app"},
    "testing": {"warrenmq.cli"},
    "cli": {"warrenmq.testing"},
}
#: packages that may be missing on a branch (added by work in flight)
OPTIONAL: set = set()


def imported_modules(path: Path, package: str) -> set:
    tree = ast.parse(path.read_text(), str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            names.add(mod)
            names.update(f"{mod}.{a.name}" for a in node.names)
    return names


def violations(layer: str) -> list:
    bad = []
    for f in sorted((PKG / layer).rglob("*.py")):
        package = ".".join(("warrenmq",) + f.relative_to(PKG).parts[:-1])
        for name in imported_modules(f, package):
            for forbidden in FORBIDDEN[layer]:
                if name == forbidden or name.startswith(forbidden + "."):
                    bad.append(f"{f.relative_to(PKG)} imports {name}")
    return bad


def test_every_package_has_rules():
    packages = {p.name for p in PKG.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    unknown = packages - set(FORBIDDEN)
    assert not unknown, f"packages without layering rules (add them to FORBIDDEN): {sorted(unknown)}"
    missing = set(FORBIDDEN) - packages - OPTIONAL
    assert not missing, f"rules for packages that do not exist: {sorted(missing)}"
    assert not {f"warrenmq.{p}" for p in packages} & FUTURE, "a future package exists: give it rules"


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_only_lower_layers(layer):
    if not (PKG / layer).is_dir():
        assert layer in OPTIONAL
        pytest.skip(f"no package {layer} on this branch")
    files = sorted((PKG / layer).rglob("*.py"))
    assert files, f"no sources found for layer {layer}"
    bad = violations(layer)
    assert not bad, "\n".join(bad)


def test_the_check_detects_a_violation(tmp_path):
    fake = tmp_path / "probe.py"
    fake.write_text("import asyncio\nfrom ..broker import session\n")
    names = imported_modules(fake, "warrenmq.protocol")
    assert "asyncio" in names and "warrenmq.broker.session" in names


def test_the_check_detects_a_concrete_store_in_the_domain(tmp_path):
    fake = tmp_path / "probe.py"
    fake.write_text("from ..store.segments import SegmentStore\nfrom ..store import MemoryStore\n"
                    "from ..store import open_storage\nfrom ..store.base import Storage\n")
    names = imported_modules(fake, "warrenmq.broker")
    hits = {n for n in names for f in FORBIDDEN["broker"] if n == f or n.startswith(f + ".")}
    assert hits == {"warrenmq.store.segments", "warrenmq.store.segments.SegmentStore", "warrenmq.store.MemoryStore"}
