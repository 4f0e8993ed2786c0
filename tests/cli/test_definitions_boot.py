"""``warrenmq --definitions FILE`` (RabbitMQ's load_definitions), ``definitions_file`` and
``WARRENMQ_DEFINITIONS``: a RabbitMQ 3.10.8 export loaded at boot by the real command, its users
logging in over AMQP, kept across a restart; a bad file is one line on stderr and exit status 1."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pika
import pytest

from tests.support.process import BrokerProcess

SRC = str(Path(__file__).resolve().parents[2] / "src")
FIXTURE = str(Path(__file__).resolve().parents[1] / "fixtures" / "definitions" / "rabbitmq-3.10.8.json")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for k in [k for k in os.environ if k.startswith("WARRENMQ_")]:
        monkeypatch.delenv(k)
    monkeypatch.setenv("PYTHONPATH", SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))


def login(port, user="i12-defs-sha512", password="sha512-secret", vhost="i12-defs-vh"):
    return pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", port, vhost, pika.PlainCredentials(user, password), connection_attempts=1))


def check_loaded(port):
    c = login(port)
    try:
        ch = c.channel()
        ch.queue_declare("app.orders", passive=True)  # passive: needs no permission
        ch.queue_declare("app.quorum", passive=True)
    finally:
        c.close()
    login(port, "i12-defs-md5", "md5-secret").close()
    login(port, "i12-defs-admin", "admin-secret", "i12-defs-empty").close()


def test_definitions_flag_loads_a_rabbitmq_export_at_boot_and_it_survives_a_restart(tmp_path):
    data = str(tmp_path / "data")
    b = BrokerProcess(data, "--definitions", FIXTURE)
    with b:
        check_loaded(b.port)
        assert "imported definitions from" in b.log()
        # as RabbitMQ: with definitions to load, the first boot seeds no default vhost and user
        with pytest.raises(pika.exceptions.ProbableAuthenticationError):
            login(b.port, "guest", "guest", "/")
        b.stop()
    # without the flag: what it imported is durable
    b = BrokerProcess(data, port=b.port)
    with b:
        check_loaded(b.port)
        b.stop()


def test_the_environment_and_the_config_file_name_it_too(tmp_path, monkeypatch):
    monkeypatch.setenv("WARRENMQ_DEFINITIONS", FIXTURE)
    with BrokerProcess(str(tmp_path / "a")) as b:
        check_loaded(b.port)
        b.stop()
    monkeypatch.delenv("WARRENMQ_DEFINITIONS")
    config = tmp_path / "warrenmq.toml"
    config.write_text(f"definitions_file = {json.dumps(FIXTURE)}\n")
    with BrokerProcess(str(tmp_path / "b"), "--config", str(config)) as b:
        check_loaded(b.port)
        b.stop()
    config.write_text(f"load_definitions = {json.dumps(FIXTURE)}\n")  # RabbitMQ's key
    with BrokerProcess(str(tmp_path / "c"), "--config", str(config)) as b:
        check_loaded(b.port)
        b.stop()


def run_bad(tmp_path, doc_text, data="data"):
    path = tmp_path / "defs.json"
    if doc_text is not None:
        path.write_text(doc_text)
    r = subprocess.run([sys.executable, "-m", "warrenmq", "--no-prometheus", "--no-stomp", "--no-mqtt", "--host", "127.0.0.1", "--port", "0", "--no-management",
                        "--data-dir", str(tmp_path / data), "--definitions", str(path),
                        "--log-level", "warning"],  # the first boot's info lines come before the fault
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


def test_a_missing_file_is_one_line(tmp_path):
    line = run_bad(tmp_path, None)
    assert line == f"warrenmq: cannot read definitions file {tmp_path / 'defs.json'}: No such file or directory"


def test_a_file_that_is_not_json_is_one_line(tmp_path):
    line = run_bad(tmp_path, "{not json")
    assert line.startswith(f"warrenmq: definitions file {tmp_path / 'defs.json'} is not JSON: ")


def test_definitions_that_cannot_be_applied_are_one_line(tmp_path):
    doc = {"permissions": [{"user": "nobody", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}]}
    line = run_bad(tmp_path, json.dumps(doc))
    assert line == f"warrenmq: cannot import definitions file {tmp_path / 'defs.json'}: no_such_user: nobody"
    doc = {"vhosts": [{"name": "v"}], "policies": [{"vhost": "v", "name": "p", "pattern": ".*",
                                                    "definition": {"bogus": 1}}]}
    line = run_bad(tmp_path, json.dumps(doc), "data2")
    assert line.startswith(f"warrenmq: cannot import definitions file {tmp_path / 'defs.json'}: Validation failed: ")
    assert line.endswith('[{<<"bogus">>,1}] are not recognised policy settings (v/p)')
