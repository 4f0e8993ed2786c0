"""``warrenmq perf``: short real runs against an embedded broker; the JSON adds up.

perf forks worker processes, so it runs as a child process (``python -m warrenmq
perf``) against an :class:`EmbeddedBroker` living in the test process.
"""
import array
import importlib.util
import json
import os
import platform
import re
import select
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from warrenmq import __version__
from warrenmq.cli.perf import BrokerStats, URL, _connect, server_name, window_figures
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


# ------------------------------------------------------------------ the publishing window
WINDOW_KEYS = {"duration_s", "published", "publish_rate", "consumed", "consume_rate", "depth", "latency_us",
               "queue_depth", "queue_depth_delay_s", "rss_idle", "rss_peak", "rss_peak_above_idle"}


def test_window_figures_are_present_and_sane(broker):
    # manual acks, one queue: what the consumer got before the publisher stopped cannot exceed what was
    # published, and what was published and not consumed is the depth (in the queue, in flight or unread)
    r = perf("-z", "1", "-x", "1", "-y", "1", "-s", "16", "-q", "50", "-u", "perf-w1",
             "--broker-pid", str(os.getpid()), url=broker.url)
    assert r["errors"] == []
    w = r["window"]
    assert WINDOW_KEYS <= set(w)
    assert 0.9 <= w["duration_s"] <= r["elapsed_s"]
    assert w["published"] == r["published"] > 0
    assert 0 <= w["consumed"] <= w["published"] <= r["consumed"]
    assert w["consume_rate"] <= w["publish_rate"] + 1
    assert w["depth"] == w["published"] - w["consumed"]
    # the queue's ready messages, asked after the window, are some of those
    assert w["queue_depth"] is not None and 0 <= w["queue_depth"] <= w["depth"]
    assert w["queue_depth_delay_s"] >= 0
    lat, whole = w["latency_us"], r["latency_us"]
    if w["consumed"]:
        assert lat is not None and 1 <= lat["samples"] <= whole["samples"]
        assert lat["min"] <= lat["p50"] <= lat["p99"] <= lat["max"] <= whole["max"]
    assert w["rss_idle"] == r["broker"]["rss_start"] > 0
    assert w["rss_peak"] >= w["rss_idle"] and w["rss_peak_above_idle"] == w["rss_peak"] - w["rss_idle"]
    assert r["broker"]["rss_max"] >= w["rss_peak"]
    assert r["broker"]["rss_max_above_start"] == r["broker"]["rss_max"] - r["broker"]["rss_start"]
    assert all("depth" in sec for sec in r["per_second"])
    # the publisher's unsent messages at its stop: published, not yet consumed
    assert 0 <= w["publisher_unsent"] <= w["published"]
    assert w["publisher_unsent_ms"] == (round(w["publisher_unsent"] / w["consume_rate"] * 1000, 1)
                                        if w["consume_rate"] else None)


def test_unsent_bytes_are_what_the_peer_has_not_been_sent():
    # a TCP peer that does not read: what the writer's socket holds beyond the peer's window is unsent;
    # once the peer reads everything, nothing is
    from warrenmq.cli.perf import unsent_bytes
    with socket.create_server(("127.0.0.1", 0)) as lsock:
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        w = socket.socket()
        w.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        w.connect(lsock.getsockname())
        peer, _ = lsock.accept()
        try:
            assert unsent_bytes(w) == 0
            w.setblocking(False)
            written = 0
            try:
                while True:
                    written += w.send(bytes(65536))
            except BlockingIOError:
                pass
            time.sleep(0.05)
            held = unsent_bytes(w)
            assert 0 < held < written
            got = 0
            deadline = time.monotonic() + 10
            while got < written and time.monotonic() < deadline:
                got += len(peer.recv(1 << 20))
            assert got == written and unsent_bytes(w) == 0
        finally:
            w.close()
            peer.close()


def test_window_of_a_counted_run_ends_with_the_publisher(broker):
    r = perf("-C", "2000", "-y", "2", "--queues", "2", "-t", "fanout", "-a", "-s", "64", "-u", "perf-w2",
             url=broker.url)
    w = r["window"]
    assert w["published"] == 2000 and r["consumed"] == 4000
    assert 0 <= w["consumed"] <= 4000 and w["depth"] == 4000 - w["consumed"]  # two copies of each message
    assert "rss_peak" not in w  # no --broker-pid


def test_no_window_without_consumers_or_in_backlog_mode(broker):
    assert "window" not in perf("-C", "100", "-y", "0", "-u", "perf-w3", url=broker.url)
    assert "window" not in perf("--backlog", "100", "-a", "-u", "perf-w4", url=broker.url)


def _arrays(**kw):
    return {k: array.array("q", v) for k, v in kw.items()}


def test_window_figures_count_what_arrived_before_the_publishers_stopped():
    ms = 1_000_000
    # two consumer processes; the window is [1000 ms, 3000 ms]
    a = _arrays(arrivals_at=[1500 * ms, 2999 * ms, 3000 * ms, 3001 * ms], arrivals=[10, 20, 25, 40],
                latency=[5000, 7000, 9000, 11000], latency_at=[999 * ms, 1500 * ms, 3000 * ms, 3500 * ms])
    b = _arrays(arrivals_at=[3200 * ms], arrivals=[30], latency=[1000], latency_at=[3200 * ms])
    stats = BrokerStats(None)
    w = window_figures(1000 * ms, 3000 * ms, 100, 200, [a, b], {"depth": 120, "at_ns": 3250 * ms}, stats, None)
    assert w["duration_s"] == 2.0
    assert w["published"] == 100 and w["publish_rate"] == 50
    assert w["consumed"] == 25 and w["consume_rate"] == 12  # 25 by 3000 ms in the first, none in the second
    assert w["depth"] == 200 - 25
    assert w["latency_us"]["samples"] == 2 and w["latency_us"]["min"] == 7.0 and w["latency_us"]["max"] == 9.0
    assert w["queue_depth"] == 120 and w["queue_depth_delay_s"] == 0.25
    assert "rss_peak" not in w
    nothing = window_figures(1000 * ms, 3000 * ms, 10, 10, [_arrays(arrivals_at=[], arrivals=[], latency=[],
                                                                       latency_at=[])], {}, stats, None)
    assert nothing["consumed"] == 0 and nothing["depth"] == 10 and nothing["latency_us"] is None
    assert nothing["queue_depth"] is None


def test_human_output_shows_the_window_and_a_live_line(broker):
    p = perf("-z", "1.3", "-r", "300", "-u", "perf-w5", url=broker.url, json_out=False)
    assert "publishing window:" in p.stdout and "consumed in window" in p.stdout
    assert "depth at window end" in p.stdout and "latency in window" in p.stdout
    assert "whole run" in p.stdout
    live = [line for line in p.stderr.splitlines() if line.startswith("time ")]
    assert live, p.stderr
    assert all(all(word in line for word in ("published", "consumed", "depth", "latency")) for line in live)


# ------------------------------------------------------------------ --sndbuf
def _expected_sndbuf(value: int) -> int:
    """What Linux reports for SO_SNDBUF after setting ``value``: doubled, capped at net.core.wmem_max."""
    try:
        cap = int(Path("/proc/sys/net/core/wmem_max").read_text())
    except OSError:
        cap = value
    return 2 * min(value, cap)


@pytest.mark.skipif(sys.platform != "linux", reason="Linux's SO_SNDBUF accounting")
def test_sndbuf_is_set_before_connect(broker):
    u = URL(broker.url)
    s = _connect(u.host, u.port, 5.0, 65536)
    try:
        assert s.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) == _expected_sndbuf(65536)
    finally:
        s.close()
    s = _connect(u.host, u.port, 5.0, 0)  # 0: left to the OS
    try:
        with socket.socket() as fresh:
            assert s.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) >= \
                fresh.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    finally:
        s.close()


@pytest.mark.skipif(sys.platform != "linux", reason="Linux's SO_SNDBUF accounting")
def test_publishers_use_sndbuf(broker):
    r = perf("-C", "50", "-a", "-u", "perf-w6", url=broker.url)
    assert r["config"]["sndbuf"] == 131072 and r["publisher_sndbuf"] == _expected_sndbuf(131072)
    r = perf("-C", "50", "-a", "-x", "2", "--sndbuf", "32768", "-u", "perf-w7", url=broker.url)
    assert r["publisher_sndbuf"] == _expected_sndbuf(32768)


def test_a_held_back_publisher_stops_at_its_deadline_after_the_message_in_progress():
    # a peer that does not read (a broker holding the publisher back) until the publisher gives up: the write
    # ends at a message boundary, and the cut is reported before that message is finished
    from warrenmq.cli.perf import _PubConn
    ours, peer = socket.socketpair()
    try:
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
        c = _PubConn.__new__(_PubConn)
        c.sock, c.mlen, c.cut_ns, c.rbuf = ours, 1000, 0, bytearray()
        c.poller = select.poll()
        c.poller.register(ours, select.POLLOUT)
        got = bytearray()
        cuts = []

        def drain():
            while True:
                d = peer.recv(1 << 16)
                if not d:
                    return
                got.extend(d)

        started = []

        def start_draining():
            if not started:
                started.append(1)
                threading.Thread(target=drain, daemon=True).start()

        def on_cut(ns):
            cuts.append(ns)
            start_draining()

        c.on_cut = on_cut
        guard = threading.Timer(5.0, start_draining)  # a send that ignored its deadline would block for ever
        guard.start()
        view = memoryview(bytes(1000 * 10_000))  # 10 MB: more than any socket buffer takes
        sent = c.send(view, False, time.monotonic() + 0.2)
        guard.cancel()
        ours.close()
        deadline = time.monotonic() + 10
        while len(got) < sent and time.monotonic() < deadline:
            time.sleep(0.01)
        assert cuts == [c.cut_ns] and c.cut_ns > 0
        assert 0 < sent < len(view) and sent % 1000 == 0
        assert len(got) == sent
    finally:
        ours.close()
        peer.close()
