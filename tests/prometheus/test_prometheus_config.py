"""Where the metrics are served: on by default for the ``warrenmq`` command on port 15692
(``--prometheus-port``, ``WARRENMQ_PROMETHEUS_PORT``, ``prometheus_port`` in the config file), on the
management host unless ``--prometheus-host``, off with ``--no-prometheus``; a taken port is one line naming
the flag."""
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from warrenmq.app import BrokerApp
from warrenmq.cli.main import build_parser
from warrenmq.config import BrokerConfig

from .conftest import Scrape, fetch

SRC = str(Path(__file__).resolve().parents[2] / "src")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env(**extra) -> dict:
    e = {k: v for k, v in os.environ.items() if not k.startswith("WARRENMQ_")}
    e["PYTHONPATH"] = SRC + os.pathsep + e.get("PYTHONPATH", "")
    e["WARRENMQ_STOMP_ENABLED"] = "false"  # 61613 may be taken
    e["WARRENMQ_MQTT_ENABLED"] = "false"  # and 1883, 15675 (a reference RabbitMQ may hold 1883)
    e.update(extra)
    return e


def start(args, **extra_env):
    port = free_port()
    return port, subprocess.Popen([sys.executable, "-m", "warrenmq", "--host", "127.0.0.1", "--port", str(port),
                                   "--in-memory", "--no-management", "--log-level", "warning", *args],
                                  env=env(**extra_env), stderr=subprocess.PIPE, text=True)


def wait_metrics(url, proc, timeout=20.0) -> Scrape:
    deadline = time.monotonic() + timeout
    while True:
        try:
            status, _, body = fetch(url)
            assert status == 200
            return Scrape(body.decode())
        except OSError:
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "the metrics never answered"
            time.sleep(0.1)


def wait_amqp(port, proc, timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline
            time.sleep(0.1)


def stop(proc):
    proc.terminate()
    proc.wait(timeout=20)


@pytest.mark.parametrize("how", ["flag", "env", "config"])
def test_the_command_serves_metrics_on_the_port_given(how, tmp_path):
    pport = free_port()
    args, extra = [], {}
    if how == "flag":
        args = ["--prometheus-port", str(pport)]
    elif how == "env":
        extra = {"WARRENMQ_PROMETHEUS_PORT": str(pport)}
    else:
        cfg = tmp_path / "warrenmq.toml"
        cfg.write_text(f"prometheus_port = {pport}\nprometheus_host = \"127.0.0.1\"\n")
        args = ["--config", str(cfg)]
    port, proc = start(args, **extra)
    try:
        s = wait_metrics(f"http://127.0.0.1:{pport}/metrics", proc)
        assert s.value("rabbitmq_connections") == 0
        assert "rabbitmq_identity_info" in s.families
    finally:
        stop(proc)


def test_no_prometheus_serves_nothing_on_the_port():
    pport = free_port()
    port, proc = start(["--prometheus-port", str(pport), "--no-prometheus"])
    try:
        wait_amqp(port, proc)
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", pport), timeout=1).close()
    finally:
        stop(proc)
    port, proc = start(["--prometheus-port", str(pport)], WARRENMQ_PROMETHEUS_ENABLED="false")
    try:
        wait_amqp(port, proc)
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", pport), timeout=1).close()
    finally:
        stop(proc)


def test_a_taken_prometheus_port_is_one_line_naming_the_flag(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        pport = taken.getsockname()[1]
        r = subprocess.run([sys.executable, "-m", "warrenmq", "--host", "127.0.0.1", "--port", "0",
                            "--no-management", "--prometheus-port", str(pport), "--data-dir", str(tmp_path / "d")],
                           env=env(), capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert f"cannot listen on 127.0.0.1:{pport}" in lines[0]
    assert "--prometheus-port (or --no-prometheus)" in lines[0]
    assert not (tmp_path / "d").exists()  # bound before the data directory is made


def test_config_defaults_env_and_flags():
    c = BrokerConfig()
    assert (c.prometheus_enabled, c.prometheus_port, c.prometheus_host) == (True, 15692, "")
    c = BrokerConfig.load(env={"WARRENMQ_PROMETHEUS_PORT": "9419", "WARRENMQ_PROMETHEUS_ENABLED": "false",
                               "WARRENMQ_PROMETHEUS_HOST": "127.0.0.9"})
    assert (c.prometheus_enabled, c.prometheus_port, c.prometheus_host) == (False, 9419, "127.0.0.9")
    args = build_parser().parse_args(["--prometheus-port", "0", "--prometheus-host", "::1", "--no-prometheus"])
    assert (args.prometheus_port, args.prometheus_host, args.no_prometheus) == (0, "::1", True)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--prometheus-port", "70000"])


def test_the_host_defaults_to_the_management_host_then_the_amqp_host():
    app = BrokerApp(BrokerConfig(host="127.0.0.2", data_dir=""), prometheus=True)
    assert app.prometheus.host == "127.0.0.2"
    app = BrokerApp(BrokerConfig(host="127.0.0.2", management_host="127.0.0.3", data_dir=""), prometheus=True)
    assert app.prometheus.host == "127.0.0.3"
    app = BrokerApp(BrokerConfig(host="127.0.0.2", management_host="127.0.0.3", prometheus_host="127.0.0.4",
                                 data_dir=""), prometheus=True)
    assert (app.prometheus.host, app.prometheus.port) == ("127.0.0.4", 15692)
    assert BrokerApp(BrokerConfig(data_dir="")).prometheus is None
