"""MQTT on WarrenMQ against RabbitMQ's MQTT plugin, in the same run: fan-in, fan-out, 10,000 connections.

Scenarios (``--only``, comma-separated; all by default):

* ``fanin-qos0``, ``fanin-qos1``: ``--publishers`` devices (100) each publish to their own topic
  ``mqbench/<n>/t`` as fast as the broker takes it (QoS 1: each keeps ``--inflight`` unacknowledged
  publishes, as paho's ``max_inflight_messages``), one subscriber on ``mqbench/+/t`` (QoS 1: it
  PUBACKs every delivery; the broker's prefetch, 10 on both, bounds what is in flight to it);
* ``fanout-qos0``, ``fanout-qos1``: one publisher, ``--subscribers`` subscribers (100) on its topic;
* ``connections``: ``--connections`` (10,000) MQTT 3.1.1 connections opened from ``--procs`` client
  processes (``--subscribed``: each also subscribes to its own topic at QoS 1, a device's command
  topic), the broker's RSS before and after and per connection, then, with all of them open, a
  publish/subscribe round trip (QoS 1, ``--roundtrips`` messages one at a time) on two more.

What is measured is what users feel, in the publishing window (``--duration`` s from the first
publish to the moment the publishers stop): the subscribers' rate of deliveries received in it,
the latency of those deliveries (every payload starts with the publisher's CLOCK_MONOTONIC, read by
the receiver on the same machine), the publishers' rate, how many deliveries are still owed when the
publishers stop, and the broker's peak RSS above its RSS before the run (sampled every 0.2 s).

The clients are raw sockets (no MQTT library: paho would be the bottleneck) in several processes
(``--procs``, 2 by default: publishers and subscribers each get that many), nonblocking with a
selector; every delivery of a scenario has the same length (topics of equal length, fixed
payload), so a receiver finds packets by arithmetic and checks each one's type and length byte.

Brokers:

* WarrenMQ runs from this checkout's ``src/`` as ``python -m warrenmq --data-dir <tmp>`` (fsync on, the
  default, so QoS 1 publishes are acknowledged after the store has them, as RabbitMQ's are), MQTT on
  a free port and every other listener off but AMQP (on a free port), started fresh for every run.
* RabbitMQ is any node with the MQTT plugin: ``--rabbit HOST:PORT`` (default ``127.0.0.1:1884``, the
  probe node of this machine; the reference node of .ci/rabbitmq.sh listens on 18830) with its
  ``beam.smp`` pid found from the listening socket (``ss``) or given with ``--rabbit-pid``; or
  ``--rabbit private``: a node this script starts (own name, ports, data directory, the MQTT plugin,
  an open-file limit of this process's hard limit) and stops.  The connections scenario needs a node
  whose open-file limit is above ``--connections``: a node started by ``rabbitmq-server`` under the
  default soft limit of 1024 cannot hold 10,000 (the script says so and uses a private node).

Runs alternate between the brokers (W, R, then R, W: the order flips every round) and the table shows
medians of ``--runs``.  Run: ``python bench/mqtt_throughput.py`` (``--skip-rabbit`` for WarrenMQ alone,
``--markdown`` for bench/RESULTS.md rows).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import re
import resource
import selectors
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from array import array
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from run import RabbitMQ, free_port, raise_nofile  # noqa: E402

NS = 1_000_000_000


# ----------------------------------------------------------------------------------- MQTT bytes
def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def utf8(s: str) -> bytes:
    b = s.encode()
    return struct.pack(">H", len(b)) + b


def connect_packet(client_id: str, user: str = "guest", password: str = "guest") -> bytes:
    body = utf8("MQTT") + bytes([4, 0xC2]) + struct.pack(">H", 0) + utf8(client_id) + utf8(user) + utf8(password)
    return b"\x10" + varint(len(body)) + body


def subscribe_packet(pid: int, topic_filter: str, qos: int) -> bytes:
    body = struct.pack(">H", pid) + utf8(topic_filter) + bytes([qos])
    return b"\x82" + varint(len(body)) + body


class Shape:
    """The bytes of one PUBLISH of a scenario: ``head`` (fixed header, topic), [packet id], timestamp, pad."""

    def __init__(self, topic: str, qos: int, size: int):
        assert size >= 8, "the payload carries an 8-byte timestamp"
        self.qos = qos
        rl = 2 + len(topic.encode()) + (2 if qos else 0) + size
        self.head = bytes([0x30 | (qos << 1)]) + varint(rl) + utf8(topic)
        self.length = len(self.head) + (2 if qos else 0) + size
        self.ts_offset = len(self.head) + (2 if qos else 0)
        self.pid_offset = len(self.head)
        self.pad = b"x" * (size - 8)
        self.rl_byte = varint(rl)[0]


def read_until(sock: socket.socket, n: int, timeout: float = 30.0) -> bytes:
    sock.settimeout(timeout)
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError(f"closed by the broker after {data!r}")
        data += chunk
    return data


def mqtt_connect(host: str, port: int, client_id: str) -> socket.socket:
    s = socket.create_connection((host, port), timeout=30)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(connect_packet(client_id))
    ack = read_until(s, 4)
    if ack[0] != 0x20 or ack[3] != 0:
        raise ConnectionError(f"CONNACK {ack!r} for {client_id}")
    return s


def mqtt_subscribe(s: socket.socket, topic_filter: str, qos: int) -> None:
    s.sendall(subscribe_packet(1, topic_filter, qos))
    ack = read_until(s, 5)
    if ack[0] != 0x90 or ack[4] > 2:
        raise ConnectionError(f"SUBACK {ack!r} for {topic_filter}")


# -------------------------------------------------------------------------------- client workers
def publisher(host, port, names, tag, qos, size, inflight, batch, ready, start_at, results) -> None:
    """Publish from each of ``names`` (client id; topic ``<tag>/<name>/t``) from ``start_at`` for the duration."""
    try:
        raise_nofile()
        socks = []
        for name in names:
            s = mqtt_connect(host, port, f"mqbench-p-{name}")
            s.setblocking(False)
            socks.append((s, Shape(f"{tag}/{name}/t", qos, size)))
        ready.put(("ready", None))
        t0, t1 = start_at.get()
        while time.monotonic_ns() < t0:
            time.sleep(0.0005)
        sel = selectors.DefaultSelector()
        states = {}
        for s, shape in socks:
            st = states[s] = {"shape": shape, "out": b"", "sent": 0, "acked_bytes": 0, "pid": 0, "writing": True}
            sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE, st)
        sent = 0
        now = time.monotonic_ns()
        while now < t1:
            for key, ev in sel.select(0.05):
                st = key.data
                s = key.fileobj
                if ev & selectors.EVENT_READ:
                    data = s.recv(65536)
                    if not data:
                        raise ConnectionError("publisher connection closed by the broker")
                    st["acked_bytes"] += len(data)  # PUBACKs only: 4 bytes each
                if ev & selectors.EVENT_WRITE or (qos and not st["writing"]):
                    out = st["out"]
                    if not out:
                        shape = st["shape"]
                        ts = struct.pack(">q", time.monotonic_ns())
                        if qos == 0:
                            k = batch
                            out = (shape.head + ts + shape.pad) * k
                        else:
                            k = inflight - (st["sent"] - st["acked_bytes"] // 4)
                            if k > 0:
                                parts = []
                                pid = st["pid"]
                                for _ in range(k):
                                    pid = pid + 1 if pid < 65535 else 1
                                    parts.append(shape.head + struct.pack(">H", pid) + ts + shape.pad)
                                st["pid"] = pid
                                out = b"".join(parts)
                            else:
                                k = 0
                        st["sent"] += k
                        sent += k
                    if out:
                        try:
                            n = s.send(out)
                        except BlockingIOError:
                            n = 0
                        st["out"] = out[n:]

                    want = bool(st["out"]) or qos == 0 or st["sent"] - st["acked_bytes"] // 4 < inflight
                    if want != st["writing"]:
                        st["writing"] = want
                        sel.modify(s, selectors.EVENT_READ | (selectors.EVENT_WRITE if want else 0), st)
            now = time.monotonic_ns()
        # bytes already queued are sent (a partly sent packet must be finished), then the count is final
        for s, _ in socks:
            st = states[s]
            s.setblocking(True)
            if st["out"]:
                s.sendall(st["out"])
        results.put(("pub", {"sent": sent}))
        time.sleep(0.5)
        for s, _ in socks:
            s.close()
    except Exception as e:  # noqa: BLE001 - reported to the parent
        results.put(("error", f"publisher: {e!r}"))
        ready.put(("error", repr(e)))


def subscriber(host, port, names, topic_filter, shape_args, sub_qos, ready, start_at, results, expect_total) -> None:
    """Subscribe as each of ``names``; count deliveries in and after the window and their latencies."""
    try:
        raise_nofile()
        shape = Shape(*shape_args)
        L = shape.length
        socks = []
        for name in names:
            s = mqtt_connect(host, port, f"mqbench-s-{name}")
            mqtt_subscribe(s, topic_filter, sub_qos)
            s.setblocking(False)
            socks.append(s)
        ready.put(("ready", None))
        t0, t1 = start_at.get()
        sel = selectors.DefaultSelector()
        tails = {}
        for s in socks:
            sel.register(s, selectors.EVENT_READ)
            tails[s] = b""
        in_window = after = 0
        lat = array("q")
        unpack_ts = struct.Struct(">q").unpack_from
        ts_off = shape.ts_offset
        pid_off = shape.pid_offset
        rl_byte = shape.rl_byte
        quiet_since = None
        deadline = t1 + 60 * NS
        while True:
            events = sel.select(0.1)
            now = time.monotonic_ns()
            if not events:
                if now > t1 + NS // 2 and (in_window + after >= expect_total or
                                           (quiet_since is not None and now - quiet_since > 5 * NS)):
                    break
                if quiet_since is None:
                    quiet_since = now
                if now > deadline:
                    break
                continue
            quiet_since = None
            for key, _ in events:
                s = key.fileobj
                data = s.recv(1 << 18)
                if not data:
                    raise ConnectionError("subscriber connection closed by the broker")
                buf = tails[s] + data
                n = len(buf) // L
                end = n * L
                tails[s] = buf[end:]
                if not n:
                    continue
                for o in (0, end - L):  # the first and last packet's type and length
                    if buf[o] & 0xF0 != 0x30 or buf[o + 1] != rl_byte:
                        raise ValueError(f"unexpected packet at {o}: {buf[o:o + 8]!r} (expected length {L})")
                if now <= t1:
                    in_window += n
                    lat.extend([now - unpack_ts(buf, o)[0] for o in range(ts_off, end, L)])
                else:
                    after += n
                if sub_qos and shape.qos:
                    s.sendall(b"".join([b"\x40\x02" + buf[o:o + 2] for o in range(pid_off, end, L)]))
            if now > deadline:
                break
        if len(lat) > 400_000:  # a uniform sample is enough for percentiles
            step = len(lat) // 200_000
            lat = lat[::step]
        results.put(("sub", {"in_window": in_window, "after": after, "lat": lat.tobytes()}))
        for s in socks:
            s.close()
    except Exception as e:  # noqa: BLE001 - reported to the parent
        results.put(("error", f"subscriber: {e!r}"))
        ready.put(("error", repr(e)))


# ------------------------------------------------------------------------------------- brokers
def rss_of(pid: int) -> int | None:
    try:
        return int(re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text()).group(1)) * 1024
    except (OSError, AttributeError):
        return None


def cpu_of(pid: int) -> float | None:
    """The process's user + system CPU seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def wait_idle(pid, limit: float = 180.0) -> float:
    """Seconds until the broker used less than 5% of a core over half a second (a broker still working
    through an earlier run's backlog would slow the next run, of either broker)."""
    t0 = time.monotonic()
    if not pid:
        return 0.0
    while time.monotonic() - t0 < limit:
        c0 = cpu_of(pid)
        time.sleep(0.5)
        c1 = cpu_of(pid)
        if c0 is None or c1 is None or c1 - c0 < 0.025:
            break
    return time.monotonic() - t0


def nofile_of(pid: int) -> int | None:
    try:
        return int(re.search(r"Max open files\s+(\d+)", Path(f"/proc/{pid}/limits").read_text()).group(1))
    except (OSError, AttributeError):
        return None


def listening_pid(port: int) -> int | None:
    """The pid of the process listening on 127.0.0.1/any ``port`` (``ss -ltnp``; needs the right to see it)."""
    try:
        out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"pid=(\d+)", out)
    return int(m.group(1)) if m else None


class WarrenMQ:
    name = "WarrenMQ"

    def __init__(self, workdir: Path, src: Path = ROOT / "src"):
        self.workdir = workdir
        self.src = src
        self.proc = None
        self.port = None
        self.data_dir = None
        self.host = "127.0.0.1"

    @property
    def pid(self):
        return self.proc.pid

    def started_pid(self) -> bool:
        return self.proc is not None

    def start(self) -> None:
        self.port = free_port()
        self.data_dir = Path(tempfile.mkdtemp(prefix="warrenmq-mqtt-", dir=self.workdir))
        env = dict(os.environ, PYTHONPATH=str(self.src))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "warrenmq", "--host", "127.0.0.1", "--port", str(free_port()),
             "--data-dir", str(self.data_dir), "--mqtt-port", str(self.port), "--log-level", "warning",
             "--no-management", "--no-prometheus", "--no-stomp", "--no-web-stomp", "--no-web-mqtt"],
            env=env, stdin=subprocess.DEVNULL, cwd=str(self.workdir))
        wait_port(self.host, self.port, self.proc)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        if self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None


class ExternalRabbit:
    """A running RabbitMQ's MQTT listener (``host:port``); its pid for RSS, from ``ss`` or given."""
    name = "RabbitMQ"

    def __init__(self, hostport: str, pid: int | None):
        host, _, port = hostport.rpartition(":")
        self.host, self.port = host or "127.0.0.1", int(port)
        self.pid = pid or listening_pid(self.port)

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def cleanup(self) -> None:
        pass

    def started_pid(self) -> bool:
        return bool(self.pid)


class PrivateRabbit(RabbitMQ):
    """bench/run.py's private node with the MQTT plugin on a free port (and this process's open-file limit)."""

    def __init__(self, workdir: Path):
        super().__init__(workdir, lambda *a: None)
        self.host = "127.0.0.1"
        self.mqtt_port = None
        self.started = False

    def start(self) -> None:
        if self.started:
            return
        raise_nofile()
        self.port, self.dist_port, self.mqtt_port = free_port(), free_port(), free_port()
        self.node = f"mqbench{self.port}@localhost"
        self.base = Path(tempfile.mkdtemp(prefix="rabbitmq-mqbench-", dir=self.workdir))
        (self.base / "enabled_plugins").write_text("[rabbitmq_mqtt].\n")
        (self.base / "rabbitmq.conf").write_text(f"mqtt.listeners.tcp.default = {self.mqtt_port}\n"
                                                 "loopback_users = none\n")
        subprocess.run([f"{self.BIN}/rabbitmq-server", "-detached"], env=self.env(), check=True,
                       cwd=str(self.base), capture_output=True, timeout=60)
        wait_port(self.host, self.mqtt_port, None, 180)
        self.started = True

    def stop(self) -> None:  # kept running between runs, like the probe node; cleanup() stops it
        pass

    def started_pid(self) -> bool:
        return self.started

    def cleanup(self) -> None:
        if self.started:
            RabbitMQ.stop(self)
            self.started = False
        if self.base is not None:
            shutil.rmtree(self.base, ignore_errors=True)
            self.base = None

    @property
    def mqtt(self):
        return self.mqtt_port


def wait_port(host: str, port: int, proc, timeout: float = 60) -> None:
    t0 = time.monotonic()
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"broker exited with {proc.returncode}")
        try:
            mqtt_connect(host, port, "mqbench-probe").close()
            return
        except OSError:
            if time.monotonic() - t0 > timeout:
                raise
            time.sleep(0.1)


def broker_port(b) -> int:
    return b.mqtt_port if isinstance(b, PrivateRabbit) else b.port


# ----------------------------------------------------------------------------------- scenarios
def split(items: list, k: int) -> list:
    return [items[i::k] for i in range(k) if items[i::k]]


def throughput_run(b, scenario: str, args) -> dict:
    kind, qos = scenario.split("-qos")
    qos = int(qos)
    host, port = b.host, broker_port(b)
    ctx = mp.get_context("fork")
    ready, results = ctx.Queue(), ctx.Queue()
    # topics of this run only: what a broker still routes from an earlier run reaches no subscriber of this one
    tag = f"mqb{os.urandom(3).hex()}"
    if kind == "fanin":
        pub_names = [f"{i:05d}" for i in range(args.publishers)]
        sub_names = ["0"]
        topic_filter = f"{tag}/+/t"
    else:
        pub_names = ["fanout"]
        sub_names = [f"{i:05d}" for i in range(args.subscribers)]
        topic_filter = f"{tag}/fanout/t"
    shape_args = (f"{tag}/{pub_names[0]}/t", qos, args.size)
    starts = []
    procs = []
    expect = None  # deliveries owed, known once the publishers report
    sub_groups = split(sub_names, args.procs)
    for group in sub_groups:
        q = ctx.Queue()
        starts.append(q)
        procs.append(ctx.Process(target=subscriber, args=(host, port, group, topic_filter, shape_args, qos,
                                                          ready, q, results, 1 << 62), daemon=True))
    pub_groups = split(pub_names, args.procs)
    for group in pub_groups:
        q = ctx.Queue()
        starts.append(q)
        procs.append(ctx.Process(target=publisher, args=(host, port, group, tag, qos, args.size, args.inflight,
                                                         args.batch, ready, q, results), daemon=True))
    for p in procs[:len(sub_groups)]:
        p.start()
    for _ in sub_groups:
        tag, err = ready.get(timeout=120)
        if tag == "error":
            raise RuntimeError(err)
    for p in procs[len(sub_groups):]:
        p.start()
    for _ in pub_groups:
        tag, err = ready.get(timeout=120)
        if tag == "error":
            raise RuntimeError(err)
    time.sleep(0.5)
    rss0 = rss_of(b.pid) if b.pid else None
    cpu0 = cpu_of(b.pid) if b.pid else None
    t0 = time.monotonic_ns() + NS // 5
    t1 = t0 + int(args.duration * NS)
    for q in starts:
        q.put((t0, t1))
    peak = rss0 or 0
    while time.monotonic_ns() < t1:
        time.sleep(0.2)
        r = rss_of(b.pid) if b.pid else None
        if r:
            peak = max(peak, r)
    cpu1 = cpu_of(b.pid) if b.pid else None
    sent = in_window = after = 0
    lat = array("q")
    pending = len(procs)
    while pending:
        tag, val = results.get(timeout=180)
        r = rss_of(b.pid) if b.pid else None
        if r:
            peak = max(peak, r)
        if tag == "error":
            for p in procs:
                p.kill()
            raise RuntimeError(val)
        pending -= 1
        if tag == "pub":
            sent += val["sent"]
        else:
            in_window += val["in_window"]
            after += val["after"]
            lat.frombytes(val["lat"])
    for p in procs:
        p.join(10)
    fan = len(sub_names) if kind == "fanout" else 1
    lat_ms = sorted(x / 1e6 for x in lat)
    pct = (lambda f: lat_ms[min(len(lat_ms) - 1, int(f * len(lat_ms)))] if lat_ms else None)
    return {"published": sent / args.duration, "consumed_window": in_window / args.duration,
            "p50": pct(0.5), "p99": pct(0.99), "owed": sent * fan - in_window,
            "delivered": (in_window + after) / max(1, sent * fan),
            "rss_peak_mib": (peak - rss0) / 2 ** 20 if rss0 else None,
            "cpu_s": (cpu1 - cpu0) if cpu0 is not None and cpu1 is not None else None}


def open_connections(host, port, names, tag, subscribed, ready, go, results) -> None:
    """Open one MQTT connection per name (in batches, so the broker's accept backlog never overflows)."""
    try:
        raise_nofile()
        socks = []
        batch = 25
        for i in range(0, len(names), batch):
            group = []
            for name in names[i:i + batch]:
                s = socket.create_connection((host, port), timeout=300)
                s.sendall(connect_packet(f"{tag}-{name}"))
                group.append((s, name))
            for s, name in group:
                ack = read_until(s, 4, 300)
                if ack[0] != 0x20 or ack[3] != 0:
                    raise ConnectionError(f"CONNACK {ack!r}")
                if subscribed:
                    s.sendall(subscribe_packet(1, f"{tag}/{name}/cmd", 1))
            if subscribed:
                for s, name in group:
                    ack = read_until(s, 5, 300)
                    if ack[0] != 0x90 or ack[4] != 1:
                        raise ConnectionError(f"SUBACK {ack!r}")
            socks.extend(s for s, _ in group)
        ready.put(("ready", len(socks)))
        go.get()
        for s in socks:
            s.close()
        results.put(("closed", len(socks)))
    except Exception as e:  # noqa: BLE001
        ready.put(("error", repr(e)))


def roundtrips(host, port, n: int) -> list:
    """Seconds from a QoS 1 PUBLISH to its delivery to a subscriber, one message at a time."""
    sub = mqtt_connect(host, port, "mqbench-rt-sub")
    mqtt_subscribe(sub, "mqbench/rt/t", 1)
    pub = mqtt_connect(host, port, "mqbench-rt-pub")
    shape = Shape("mqbench/rt/t", 1, 16)
    out = []
    for i in range(n):
        t = time.monotonic()
        pub.sendall(shape.head + struct.pack(">H", i + 1) + struct.pack(">q", 0) + shape.pad)
        pkt = read_until(sub, shape.length, 30)
        out.append(time.monotonic() - t)
        sub.sendall(b"\x40\x02" + pkt[shape.pid_offset:shape.pid_offset + 2])
        read_until(pub, 4, 30)  # its PUBACK
    sub.close()
    pub.close()
    return out


def connections_run(b, args) -> dict:
    host, port = b.host, broker_port(b)
    limit = nofile_of(b.pid) if b.pid else None
    if limit is not None and limit < args.connections + 100:
        raise RuntimeError(f"{b.name} (pid {b.pid}) may open {limit} files: too few for {args.connections} "
                           f"connections (use --rabbit private)")
    ctx = mp.get_context("fork")
    ready, results = ctx.Queue(), ctx.Queue()
    names = [f"{i:05d}" for i in range(args.connections)]
    tag = f"mqb{os.urandom(3).hex()}"  # client ids of this run only (a broker may still be forgetting the last's)
    time.sleep(1)
    rss0 = rss_of(b.pid)
    t0 = time.monotonic()
    gos, procs = [], []
    for group in split(names, args.procs):
        go = ctx.Queue()
        gos.append(go)
        p = ctx.Process(target=open_connections, args=(host, port, group, tag, args.subscribed, ready, go, results),
                        daemon=True)
        p.start()
        procs.append(p)
    opened = 0
    for _ in procs:
        tag, val = ready.get(timeout=600)
        if tag == "error":
            for p in procs:
                p.kill()
            raise RuntimeError(val)
        opened += val
    open_s = time.monotonic() - t0
    time.sleep(2)
    rss1 = rss_of(b.pid)
    rt = roundtrips(host, port, args.roundtrips)
    rss2 = rss_of(b.pid)
    for go in gos:
        go.put(True)
    for _ in procs:
        results.get(timeout=120)
    for p in procs:
        p.join(30)
    rt_ms = sorted(x * 1000 for x in rt)
    return {"connections": opened, "open_s": open_s, "rss_before_mib": rss0 / 2 ** 20,
            "rss_after_mib": rss1 / 2 ** 20, "per_conn_kib": (rss1 - rss0) / opened / 1024,
            "rss_after_roundtrips_mib": rss2 / 2 ** 20,
            "rt_p50_ms": rt_ms[len(rt_ms) // 2], "rt_max_ms": rt_ms[-1], "roundtrips": len(rt_ms)}


# ---------------------------------------------------------------------------------------- main
THROUGHPUT = ["fanin-qos0", "fanin-qos1", "fanout-qos0", "fanout-qos1"]
METRICS = [("published", "published msg/s", "{:,.0f}", True),
           ("consumed_window", "delivered msg/s while publishing", "{:,.0f}", True),
           ("p50", "latency p50 while publishing (ms)", "{:,.1f}", False),
           ("p99", "latency p99 while publishing (ms)", "{:,.1f}", False),
           ("owed", "deliveries owed when publishing stops", "{:,.0f}", False),
           ("rss_peak_mib", "peak RSS above idle (MiB)", "{:,.1f}", False),
           ("cpu_s", "broker CPU s in the window", "{:,.1f}", False)]
CONN_METRICS = [("per_conn_kib", "RSS per connection (KiB)", "{:,.1f}", False),
                ("rss_before_mib", "RSS before (MiB)", "{:,.1f}", False),
                ("rss_after_mib", "RSS with all open (MiB)", "{:,.1f}", False),
                ("open_s", "time to open them all (s)", "{:,.1f}", False),
                ("rt_p50_ms", "pub/sub round trip p50 meanwhile (ms)", "{:,.2f}", False),
                ("rt_max_ms", "pub/sub round trip max meanwhile (ms)", "{:,.2f}", False)]


def med(runs: list, key: str):
    vals = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def describe(scenario: str, args) -> str:
    if scenario == "connections":
        return (f"{args.connections:,} MQTT connections" + (", each subscribed (QoS 1)" if args.subscribed else ""))
    kind, qos = scenario.split("-qos")
    if kind == "fanin":
        return f"fan-in QoS {qos}: {args.publishers} publishers -> 1 subscriber, {args.size} B"
    return f"fan-out QoS {qos}: 1 publisher -> {args.subscribers} subscribers, {args.size} B"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--only", default=",".join(THROUGHPUT + ["connections"]))
    p.add_argument("--duration", type=float, default=10.0, help="publishing window, seconds")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--publishers", type=int, default=100)
    p.add_argument("--subscribers", type=int, default=100)
    p.add_argument("--size", type=int, default=16, help="payload bytes (at least 8)")
    p.add_argument("--inflight", type=int, default=20, help="QoS 1: unacknowledged publishes per publisher")
    p.add_argument("--batch", type=int, default=50, help="QoS 0: publishes per write")
    p.add_argument("--procs", type=int, default=2, help="client processes per role")
    p.add_argument("--connections", type=int, default=10000)
    p.add_argument("--subscribed", action="store_true", help="connections: each subscribes to its own topic")
    p.add_argument("--roundtrips", type=int, default=200)
    p.add_argument("--rabbit", default="127.0.0.1:1884", help="RabbitMQ's MQTT HOST:PORT, or 'private'")
    p.add_argument("--rabbit-pid", type=int)
    p.add_argument("--skip-rabbit", action="store_true")
    p.add_argument("--json", help="write every run's numbers here")
    p.add_argument("--src", type=Path, default=ROOT / "src", help="WarrenMQ's source tree (A/B of two versions)")
    args = p.parse_args()
    raise_nofile()
    scenarios = args.only.split(",")
    workdir = Path(tempfile.mkdtemp(prefix="mqbench-"))
    warren = WarrenMQ(workdir, args.src.resolve())
    rabbit = None
    private = None
    if not args.skip_rabbit:
        rabbit = PrivateRabbit(workdir) if args.rabbit == "private" else ExternalRabbit(args.rabbit, args.rabbit_pid)
    load0 = os.getloadavg()
    t_start = time.time()
    out: dict = {}
    try:
        for sc in scenarios:
            brokers = [warren] + ([rabbit] if rabbit else [])
            if sc == "connections" and isinstance(rabbit, ExternalRabbit):
                limit = nofile_of(rabbit.pid) if rabbit.pid else None
                if limit is not None and limit < args.connections + 100:
                    print(f"RabbitMQ at {args.rabbit} may open {limit} files, too few for {args.connections:,} "
                          "connections: using a private node for this scenario", file=sys.stderr)
                    private = private or PrivateRabbit(workdir)
                    brokers = [warren, private]
            for i in range(args.runs):
                order = brokers if i % 2 == 0 else brokers[::-1]
                for b in order:
                    b.start()
                    for other in brokers:  # also a RabbitMQ still busy with its previous run
                        pid = other.pid if other.started_pid() else None
                        idle = wait_idle(pid)
                        if idle > 1:
                            print(f"{other.name} busy for {idle:.0f} s before the run", file=sys.stderr)
                    try:
                        r = connections_run(b, args) if sc == "connections" else throughput_run(b, sc, args)
                    finally:
                        b.stop()
                    out.setdefault(sc, {}).setdefault(b.name, []).append(r)
                    print(f"{sc} {b.name} run {i + 1}: " + json.dumps({k: (round(v, 3) if isinstance(v, float) else v)
                                                                     for k, v in r.items()}), file=sys.stderr)
                    if sc == "connections":
                        time.sleep(2)
    finally:
        warren.stop()
        for r in (rabbit, private):
            if isinstance(r, PrivateRabbit):
                r.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
    load1 = os.getloadavg()
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "runs": out, "load": [load0, load1]}, indent=1))
    cmd = "python bench/mqtt_throughput.py " + " ".join(sys.argv[1:])
    print(f"`{cmd}`, {time.strftime('%Y-%m-%d %H:%M', time.gmtime(t_start))} UTC, "
          f"{(time.time() - t_start) / 60:.0f} min; load average before / after: "
          f"{' '.join(f'{x:.2f}' for x in load0)} / {' '.join(f'{x:.2f}' for x in load1)}")
    print()
    print(f"| scenario | metric | WarrenMQ | RabbitMQ | WarrenMQ / RabbitMQ | better |")
    print("|---|---|---:|---:|---:|---|")
    for sc, per in out.items():
        first = True
        for key, label, fmt, higher in (CONN_METRICS if sc == "connections" else METRICS):
            w = med(per.get("WarrenMQ", []), key)
            r = med(per.get("RabbitMQ", []), key)
            ratio = w / r if w is not None and r not in (None, 0) else None
            better = ""
            if ratio is not None and ratio != 1:
                better = "WarrenMQ" if (ratio > 1) == higher else "RabbitMQ"
            n = len(per.get("WarrenMQ", []))
            print(f"| {describe(sc, args) if first else ''} | {label} (n={n}) | "
                  f"{fmt.format(w) if w is not None else '-'} | {fmt.format(r) if r is not None else '-'} | "
                  f"{f'{ratio:.2f}' if ratio is not None else '-'} | {better} |")
            first = False


if __name__ == "__main__":
    main()
