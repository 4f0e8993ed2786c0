"""The broker with only its core importable: aiohttp, uvloop and isal are dependencies of ``pip install .``,
but the embedded test broker (and the broker itself, without the management API) must keep working where
they cannot be imported.  A child process blocks their import with a meta-path finder, starts an
``EmbeddedBroker`` and publishes and consumes over a real socket with pika; the ``warrenmq`` command runs
there too, and asking it for the management API is one line naming aiohttp."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser from PyPI (a dependency there)
    import tomli as tomllib

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
SRC = str(ROOT / "src")
BLOCKED = ("aiohttp", "uvloop", "isal")

BLOCKER = textwrap.dedent(f"""
    import sys

    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {BLOCKED!r}:
                raise ImportError(f"No module named {{name!r}} (blocked by the test)")
            return None

    sys.meta_path.insert(0, Blocker())
    for name in list(sys.modules):
        if name.split(".")[0] in {BLOCKED!r}:
            del sys.modules[name]
""")


def run(code: str, *args, timeout=60):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARRENMQ_")}
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-c", BLOCKER + textwrap.dedent(code), *args], capture_output=True,
                          text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL)


def test_the_blocker_blocks():
    r = run("import aiohttp")
    assert r.returncode == 1 and "blocked by the test" in r.stderr


def test_the_embedded_broker_publishes_and_consumes_with_only_the_core():
    r = run("""
        import sys
        import pika
        from warrenmq.testing import EmbeddedBroker
        from warrenmq.store import records

        with EmbeddedBroker(durable=True) as b:  # durable: the store's records are checksummed (zlib's CRC)
            c = pika.BlockingConnection(pika.URLParameters(b.url))
            ch = c.channel()
            ch.confirm_delivery()
            ch.queue_declare("core", durable=True)
            for i in range(100):
                ch.basic_publish("", "core", b"m%d" % i, pika.BasicProperties(delivery_mode=2))
            got = []
            for method, props, body in ch.consume("core", inactivity_timeout=5):
                if method is None:
                    break
                got.append(body)
                ch.basic_ack(method.delivery_tag)
                if len(got) == 100:
                    break
            c.close()
            assert got == [b"m%d" % i for i in range(100)], got
            b.restart()  # recovery reads the records back
            c = pika.BlockingConnection(pika.URLParameters(b.url))
            assert c.channel().queue_declare("core", durable=True).method.message_count == 0
            c.close()
        assert records.crc32.__module__ == "zlib", records.crc32.__module__
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("aiohttp", "uvloop", "isal"))
        assert not loaded, loaded
        print("ok")
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"


def test_the_command_without_aiohttp_serves_amqp_and_says_what_the_management_api_needs():
    r = run("""
        import sys
        from warrenmq.cli.main import main
        sys.exit(main(sys.argv[1:]))
    """, "--in-memory", "--port", "0", "--management-port", "0")
    assert r.returncode == 1
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("warrenmq:")]
    assert len(lines) == 1 and "the management API needs aiohttp" in lines[0], r.stderr
    assert "Traceback" not in r.stderr

    r = run("""
        import asyncio, sys
        from warrenmq import app
        from warrenmq.config import BrokerConfig

        assert app.install_uvloop() is False  # asyncio's own loop then
        async def main():
            a = app.BrokerApp(BrokerConfig(data_dir="", port=0, host="127.0.0.1"))
            await a.start()
            r, w = await asyncio.open_connection("127.0.0.1", a.port)
            w.write(b"AMQP\\x00\\x00\\x09\\x01")
            frame = await r.readexactly(7)
            assert frame[0] == 1, frame  # connection.start
            w.close()
            await a.stop()
        asyncio.run(main())
        print("ok")
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"


def test_pip_install_dot_brings_what_production_needs():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = {Requirement(d).name: Requirement(d) for d in project["dependencies"]}
    assert {"aiohttp", "uvloop", "isal"} <= set(deps)
    uvloop = deps["uvloop"].marker
    for env, wanted in [({"sys_platform": "linux", "platform_python_implementation": "CPython"}, True),
                        ({"sys_platform": "darwin", "platform_python_implementation": "CPython"}, True),
                        ({"sys_platform": "win32", "platform_python_implementation": "CPython"}, False),
                        ({"sys_platform": "linux", "platform_python_implementation": "PyPy"}, False)]:
        assert uvloop.evaluate(env) is wanted, env
    assert deps["isal"].marker is None and deps["aiohttp"].marker is None
    # the former extra still resolves (old instructions: pip install 'warrenmq[fast]')
    assert {Requirement(d).name for d in project["optional-dependencies"]["fast"]} == {"uvloop", "isal"}
