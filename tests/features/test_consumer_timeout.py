"""Consumer (delivery acknowledgement) timeout, RabbitMQ's ``consumer_timeout``.

A channel whose delivery (to a consumer or by basic.get) stays unacknowledged
longer than ``BrokerConfig.consumer_timeout_ms`` (RabbitMQ 3.10's default: 30
minutes) is closed with RabbitMQ's text and class/method 0, and the message
returns to its queue.  RabbitMQ 3.10 has no per-queue ``x-consumer-timeout``
(added in 3.12): the argument is accepted and ignored.  The broker here uses a
200 ms timeout; each wait below is for an event (a close, a delivery).
"""
from __future__ import annotations

import time

import amqp
import pytest

from warrenmq.config import BrokerConfig
from warrenmq.testing import EmbeddedBroker

from .helpers import unique

pytestmark = pytest.mark.timeout(30)
TIMEOUT_MS = 200


def timeout_text(channel: int, ms: int = TIMEOUT_MS) -> str:
    return (f"PRECONDITION_FAILED - delivery acknowledgement on channel {channel} timed out. Timeout value used: "
            f"{ms} ms. This timeout value can be configured, see consumers doc guide to learn more")


@pytest.fixture
def broker():
    with EmbeddedBroker(consumer_timeout_ms=TIMEOUT_MS) as b:
        yield b


@pytest.fixture
def conn(broker):
    with amqp.Connection(f"{broker.host}:{broker.port}") as c:
        yield c


def drain_until(conn, predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        conn.drain_events(timeout=max(0.01, deadline - time.monotonic()))


def wait_for_close(conn, timeout: float = 5.0):
    """Drain events until the broker closes a channel; the channel error py-amqp raises for it."""
    with pytest.raises(amqp.exceptions.ChannelError) as e:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            conn.drain_events(timeout=deadline - time.monotonic())
    return e.value


def declare_with(conn, bodies, **arguments) -> str:
    ch = conn.channel()
    q = unique("ct")
    ch.queue_declare(q, auto_delete=False, arguments=arguments or None)
    for b in bodies:
        ch.basic_publish(amqp.Message(str(b)), routing_key=q)
    ch.close()
    return q


def test_an_unacked_consumer_delivery_closes_its_channel(conn):
    q = declare_with(conn, ["m"])
    conn.channel()  # channel 1 stays idle: the channel number in the text must be the consumer's
    ch = conn.channel()
    got = []
    ch.basic_consume(q, callback=got.append)
    drain_until(conn, lambda: got)
    delivered = time.monotonic()
    err = wait_for_close(conn)
    assert time.monotonic() - delivered >= TIMEOUT_MS / 1000
    assert isinstance(err, amqp.exceptions.PreconditionFailed)
    assert err.reply_code == 406
    assert err.reply_text == timeout_text(ch.channel_id)
    assert err.method_sig == (0, 0)
    assert conn.connected  # only the channel goes
    # the message went back to the queue, marked redelivered
    msg = conn.channel().basic_get(q, no_ack=True)
    assert msg.body == "m" and msg.delivery_info["redelivered"] is True


def test_an_unacked_basic_get_times_out_too(conn):
    q = declare_with(conn, ["m"])
    ch = conn.channel()
    assert ch.basic_get(q, no_ack=False).body == "m"
    err = wait_for_close(conn)
    assert err.reply_text == timeout_text(ch.channel_id)


def test_the_message_goes_to_another_consumer_after_the_timeout(conn):
    q = declare_with(conn, ["m"])
    slow, other = conn.channel(), conn.channel()
    got = []

    def record(who):
        return lambda m: got.append((who, m.body, m.delivery_info["redelivered"]))
    slow.basic_consume(q, consumer_tag="slow", callback=record("slow"))
    drain_until(conn, lambda: got)
    other.basic_consume(q, consumer_tag="other", no_ack=True, callback=record("other"))
    err = wait_for_close(conn)
    assert err.reply_text == timeout_text(slow.channel_id)
    drain_until(conn, lambda: len(got) == 2)
    assert got == [("slow", "m", False), ("other", "m", True)]


def test_prompt_acks_and_no_ack_consumers_keep_their_channels(conn):
    q_acks, q_noack, q_slow = (declare_with(conn, []) for _ in range(3))
    acking, noack, slow = conn.channel(), conn.channel(), conn.channel()
    got = []

    def ack_at_once(m):
        got.append(m.body)
        acking.basic_ack(m.delivery_tag)
    acking.basic_consume(q_acks, callback=ack_at_once)
    noack.basic_consume(q_noack, no_ack=True, callback=lambda m: got.append(m.body))
    slow.basic_consume(q_slow, callback=lambda m: got.append(m.body))
    pub = conn.channel()
    pub.basic_publish(amqp.Message("acked"), routing_key=q_acks)
    pub.basic_publish(amqp.Message("no-ack"), routing_key=q_noack)
    drain_until(conn, lambda: len(got) == 2)
    pub.basic_publish(amqp.Message("never acked"), routing_key=q_slow)  # delivered after the other two
    err = wait_for_close(conn)
    assert err.reply_text == timeout_text(slow.channel_id)
    # the two older deliveries did not time out: their channels still work
    acking.basic_qos(0, 5, False)
    noack.basic_qos(0, 5, False)
    assert acking.is_open and noack.is_open


def test_only_the_age_of_the_oldest_unacked_delivery_counts(conn):
    """A channel that always holds an unacked delivery, but never one older than a third of the timeout,
    stays open for well over the timeout.  (Time passing is the scenario here, so the test sleeps.)"""
    q = declare_with(conn, range(12))
    ch = conn.channel()
    held = ch.basic_get(q, no_ack=False)
    started = time.monotonic()
    while time.monotonic() - started < 3 * TIMEOUT_MS / 1000:
        time.sleep(TIMEOUT_MS / 1000 / 3)
        nxt = ch.basic_get(q, no_ack=False)  # take the next one before settling the previous one
        ch.basic_ack(held.delivery_tag)
        held = nxt
    ch.basic_ack(held.delivery_tag)
    ch.basic_qos(0, 1, False)  # a round trip: the channel is still open
    assert ch.is_open


def test_the_x_consumer_timeout_queue_argument_is_ignored_as_in_3_10(conn):
    q = declare_with(conn, ["m"], **{"x-consumer-timeout": 1})
    ch = conn.channel()
    got = []
    ch.basic_consume(q, callback=got.append)
    drain_until(conn, lambda: got)
    delivered = time.monotonic()
    err = wait_for_close(conn)
    assert time.monotonic() - delivered >= TIMEOUT_MS / 1000  # the broker-wide value, not 1 ms
    assert err.reply_text == timeout_text(ch.channel_id)


def test_the_default_is_thirty_minutes_and_it_is_configurable():
    assert BrokerConfig().consumer_timeout_ms == 30 * 60 * 1000
    assert BrokerConfig.load(env={"WARRENMQ_CONSUMER_TIMEOUT_MS": "5000"}).consumer_timeout_ms == 5000


def test_zero_turns_the_check_off():
    with EmbeddedBroker(consumer_timeout_ms=0) as b, amqp.Connection(f"{b.host}:{b.port}") as conn:
        q = declare_with(conn, ["m"])
        ch = conn.channel()
        assert ch.basic_get(q, no_ack=False).body == "m"

        def timers(broker):
            return [c.ack_timer for s in broker.sessions for c in s.channels.values()]
        assert b._run(timers) == [False]  # no check is ever armed
