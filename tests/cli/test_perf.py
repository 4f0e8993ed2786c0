"""``warrenmq perf``: short real runs against an embedded broker; the JSON adds up.

perf forks worker processes, so it runs as a child process (``python -m warrenmq
perf``) against an :class:`EmbeddedBroker` living in the test process.
"""
import importlib.util
import json
import os
import platform
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from warrenmq import __version__
from warrenmq.cli.perf import server_name
from warrenmq.testing import EmbeddedBroker

REFERENCE_ENV = "WARRENMQ_REFERENCE_URL"


@pytest.fixture(scope="module")
def broker():
    with EmbeddedBroker() as b:
        yield b


def perf(*args, url=None, json_out=True, timeout=60):
    cmd = [sys.executable, "-m", "warrenmq", "perf", *args]
    if url:
        cmd += ["--url", url]
    if json_out:
        cmd += ["--json", "--quiet"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, p.stderr
    if not json_out:
        return p
    return json.loads(p.stdout)


def test_throughput_run_counts_add_up(broker):
    r = perf("-C", "3000", "-x", "1", "-y", "1", "-s", "64", "-q", "20", "-u", "perf-t1",
             "--broker-pid", str(os.getpid()), url=broker.url)
    assert r["mode"] == "throughput" and r["errors"] == []
    assert r["published"] > 0
    assert r["consumed"] == r["published"] == r["expected_consumed"]
    assert r["publish_rate"] > 0 and r["consume_rate"] > 0
    assert r["publish_bytes"] > r["published"] * 64
    lat = r["latency_us"]
    assert lat["samples"] >= 1
    assert lat["min"] <= lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["p99.9"] <= lat["max"]
    assert isinstance(r["per_second"], list)  # one entry per second of the run (this one may be shorter)
    assert all({"t", "published", "consumed"} <= set(sec) for sec in r["per_second"])
    assert r["broker"]["pid"] == os.getpid() and r["broker"]["rss_start"] > 0
    assert "perf-t1" not in broker.queues()  # deleted at the end


def test_confirms_and_fanout_count_every_copy(broker):
    r = perf("-C", "300", "-c", "50", "-f", "-t", "fanout", "--queues", "3", "-y", "3", "--consumer-procs", "1",
             "-s", "100", "-u", "perf-t2", url=broker.url)
    assert r["published"] == r["confirmed"] == 300 and r["nacked"] == 0
    assert r["queue_count"] == 3 and r["exchange_type"] == "fanout"
    assert r["consumed"] == r["expected_consumed"] == 900


def test_fixed_rate_stamps_every_message(broker):
    r = perf("-r", "200", "-z", "0.5", "-a", "-u", "perf-t3", url=broker.url)
    assert r["mode"] == "latency"
    assert 60 <= r["published"] <= 110
    assert r["latency_us"]["samples"] == r["consumed"] == r["published"]


def test_backlog_fills_then_drains(broker):
    r = perf("--backlog", "2000", "-x", "2", "-a", "-u", "perf-t4", url=broker.url)
    b = r["backlog"]
    assert r["mode"] == "backlog"
    assert b["messages"] == b["queued"] == 2000
    assert r["consumed"] == 2000 and b["drain_s"] > 0 and b["drain_rate"] > 0


def test_churn_and_idle_connections(broker):
    r = perf("--churn", "20", url=broker.url)
    assert r["connections"] == 20 and r["connection_rate"] > 0
    assert r["connection_latency_us"]["samples"] == 20
    r = perf("--idle-connections", "20", "--idle-hold", "0.2", "--idle-procs", "2",
             "--broker-pid", str(os.getpid()), url=broker.url)
    assert r["connections"] == 20 and r["alive_at_end"] == 20
    assert r["rss_before"] > 0 and r["rss_per_connection"] is not None


def test_sink_measures_the_generator_alone():
    r = perf("--sink", "-z", "0.5", "-a", "-s", "16")
    assert r["sink"] is True
    assert r["published"] > 0 and r["consumed"] > 0
    assert r["sink_received_bytes"] >= r["publish_bytes"] * 0.5


def test_human_output_has_progress_and_summary(broker):
    p = perf("-C", "100", "-a", "-u", "perf-t5", url=broker.url, json_out=False)
    assert "published" in p.stdout and "consumed" in p.stdout and "latency" in p.stdout
    assert "warrenmq perf: throughput" in p.stderr


def test_bad_url_fails_cleanly():
    p = subprocess.run([sys.executable, "-m", "warrenmq", "perf", "--url", "amqp://127.0.0.1:1/", "-C", "1"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and "warrenmq perf:" in p.stderr


# ------------------------------------------------------------------ which broker
# WarrenMQ and RabbitMQ both default to port 5672 and WarrenMQ says product "RabbitMQ" 3.10.8, so perf
# names the broker by its platform property: in the first progress line, the summary and the JSON.
def test_names_warrenmq(broker):
    name = f"WarrenMQ {__version__} on Python {platform.python_version()}"
    where = f"127.0.0.1:{broker.port}"
    p = perf("-C", "50", "-a", "-u", "perf-t6", url=broker.url, json_out=False)
    assert p.stderr.splitlines()[0].startswith(f"warrenmq perf: throughput against {name} at {where}: ")
    assert p.stdout.splitlines()[0] == f"throughput against {name} at {where}"
    r = perf("--churn", "2", url=broker.url)
    assert r["server"] == {"product": "RabbitMQ", "version": "3.10.8", "platform": name, "name": name,
                           "address": where}
    assert perf("--idle-connections", "2", "--idle-hold", "0", "--idle-procs", "1", url=broker.url)["server"] \
        == r["server"]


def test_names_the_reference_rabbitmq():
    url = os.environ.get(REFERENCE_ENV)
    if not url:
        pytest.skip(f"{REFERENCE_ENV} is not set: no reference RabbitMQ to run against")
    r = perf("-C", "20", "-a", "-u", f"warrenmq-perf-{uuid.uuid4().hex[:8]}", url=url)
    assert r["consumed"] == 20
    assert r["server"]["product"] == "RabbitMQ" and r["server"]["platform"].startswith("Erlang/OTP ")
    assert re.fullmatch(r"RabbitMQ 3\.\d+\.\d+ \(Erlang/OTP [\d.]+\)", r["server"]["name"]), r["server"]


def test_perf_and_the_examples_word_it_alike():
    path = Path(__file__).resolve().parents[2] / "examples" / "which_broker.py"
    spec = importlib.util.spec_from_file_location("which_broker", path)
    which_broker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(which_broker)
    for props in ({"product": "RabbitMQ", "version": "3.10.8", "platform": "WarrenMQ 0.1.0 on Python 3.11.7"},
                  {"product": b"RabbitMQ", "version": b"3.10.8", "platform": b"Erlang/OTP 25.2.3"},
                  {"product": "Acme MQ", "version": "2"}, {}):
        assert which_broker.describe(props, "h", 1) == f"connected to {server_name(props)} at h:1"
    assert server_name({"platform": b"Erlang/OTP 25", "product": b"RabbitMQ", "version": b"3.10.8"}) \
        == "RabbitMQ 3.10.8 (Erlang/OTP 25)"
