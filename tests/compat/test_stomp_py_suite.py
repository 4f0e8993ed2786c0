"""stomp.py's own test suite (its repository's ``tests/``) run against WarrenMQ's STOMP and Web STOMP.

The suite is not on PyPI: stomp.py's sdists (8.1.2, 9.0.0) carry only the ``stomp`` package, and
CI reaches no GitHub, so this test needs a checkout of github.com/jasonrbriggs/stomp.py named by
``WARRENMQ_STOMP_PY_SUITE`` and skips, saying so, without one (docs/stomp.md says how to run it).
The suite runs with the checkout's own ``stomp`` package: its tests import modules of the client
version they were written with (``stomp.logging``, gone in 9.0).

The suite is written for a Docker image holding ActiveMQ, RabbitMQ (rabbitmq_stomp and
rabbitmq_web_stomp, user guest) and stompserver, and reads their addresses from environment
variables.  Every one of them (``STD_*``, ``RABBITMQ_*``, ``RABBITMQ_WS_*``, ``STOMPSERVER_*``,
``ARTEMIS_*``) points here at one ``python -m warrenmq`` (in memory, STOMP and Web STOMP on
ephemeral ports read from its log), with RabbitMQ's settings: user guest/guest, vhost ``/``.
The STOMP 1.2 tests send ``host:127.0.0.1`` (stomp.py sends the host it connects to), which
RabbitMQ and WarrenMQ take as the vhost, so the broker gets a vhost named ``127.0.0.1`` too, as
a RabbitMQ running them needs one.

Only tests that fail against RabbitMQ 3.10.8 too, for the reason written next to them, are
deselected; everything else must pass on its first run (plugin autoloading off: only
pytest-timeout and pytest-mock, which the suite's test_misc uses, are loaded).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

import warrenmq

SRC = Path(warrenmq.__file__).resolve().parents[1]  # so the broker subprocess runs this very code
SUITE_ENV = "WARRENMQ_STOMP_PY_SUITE"

# Files that need a server WarrenMQ (like the RabbitMQ of the suite's image) does not offer.
SKIP_FILES = {
    # STOMP over TLS, with the image's keystores (tmp/broker.pem, an expired broker certificate):
    # WarrenMQ has no STOMP TLS listener yet, and the reference RabbitMQ node has none either
    "tests/test_ssl.py": "STOMP over TLS with the image's certificates",
    "tests/test_ssl_sni.py": "STOMP over TLS behind the image's haproxy with SNI (my.example.com)",
    "tests/test_cli_ssl.py": "the CLI over STOMP TLS",
    # the image's container address on a Docker IPv6 network (docker inspect)
    "tests/test_ipv6.py": "a broker on the Docker container's IPv6 address",
}
# Tests that fail against RabbitMQ 3.10.8 (the probe node's rabbitmq_stomp) as they do here.
DESELECT = [
    # connects to localhost:61613, the default port, without host settings: neither the reference
    # RabbitMQ (its STOMP moved off 61613) nor a test broker may assume that port
    "tests/test_basic.py::TestBasic::test_default_to_localhost",
    "tests/test_basic.py::TestBasic::test_host_bind_port",
    # no broker involved: expects a connect to 192.0.2.0:60000 (TEST-NET) to hang for 5 s, which
    # this network refuses at once (RabbitMQ fails it alike)
    "tests/test_basic.py::TestBasic::test_timeout",
]


def _suite_dir() -> Path:
    where = os.environ.get(SUITE_ENV)
    if not where:
        pytest.skip(f"stomp.py's test suite is not in its PyPI sdists and CI has no GitHub: set {SUITE_ENV} "
                    "to a checkout of github.com/jasonrbriggs/stomp.py to run it (docs/stomp.md)")
    path = Path(where).resolve()
    assert (path / "tests" / "testutils.py").is_file() and (path / "stomp").is_dir(), \
        f"{SUITE_ENV}={where} is not a stomp.py checkout (no tests/testutils.py or stomp/)"
    return path


def _clean_env() -> dict:
    return {k: v for k, v in os.environ.items() if not k.startswith(("WARRENMQ_", "PYTEST_"))}


def _definitions(path: Path) -> Path:
    perms = {"configure": ".*", "write": ".*", "read": ".*"}
    path.write_text(json.dumps({
        "users": [{"name": "guest", "password": "guest", "tags": "administrator"}],
        "vhosts": [{"name": "/"}, {"name": "127.0.0.1"}],
        "permissions": [{"user": "guest", "vhost": v, **perms} for v in ("/", "127.0.0.1")],
    }))
    return path


@pytest.fixture
def suite():
    return _suite_dir()


@pytest.fixture
def stomp_broker(suite, tmp_path):
    """``python -m warrenmq`` with STOMP and Web STOMP on ephemeral ports; yields (stomp, web_stomp, log)."""
    log = tmp_path / "broker.log"
    cmd = [sys.executable, "-m", "warrenmq", "--in-memory", "--definitions", str(_definitions(tmp_path / "defs.json")),
           "--host", "127.0.0.1", "--port", "0", "--no-management", "--no-prometheus", "--no-mqtt",
           "--stomp-port", "0", "--web-stomp-port", "0", "--log-level", "info"]
    env = _clean_env()
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                cwd=tmp_path)
    try:
        stomp_port = ws_port = None
        deadline = time.monotonic() + 30
        while (stomp_port is None or ws_port is None) and time.monotonic() < deadline and proc.poll() is None:
            text = log.read_text(errors="replace")
            m = re.search(r"STOMP listening on \S+:(\d+)\s*$", text, re.M)
            stomp_port = int(m.group(1)) if m else None
            m = re.search(r"Web STOMP on ws://\S+:(\d+)/ws\s*$", text, re.M)
            ws_port = int(m.group(1)) if m else None
            time.sleep(0.05)
        if stomp_port is None or ws_port is None:
            pytest.fail(f"WarrenMQ did not report its STOMP listeners (exit code {proc.poll()}):\n"
                        f"$ {' '.join(cmd)}\n{log.read_text(errors='replace')}")
        yield stomp_port, ws_port, log
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.timeout(900)
def test_stomp_py_suite(suite, stomp_broker):
    stomp_port, ws_port, log = stomp_broker
    env = _clean_env()
    host = "127.0.0.1"
    for kind in ("STD", "RABBITMQ", "STOMPSERVER", "ARTEMIS"):
        env[f"{kind}_HOST"], env[f"{kind}_PORT"] = host, str(stomp_port)
    for kind in ("STD", "RABBITMQ", "ARTEMIS"):
        env[f"{kind}_USER"], env[f"{kind}_PASSWORD"] = "guest", "guest"
    env.update(STD_VHOST="/", RABBITMQ_WS_HOST=host, RABBITMQ_WS_PORT=str(ws_port),
               PYTEST_DISABLE_PLUGIN_AUTOLOAD="1", PYTHONDONTWRITEBYTECODE="1")
    env.pop("PYTHONPATH", None)  # the checkout's stomp package, not the installed one
    files = sorted(str(p.relative_to(suite)) for p in (suite / "tests").glob("test_*.py"))
    assert len(files) >= 20, files
    run = [f for f in files if f not in SKIP_FILES]
    cmd = [sys.executable, "-m", "pytest", "--rootdir", ".", "-p", "pytest_timeout", "-p", "pytest_mock",
           "--timeout", "60", "-p", "no:cacheprovider", "-v", "-rfEs", "--color=no", *run]
    for node in DESELECT:
        cmd += ["--deselect", node]
    try:
        proc = subprocess.run(cmd, cwd=suite, env=env, capture_output=True, text=True, timeout=840,
                              stdin=subprocess.DEVNULL)
        out, rc = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        out, rc = out + "\n[timed out]", None
    tail = re.findall(r"^=+ (.*) in [\d.]+s.*=+$", out, re.M)
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed|deselected)",
                                               tail[-1] if tail else "")}
    report = (f"$ cd {suite} && {' '.join(cmd)}\nexit code {rc}, {counts}\n\n{out[-60000:]}\n"
              f"----- WarrenMQ log -----\n{log.read_text(errors='replace')[-20000:]}")
    assert rc == 0, report
    for bad in ("failed", "error", "errors", "skipped", "xfailed", "xpassed"):
        assert not counts.get(bad), report
    assert counts.get("deselected", 0) == len(DESELECT), report
    # the RabbitMQ tests, the WebSocket one and the STOMP 1.2 ones (on the 127.0.0.1 vhost) ran for real
    for node in ("tests/test_rabbitmq.py::TestRabbitMQSend::test_send PASSED",
                 "tests/test_rabbitmq_ws.py::TestRabbitMQSend::test_send PASSED",
                 "tests/test_s12.py::Test12Connect::test_clientnack PASSED"):
        assert node in out, report
    assert counts.get("passed", 0) >= 80, report
    print(f"stomp.py suite ({suite}): {counts}")
