"""Credit flow over real sockets: a publisher whose queue is behind its consumer is no longer read
(its session's state is "flow") and is read again when the consumer catches up; one reading-pause
mechanism serves alarms, the fairness yield and flow."""
import socket
import threading
import time

from support.raw import RawClient
from warrenmq.amqp.session import PAUSE_ALARM, PAUSE_FLOW, PAUSE_YIELD, Session, new_protocol
from warrenmq.broker.alarms import Alarm
from warrenmq.broker.broker import Broker
from warrenmq.config import BrokerConfig
from warrenmq.protocol import spec
from warrenmq.protocol.frames import content_frames
from warrenmq.protocol.properties import content_header
from warrenmq.testing import EmbeddedBroker

HIGH, LOW, RECBUF = 200, 100, 65536


def publishes(queue: str, n: int, size: int = 16) -> bytes:
    publish = spec.BasicPublish(exchange="", routing_key=queue).encode()
    one = b"".join(content_frames(1, publish, content_header(spec.BasicProperties(), size), b"x" * size, 131072))
    return one * n


def client(broker, queue=None) -> RawClient:
    c = RawClient(broker.port, timeout=20)
    c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # its acks are not held back by Nagle
    c.handshake()
    c.open_channel(1)
    if queue is not None:
        c.send_method(1, spec.QueueDeclare(queue=queue))
        assert isinstance(c.read_method()[1], spec.QueueDeclareOk)
    return c


def session_of(broker, c: RawClient):
    port = c.sock.getsockname()[1]
    return broker.call(lambda: next(s for s in broker.broker.sessions if s.peer and s.peer[1] == port))


def protocol_of(broker, c: RawClient):
    port = c.sock.getsockname()[1]
    return broker.call(lambda: next(p for p in broker.app.server.connections
                                    if p.session.peer and p.session.peer[1] == port))


def wait_for(cond, timeout=10.0, what=""):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_a_flooding_publisher_is_paused_while_the_consumer_is_behind_and_resumes_when_it_catches_up():
    n = 4_000  # ~2.2 MB of publishes: far more than the socket buffers once the broker shrinks them
    with EmbeddedBroker(flow_high=HIGH, flow_low=LOW, flow_recbuf=RECBUF) as b:
        consumer = client(b, "flow")
        consumer.send_method(1, spec.BasicQos(0, 10, False))
        consumer.read_method()
        consumer.send_method(1, spec.BasicConsume(queue="flow", consumer_tag="c"))
        assert isinstance(consumer.read_method()[1], spec.BasicConsumeOk)
        pub = client(b)
        pub.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32768)  # not megabytes held client-side
        pub.sock.settimeout(None)  # sendall: as long as the broker holds it back
        pub_session = session_of(b, pub)
        queue = b.call(lambda: b.broker.vhosts["/"].queues["flow"])
        sent = threading.Event()
        stream = publishes("flow", n, 512)
        sender = threading.Thread(target=lambda: (pub.send(stream), sent.set()), daemon=True)
        sender.start()
        # the consumer does not ack yet: its queue passes the high mark and the publisher stops being read
        wait_for(lambda: b.call(lambda: pub_session.state) == "flow", what="the publisher to be throttled")
        depth = b.call(lambda: len(queue.messages))
        time.sleep(0.5)
        later = b.call(lambda: len(queue.messages))
        assert later == depth, "the queue kept growing while its publisher was throttled"
        assert later < HIGH + 1000, f"{later} messages queued: the publisher was not held back"
        assert not sent.is_set(), "the publisher's whole stream was taken in"
        assert b.call(lambda: pub_session.reading_paused & PAUSE_FLOW)
        sock = protocol_of(b, pub).transport.get_extra_info("socket")
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) <= 2 * RECBUF  # (Linux doubles it)
        consumer_session = session_of(b, consumer)
        assert b.call(lambda: consumer_session.state) == "running"  # its acks keep flowing
        # now the consumer catches up: the publisher is read again, everything arrives
        got = 0
        max_depth = 0
        while got < n:
            ch, m = consumer.read_method()
            if isinstance(m, spec.BasicDeliver):
                consumer.read_frame()  # header
                consumer.read_frame()  # body
                consumer.send_method(1, spec.BasicAck(m.delivery_tag, False))
                got += 1
                if got % 1000 == 0:
                    max_depth = max(max_depth, b.call(lambda: len(queue.messages)))
        sender.join(10)
        assert sent.is_set()
        assert max_depth < HIGH + 1000, f"the queue grew to {max_depth} while the consumer was catching up"
        wait_for(lambda: b.call(lambda: pub_session.state) == "running", what="the publisher to run again")
        assert b.call(lambda: (pub_session.flow_count, pub_session.reading_paused)) == (0, 0)
        pub.close()
        consumer.close()


def test_a_throttled_publisher_keeps_at_most_one_loopback_segment_in_the_brokers_receive_buffer():
    # by default (flow_recbuf 64 KiB, the least that does not stall on window probes) the socket of a
    # throttled publisher can hold one 64 KiB segment, not 128 KiB: with 4 publishers on one queue that
    # was a quarter of the messages in flight
    with EmbeddedBroker(flow_high=HIGH, flow_low=LOW) as b:
        assert b.broker.config.flow_recbuf == 64 * 1024
        consumer = client(b, "flow-default")
        consumer.send_method(1, spec.BasicQos(0, 10, False))
        consumer.read_method()
        consumer.send_method(1, spec.BasicConsume(queue="flow-default", consumer_tag="c"))
        assert isinstance(consumer.read_method()[1], spec.BasicConsumeOk)
        pub = client(b)
        pub.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32768)
        pub.sock.settimeout(None)
        pub_session = session_of(b, pub)
        threading.Thread(target=pub.send, args=(publishes("flow-default", 4_000, 512),), daemon=True).start()
        wait_for(lambda: b.call(lambda: pub_session.state) == "flow", what="the publisher to be throttled")
        sock = protocol_of(b, pub).transport.get_extra_info("socket")
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) <= 2 * 64 * 1024  # (Linux doubles it)
        consumer.close()  # its queue loses its consumer: the publisher is released and its stream taken in
        wait_for(lambda: b.call(lambda: pub_session.state) == "running", what="the publisher to run again")
        pub.close()


def test_a_queue_with_no_consumer_never_throttles_its_publisher():
    n = 30_000
    with EmbeddedBroker(flow_high=HIGH, flow_low=LOW, flow_recbuf=RECBUF) as b:
        pub = client(b, "backlog")
        pub_session = session_of(b, pub)
        states = set()
        sender = threading.Thread(target=pub.send, args=(publishes("backlog", n),), daemon=True)
        sender.start()
        queue = b.call(lambda: b.broker.vhosts["/"].queues["backlog"])
        deadline = time.monotonic() + 20
        while b.call(lambda: len(queue.messages)) < n:
            states.add(b.call(lambda: pub_session.state))
            assert time.monotonic() < deadline, "the backlog was not all taken in"
            time.sleep(0.01)
        sender.join(5)
        assert states == {"running"}
        assert b.call(lambda: pub_session.flow_count) == 0
        pub.close()


class Reader:
    """The transport as the session sees it: counts pause_reading/resume_reading."""

    def __init__(self):
        self.calls = []

    def pause_reading(self):
        self.calls.append("pause")

    def resume_reading(self):
        self.calls.append("resume")


def open_session():
    broker = Broker(BrokerConfig(data_dir=""))
    s = Session(broker, new_protocol(broker.config), ("127.0.0.1", 1))
    s.vhost = broker.vhosts["/"]
    s.reader = Reader()
    broker.session_opened(s)  # (on connection.open) it hears of alarms
    return broker, s


def test_alarm_yield_and_flow_share_one_pause_and_each_release_only_its_own_reason():
    broker, s = open_session()
    try:
        assert s.state == "running"
        s.set_flow(True)
        assert (s.state, s.reader.calls) == ("flow", ["pause"])
        broker.set_alarm(Alarm.MEMORY, True)  # the broker tells every session (set_blocked)
        assert s.state == "blocking"  # as RabbitMQ: blocked once it publishes
        s.pause_reading()  # it published while the alarm is on
        s.pause(PAUSE_YIELD)
        assert s.state == "blocked"
        assert s.reading_paused == PAUSE_ALARM | PAUSE_YIELD | PAUSE_FLOW
        s.set_flow(False)
        s.resume(PAUSE_YIELD)
        assert s.reader.calls == ["pause"], "still blocked by the alarm: not read"
        broker.set_alarm(Alarm.MEMORY, False)
        assert (s.state, s.reader.calls, s.reading_paused) == ("running", ["pause", "resume"], 0)
        # the other way round: the alarm clears first, flow still holds
        broker.set_alarm(Alarm.DISK_FREE, True)
        s.pause_reading()
        s.set_flow(True)
        s.set_flow(True)  # two queues behind
        broker.set_alarm(Alarm.DISK_FREE, False)
        assert (s.state, s.reader.calls[2:]) == ("flow", ["pause"])
        s.set_flow(False)
        assert s.reader.calls[2:] == ["pause"], "one queue still throttles"
        s.set_flow(False)
        assert (s.state, s.reader.calls[2:], s.reading_paused) == ("running", ["pause", "resume"], 0)
    finally:
        broker.close()


def test_the_first_throttle_calls_on_throttled_once():
    broker, s = open_session()
    try:
        calls = []
        s.on_throttled = lambda: calls.append(1)
        for _ in range(3):
            s.set_flow(True)
            s.set_flow(False)
        assert calls == [1]
        s.set_flow(False)  # a stray release does not go negative
        assert (s.flow_count, s.reading_paused) == (0, 0)
    finally:
        broker.close()
