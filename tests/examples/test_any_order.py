"""README's quick start and every example run in any order, again and again, against one broker with data.

A newcomer starts ``warrenmq`` (whose data directory persists), pastes the
README's quick-start snippets, runs the examples in whatever order, some of them
twice, and restarts the broker in between.  Declarations that disagree between
two of them (a durable and a transient queue of the same name, say) then fail
with ``406 PRECONDITION_FAILED - inequivalent arg`` on every later run, and
messages one leaves behind can turn up in another's output.

This test does that: one :class:`~warrenmq.testing.EmbeddedBroker` over a data
directory in ``tmp_path``; all the snippets (extracted from README.md, not
copied) and all the examples (every script in examples/, in its demo mode, plus
the sending roles that leave messages behind) run as subprocesses, in one
order and then in the reverse one; the broker restarts over the same directory;
then both orders again.  Each run must exit 0 with nothing on stderr, and a
snippet must print what its ``print(...)  # expected`` comments say.

The snippets name ``localhost`` on the default port 5672, which on a developer
machine or in CI is where a RabbitMQ listens.  They run unchanged, under a
small runner that points the name resolution of port 5672 at the embedded
broker's port (every client library resolves its host with
``socket.getaddrinfo``), so nothing here ever reaches a broker on 5672.
"""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from warrenmq.testing import EmbeddedBroker

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
EXAMPLES = ROOT / "examples"
TIMEOUT = 60.0
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
EXPECTED = re.compile(r"^\s*print\(.*\)\s*#\s*(.+)$", re.M)  # print(body)  # b'Hello World!'

# demo arguments that keep a run short; every other example runs with the URL alone
ARGS = {"sync_producer_consumer": ["200"], "async_producer_consumer": ["200"]}
# roles that leave something behind for the runs after them
LEFTOVERS = [("direct_queue", ["send", "left behind"]), ("work_queue", ["send", "left.behind"]),
             ("direct_routing", ["send", "error", "nobody listens"])]

REDIRECT = '''\
import runpy, socket, sys

broker_port, script = int(sys.argv[1]), sys.argv[2]
resolve = socket.getaddrinfo


def getaddrinfo(host, port, *args, **kwargs):  # socket.getaddrinfo's signature (pika passes keywords)
    if str(port) == "5672":  # the snippets' localhost:5672 is the embedded broker
        host, port = "127.0.0.1", broker_port
    return resolve(host, port, *args, **kwargs)


socket.getaddrinfo = getaddrinfo
sys.argv = [script]
runpy.run_path(script, run_name="__main__")
'''


def quick_start_snippets() -> list[str]:
    text = README.read_text()
    section = text[text.index("\n## Quick start\n"):]
    section = section[:re.search(r"\n##+ ", section[1:]).start() + 1]
    return BLOCK.findall(section)


def examples() -> list[str]:
    return sorted(p.stem for p in EXAMPLES.glob("*.py") if p.stem != "which_broker")


def test_the_quick_start_has_a_snippet_per_client():
    code = "\n".join(quick_start_snippets())
    for client in ("import pika", "import asyncio, aio_pika", "from kombu import Connection"):
        assert client in code, client
    for snippet in quick_start_snippets():
        ast.parse(snippet)
        assert EXPECTED.search(snippet), f"a snippet that shows what it prints:\n{snippet}"


def run(cmd: list[str], what: str) -> str:
    r = subprocess.run([sys.executable, *cmd], capture_output=True, text=True, timeout=TIMEOUT, cwd=ROOT)
    assert (r.returncode, r.stderr) == (0, ""), \
        f"{what} exited {r.returncode}\n--- stdout\n{r.stdout}\n--- stderr\n{r.stderr}"
    return r.stdout


@pytest.mark.timeout(600)
def test_snippets_and_examples_in_any_order_again_and_again(tmp_path):
    runner = tmp_path / "redirect_5672.py"
    runner.write_text(REDIRECT)
    items = []
    for i, snippet in enumerate(quick_start_snippets()):
        path = tmp_path / f"readme_snippet_{i}.py"
        path.write_text(snippet)
        items.append(("snippet", f"README quick-start snippet {i}:\n{snippet}", path, EXPECTED.findall(snippet)))
    for name in examples():
        items.append(("example", f"examples/{name}.py", EXAMPLES / f"{name}.py", ARGS.get(name, [])))
    for name, args in LEFTOVERS:
        items.append(("example", f"examples/{name}.py {' '.join(args)}", EXAMPLES / f"{name}.py", args))
    orders = [items, items[::-1]]

    with EmbeddedBroker(data_dir=str(tmp_path / "data"), fsync=False) as broker:
        port = broker.port
        for life in (1, 2):
            if life == 2:
                broker.restart()
                assert broker.port == port
            for order in orders:
                for kind, what, path, extra in order:
                    if kind == "snippet":
                        out = run([str(runner), str(port), str(path)], what)
                        assert out.splitlines() == extra, f"{what}\nprinted:\n{out}"
                    else:
                        out = run([str(path), broker.url, *extra], what)
                        assert out.startswith("connected to WarrenMQ "), f"{what}\nprinted:\n{out}"
