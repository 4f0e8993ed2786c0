"""First-run faults of the ``warrenmq`` command: one line on stderr, a non-zero exit, no traceback, and
nothing created on disk before the listeners are bound."""
import fcntl
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[2] / "src")


def warrenmq(*args, env=None, timeout=30):
    e = dict(os.environ)
    e["PYTHONPATH"] = SRC + os.pathsep + e.get("PYTHONPATH", "")
    e.pop("WARRENMQ_CONFIG", None)
    e["WARRENMQ_MANAGEMENT_ENABLED"] = "false"  # port 15672 may be taken (test_management_port_* use it)
    e["WARRENMQ_PROMETHEUS_ENABLED"] = "false"  # and 15692
    e["WARRENMQ_STOMP_ENABLED"] = "false"  # and 61613
    e["WARRENMQ_MQTT_ENABLED"] = "false"  # and 1883, 15675 (a reference RabbitMQ may hold 1883)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "warrenmq", *args], capture_output=True, text=True,
                          timeout=timeout, env=e)


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_a_taken_port_is_one_line_suggesting_port_and_creates_no_data_dir(tmp_path):
    data = tmp_path / "data"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = warrenmq("--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data))
    assert r.returncode == 1
    line = one_line(r.stderr)
    assert line.startswith(f"warrenmq: cannot listen on 127.0.0.1:{port}: address already in use")
    assert "--port" in line
    assert not data.exists()  # the listeners are bound before anything is created on disk


def test_a_taken_tls_port_suggests_tls_port(tmp_path):
    trustme = __import__("pytest").importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "s.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "s.key"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = warrenmq("--host", "127.0.0.1", "--port", "0", "--tls-port", str(port), "--tls-certfile",
                     str(tmp_path / "s.pem"), "--tls-keyfile", str(tmp_path / "s.key"),
                     "--data-dir", str(tmp_path / "data"))
    assert r.returncode == 1
    line = one_line(r.stderr)
    assert f"127.0.0.1:{port} (TLS): address already in use" in line and "--tls-port" in line
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("option, hint, env", [
    ("--mqtts-port", "--mqtts-port", {"WARRENMQ_MQTT_ENABLED": "true", "WARRENMQ_MQTT_PORT": "0",
                                      "WARRENMQ_WEB_MQTT_ENABLED": "false"}),
    ("--stomps-port", "--stomps-port (or --no-stomp)", {"WARRENMQ_STOMP_ENABLED": "true", "WARRENMQ_STOMP_PORT": "0",
                                                        "WARRENMQ_WEB_STOMP_ENABLED": "false"}),
    ("--web-stomps-port", "--web-stomps-port (or --no-web-stomp)",
     {"WARRENMQ_STOMP_ENABLED": "true", "WARRENMQ_STOMP_PORT": "0", "WARRENMQ_STOMPS_PORT": "0",
      "WARRENMQ_WEB_STOMP_PORT": "0"}),
    ("--web-mqtts-port", "--web-mqtts-port (or --no-web-mqtt)",
     {"WARRENMQ_MQTT_ENABLED": "true", "WARRENMQ_MQTT_PORT": "0", "WARRENMQ_MQTTS_PORT": "0",
      "WARRENMQ_WEB_MQTT_PORT": "0"}),
])
def test_a_taken_plugin_tls_port_is_one_line_naming_its_option(tmp_path, option, hint, env):
    trustme = pytest.importorskip("trustme")
    from support.pki import make_pki
    pki = make_pki(trustme, tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = warrenmq("--host", "127.0.0.1", "--port", "0", "--tls-port", "0", "--tls-certfile", pki["server"],
                     "--tls-keyfile", pki["server_key"], option, str(port),
                     "--data-dir", str(tmp_path / "data"), env=env)
    assert r.returncode == 1
    line = one_line(r.stderr)
    assert line.startswith(f"warrenmq: cannot listen on 127.0.0.1:{port} (TLS): address already in use"), line
    assert line.endswith(f"Choose another port with {hint}"), line
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("protocol, option, env", [
    ("mqtt", "--mqtt-port", {"WARRENMQ_MQTT_ENABLED": "true", "WARRENMQ_WEB_MQTT_ENABLED": "false"}),
    ("stomp", "--stomp-port", {"WARRENMQ_STOMP_ENABLED": "true", "WARRENMQ_WEB_STOMP_ENABLED": "false"}),
    ("web-mqtt", "--web-mqtt-port", {"WARRENMQ_MQTT_ENABLED": "true", "WARRENMQ_MQTT_PORT": "0"}),
    ("web-stomp", "--web-stomp-port", {"WARRENMQ_STOMP_ENABLED": "true", "WARRENMQ_STOMP_PORT": "0"}),
])
def test_a_taken_plugin_port_names_its_option_not_the_data_directory(tmp_path, protocol, option, env):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = warrenmq("--host", "127.0.0.1", "--port", "0", option, str(port), "--data-dir", str(tmp_path / "data"),
                     env=env)
    assert r.returncode == 1
    line = one_line(r.stderr)
    assert line.startswith(f"warrenmq: cannot listen on 127.0.0.1:{port}: address already in use"), line
    assert f"Choose another port with {option} (or --no-{protocol})" in line
    assert not (tmp_path / "data").exists()


def test_a_locked_data_directory_is_one_line_naming_it_and_the_lock(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    with open(data / ".lock", "a+") as lock:  # what a running broker holds
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        r = warrenmq("--host", "127.0.0.1", "--port", "0", "--data-dir", str(data))
    assert r.returncode == 1
    line = one_line(r.stderr)
    assert line == (f"warrenmq: data directory {data} is in use by another broker (it holds the lock "
                    f"{data / '.lock'})")


def test_a_bad_log_level_is_an_argparse_error_listing_the_levels():
    r = warrenmq("--log-level", "loud", "--in-memory")
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert ("argument --log-level: invalid choice: 'loud' (choose from 'debug', 'info', 'warning', 'error', "
            "'critical')") in r.stderr.strip().splitlines()[-1]


def test_a_bad_log_level_from_the_environment_is_one_line():
    r = warrenmq("--in-memory", env={"WARRENMQ_LOG_LEVEL": "loud"})
    assert r.returncode == 2
    assert one_line(r.stderr) == "warrenmq: invalid log_level 'loud' (choose from debug, info, warning, error, critical)"


def test_log_level_is_case_insensitive_and_ports_are_checked_by_argparse():
    r = warrenmq("--log-level", "WARNING", "--port", "99999", "--in-memory")
    assert r.returncode == 2
    assert "invalid choice" not in r.stderr
    assert "argument --port: invalid port 99999 (0 to 65535)" in r.stderr.strip().splitlines()[-1]
