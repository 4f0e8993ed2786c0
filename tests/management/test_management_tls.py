"""The management API over HTTPS (management_tls_certfile/keyfile, RabbitMQ's management.ssl.*): real
requests with a CA the test makes (trustme), from the embedded broker and the ``warrenmq`` command; the
listener settings (--management-port, WARRENMQ_MANAGEMENT_PORT, --management-host) and their faults."""
import base64
import json
import os
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from warrenmq.testing import EmbeddedBroker

from support.pki import make_pki
from support.process import free_port

trustme = pytest.importorskip("trustme")
SRC = str(Path(__file__).resolve().parents[2] / "src")
AUTH = "Basic " + base64.b64encode(b"guest:guest").decode()


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(trustme, tmp_path_factory.mktemp("pki"))


def get(url, context=None, auth=AUTH):
    req = urllib.request.Request(url, headers={"Authorization": auth} if auth else {})
    with urllib.request.urlopen(req, timeout=10, context=context) as r:
        return r.status, json.loads(r.read())


def test_https_with_a_trusted_ca_and_refusals_without_it(pki):
    with EmbeddedBroker(management=True, management_tls_certfile=pki["server"],
                        management_tls_keyfile=pki["server_key"]) as b:
        url = b.management_url
        assert url.startswith("https://127.0.0.1:")
        trusted = ssl.create_default_context(cafile=pki["ca"])
        status, overview = get(url + "/api/overview", trusted)
        assert status == 200
        listeners = {(x["protocol"], x["port"]) for x in overview["listeners"]}
        assert ("https", b.app.management_port) in listeners and ("amqp", b.port) in listeners
        # a client that does not trust the CA refuses the certificate
        with pytest.raises(urllib.error.URLError) as e:
            get(url + "/api/overview", ssl.create_default_context())
        assert isinstance(e.value.reason, ssl.SSLCertVerificationError)
        # plain HTTP on the HTTPS port gets no API answer
        with pytest.raises((urllib.error.URLError, ConnectionError, http_errors())):
            get(url.replace("https://", "http://") + "/api/overview")
        # credentials are still checked over HTTPS
        with pytest.raises(urllib.error.HTTPError) as e:
            get(url + "/api/overview", trusted, auth="Basic " + base64.b64encode(b"guest:wrong").decode())
        assert e.value.code == 401


def http_errors():
    import http.client
    return http.client.HTTPException


def test_without_tls_settings_the_embedded_broker_serves_plain_http():
    with EmbeddedBroker(management=True) as b:
        assert b.management_url.startswith("http://127.0.0.1:")
        status, _ = get(b.management_url + "/api/whoami")
        assert status == 200
    with EmbeddedBroker() as b:  # off unless asked
        with pytest.raises(RuntimeError, match="management API is off"):
            b.management_url


def warrenmq(*args, env=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith("WARRENMQ_")}
    e["PYTHONPATH"] = SRC + os.pathsep + e.get("PYTHONPATH", "")
    e["WARRENMQ_PROMETHEUS_ENABLED"] = "false"  # port 15692 may be taken
    e["WARRENMQ_STOMP_ENABLED"] = "false"  # and 61613
    e["WARRENMQ_MQTT_ENABLED"] = "false"  # and 1883, 15675 (a reference RabbitMQ may hold 1883)
    e.update(env or {})
    return [sys.executable, "-m", "warrenmq", *args], e


def wait_http(url, context, proc, timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, proc.stderr.read()
        try:
            return get(url, context)
        except (urllib.error.URLError, ConnectionError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_the_command_serves_https_on_the_port_from_the_environment(pki, tmp_path):
    port = free_port()
    cmd, env = warrenmq("--host", "127.0.0.1", "--port", "0", "--in-memory",
                        "--management-tls-certfile", pki["server"], "--management-tls-keyfile", pki["server_key"],
                        env={"WARRENMQ_MANAGEMENT_PORT": str(port), "WARRENMQ_MANAGEMENT_HOST": "127.0.0.1"})
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        status, me = wait_http(f"https://127.0.0.1:{port}/api/whoami", ssl.create_default_context(cafile=pki["ca"]),
                               proc)
        assert (status, me["name"]) == (200, "guest")
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert f"management API on https://127.0.0.1:{port}/api/" in err


@pytest.mark.parametrize("flags, message", [
    (["--management-tls-certfile", "CERT"],
     "warrenmq: management TLS needs both management_tls_certfile and management_tls_keyfile"),
    (["--management-tls-certfile", "MISSING", "--management-tls-keyfile", "KEY"],
     "warrenmq: cannot load management TLS certificate 'MISSING' with key 'KEY': No such file or directory"),
])
def test_bad_management_tls_settings_are_one_line(pki, tmp_path, flags, message):
    subst = {"CERT": pki["server"], "KEY": pki["server_key"], "MISSING": str(tmp_path / "missing.pem")}
    flags = [subst.get(f, f) for f in flags]
    message = message.replace("'MISSING'", repr(subst["MISSING"])).replace("'KEY'", repr(subst["KEY"]))
    cmd, env = warrenmq("--host", "127.0.0.1", "--port", "0", "--in-memory", *flags)
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [message]


def test_the_management_host_is_where_it_listens():
    with EmbeddedBroker(management=True, management_host="127.0.0.1") as b:
        assert b.app.management.host == "127.0.0.1"
        with socket.create_connection(("127.0.0.1", b.app.management_port), timeout=5):
            pass
