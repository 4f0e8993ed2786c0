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

STOMP over TLS (``test_ssl.py``, ``test_cli_ssl.py``): the image's ActiveMQ serves it with keystores the
suite's Makefile makes, and the tests read the PEM exports from ``tmp/`` of their working directory.
Here the suite runs in a copy of the checkout whose ``tmp/`` holds the same roles made by trustme:
``broker.pem`` the CA of the broker's certificate, ``broker2.pem`` a CA that did not sign it,
``client.pem``/``client.key`` a client certificate the broker verifies (``--tls-verify-peer``), and
``expiredbroker.pem`` the CA of an expired certificate, served by a second broker on
``STD_SSL_EXPIRED_PORT``; ``STD_SSL_PORT`` is the first broker's ``--stomps-port``.

Only tests that fail against RabbitMQ 3.10.8 too, for the reason written next to them, are
deselected; everything else must pass on its first run (plugin autoloading off: only
pytest-timeout and pytest-mock, which the suite's test_misc uses, are loaded).
"""
from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import socket
import ssl
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
    "tests/test_ssl_sni.py": "STOMP over TLS behind the image's haproxy with SNI (my.example.com)",
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
def suite(tmp_path):
    """A copy of the checkout to run in (its ``tmp/`` gets the TLS tests' certificates, see the module)."""
    copy = tmp_path / "stomp.py"
    shutil.copytree(_suite_dir(), copy, ignore=shutil.ignore_patterns(".git", "tmp", "__pycache__", ".pytest_cache"))
    return copy


@pytest.fixture
def pki(suite):
    """The PEM files the suite's TLS tests read from ``tmp/``, and the brokers' certificates beside them."""
    trustme = pytest.importorskip("trustme")
    d = suite / "tmp"
    d.mkdir()
    ca, other, expired_ca = trustme.CA(), trustme.CA(), trustme.CA()
    ca.cert_pem.write_to_path(str(d / "broker.pem"))
    other.cert_pem.write_to_path(str(d / "broker2.pem"))
    expired_ca.cert_pem.write_to_path(str(d / "expiredbroker.pem"))
    client = ca.issue_cert("testclient")
    client.cert_chain_pems[0].write_to_path(str(d / "client.pem"))
    client.private_key_pem.write_to_path(str(d / "client.key"))
    files = {}
    for name, issuer, not_after in (("server", ca, None),
                                    ("expired", expired_ca, datetime.datetime(2020, 1, 2))):
        cert = issuer.issue_cert("127.0.0.1", "localhost", not_after=not_after)
        files[name] = (d / f"{name}-cert.pem", d / f"{name}-key.pem")
        cert.cert_chain_pems[0].write_to_path(str(files[name][0]))
        cert.private_key_pem.write_to_path(str(files[name][1]))
    files["ca"] = d / "broker.pem"
    return files


def _start_broker(tmp_path: Path, name: str, args: list, wanted: dict):
    """``python -m warrenmq`` with ``args``; returns (process, log, ports): the port each of ``wanted``'s
    log patterns names."""
    log = tmp_path / f"{name}.log"
    cmd = [sys.executable, "-m", "warrenmq", "--in-memory", "--definitions", str(_definitions(tmp_path / "defs.json")),
           "--host", "127.0.0.1", "--port", "0", "--no-management", "--no-prometheus", "--no-mqtt",
           "--log-level", "info", *args]
    env = _clean_env()
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                cwd=tmp_path)
    ports: dict = {}
    deadline = time.monotonic() + 30
    while len(ports) < len(wanted) and time.monotonic() < deadline and proc.poll() is None:
        text = log.read_text(errors="replace")
        for key, pattern in wanted.items():
            m = re.search(pattern, text, re.M)
            if m:
                ports[key] = int(m.group(1))
        time.sleep(0.05)
    if len(ports) < len(wanted):
        _stop(proc)
        pytest.fail(f"WarrenMQ did not report its STOMP listeners (exit code {proc.poll()}):\n"
                    f"$ {' '.join(cmd)}\n{log.read_text(errors='replace')}")
    return proc, log, ports


def _stop(proc) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
def stomp_broker(pki, tmp_path):
    """``python -m warrenmq`` with STOMP, STOMP over TLS (client certificates verified when presented) and
    Web STOMP on ephemeral ports, and a second one serving an expired certificate on its STOMP over TLS
    port; yields ({"stomp", "stomps", "ws", "expired"}: ports, the first one's log)."""
    tls = ["--tls-port", "0", "--stomp-port", "0", "--stomps-port", "0"]
    main, log, ports = _start_broker(tmp_path, "broker", [
        *tls, "--tls-certfile", str(pki["server"][0]), "--tls-keyfile", str(pki["server"][1]),
        "--tls-cafile", str(pki["ca"]), "--tls-verify-peer", "--web-stomp-port", "0", "--web-stomps-port", "0"], {
        "stomp": r"STOMP listening on \S+:(\d+)\s*$", "stomps": r"STOMP over TLS on \S+:(\d+)\s*$",
        "ws": r"Web STOMP on ws://\S+:(\d+)/ws\s*$"})
    try:
        expired, _, more = _start_broker(tmp_path, "expired", [
            *tls, "--tls-certfile", str(pki["expired"][0]), "--tls-keyfile", str(pki["expired"][1]),
            "--no-web-stomp"], {"expired": r"STOMP over TLS on \S+:(\d+)\s*$"})
        try:
            yield {**ports, **more}, log
        finally:
            _stop(expired)
    finally:
        _stop(main)


@pytest.mark.timeout(900)
def test_stomp_py_suite(suite, stomp_broker):
    ports, log = stomp_broker
    stomp_port, ws_port = ports["stomp"], ports["ws"]
    # the TLS tests that expect a refused connection are refused for the reason they name: the second
    # broker's certificate has expired, and broker2.pem did not sign the first one's
    for port, ca, reason in ((ports["expired"], "expiredbroker.pem", "certificate has expired"),
                             (ports["stomps"], "broker2.pem", "certificate verify failed")):
        ctx = ssl.create_default_context(cafile=str(suite / "tmp" / ca))
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with pytest.raises(ssl.SSLCertVerificationError, match=reason):
                ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    env = _clean_env()
    host = "127.0.0.1"
    for kind in ("STD", "RABBITMQ", "STOMPSERVER", "ARTEMIS"):
        env[f"{kind}_HOST"], env[f"{kind}_PORT"] = host, str(stomp_port)
    for kind in ("STD", "RABBITMQ", "ARTEMIS"):
        env[f"{kind}_USER"], env[f"{kind}_PASSWORD"] = "guest", "guest"
    env.update(STD_VHOST="/", RABBITMQ_WS_HOST=host, RABBITMQ_WS_PORT=str(ws_port),
               STD_SSL_PORT=str(ports["stomps"]), STD_SSL_EXPIRED_PORT=str(ports["expired"]),
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
                 "tests/test_s12.py::Test12Connect::test_clientnack PASSED",
                 "tests/test_ssl.py::TestSSL::test_ssl_client_cert_connection PASSED",
                 "tests/test_ssl.py::TestSSL::test_ssl_expired_broker_cert_connection PASSED",
                 "tests/test_cli_ssl.py::TestSSLCLI::test_ssl PASSED"):
        assert node in out, report
    assert counts.get("passed", 0) >= 80, report
    print(f"stomp.py suite ({suite}): {counts}")
