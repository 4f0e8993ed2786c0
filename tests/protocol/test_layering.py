"""Each layer imports only those below it: checked on the source, statically."""
import ast
from pathlib import Path

import pytest

import warrenmq

PKG = Path(warrenmq.__file__).parent

# layer -> modules it must never import (absolute names or warrenmq subpackages)
FORBIDDEN = {
    "protocol": {"asyncio", "socket", "selectors", "ssl", "warrenmq.broker", "warrenmq.transport",
                 "warrenmq.management", "warrenmq.store", "warrenmq.cli", "warrenmq.testing", "warrenmq.app"},
    "store": {"asyncio", "socket", "selectors", "warrenmq.broker", "warrenmq.transport", "warrenmq.management",
              "warrenmq.cli", "warrenmq.testing", "warrenmq.app"},
    "broker": {"asyncio", "socket", "selectors", "warrenmq.transport", "warrenmq.management", "warrenmq.cli",
               "warrenmq.testing", "warrenmq.app"},
}


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


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_only_lower_layers(layer):
    files = sorted((PKG / layer).rglob("*.py"))
    assert files, f"no sources found for layer {layer}"
    bad = []
    for f in files:
        package = ".".join(("warrenmq",) + f.relative_to(PKG).parts[:-1])
        for name in imported_modules(f, package):
            for forbidden in FORBIDDEN[layer]:
                if name == forbidden or name.startswith(forbidden + "."):
                    bad.append(f"{f.relative_to(PKG)} imports {name}")
    assert not bad, "\n".join(bad)


def test_the_check_detects_a_violation(tmp_path):
    fake = tmp_path / "probe.py"
    fake.write_text("import asyncio\nfrom ..broker import session\n")
    names = imported_modules(fake, "warrenmq.protocol")
    assert "asyncio" in names and "warrenmq.broker.session" in names
