"""The ``warrenmq`` command serves the management API by default; its port is a flag, and a taken one is
one line on stderr naming the flag."""
import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("aiohttp")

SRC = str(Path(__file__).resolve().parents[2] / "src")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env() -> dict:
    e = dict(os.environ)
    e["PYTHONPATH"] = SRC + os.pathsep + e.get("PYTHONPATH", "")
    for k in [k for k in e if k.startswith("WARRENMQ_")]:
        del e[k]
    return e


def test_the_command_serves_the_api_on_management_port():
    port, mport = free_port(), free_port()
    proc = subprocess.Popen([sys.executable, "-m", "warrenmq", "--no-prometheus", "--no-stomp", "--no-mqtt", "--host", "127.0.0.1", "--port", str(port),
                             "--management-port", str(mport), "--in-memory", "--log-level", "warning"], env=env())
    try:
        req = urllib.request.Request(f"http://127.0.0.1:{mport}/api/overview")
        req.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(req, timeout=2) as r:
                    overview = json.loads(r.read())
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "the API never answered"
                time.sleep(0.1)
        assert {(x["protocol"], x["port"]) for x in overview["listeners"]} >= {("amqp", port), ("http", mport)}
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_a_taken_management_port_is_one_line_naming_the_flag(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        mport = taken.getsockname()[1]
        r = subprocess.run([sys.executable, "-m", "warrenmq", "--no-prometheus", "--no-stomp", "--no-mqtt", "--host", "127.0.0.1", "--port", "0",
                            "--management-port", str(mport), "--data-dir", str(tmp_path / "data")],
                           capture_output=True, text=True, timeout=60, env=env())
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert f"cannot listen on 127.0.0.1:{mport}: address already in use" in lines[0]
    assert "--management-port" in lines[0]
    assert not (tmp_path / "data").exists()  # bound before storage is opened
