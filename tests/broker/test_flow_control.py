"""Credit flow in the domain: a queue whose consumers are behind throttles the connections that
publish into it (``owner.set_flow``), and gives them back their credit when it drains."""
import pytest

from warrenmq.broker.broker import Broker
from warrenmq.broker.queues import credit
from warrenmq.config import BrokerConfig

from .conftest import TestChannel, publish

HIGH, LOW = 10, 5


@pytest.fixture
def broker():
    b = Broker(BrokerConfig(data_dir="", flow_high=HIGH, flow_low=LOW))
    yield b
    b.close()


def declare(broker, name):
    q, _ = broker.vhosts["/"].declare_queue(name, None)
    return q


def slow_consumer(broker, q, number=1):
    """A channel consuming ``q`` with manual acks and prefetch 1: one message at a time."""
    ch = TestChannel(broker, number)
    ch.set_qos(1, False)
    ch.start(ch.consume(q, "c", False, False, {}))
    return ch


def ack_one(ch):
    (_, _, tag, _, _), = ch.take("deliver")
    ch.ack(tag, False)


def test_a_queue_behind_its_consumer_throttles_the_publisher_until_it_drains_below_the_low_mark(broker):
    q = declare(broker, "work")
    consumer = slow_consumer(broker, q)
    pub = TestChannel(broker, 2)
    for i in range(HIGH + 1):  # one delivered (prefetch 1), HIGH ready: not over the mark yet
        publish(pub, "", "work", b"m%d" % i)
    assert (len(q.messages), pub.owner.flow_count) == (HIGH, 0)
    publish(pub, "", "work", b"over")
    assert (len(q.messages), pub.owner.flow_count) == (HIGH + 1, 1)
    publish(pub, "", "work", b"more")  # (what the connection had read already) counted once
    assert pub.owner.flow_count == 1
    while len(q.messages) >= LOW:  # hysteresis: still throttled down to the low mark
        assert pub.owner.flow_count == 1
        ack_one(consumer)
    assert (len(q.messages), pub.owner.flow_count) == (LOW - 1, 0)
    assert q.throttled is None


def test_a_queue_with_no_consumer_never_throttles(broker):
    q = declare(broker, "backlog")
    pub = TestChannel(broker, 2)
    for i in range(10 * HIGH):
        publish(pub, "", "backlog", b"m")
    assert (len(q.messages), pub.owner.flow_count) == (10 * HIGH, 0)


def test_each_queue_behind_counts_once_and_the_publisher_waits_for_all_of_them(broker):
    vh = broker.vhosts["/"]
    vh.declare_exchange("fan", "fanout")
    a, b, idle = declare(broker, "a"), declare(broker, "b"), declare(broker, "idle")
    for q in (a, b, idle):
        vh.bind_queue(q, "fan", "", {})
    ca, cb = slow_consumer(broker, a, 1), slow_consumer(broker, b, 3)
    pub = TestChannel(broker, 2)
    for _ in range(HIGH + 2):
        publish(pub, "fan", "", b"m")
    assert pub.owner.flow_count == 2  # a and b are behind; idle (no consumer) is not a reason
    assert idle.throttled is None
    while a.throttled is not None:
        ack_one(ca)
    assert pub.owner.flow_count == 1, "b still throttles"
    while b.throttled is not None:
        ack_one(cb)
    assert pub.owner.flow_count == 0


def test_a_queue_that_loses_its_consumers_or_is_purged_or_deleted_releases_its_publishers(broker):
    vh = broker.vhosts["/"]
    pub = TestChannel(broker, 2)
    for how in ("cancel", "close", "purge", "delete"):
        q = declare(broker, how)
        consumer = slow_consumer(broker, q, 3)
        for _ in range(HIGH + 2):
            publish(pub, "", how, b"m")
        assert pub.owner.flow_count == 1, how
        if how == "cancel":
            consumer.cancel("c")
        elif how == "close":
            consumer.close()
        elif how == "purge":
            q.purge()
        else:
            vh.delete_queue(q)
        assert pub.owner.flow_count == 0, how


def test_publishes_in_a_transaction_are_throttled_at_commit(broker):
    q = declare(broker, "tx")
    slow_consumer(broker, q)
    pub = TestChannel(broker, 2)
    pub.select_tx()
    for _ in range(HIGH + 2):
        publish(pub, "", "tx", b"m")
    assert pub.owner.flow_count == 0
    pub.commit()
    assert pub.owner.flow_count == 1


def test_flow_off_never_throttles():
    b = Broker(BrokerConfig(data_dir="", flow_high=0))
    try:
        q, _ = b.vhosts["/"].declare_queue("q", None)
        slow_consumer(b, q)
        pub = TestChannel(b, 2)
        for _ in range(1000):
            publish(pub, "", "q", b"m")
        assert pub.owner.flow_count == 0
    finally:
        b.close()


class FakeLoop:
    """``Timers.loop_call_later`` run by hand: the test fires the timers."""

    def __init__(self):
        self.pending = []

    def call_later(self, delay, fn):
        handle = Handle(delay, fn)
        self.pending.append(handle)
        return handle

    def fire(self, delay):
        due = [h for h in self.pending if h.delay == delay and not h.cancelled]
        self.pending = [h for h in self.pending if h not in due]
        for h in due:
            h.fn()
        return len(due)


class Handle:
    def __init__(self, delay, fn):
        self.delay, self.fn, self.cancelled = delay, fn, False

    def cancel(self):
        self.cancelled = True


def test_a_stuck_consumer_does_not_hold_its_publishers_for_good(broker):
    loop = FakeLoop()
    broker.timers.loop_call_later = loop.call_later
    q = declare(broker, "stuck")
    consumer = slow_consumer(broker, q)
    pub = TestChannel(broker, 2)
    for _ in range(HIGH + 2):
        publish(pub, "", "stuck", b"m")
    assert pub.owner.flow_count == 1
    ack_one(consumer)  # progress: a delivery within the interval
    assert loop.fire(credit.FLOW_STALL) == 1
    assert pub.owner.flow_count == 1, "a consumer that is slow but moving keeps its publishers in step"
    assert loop.fire(credit.FLOW_STALL) == 1  # nothing delivered for a whole interval: stuck
    assert pub.owner.flow_count == 0
    publish(pub, "", "stuck", b"m")
    assert pub.owner.flow_count == 0, "a stuck queue's backlog is a backlog"
    ack_one(consumer)  # it moves again: it throttles again
    publish(pub, "", "stuck", b"m")
    assert pub.owner.flow_count == 1


def test_the_flow_settings_are_validated():
    for bad in (dict(flow_high=10, flow_low=10), dict(flow_low=-1), dict(flow_recbuf=-1),
                dict(flow_recbuf=16384), dict(flow_high="many")):
        with pytest.raises(ValueError):
            BrokerConfig(data_dir="", **bad)
    BrokerConfig(data_dir="", flow_high=0, flow_low=5)  # off: the low mark does not matter
