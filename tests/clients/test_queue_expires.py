"""Queue expiry (``x-expires``) with pika, as RabbitMQ 3.10 does it.

A queue is deleted once it has been unused for ``x-expires`` milliseconds:
unused means no consumers, and the countdown restarts on every declare of the
queue (passive too) and every basic.get; publishing does not count.

Observing a queue must not restart its countdown, so these tests never declare
a queue to see whether it still exists: they publish to it with ``mandatory``
and publisher confirms, and a basic.return (pika's UnroutableError) says it is
gone.  The expected texts were recorded against RabbitMQ 3.10.8; set
``WARRENMQ_CLIENT_TESTS_URL`` to run this module against another broker.
"""
from __future__ import annotations

import time

import pika
import pytest
from pika.exceptions import ChannelClosedByBroker, UnroutableError

from . import helpers as H

pytestmark = pytest.mark.timeout(30)

#: the largest x-expires and x-message-ttl RabbitMQ accepts: ten years in milliseconds
MAX_EXPIRY = 315_360_000_000


@pytest.fixture
def conn(url):
    params = pika.URLParameters(url)
    params.connection_attempts = 1
    c = pika.BlockingConnection(params)
    yield c
    if c.is_open:
        c.close()


@pytest.fixture
def ch(conn):
    return conn.channel()


@pytest.fixture
def probe(conn):
    """``probe(queue) -> bool``: does ``queue`` exist?  (A mandatory publish, which does not touch
    the countdown; each leaves a message in the queue.)"""
    pch = conn.channel()
    pch.confirm_delivery()

    def exists(queue: str) -> bool:
        try:
            pch.basic_publish("", queue, b"probe", mandatory=True)
        except UnroutableError:
            return False
        return True
    return exists


def wait_gone(probe, queue: str, timeout: float = H.TIMEOUT) -> float:
    """Probe ``queue`` until it is gone; return when that was seen (time.monotonic())."""
    deadline = time.monotonic() + timeout
    while probe(queue):
        assert time.monotonic() < deadline, f"queue {queue} did not expire"
        time.sleep(0.005)
    return time.monotonic()


def invalid_arg(arg: str, queue: str, reason: str) -> str:
    return f"PRECONDITION_FAILED - invalid arg '{arg}' for queue '{queue}' in vhost '{H.VHOST}': {reason}"


# ------------------------------------------------------------------ validation
@pytest.mark.parametrize("arguments, arg, reason", [
    ({"x-expires": 0}, "x-expires", "{value_zero,0}"),
    ({"x-expires": -1}, "x-expires", "{value_negative,-1}"),
    ({"x-expires": MAX_EXPIRY + 1}, "x-expires", f"{{value_too_large,{MAX_EXPIRY + 1}}}"),
    ({"x-expires": "10"}, "x-expires", '"expected integer, got longstr"'),
    ({"x-expires": True}, "x-expires", '"expected integer, got bool"'),
    ({"x-expires": None}, "x-expires", '"expected integer, got void"'),
    ({"x-message-ttl": MAX_EXPIRY + 1}, "x-message-ttl", f"{{value_too_large,{MAX_EXPIRY + 1}}}"),
    # RabbitMQ checks x-expires, then x-message-ttl, ..., then x-max-priority
    ({"x-message-ttl": -1, "x-expires": 0}, "x-expires", "{value_zero,0}"),
    ({"x-max-priority": 300, "x-message-ttl": -1}, "x-message-ttl", "{value_negative,-1}"),
], ids=["zero", "negative", "too-large", "string", "bool", "void", "ttl-too-large", "expires-first",
        "ttl-before-priority"])
def test_invalid_arguments(ch, arguments, arg, reason):
    q = H.unique("xexp.invalid")
    with pytest.raises(ChannelClosedByBroker) as e:
        ch.queue_declare(q, arguments=arguments)
    assert (e.value.reply_code, e.value.reply_text) == (H.PRECONDITION_FAILED, invalid_arg(arg, q, reason))


@pytest.mark.parametrize("value", [1, 2**32, MAX_EXPIRY])
def test_valid_expires(ch, value):
    q = H.unique("xexp.valid")
    ch.queue_declare(q, arguments={"x-expires": value, "x-message-ttl": value})
    ch.queue_delete(q)


def test_redeclare_with_another_expires_is_inequivalent(ch):
    q = H.unique("xexp.inequivalent")
    ch.queue_declare(q, auto_delete=True, arguments={"x-expires": 10000})
    with pytest.raises(ChannelClosedByBroker) as e:
        ch.queue_declare(q, auto_delete=True, arguments={"x-expires": 20000})
    assert (e.value.reply_code, e.value.reply_text) == (
        H.PRECONDITION_FAILED, H.inequivalent("queue", q, "x-expires", "20000", "10000"))


# ------------------------------------------------------------------ expiry
def test_unused_queue_is_deleted_with_its_messages_and_bindings(ch, probe):
    q = H.unique("xexp.unused")
    start = time.monotonic()
    ch.queue_declare(q, arguments={"x-expires": 200})
    ch.queue_bind(q, "amq.direct", routing_key=q)
    ch.basic_publish("", q, b"lost")
    # the probes publish all along: publishing does not keep a queue alive
    assert wait_gone(probe, q) - start >= 0.2
    with pytest.raises(ChannelClosedByBroker) as e:
        ch.queue_declare(q, passive=True)
    assert (e.value.reply_code, e.value.reply_text) == (H.NOT_FOUND, H.no_queue(q))


def test_binding_goes_with_the_queue(conn, probe):
    q = H.unique("xexp.bound")
    ch = conn.channel()
    ch.queue_declare(q, arguments={"x-expires": 100})
    ch.queue_bind(q, "amq.direct", routing_key=q)
    wait_gone(probe, q)
    ch.confirm_delivery()
    with pytest.raises(UnroutableError):
        ch.basic_publish("amq.direct", q, b"nowhere", mandatory=True)


def test_consumer_keeps_the_queue_and_its_cancel_restarts_the_countdown(conn, ch, probe):
    q, clock = H.unique("xexp.consumed"), H.unique("xexp.clock")
    ch.queue_declare(q, arguments={"x-expires": 150})
    tag = ch.basic_consume(q, lambda *a: None, auto_ack=True)
    ch.queue_declare(clock, arguments={"x-expires": 150})  # declared after q: expires after q would have
    wait_gone(probe, clock)
    assert probe(q), "a queue with a consumer expired"
    conn.process_data_events(time_limit=0)
    ch.basic_cancel(tag)
    cancelled = time.monotonic()
    assert wait_gone(probe, q) - cancelled >= 0.15


@pytest.mark.parametrize("use", ["basic.get", "passive declare", "redeclare"])
def test_use_restarts_the_countdown(conn, ch, probe, use):
    """Use q once midway through its countdown: it must outlive its first deadline by the full
    x-expires from that use.  (A clock queue with half the expiry marks midway, no sleeping.)"""
    q, clock = H.unique("xexp.used"), H.unique("xexp.clock")
    args = {"x-expires": 400}
    declared = time.monotonic()
    ch.queue_declare(q, arguments=args)
    ch.queue_declare(clock, arguments={"x-expires": 200})
    wait_gone(probe, clock)
    used = time.monotonic()
    if use == "basic.get":
        ch.basic_get(q, auto_ack=True)
    elif use == "passive declare":
        ch.queue_declare(q, passive=True)
    else:
        ch.queue_declare(q, arguments=args)
    gone = wait_gone(probe, q)
    assert gone - used >= 0.4
    assert gone - declared >= 0.6  # well past the first deadline: the use did restart the countdown


def test_unacked_get_does_not_keep_the_queue_and_can_be_settled_after(conn, probe):
    """Messages fetched with basic.get and not yet acked do not make a queue used; acking or
    requeueing them after the queue is gone is no error (as in RabbitMQ)."""
    ch = conn.channel()
    q = H.unique("xexp.unacked")
    ch.queue_declare(q, arguments={"x-expires": 100})
    for body in (b"a", b"b"):
        ch.basic_publish("", q, body)
    first, _, _ = ch.basic_get(q)
    second, _, _ = ch.basic_get(q)
    wait_gone(probe, q)
    ch.basic_ack(first.delivery_tag)
    ch.basic_nack(second.delivery_tag, requeue=True)
    # the channel is still open: a round trip on it succeeds
    ch.queue_declare(H.unique("xexp.after"), auto_delete=True, exclusive=True)
    assert ch.is_open
