"""rabbitpy against a real WarrenMQ over TCP: publish, get, consume, ack/nack, publisher
confirms, returns, transactions, exchanges and error texts.

Set ``WARRENMQ_CLIENT_TESTS_URL`` to run these against another broker.
"""
from __future__ import annotations

import sys

import pytest

if sys.version_info < (3, 11):  # only there: on 3.11+ a missing rabbitpy is an error, not a skip
    pytest.skip("rabbitpy 3 requires Python 3.11: pyproject.toml installs it only there",
                allow_module_level=True)

import rabbitpy
from rabbitpy import exceptions as rx

from . import helpers as H

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def conn(url):
    c = rabbitpy.Connection(url)
    yield c
    c.close()


@pytest.fixture
def ch(conn):
    return conn.channel()


def declare(ch, prefix: str) -> "rabbitpy.Queue":
    q = rabbitpy.Queue(ch, H.unique(prefix), exclusive=True)
    assert q.declare() == (0, 0)
    return q


def publish(ch, queue: str, body, properties=None, **kw):
    return rabbitpy.Message(ch, body, properties or {}).publish("", queue, **kw)


def test_publish_get_nack_and_ack(ch):
    q = declare(ch, "rabbitpy.get")
    publish(ch, q.name, b"hello", {"content_type": "text/plain", "delivery_mode": 2,
                                   "headers": {"n": 1}, "message_id": "m-1"})
    msg = q.get()
    assert bytes(msg.body) == b"hello"
    assert not msg.redelivered
    props = msg.properties
    assert (props["content_type"], props["delivery_mode"], props["headers"], props["message_id"]) == (
        "text/plain", 2, {"n": 1}, "m-1")
    msg.nack(requeue=True)
    again = q.get()
    assert (bytes(again.body), again.redelivered) == (b"hello", True)
    again.ack()
    assert q.get() is None
    assert len(q) == 0


def test_consume_with_prefetch_and_ack(conn, ch):
    q = declare(ch, "rabbitpy.consume")
    for i in range(3):
        publish(ch, q.name, f"m{i}".encode())
    probe = rabbitpy.Queue(conn.channel(), q.name)
    bodies = []
    for msg in q.consume(prefetch=1):
        assert msg.routing_key == q.name and not msg.redelivered
        bodies.append(bytes(msg.body))
        if len(bodies) == 1:  # prefetch 1: the other two wait in the broker until this one is acked
            assert probe.declare(passive=True) == (2, 1)
        msg.ack()
        if len(bodies) == 3:
            break  # the generator cancels its consumer
    assert bodies == [b"m0", b"m1", b"m2"]
    assert probe.declare(passive=True) == (0, 0)


def test_publisher_confirms_and_returns(ch):
    q = declare(ch, "rabbitpy.confirm")
    ch.enable_publisher_confirms()
    assert all(publish(ch, q.name, f"c{i}".encode()) for i in range(3))
    assert len(q) == 3
    nowhere = H.unique("rabbitpy.nowhere")
    with pytest.raises(rx.MessageReturnedException) as e:
        publish(ch, nowhere, b"lost", mandatory=True)
    assert e.value.args[:2] == (H.NO_ROUTE, H.NO_ROUTE_TEXT)
    assert publish(ch, nowhere, b"dropped") is True  # unroutable, not mandatory: confirmed all the same


def test_transactions(ch):
    q = declare(ch, "rabbitpy.tx")
    tx = rabbitpy.Tx(ch)
    assert tx.select()
    publish(ch, q.name, b"rolled back")
    assert tx.rollback()
    publish(ch, q.name, b"committed")
    assert len(q) == 0  # not before the commit
    assert tx.commit()
    assert bytes(q.get(acknowledge=False).body) == b"committed"
    assert q.get() is None


def test_topic_exchange_routing(ch):
    ex = rabbitpy.TopicExchange(ch, H.unique("rabbitpy.topic"), auto_delete=True)
    ex.declare()
    q = declare(ch, "rabbitpy.bound")
    q.bind(ex, "stock.*.nyse")
    for key in ("stock.ibm.nyse", "stock.ibm.lse", "stock.nyse"):
        rabbitpy.Message(ch, key.encode()).publish(ex, key)
    msg = q.get(acknowledge=False)
    assert (bytes(msg.body), msg.exchange, msg.routing_key) == (b"stock.ibm.nyse", ex.name, "stock.ibm.nyse")
    assert q.get() is None


def test_channel_error_carries_rabbitmq_code_and_text(conn, ch):
    missing = H.unique("rabbitpy.missing")
    with pytest.raises(rx.AMQPNotFound) as e:
        rabbitpy.Queue(ch, missing).declare(passive=True)
    close = e.value.args[0]
    assert (close.reply_code, close.reply_text) == (H.NOT_FOUND, H.no_queue(missing))
    # the connection is still usable on another channel
    declare(conn.channel(), "rabbitpy.after")
