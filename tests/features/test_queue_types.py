"""Queue types (``x-queue-type``): classic, quorum on a single node, and stream (refused).

A quorum queue must be durable, neither exclusive nor auto-delete, and named by
the client; it refuses classic-only arguments and a classic queue refuses the
quorum ones.  A message returned before carries ``x-delivery-count`` (the number
of returns; basic.get adds it even at 0); a returned message goes to the back, or with
``x-delivery-limit`` set to the front; past the limit it is dead-lettered with
reason ``delivery_limit``.  RabbitMQ 3.10 implements stream queues; WarrenMQ
refuses them (docs/compatibility.md).  Expected values were observed on
RabbitMQ 3.10.8, except the stream tests, which check the deliberate difference.
"""
from __future__ import annotations

import time

import pika
import pytest

from support.features import RawGetter, bodies, connect, drain, get, get_none, unique, wait_count
from warrenmq.protocol.codec import INT_TYPES

from .conftest import warrenmq_only

pytestmark = pytest.mark.timeout(60)
QUORUM = {"x-queue-type": "quorum"}


def quorum(ch, cleanup, **arguments) -> str:
    q = unique("qq")
    ch.queue_declare(q, durable=True, arguments={**QUORUM, **arguments})
    cleanup[0].append(q)
    return q


def declare_error(new_channel, name, **kw) -> tuple:
    _, c = new_channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        c.queue_declare(name, **kw)
    return e.value.reply_code, e.value.reply_text


# --------------------------------------------------------------------------- declaring
def test_classic_is_the_default_and_may_be_named(ch, new_channel, cleanup):
    q = unique("classic")
    ch.queue_declare(q, arguments={"x-queue-type": "classic"})
    cleanup[0].append(q)
    _, c = new_channel()
    c.queue_declare(q)  # no type given: equivalent


@pytest.mark.parametrize("kw, prop", [
    (dict(durable=False), "non-durable"),
    (dict(durable=True, exclusive=True), "exclusive-owner"),
    (dict(durable=True, auto_delete=True), "auto-delete"),
    (dict(durable=False, exclusive=True, auto_delete=True), "auto-delete"),
])
def test_a_quorum_queue_must_be_durable_and_shared(new_channel, kw, prop):
    q = unique("qq")
    assert declare_error(new_channel, q, arguments=QUORUM, **kw) == (
        406, f"PRECONDITION_FAILED - invalid property '{prop}' for queue '{q}' in vhost '/'")


def test_a_quorum_queue_cannot_be_server_named(new_channel):
    assert declare_error(new_channel, "", durable=True, arguments=QUORUM) == (
        406, "PRECONDITION_FAILED - Cannot declare a server-named queue for type rabbit_quorum_queue")


@pytest.mark.parametrize("qtype, key, value", [
    ("classic", "x-delivery-limit", 5), ("classic", "x-quorum-initial-group-size", 1),
    ("classic", "x-dead-letter-strategy", "at-most-once"), ("classic", "x-max-in-memory-length", 3),
    ("quorum", "x-max-priority", 5), ("quorum", "x-queue-mode", "lazy"), ("quorum", "x-queue-master-locator", "x"),
    ("quorum", "x-max-age", "1D"),
])
def test_each_type_refuses_the_others_arguments(new_channel, qtype, key, value):
    q = unique("q")
    module = {"classic": "rabbit_classic_queue", "quorum": "rabbit_quorum_queue"}[qtype]
    assert declare_error(new_channel, q, durable=True, arguments={"x-queue-type": qtype, key: value}) == (
        406, f"PRECONDITION_FAILED - invalid arg '{key}' for queue '{q}' in vhost '/' of queue type {module}")


def test_argument_values_are_checked_before_the_type_s_arguments(new_channel):
    q = unique("q")
    assert declare_error(new_channel, q, durable=True, arguments={"x-delivery-limit": 1, "x-max-length": -1}) == (
        406, f"PRECONDITION_FAILED - invalid arg 'x-max-length' for queue '{q}' in vhost '/': {{value_negative,-1}}")


def test_properties_are_checked_after_the_arguments(new_channel):
    q = unique("q")
    assert declare_error(new_channel, q, arguments={**QUORUM, "x-max-priority": 5}) == (
        406, f"PRECONDITION_FAILED - invalid arg 'x-max-priority' for queue '{q}' in vhost '/' of queue type "
             "rabbit_quorum_queue")


@pytest.mark.parametrize("value, reason", [
    ("foo", "\"unsupported queue type 'foo'\""), ("Quorum", "\"unsupported queue type 'Quorum'\""),
    (5, "{unacceptable_type,signedint}"), (b"quorum", "{unacceptable_type,binary}"),
])
def test_the_queue_type_is_validated_first(new_channel, value, reason):
    q = unique("q")
    assert declare_error(new_channel, q, durable=True, arguments={"x-queue-type": value, "x-overflow": "bad"}) == (
        406, f"PRECONDITION_FAILED - invalid arg 'x-queue-type' for queue '{q}' in vhost '/': {reason}")


@pytest.mark.parametrize("key, value, reason", [
    ("x-dead-letter-strategy", "foo", "invalid_dlx_strategy"),
    ("x-quorum-initial-group-size", 0, "{value_zero,0}"),
    ("x-max-in-memory-length", -1, "{value_negative,-1}"),
])
def test_quorum_arguments_are_validated(new_channel, key, value, reason):
    q = unique("qq")
    assert declare_error(new_channel, q, durable=True, arguments={**QUORUM, key: value}) == (
        406, f"PRECONDITION_FAILED - invalid arg '{key}' for queue '{q}' in vhost '/': {reason}")


@pytest.mark.parametrize("arguments", [{"x-delivery-limit": -1}, {"x-delivery-limit": "a"},
                                       {"x-dead-letter-strategy": "at-least-once"}, {"x-quorum-initial-group-size": 3},
                                       {"x-overflow": "reject-publish-dlx"}, {"x-single-active-consumer": True}])
def test_quorum_arguments_rabbitmq_accepts(ch, cleanup, arguments):
    quorum(ch, cleanup, **arguments)


@pytest.mark.parametrize("redeclare, text", [
    (dict(durable=True), "received none but current is the value 'quorum' of type 'longstr'"),
    (dict(durable=True, arguments={"x-queue-type": "classic"}), "received 'classic' but current is 'quorum'"),
])
def test_redeclaring_with_another_type_is_refused(ch, cleanup, new_channel, redeclare, text):
    q = quorum(ch, cleanup)
    assert declare_error(new_channel, q, **redeclare) == (
        406, f"PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue '{q}' in vhost '/': {text}")


def test_redeclaring_a_quorum_queue_compares_its_delivery_limit(ch, cleanup, new_channel):
    q = quorum(ch, cleanup)
    assert declare_error(new_channel, q, durable=True, arguments={**QUORUM, "x-delivery-limit": 3}) == (
        406, f"PRECONDITION_FAILED - inequivalent arg 'x-delivery-limit' for queue '{q}' in vhost '/': received "
             "the value '3' of type 'signedint' but current is none")


def test_a_classic_queue_redeclared_as_quorum_is_refused(ch, cleanup, new_channel):
    q = unique("classic")
    ch.queue_declare(q)
    cleanup[0].append(q)
    assert declare_error(new_channel, q, arguments=QUORUM) == (
        406, f"PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue '{q}' in vhost '/': received the "
             "value 'quorum' of type 'longstr' but current is none")


@warrenmq_only
@pytest.mark.parametrize("kw", [dict(durable=True), dict(durable=False), dict(durable=True, passive=False)])
def test_stream_queues_are_refused(new_channel, kw):
    """RabbitMQ 3.10 creates a stream (durable) here; WarrenMQ says it has none (docs/compatibility.md)."""
    q = unique("stream")
    assert declare_error(new_channel, q, arguments={"x-queue-type": "stream", "x-max-age": "1D"}, **kw) == (
        406, f"PRECONDITION_FAILED - invalid arg 'x-queue-type' for queue '{q}' in vhost '/': \"unsupported queue "
             "type 'stream': WarrenMQ does not implement stream queues\"")


# --------------------------------------------------------------------------- delivering
def test_basic_get_always_carries_x_delivery_count(ch, cleanup):
    q = quorum(ch, cleanup)
    ch.basic_publish("", q, b"m", pika.BasicProperties(headers={"zz": 1, "a": 2}))
    for n in range(3):
        method, props, _ = get(ch, q, auto_ack=False)
        assert method.redelivered is (n > 0)
        assert props.headers == {"a": 2, "x-delivery-count": n, "zz": 1}
        assert list(props.headers) == ["a", "x-delivery-count", "zz"]  # the table is sorted
        ch.basic_reject(method.delivery_tag, requeue=True)


def test_x_delivery_count_is_a_long_and_added_when_there_are_no_headers(ch, cleanup, url):
    q = quorum(ch, cleanup)
    ch.basic_publish("", q, b"m")
    raw = RawGetter(url)
    try:
        _, header, _ = raw.get(q)
    finally:
        raw.close()
    headers = RawGetter.properties(header).headers
    assert headers == {"x-delivery-count": 0} and type(headers["x-delivery-count"]) is INT_TYPES["l"]


def test_returned_messages_go_to_the_back(ch, cleanup):
    q = quorum(ch, cleanup)
    for i in range(1, 6):
        ch.basic_publish("", q, b"%d" % i)
    assert wait_count(ch, q, 5) == 5
    tags = [get(ch, q, auto_ack=False)[0].delivery_tag for _ in range(4)]
    ch.basic_reject(tags[2], requeue=True)
    ch.basic_reject(tags[0], requeue=True)
    got = drain(ch, q)
    assert [(b, m.redelivered) for m, _, b in got] == [(b"5", False), (b"3", True), (b"1", True)]


def test_with_a_delivery_limit_returned_messages_go_to_the_front(ch, cleanup):
    q = quorum(ch, cleanup, **{"x-delivery-limit": 5})
    for i in range(1, 6):
        ch.basic_publish("", q, b"%d" % i)
    assert wait_count(ch, q, 5) == 5
    tags = [get(ch, q, auto_ack=False)[0].delivery_tag for _ in range(4)]
    ch.basic_reject(tags[2], requeue=True)
    ch.basic_reject(tags[0], requeue=True)
    assert bodies(drain(ch, q)) == [b"3", b"1", b"5"]


def test_past_the_delivery_limit_a_message_is_dead_lettered(ch, cleanup):
    dlq = unique("dlq")
    ch.queue_declare(dlq)
    cleanup[0].append(dlq)
    q = quorum(ch, cleanup, **{"x-delivery-limit": 2, "x-dead-letter-exchange": "",
                               "x-dead-letter-routing-key": dlq})
    ch.basic_publish("", q, b"m", pika.BasicProperties(headers={"h": 1}, expiration="100000"))
    counts = []
    for _ in range(3):
        method, props, _ = get(ch, q, auto_ack=False)
        counts.append(props.headers["x-delivery-count"])
        ch.basic_reject(method.delivery_tag, requeue=True)
    assert counts == [0, 1, 2]
    method, props, body = get(ch, dlq)
    assert body == b"m" and props.expiration is None
    assert set(props.headers) == {"h", "x-death", "x-first-death-exchange", "x-first-death-queue",
                                  "x-first-death-reason"}  # no x-delivery-count
    death = props.headers["x-death"][0]
    assert (death["reason"], death["queue"], death["count"], death["original-expiration"]) == (
        "delivery_limit", q, 1, "100000")
    assert get_none(ch, q)


def test_a_delivery_limit_of_zero_allows_no_return(ch, cleanup):
    q = quorum(ch, cleanup, **{"x-delivery-limit": 0})
    ch.basic_publish("", q, b"m")
    method, _, _ = get(ch, q, auto_ack=False)
    ch.basic_reject(method.delivery_tag, requeue=True)
    assert get_none(ch, q)  # dropped: no dead-letter exchange


def test_a_closed_channel_counts_as_a_return(ch, cleanup, url):
    q = quorum(ch, cleanup)
    ch.basic_publish("", q, b"m")
    other = connect(url)
    c2 = other.channel()
    assert get(c2, q, auto_ack=False)[1].headers["x-delivery-count"] == 0
    other.close()
    method, props, _ = get(ch, q)
    assert method.redelivered and props.headers["x-delivery-count"] == 1


def test_rejected_messages_are_dead_lettered_without_the_count(ch, cleanup):
    dlq = unique("dlq")
    ch.queue_declare(dlq)
    cleanup[0].append(dlq)
    q = quorum(ch, cleanup, **{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq})
    ch.basic_publish("", q, b"m")
    method, _, _ = get(ch, q, auto_ack=False)
    ch.basic_reject(method.delivery_tag, requeue=True)
    method, _, _ = get(ch, q, auto_ack=False)
    ch.basic_nack(method.delivery_tag, requeue=False)
    _, props, _ = get(ch, dlq)
    assert "x-delivery-count" not in props.headers
    assert props.headers["x-death"][0]["reason"] == "rejected"


def test_consumers_get_the_count_only_once_the_message_was_returned(ch, conn, cleanup):
    q = quorum(ch, cleanup)
    ch.basic_publish("", q, b"m", pika.BasicProperties(headers={"h": 1}))
    got = []

    def on_message(c, m, p, b):
        got.append((m.redelivered, p.headers))
        if len(got) < 3:
            c.basic_reject(m.delivery_tag, requeue=True)
        else:
            c.basic_ack(m.delivery_tag)
    conn.channel().basic_consume(q, on_message)
    deadline = time.monotonic() + 5
    while len(got) < 3 and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.05)
    assert got == [(False, {"h": 1}), (True, {"h": 1, "x-delivery-count": 1}),
                   (True, {"h": 1, "x-delivery-count": 2})]


def test_a_quorum_queue_drops_from_the_head_for_reject_publish_dlx(ch, cleanup):
    """RabbitMQ 3.10's quorum queues do not support reject-publish-dlx and use drop-head instead."""
    q = quorum(ch, cleanup, **{"x-max-length": 1, "x-overflow": "reject-publish-dlx"})
    ch.confirm_delivery()
    for b in (b"1", b"2"):
        ch.basic_publish("", q, b)  # both confirmed (acked)
    assert bodies(drain(ch, q)) == [b"2"]


def test_quorum_queues_dead_letter_expired_messages(ch, cleanup):
    dlq = unique("dlq")
    ch.queue_declare(dlq)
    cleanup[0].append(dlq)
    q = quorum(ch, cleanup, **{"x-message-ttl": 50, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq})
    ch.basic_publish("", q, b"m")
    _, props, _ = get(ch, dlq)
    assert props.headers["x-death"][0]["reason"] == "expired" and "x-delivery-count" not in props.headers


def test_a_consumer_on_a_channel_with_global_qos_is_refused(ch, cleanup, new_channel):
    q = quorum(ch, cleanup)
    c, c2 = new_channel()
    c2.basic_qos(prefetch_count=5, global_qos=True)
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as e:
        c2.basic_consume(q, lambda *a: None)
    assert (e.value.reply_code, e.value.reply_text) == (
        540, f"NOT_IMPLEMENTED - queue '{q}' in vhost '/' does not support global qos")


def test_per_consumer_qos_is_fine_on_a_quorum_queue(ch, cleanup, conn):
    q = quorum(ch, cleanup)
    for i in range(3):
        ch.basic_publish("", q, b"%d" % i)
    c2 = conn.channel()
    c2.basic_qos(prefetch_count=2)
    got = []
    c2.basic_consume(q, lambda c, m, p, b: got.append(b))
    conn.process_data_events(time_limit=0.5)
    assert got == [b"0", b"1"]
