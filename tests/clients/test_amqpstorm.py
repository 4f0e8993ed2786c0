"""AMQPStorm against a real WarrenMQ over TCP: publish, get, consume, ack/nack/reject,
publisher confirms, returns, transactions and error texts.

Set ``WARRENMQ_CLIENT_TESTS_URL`` to run these against another broker.
"""
from __future__ import annotations

import sys

import pytest

if sys.version_info < (3, 11):  # only there: on 3.11+ a missing amqpstorm is an error, not a skip
    pytest.skip("AMQPStorm 3 requires Python 3.11: pyproject.toml installs it only there",
                allow_module_level=True)

from amqpstorm import AMQPChannelError, AMQPMessageError, Message, UriConnection

from . import helpers as H

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def conn(url):
    c = UriConnection(url)
    yield c
    c.close()


@pytest.fixture
def ch(conn):
    channel = conn.channel()
    yield channel
    if channel.is_open:
        channel.close()


def declare(ch, prefix: str) -> str:
    name = H.unique(prefix)
    ok = ch.queue.declare(name, exclusive=True)
    assert (ok["queue"], ok["message_count"], ok["consumer_count"]) == (name, 0, 0)
    return name


def test_publish_get_reject_nack_and_ack(ch):
    q = declare(ch, "amqpstorm.get")
    Message.create(ch, "hello", {"content_type": "text/plain", "delivery_mode": 2,
                                 "headers": {"n": 1}, "message_id": "m-1"}).publish(q)
    msg = ch.basic.get(q)
    assert (msg.body, msg.redelivered) == ("hello", False)
    assert (msg.content_type, msg.delivery_mode, msg.properties["headers"], msg.message_id) == (
        "text/plain", 2, {"n": 1}, "m-1")
    msg.reject(requeue=True)
    msg = ch.basic.get(q)
    assert (msg.body, msg.redelivered) == ("hello", True)
    msg.nack(requeue=True)
    msg = ch.basic.get(q)
    assert msg.redelivered
    msg.ack()
    assert ch.basic.get(q) is None
    assert ch.queue.declare(q, passive=True)["message_count"] == 0


def test_consume_with_prefetch_and_ack(conn, ch):
    q = declare(ch, "amqpstorm.consume")
    for i in range(3):
        Message.create(ch, f"m{i}").publish(q)
    probe = conn.channel()
    ch.basic.qos(prefetch_count=1)
    tag = ch.basic.consume(queue=q, consumer_tag="amqpstorm-consumer")
    assert tag == "amqpstorm-consumer"
    bodies = []
    for msg in ch.build_inbound_messages(break_on_empty=False):
        assert (msg.method["routing_key"], msg.redelivered) == (q, False)
        bodies.append(msg.body)
        if len(bodies) == 1:  # prefetch 1: the other two wait in the broker until this one is acked
            counts = probe.queue.declare(q, passive=True)
            assert (counts["message_count"], counts["consumer_count"]) == (2, 1)
        msg.ack()
        if len(bodies) == 3:
            break
    assert bodies == ["m0", "m1", "m2"]
    ch.basic.cancel(tag)
    assert probe.queue.declare(q, passive=True)["consumer_count"] == 0


def test_publisher_confirms_and_returns(ch):
    q = declare(ch, "amqpstorm.confirm")
    ch.confirm_deliveries()
    assert all(Message.create(ch, f"c{i}").publish(q) for i in range(3))
    assert ch.queue.declare(q, passive=True)["message_count"] == 3
    nowhere = H.unique("amqpstorm.nowhere")
    with pytest.raises(AMQPMessageError) as e:
        Message.create(ch, "lost").publish(nowhere, mandatory=True)
    assert e.value.error_code == H.NO_ROUTE
    assert f"{H.NO_ROUTE_TEXT} ({H.NO_ROUTE})" in str(e.value)


def test_transactions(ch):
    q = declare(ch, "amqpstorm.tx")
    ch.tx.select()
    Message.create(ch, "rolled back").publish(q)
    ch.tx.rollback()
    Message.create(ch, "committed").publish(q)
    assert ch.queue.declare(q, passive=True)["message_count"] == 0  # not before the commit
    ch.tx.commit()
    assert ch.basic.get(q, no_ack=True).body == "committed"
    assert ch.basic.get(q) is None


def test_exchange_to_exchange_binding(ch):
    src, dest = H.unique("amqpstorm.src"), H.unique("amqpstorm.dest")
    ch.exchange.declare(src, exchange_type="fanout", auto_delete=True)
    ch.exchange.declare(dest, exchange_type="direct", auto_delete=True)
    ch.exchange.bind(destination=dest, source=src, routing_key="")
    q = declare(ch, "amqpstorm.e2e")
    ch.queue.bind(q, dest, routing_key="green")
    for key in ("green", "red"):
        Message.create(ch, key).publish(key, exchange=src)
    msg = ch.basic.get(q, no_ack=True)
    assert (msg.body, msg.method["exchange"], msg.method["routing_key"]) == ("green", src, "green")
    assert ch.basic.get(q) is None


def test_channel_error_carries_rabbitmq_code_and_text(conn, ch):
    missing = H.unique("amqpstorm.missing")
    with pytest.raises(AMQPChannelError) as e:
        ch.queue.declare(missing, passive=True)
    assert e.value.error_code == H.NOT_FOUND
    assert H.no_queue(missing) in str(e.value)
    # the connection is still usable on another channel
    declare(conn.channel(), "amqpstorm.after")
