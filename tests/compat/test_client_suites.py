"""The clients' own integration suites, run against WarrenMQ: our widest compatibility proof.

py-amqp's ``t/integration`` and kombu's ``t/integration/test_py_amqp.py`` ship in
their PyPI sdists and are written against a real RabbitMQ.  Each test here:

1. downloads (``pip download --no-binary :all:``) the sdist of the *installed*
   client version into a cache (``.ci/work/client-suites``, or
   ``$WARRENMQ_SUITE_CACHE``); only an unreachable package index skips;
2. unpacks the sdist's ``t/`` and ``setup.cfg`` (its pytest settings, e.g.
   ``python_classes = test_*``) into a temporary directory -- not the client's
   source, so the suite exercises the installed client;
3. generates the TLS files the suite expects in ``t/certs/`` (a CA, server and
   client certificates; ``client_*_broken.pem`` is a well-formed pair from a CA
   nobody trusts, so the TLS handshake with the broker fails with ``ssl.SSLError``);
4. starts ``python -m warrenmq`` as a subprocess -- a fresh node, in memory only,
   so nothing is recovered from the user's data directory -- with a plain
   listener and a TLS listener (verify_peer, fail_if_no_peer_cert) on ephemeral
   ports read from its log;
5. runs the suite with ``python -m pytest`` in a subprocess, with
   ``RABBITMQ_HOST``/``RABBITMQ_5672_TCP``/``RABBITMQ_5671_TCP`` pointing at it,
   and asserts that it passed with nothing skipped, printing its output otherwise.

The suites mark tests ``env`` and ``flaky(reruns=...)``, markers of plugins we do
not install.  Plugin autoloading is off in the subprocess (only pytest-timeout is
loaded) so every test must pass on its first run: no reruns hiding a broker bug.
"""
from __future__ import annotations

import contextlib
import importlib.metadata
import os
import re
import ssl
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import warrenmq

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("WARRENMQ_SUITE_CACHE") or ROOT / ".ci" / "work" / "client-suites")
SRC = Path(warrenmq.__file__).resolve().parents[1]  # so the broker subprocess runs this very code

# Tests that need the outside network, impossible here (and no broker test): deselected by node id.
AMQP_DESELECT = [
    # connects to tls-v1-2.badssl.com:1012 to check the system's default CA certificates
    "t/integration/test_rmq.py::test_tls_default_certs",
    # connects to tls-v1-2.badssl.com:1012 to check that a private CA does not trust it
    "t/integration/test_rmq.py::test_tls_no_default_certs_fails",
]
KOMBU_DESELECT: list = []  # every kombu py-amqp integration test talks only to the broker (or to closed ports)


# --------------------------------------------------------------------------- sdists
def _index_url() -> str:
    url = os.environ.get("PIP_INDEX_URL")
    if not url:
        try:
            out = subprocess.run([sys.executable, "-m", "pip", "config", "get", "global.index-url"],
                                 capture_output=True, text=True, timeout=60)
            url = out.stdout.strip() if out.returncode == 0 else ""
        except (OSError, subprocess.SubprocessError):
            url = ""
    return url or "https://pypi.org/simple/"


def _index_reachable() -> bool:
    """Whether the package index answers at all (any HTTP status counts as reachable)."""
    url = _index_url().rstrip("/") + "/pip/"
    cafile = os.environ.get("PIP_CERT") or os.environ.get("REQUESTS_CA_BUNDLE")
    try:
        ctx = ssl.create_default_context(cafile=cafile if cafile and os.path.exists(cafile) else None)
        with urllib.request.urlopen(url, timeout=20, context=ctx):
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False


def sdist(dist: str) -> Path:
    """The sdist of the installed version of ``dist``, downloaded once into the cache."""
    version = importlib.metadata.version(dist)
    path = CACHE / f"{dist}-{version}.tar.gz"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps",
               "--timeout", "30", "--retries", "2", "--dest", tmp, f"{dist}=={version}"]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
            out = proc.stdout + proc.stderr
            ok = proc.returncode == 0
        except subprocess.TimeoutExpired as e:
            out, ok = f"timed out: {e}", False
        found = sorted(Path(tmp).glob("*.tar.gz"))
        if not ok or not found:
            if not _index_reachable():
                pytest.skip(f"the package index ({_index_url()}) is unreachable: cannot download the "
                            f"{dist} {version} sdist that holds its integration suite")
            pytest.fail(f"could not download the {dist}=={version} sdist:\n$ {' '.join(cmd)}\n{out}")
        os.replace(found[0], path)
    return path


def unpack_suite(archive: Path, dest: Path) -> Path:
    """Extract the sdist's ``t/`` tree and ``setup.cfg`` (only) into ``dest``."""
    with tarfile.open(archive) as tf:
        members = tf.getmembers()
        top = members[0].name.split("/", 1)[0]
        chosen = []
        for m in members:
            rel = m.name[len(top) + 1:] if m.name.startswith(top + "/") else None
            if rel and (rel == "setup.cfg" or rel.startswith("t/")) and (m.isfile() or m.isdir()):
                m.name = rel
                chosen.append(m)
        kw = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tf.extractall(dest, members=chosen, **kw)
    assert (dest / "t" / "integration").is_dir(), f"{archive.name} has no t/integration"
    return dest


# ---------------------------------------------------------------------------- TLS
def make_certs(certs: Path) -> dict:
    """Write a CA, server and client certificates with py-amqp's file names (RabbitMQ tls-gen's)."""
    trustme = pytest.importorskip("trustme", reason="trustme (a test dependency) generates the TLS files")
    certs.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="WarrenMQ test CA")
    ca.cert_pem.write_to_path(str(certs / "ca_certificate.pem"))
    server = ca.issue_cert("localhost", "127.0.0.1", "::1")
    server.private_key_pem.write_to_path(str(certs / "server_key.pem"))
    for i, blob in enumerate(server.cert_chain_pems):
        blob.write_to_path(str(certs / "server_certificate.pem"), append=i > 0)
    client = ca.issue_cert("client.warrenmq.test")
    client.private_key_pem.write_to_path(str(certs / "client_key.pem"))
    client.cert_chain_pems[0].write_to_path(str(certs / "client_certificate.pem"))
    # "broken": a valid key and certificate, but issued by a CA that neither side trusts
    rogue = trustme.CA(organization_name="Untrusted CA")
    broken = rogue.issue_cert("client.warrenmq.test")
    broken.private_key_pem.write_to_path(str(certs / "client_key_broken.pem"))
    broken.cert_chain_pems[0].write_to_path(str(certs / "client_certificate_broken.pem"))
    return {name: str(certs / f"{name}.pem") for name in ("ca_certificate", "server_certificate", "server_key")}


# -------------------------------------------------------------------------- broker
def _clean_env() -> dict:
    return {k: v for k, v in os.environ.items() if not k.startswith(("WARRENMQ_", "PYTEST_"))}


@contextlib.contextmanager
def warrenmq_process(workdir: Path, certs: dict):
    """``python -m warrenmq`` with plain and TLS listeners on ephemeral ports; yields (port, tls_port, log)."""
    log = workdir / "broker.log"
    cmd = [sys.executable, "-m", "warrenmq", "--no-prometheus", "--no-stomp", "--no-mqtt", "--host", "127.0.0.1", "--port", "0", "--log-level", "info", "--in-memory", "--no-management",
           "--tls-port", "0", "--tls-certfile", certs["server_certificate"], "--tls-keyfile", certs["server_key"],
           "--tls-cafile", certs["ca_certificate"], "--tls-verify-peer", "--tls-fail-if-no-peer-cert"]
    env = _clean_env()
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                cwd=workdir)
    try:
        port = tls_port = None
        deadline = time.monotonic() + 30
        while (port is None or tls_port is None) and time.monotonic() < deadline and proc.poll() is None:
            text = log.read_text(errors="replace")
            m = re.search(r"listening on \S+:(\d+)\s*$", text, re.M)
            port = int(m.group(1)) if m else None
            m = re.search(r"listening for TLS.* on \S+:(\d+)\s*$", text, re.M)
            tls_port = int(m.group(1)) if m else None
            time.sleep(0.05)
        if port is None or tls_port is None:
            pytest.fail(f"WarrenMQ did not report its listeners (exit code {proc.poll()}):\n$ {' '.join(cmd)}\n"
                        f"{log.read_text(errors='replace')}")
        yield port, tls_port, log
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --------------------------------------------------------------------------- suites
def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def run_suite(suite: Path, paths: list, deselect: list, port: int, tls_port: int, broker_log: Path,
              timeout: float) -> tuple[str, dict]:
    env = _clean_env()
    env.update(RABBITMQ_HOST="127.0.0.1", RABBITMQ_5672_TCP=str(port), RABBITMQ_5671_TCP=str(tls_port),
               PYTEST_DISABLE_PLUGIN_AUTOLOAD="1", PYTHONDONTWRITEBYTECODE="1")
    # the sdist's own pytest settings (python_classes = test_*), or that setting alone if it has none
    ini = ["-c", "setup.cfg"] if "[tool:pytest]" in _read(suite / "setup.cfg") else ["-o", "python_classes=test_*"]
    cmd = [sys.executable, "-m", "pytest", *ini, "--rootdir", ".", "-p", "pytest_timeout",
           "--timeout", "60", "-p", "no:cacheprovider", "-W", "ignore::pytest.PytestUnknownMarkWarning",
           "-v", "-rfEs", "--color=no", *paths]
    for node in deselect:
        cmd += ["--deselect", node]
    try:
        proc = subprocess.run(cmd, cwd=suite, env=env, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
        out, rc = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        out, rc = out + f"\n[timed out after {timeout}s]", None
    tail = re.findall(r"^=+ (.*) in [\d.]+s.*=+$", out, re.M)
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed|deselected)",
                                               tail[-1] if tail else "")}
    report = (f"$ cd {suite} && {' '.join(cmd)}\nexit code {rc}, {counts}\n\n{out[-60000:]}\n"
              f"----- WarrenMQ log -----\n{broker_log.read_text(errors='replace')[-20000:]}")
    assert rc == 0, report
    assert counts.get("passed", 0) > 0, report
    for bad in ("failed", "error", "errors", "skipped", "xfailed", "xpassed"):
        assert not counts.get(bad), report
    assert counts.get("deselected", 0) == len(deselect), report
    return out, counts


@pytest.fixture
def suite_env(tmp_path):
    certs = make_certs(tmp_path / "suite" / "t" / "certs")
    with warrenmq_process(tmp_path, certs) as (port, tls_port, log):
        yield tmp_path / "suite", port, tls_port, log


@pytest.mark.timeout(600)
def test_py_amqp_integration_suite(suite_env):
    suite, port, tls_port, log = suite_env
    unpack_suite(sdist("amqp"), suite)
    out, counts = run_suite(suite, ["t/integration"], AMQP_DESELECT, port, tls_port, log, timeout=300)
    # the TLS variants ran for real, against the TLS listener
    for node in ("test_rmq.py::test_connect[tls] PASSED", "test_rmq.py::test_tls_connect_fails PASSED",
                 "test_publish_get[tls] PASSED"):
        assert node in out, out
    print(f"py-amqp {importlib.metadata.version('amqp')} t/integration: {counts}")


@pytest.mark.timeout(600)
def test_kombu_py_amqp_integration_suite(suite_env):
    suite, port, tls_port, log = suite_env
    unpack_suite(sdist("kombu"), suite)
    out, counts = run_suite(suite, ["t/integration/test_py_amqp.py"], KOMBU_DESELECT, port, tls_port, log,
                            timeout=300)
    print(f"kombu {importlib.metadata.version('kombu')} t/integration/test_py_amqp.py: {counts}")
