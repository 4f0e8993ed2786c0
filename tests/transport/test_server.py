"""The transport over real sockets: heartbeats, shutdown, flow control, isolation."""
import asyncio
import os
import platform
import signal
import socket
import subprocess
import sys
import threading
import time

import pika
import pytest

from support.raw import RawClient
from warrenmq.protocol import spec
from warrenmq.protocol.frames import content_frames
from warrenmq.protocol.properties import content_header
from warrenmq.testing import EmbeddedBroker


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_silent_peer_is_dropped_after_two_heartbeat_intervals(broker):
    c = RawClient(broker.port)
    c.handshake(heartbeat=1)
    start = time.monotonic()
    # read frames but never send: the broker's heartbeats arrive, then it drops us
    heartbeats = 0
    while True:
        frame = c.read_frame()
        if frame is None:
            break
        if frame[0] == spec.FRAME_HEARTBEAT:
            heartbeats += 1
        assert time.monotonic() - start < 6, "silent peer was not disconnected"
    elapsed = time.monotonic() - start
    assert heartbeats >= 1
    assert 1.9 <= elapsed < 4.5


def test_heartbeating_client_stays_connected(broker):
    conn = pika.BlockingConnection(pika.URLParameters(broker.url + "?heartbeat=1"))
    try:
        ch = conn.channel()
        deadline = time.monotonic() + 3.5
        while time.monotonic() < deadline:
            conn.process_data_events(time_limit=0.2)
        ch.queue_declare("still-alive")
        assert conn.is_open
    finally:
        conn.close()


def test_sigterm_closes_clients_with_connection_forced():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "warrenmq", "--no-prometheus", "--no-stomp", "--no-mqtt", "--host", "127.0.0.1", "--port", str(port),
                             "--log-level", "warning", "--in-memory", "--no-management"])
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
                break
            except pika.exceptions.AMQPConnectionError:
                assert time.monotonic() < deadline, "broker did not start"
                time.sleep(0.05)
        ch = conn.channel()
        proc.send_signal(signal.SIGTERM)
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as info:
            ch.queue_declare("q")
            conn.process_data_events(time_limit=3)
        assert info.value.reply_code == 320
        assert info.value.reply_text == "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'"
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_malformed_connection_does_not_affect_others(broker):
    good = pika.BlockingConnection(pika.URLParameters(broker.url))
    ch = good.channel()
    ch.queue_declare("survivor")
    bad = RawClient(broker.port)
    bad.handshake()
    bad.open_channel(1)
    bad.send(b"\x01\x00\x01\x00\x00\x00\x05garbage-without-frame-end")
    ch_, close = bad.read_method()
    assert isinstance(close, spec.ConnectionClose)
    assert close.reply_code == spec.FRAME_ERROR
    bad.close()
    ch.basic_publish("", "survivor", b"ok")
    assert ch.basic_get("survivor", auto_ack=True)[2] == b"ok"
    good.close()


def _raw_autoack_consumer(broker, queue: str, rcvbuf: int) -> RawClient:
    """A raw-socket consumer of ``queue`` (declared here) with no acks and a ``rcvbuf``-byte receive
    buffer, which the tests then leave unread."""
    c = RawClient(broker.port)
    c.handshake()
    c.open_channel(1)
    c.send_method(1, spec.QueueDeclare(queue=queue))
    assert isinstance(c.read_method()[1], spec.QueueDeclareOk)
    c.send_method(1, spec.BasicConsume(queue=queue, consumer_tag="t", no_ack=True))
    assert isinstance(c.read_method()[1], spec.BasicConsumeOk)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    return c


def _publish(broker, queue: str, body: bytes, count: int):
    """``count`` copies of ``body`` to ``queue`` over pika; returns the open publishing connection."""
    pub = pika.BlockingConnection(pika.URLParameters(broker.url))
    pch = pub.channel()
    for _ in range(count):
        pch.basic_publish("", queue, body)
    pub.process_data_events(time_limit=0.5)
    return pub


def test_deliveries_pause_for_a_consumer_that_does_not_read(broker):
    """A consumer whose socket is full stops receiving; the rest stays queued in the broker."""
    # shrink our receive buffer so the broker's socket fills quickly; never read again
    c = _raw_autoack_consumer(broker, "slow", rcvbuf=4096)
    pub = _publish(broker, "slow", b"y" * 65536, 300)  # ~20 MB
    queued = broker.call(lambda: len(broker.broker.vhosts["/"].queues["slow"].messages))
    assert queued > 100, f"only {queued} of 300 messages held back for a stalled consumer"
    pub.close()
    c.close()


@pytest.mark.parametrize("size,count", [(8192, 2500), (65536, 300)], ids=["joined-write", "large-body-writelines"])
def test_a_stalled_consumer_is_paused_and_resumed_when_it_reads_again(broker, size, count):
    """Both output paths (small frames joined into one write; large bodies handed to writelines,
    which on CPython 3.12.0-3.12.8/3.13.0-3.13.1 does not pause the protocol by itself) leave the
    backlog in the queue while the consumer does not read, and resume once it reads again."""
    # a small fixed receive buffer (not 4 KiB: reading through that later would take minutes)
    c = _raw_autoack_consumer(broker, "stalled", rcvbuf=65536)
    pub = _publish(broker, "stalled", b"s" * size, count)
    depth = lambda: broker.call(lambda: len(broker.broker.vhosts["/"].queues["stalled"].messages))
    # ~20 MB published: the write buffer's high mark (1 MiB) and the kernel's socket buffers take a
    # few MB, the rest must wait in the queue (where paging and the memory alarm see it)
    assert depth() > count // 2, f"only {depth()} of {count} held back for a stalled consumer"
    delivered = body_bytes = 0
    while delivered < count or body_bytes < count * size:  # read again: the broker must resume
        frame = c.read_frame()
        assert frame is not None, "broker closed the connection"
        if frame[0] == spec.FRAME_METHOD and isinstance(
                spec.METHODS[int.from_bytes(frame[2][:4], "big")].decode(frame[2][4:], 0), spec.BasicDeliver):
            delivered += 1
        elif frame[0] == spec.FRAME_BODY:
            body_bytes += len(frame[2])
    assert (delivered, body_bytes, depth()) == (count, count * size, 0)
    pub.close()
    c.close()


def test_a_backlog_is_not_dumped_onto_a_new_consumer_that_does_not_read(broker):
    """Deliveries go out in batches per loop turn, so a full socket pauses a consumer even when
    the whole backlog was waiting before it subscribed."""
    pub = pika.BlockingConnection(pika.URLParameters(broker.url))
    pch = pub.channel()
    pch.queue_declare("backlog")
    for _ in range(3000):
        pch.basic_publish("", "backlog", b"z" * 8192)  # ~24 MB waiting
    pub.process_data_events(time_limit=0.3)
    c = RawClient(broker.port)
    c.handshake()
    c.open_channel(1)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    c.send_method(1, spec.BasicConsume(queue="backlog", consumer_tag="t", no_ack=True))
    time.sleep(0.5)  # the broker delivers what the socket takes, then pauses; we never read
    queued = broker.call(lambda: len(broker.broker.vhosts["/"].queues["backlog"].messages))
    assert queued > 2000, f"only {queued} of 3000 messages held back for a stalled consumer"
    pub.close()
    c.close()


_GC_PROBE = r"""
import asyncio, gc, os, signal, sys
from warrenmq import app
from warrenmq.broker.broker import Broker
from warrenmq.config import BrokerConfig

seen = {}
recover = Broker._recover
def observed_recover(self):  # observe the collector's state while the store is recovered
    seen["during_recovery"] = gc.isenabled()
    return recover(self)
Broker._recover = observed_recover

def ready(_app):
    print(seen["during_recovery"], gc.isenabled(), gc.get_threshold() == app.GC_THRESHOLDS,
          gc.get_freeze_count() > 0, flush=True)
    # stop as the command would be stopped (serve installs its handler right after ready returns)
    asyncio.get_running_loop().call_soon(os.kill, os.getpid(), signal.SIGTERM)

asyncio.run(app.serve(BrokerConfig(host="127.0.0.1", port=0, data_dir=sys.argv[1], management_enabled=False), ready, manage_gc=True))
"""


def test_the_broker_process_tunes_its_garbage_collector(tmp_path):
    # off while recovering, then on with rare full collections and start-up objects frozen
    out = subprocess.run([sys.executable, "-c", _GC_PROBE, str(tmp_path)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True", "True", "True"]


def test_an_embedded_broker_leaves_the_collector_alone():
    import gc
    before = gc.get_threshold(), gc.isenabled(), gc.get_freeze_count()
    with EmbeddedBroker():
        assert (gc.get_threshold(), gc.isenabled(), gc.get_freeze_count()) == before


_MALLOC_PROBE = r"""
from warrenmq import app

def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096

def in_heap(obj) -> bool:  # in the brk heap, not in a mapping of its own
    with open("/proc/self/maps") as f:
        for line in f:
            if line.rstrip().endswith("[heap]"):
                lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
                return lo <= id(obj) < hi
    return False

applied = app.tune_malloc()
small, large = bytes(512_000), bytes(2_000_000)
bufs = [bytes(400_000) for _ in range(20)]  # 8 MB in allocations the size of socket reads
before = rss()
del bufs
print(applied, in_heap(small), in_heap(large), before - rss())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                    reason="glibc's allocator")
def test_the_broker_process_keeps_freed_heap_for_reuse():
    # glibc's own thresholds move with what the process freed before; after tune_malloc, allocations
    # below 1 MiB come from the heap, larger ones get a mapping, and 8 MB freed stays for reuse
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    out = subprocess.run([sys.executable, "-c", _MALLOC_PROBE], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    applied, small_in_heap, large_in_heap, given_back = out.stdout.split()
    assert (applied, small_in_heap, large_in_heap) == ("True", "True", "False")
    assert int(given_back) < 1_000_000


@pytest.mark.timeout(180)
def test_a_busy_publisher_is_read_once_per_loop_turn():
    # libuv reads a readable socket up to 32 times in one loop turn: a publisher streaming large reads
    # would hold the loop while consumers, timers and the store's commit cycle wait. After a read of
    # FAIR_READ bytes or more the connection is not read again until the next turn. Counted here per
    # turn (a call_soon callback that schedules itself marks each turn), on uvloop as the command runs.
    uvloop = pytest.importorskip("uvloop")
    from warrenmq.transport import server

    turn = [0]
    reads: list = []  # (turn, connection, bytes) of each read
    data_received = server.AMQPProtocol.data_received

    def counted(self, data):
        reads.append((turn[0], id(self), len(data)))
        data_received(self, data)

    def tick(loop):
        turn[0] += 1
        if not stop.is_set():
            loop.call_soon(tick, loop)

    stop = threading.Event()
    policy = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    try:
        with EmbeddedBroker() as broker:
            server.AMQPProtocol.data_received = counted  # before connecting: uvloop keeps the bound method
            # sendall's timeout bounds the whole 24 MB: a loaded machine needs more than the default 5 s
            c = RawClient(broker.port, timeout=120)
            c.handshake()
            c.open_channel(1)
            c.send_method(1, spec.QueueDeclare(queue="fair"))
            c.read_method()
            publish = spec.BasicPublish(exchange="", routing_key="fair").encode()
            frames = b"".join(content_frames(1, publish, content_header(spec.BasicProperties(), 16), b"x" * 16,
                                             131072))
            n = 24 * 1024 * 1024 // len(frames)
            stream = frames * n  # 24 MB of publishes, sent as fast as it goes
            broker.call(lambda: broker.loop.call_soon(tick, broker.loop))
            c.send(stream)
            deadline = time.monotonic() + 60
            queue = broker.call(lambda: broker.broker.vhosts["/"].queues["fair"])
            while broker.call(lambda: len(queue.messages)) < n:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            stop.set()
            c.close()
    finally:
        server.AMQPProtocol.data_received = data_received
        asyncio.set_event_loop_policy(policy)
    assert max(size for _, _, size in reads) <= server.FAIR_READ, "one read took more than FAIR_READ bytes"
    large = [size for _, _, size in reads if size >= server.FAIR_READ]
    assert len(large) > 20, "the publisher's socket was never busy enough to test this"
    by_turn: dict = {}
    for t, conn, size in reads:
        by_turn.setdefault((t, conn), []).append(size)
    # within a turn, a read of FAIR_READ bytes or more is the last one of its connection
    assert all(size < server.FAIR_READ for sizes in by_turn.values() for size in sizes[:-1]), \
        max(by_turn.values(), key=len)
