"""docs/testing.md's examples are real: every Python block with a test in it runs, and passes.

Each block becomes a test file of a user suite run in a fresh interpreter, with
the plugin loaded from its entry point, as a user's ``pytest`` would run it.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

pytestmark = pytest.mark.timeout(180)

DOC = Path(__file__).resolve().parents[2] / "docs" / "testing.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
TEST = re.compile(r"^def (test_\w+)\(", re.M)


def example_files() -> dict[str, str]:
    blocks = [b for b in BLOCK.findall(DOC.read_text()) if TEST.search(b)]
    return {f"test_doc_example_{i}": b for i, b in enumerate(blocks)}


def test_the_doc_has_examples_for_every_client():
    code = "\n".join(example_files().values())
    for client in ("import pika", "import aio_pika", "from kombu import", "from celery import",
                   "warrenmq_session_broker", "rabbitmq_url"):
        assert client in code, client


def test_doc_examples_pass(pytester):
    pytest.importorskip("celery")
    files = example_files()
    names = [n for code in files.values() for n in TEST.findall(code)]
    pytester.makepyfile(**files)
    result = pytester.runpytest_subprocess("-p", "no:hypothesispytest", "-p", "no:cacheprovider", "-v")
    result.assert_outcomes(passed=len(names))
    for name in names:  # each by name: none skipped or deselected in place of another
        result.stdout.fnmatch_lines([f"*::{name} PASSED*"])
