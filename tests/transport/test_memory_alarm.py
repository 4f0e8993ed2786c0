"""The memory alarm on the process's real memory (RSS), over real sockets.

The embedded broker runs in the test process, so its RSS is this process's: each test sets an absolute
watermark a little above the RSS it starts from (``_watermark``).  The test whose alarm must clear by
consuming alone runs the broker in a process of its own (``BrokerProcess``), its RSS the broker's.
"""
import gc
import struct
import time

import pika

from support.process import BrokerProcess
from support.raw import RawClient
from warrenmq.broker.flow import RssReader, malloc_trim
from warrenmq.protocol import spec
from warrenmq.protocol.properties import content_header
from warrenmq.testing import EmbeddedBroker

BODY = b"x" * 8192  # large enough to be paged out (lazy.PAGE_MIN_BODY)


def _rss() -> int:
    r = RssReader()
    try:
        return r()
    finally:
        r.close()


def _watermark(headroom: int) -> int:
    # earlier tests in this process leave free heap that a flood would reuse without growing the RSS:
    # give it back first, so the memory the test adds shows in the samples
    gc.collect()
    trim = malloc_trim()
    if trim is not None:
        trim()
    return _rss() + headroom


def _wait(cond, timeout=10.0, conn=None):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        if conn is not None:
            conn.process_data_events(time_limit=0.05)
        else:
            time.sleep(0.05)
    return cond()


def _flood(conn, ch, queue, events, limit_bytes):
    """Publish BODY until connection.blocked arrives (or ``limit_bytes`` went out); returns how many."""
    n = 0
    while "blocked" not in events and n * len(BODY) < limit_bytes:
        ch.basic_publish("", queue, BODY)
        n += 1
        if n % 200 == 0:
            conn.process_data_events(time_limit=0)
    conn.process_data_events(time_limit=0.2)
    return n


def _paged(b, queue):
    q = b.broker.vhosts["/"].queues[queue]
    return b.call(lambda: sum(1 for e in q.messages if e.message.paged))


def test_a_publisher_flood_is_blocked_consumers_drain_and_the_alarm_clears(tmp_path):
    # The broker runs in a process of its own (in memory: no page store, so only the consumer can
    # bring memory down), so the RSS the alarm watches is the broker's alone.  In this process it
    # also held the clients' buffers and the heap that 2,000 earlier tests leave fragmented, which
    # does not always go back to the system when the queue drains: the alarm then stayed on.
    with BrokerProcess(str(tmp_path / "idle"), "--in-memory") as idle:
        time.sleep(0.5)
        watermark = idle.rss() + (40 << 20)
    env = {"WARRENMQ_VM_MEMORY_HIGH_WATERMARK_ABSOLUTE": str(watermark)}
    with BrokerProcess(str(tmp_path / "data"), "--in-memory", env=env) as b:
        conn = pika.BlockingConnection(pika.URLParameters(b.url))
        events = []
        conn.add_on_connection_blocked_callback(lambda c, m: events.append("blocked"))
        conn.add_on_connection_unblocked_callback(lambda c, m: events.append("unblocked"))
        ch = conn.channel()
        ch.queue_declare("flood")
        sent = _flood(conn, ch, "flood", events, 400 << 20)
        assert events == ["blocked"], f"no connection.blocked after {sent} messages"
        assert b.rss() > watermark * 0.9
        conn.process_data_events(time_limit=0.5)
        assert events == ["blocked"], "the alarm cleared with nothing consumed"
        # a consumer on another connection still drains while the publisher is blocked
        other = pika.BlockingConnection(pika.URLParameters(b.url))
        och = other.channel()
        got = 0
        for method, _, body in och.consume("flood", auto_ack=True, inactivity_timeout=2):
            if method is None:
                break
            assert body == BODY
            got += 1
            if got % 500 == 0:
                conn.process_data_events(time_limit=0)
        och.cancel()
        assert _wait(lambda: "unblocked" in events, conn=conn), f"alarm still on, rss={b.rss()} mark={watermark}"
        assert events == ["blocked", "unblocked"]
        assert b.rss() < watermark
        left = och.queue_declare("flood", passive=True).method.message_count
        assert got + left >= sent - 1
        other.close()
        conn.close()


def test_a_stalled_consumer_under_memory_pressure_paging_brings_memory_below_the_mark():
    # paging from the watermark on (not from half of it, the default), so the flood reaches the mark
    # first, however fast paging keeps up on a loaded machine: then paging alone must bring memory down
    with EmbeddedBroker(durable=True, vm_memory_high_watermark_absolute=_watermark(40 << 20),
                        vm_memory_high_watermark_paging_ratio=1.0) as b:
        mon = b.broker.memory
        stalled = pika.BlockingConnection(pika.URLParameters(b.url))
        sch = stalled.channel()
        sch.queue_declare("stuck")
        sch.basic_qos(prefetch_count=1)
        sch.basic_consume("stuck", lambda *a: None)  # takes one message and never acks it
        conn = pika.BlockingConnection(pika.URLParameters(b.url))
        events = []
        conn.add_on_connection_blocked_callback(lambda c, m: events.append("blocked"))
        conn.add_on_connection_unblocked_callback(lambda c, m: events.append("unblocked"))
        ch = conn.channel()
        sent = _flood(conn, ch, "stuck", events, 400 << 20)
        assert "blocked" in events, f"no connection.blocked after {sent} messages"
        # nobody consumes: only paging can bring memory down, and it does: the alarm clears
        assert _wait(lambda: "unblocked" in events, timeout=15, conn=conn), \
            f"alarm still on: rss={mon.rss} low={mon.low} paged={_paged(b, 'stuck')}"
        assert mon.rss < mon.watermark
        assert _paged(b, "stuck") > sent // 2
        q = b.broker.vhosts["/"].queues["stuck"]
        assert q.unacked == 1
        # the paged bodies come back intact
        stalled.close()
        och = conn.channel()
        for _ in range(3):
            m, _, body = och.basic_get("stuck", auto_ack=True)
            assert body == BODY
        conn.close()


def test_a_large_message_being_received_counts_and_its_sender_stops_being_read():
    total = 120 << 20  # announced body size: far above the watermark's headroom, under max_message_size
    with EmbeddedBroker(frame_max=131072, vm_memory_high_watermark_absolute=_watermark(30 << 20)) as b:
        mon = b.broker.memory
        c = RawClient(b.port, timeout=10)
        c.handshake(capabilities={"connection.blocked": True})
        c.open_channel(1)
        c.send_method(1, spec.BasicPublish(exchange="", routing_key="nowhere"))
        payload = content_header(spec.BasicProperties(), total)
        c.send(struct.pack(">BHI", 2, 1, len(payload)) + payload + b"\xce")
        chunk = b"\x03" + struct.pack(">HI", 1, 131064) + bytes(131064) + b"\xce"
        c.sock.settimeout(2.0)
        sent = 0
        try:
            while sent < total:
                c.sock.sendall(chunk)
                sent += 131064
        except (TimeoutError, OSError):
            pass  # the broker stopped reading: the socket buffers filled up
        assert sent < total, "the broker read a whole 120 MiB message past the watermark"
        assert mon.alarm
        assert mon.peak_rss < mon.watermark + (64 << 20), (mon.peak_rss, mon.watermark)
        c.sock.settimeout(5.0)
        ch, m = c.read_method()
        assert isinstance(m, spec.ConnectionBlocked) and m.reason == "low on memory"
        c.sock.close()


def test_under_memory_pressure_a_transient_backlog_becomes_page_store_ids_and_drains_in_order():
    from warrenmq.broker.queues import LazyMessages
    n, limit = 20_000, 1_000
    # Memory pressure from the start: the paging level is half the RSS the test starts with, so every
    # sample is above it and paging goes on until nothing more can go.  (With the default ratio, half of
    # RSS + 40 MB, the level was above a test process of under 40 MB: paging then hung on the backlog
    # growing RSS by the few MB that separated the two, and did not start when free heap absorbed them.)
    watermark = _watermark(40 << 20)
    rss = watermark - (40 << 20)
    with EmbeddedBroker(durable=True, queue_max_in_memory=limit, vm_memory_high_watermark_absolute=watermark,
                        vm_memory_high_watermark_paging_ratio=(rss // 2) / watermark) as b:
        assert b.broker.memory.page_above < rss
        conn = pika.BlockingConnection(pika.URLParameters(b.url))
        ch = conn.channel()
        ch.queue_declare("small")  # not durable: transient messages only
        for i in range(n):
            ch.basic_publish("", "small", b"%016d" % i)
        q = b.broker.vhosts["/"].queues["small"]

        def tail_ids():
            msgs = q.messages
            if not isinstance(msgs, LazyMessages):
                return 0
            return len(msgs.ids) - msgs.pos - len(msgs.side)
        # paging runs on the memory sampler's timer: on a loaded machine it takes more than 10 s
        assert _wait(lambda: b.call(tail_ids) >= n - limit - 100, timeout=40, conn=conn), b.call(tail_ids)
        got = []
        for method, _, body in ch.consume("small", auto_ack=True, inactivity_timeout=2):
            if method is None:
                break
            got.append(body)
            if len(got) == n:
                break
        assert got == [b"%016d" % i for i in range(n)]
        assert b.call(lambda: len(b.broker.page_store.refs)) == 0
        conn.close()
