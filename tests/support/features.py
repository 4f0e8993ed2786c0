"""Helpers for tests/features: pika connections, polling gets, and a raw look at content headers.

The feature tests run against the ``broker`` fixture's WarrenMQ, or against the
broker named by ``WARRENMQ_FEATURE_TESTS_URL`` (a real RabbitMQ 3.10, to check
that the tests themselves encode RabbitMQ's behaviour).  RabbitMQ applies some
operations asynchronously (quorum queues, dead lettering, publishes seen by
another channel), so reads poll until something arrives.
"""
from __future__ import annotations

import os
import struct
import time
import uuid
from urllib.parse import urlparse

import pika

from warrenmq.protocol import spec
from warrenmq.protocol.frames import method_frame
from warrenmq.protocol.spec import BasicProperties

from .raw import RawClient

TIMEOUT = 5.0
#: how long to wait for something that should *not* arrive: WarrenMQ has acted by the time a round trip on
#: the same connection returns; RabbitMQ's queues and dead lettering work asynchronously
SETTLE = 0.3 if os.environ.get("WARRENMQ_FEATURE_TESTS_URL") else 0.05


def unique(prefix: str) -> str:
    """A name no other test (or earlier run against a shared broker) uses."""
    return f"feat.{prefix}.{uuid.uuid4().hex[:10]}"


def connect(url: str) -> pika.BlockingConnection:
    return pika.BlockingConnection(pika.URLParameters(url))


def get(ch, queue: str, timeout: float = TIMEOUT, auto_ack: bool = True):
    """basic.get until a message comes: (method, properties, body), or None after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        method, props, body = ch.basic_get(queue, auto_ack=auto_ack)
        if method is not None:
            return method, props, body
        if time.monotonic() > deadline:
            return None
        time.sleep(0.02)


def get_none(ch, queue: str, settle: float | None = None) -> bool:
    """True if ``queue`` stays empty for ``settle`` seconds (time for a broker to act asynchronously)."""
    time.sleep(SETTLE if settle is None else settle)
    method, _, _ = ch.basic_get(queue, auto_ack=True)
    return method is None


def drain(ch, queue: str, settle: float | None = None) -> list:
    """Every message that arrives in ``queue`` within ``settle`` seconds of the last one: [(method, props,
    body)], auto-acked."""
    out = []
    settle = SETTLE if settle is None else settle
    while True:
        m = get(ch, queue, timeout=settle)
        if m is None:
            return out
        out.append(m)


def bodies(messages) -> list:
    return [body for _, _, body in messages]


def count(ch, queue: str) -> int:
    return ch.queue_declare(queue, passive=True).method.message_count


def wait_count(ch, queue: str, n: int, timeout: float = TIMEOUT) -> int:
    """The ready count of ``queue`` once it is ``n`` (or whatever it is after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        c = count(ch, queue)
        if c == n or time.monotonic() > deadline:
            return c
        time.sleep(0.02)


def channel_error(ch, action) -> tuple:
    """Run ``action()`` and return the (reply_code, reply_text) of the channel.close it provokes."""
    try:
        action()
        ch.basic_qos(prefetch_count=0)  # a round trip, so an asynchronous close arrives
    except pika.exceptions.ChannelClosedByBroker as e:
        return e.reply_code, e.reply_text
    raise AssertionError("the broker did not close the channel")


def connection_error(conn, ch, action) -> tuple:
    """Run ``action()`` and return the (reply_code, reply_text) of the connection.close it provokes."""
    try:
        action()
        ch.basic_qos(prefetch_count=0)
    except pika.exceptions.ConnectionClosedByBroker as e:
        return e.reply_code, e.reply_text
    raise AssertionError("the broker did not close the connection")


class RawGetter:
    """basic.get over a raw socket, returning the content header bytes as sent (for type tags and order)."""

    def __init__(self, url: str):
        u = urlparse(url)
        self.client = RawClient(u.port or 5672, u.hostname or "127.0.0.1")
        self.client.handshake()
        self.client.open_channel(1)

    def get(self, queue: str, timeout: float = TIMEOUT):
        """(BasicGetOk, content header payload, body) of the next message in ``queue``, or None."""
        c = self.client
        deadline = time.monotonic() + timeout
        while True:
            c.send_method(1, spec.BasicGet(0, queue, True))
            ch, m = c.read_method()
            if isinstance(m, spec.BasicGetOk):
                break
            assert isinstance(m, spec.BasicGetEmpty), m
            if time.monotonic() > deadline:
                return None
            time.sleep(0.02)
        _, _, header = c.read_frame()
        size = struct.unpack_from(">Q", header, 4)[0]
        body = b""
        while len(body) < size:
            body += c.read_frame()[2]
        return m, header, body

    def call(self, method):
        """Send ``method`` on channel 1; the next method the broker sends back."""
        self.client.send_method(1, method)
        return self.client.read_method()[1]

    def publish(self, exchange: str, routing_key: str, body: bytes, properties=None) -> None:
        props = (properties or BasicProperties()).encode()
        header = struct.pack(">HHQ", 60, 0, len(body)) + props
        frames = method_frame(1, spec.BasicPublish(0, exchange, routing_key, False, False))
        frames += struct.pack(">BHI", 2, 1, len(header)) + header + b"\xce"
        if body:
            frames += struct.pack(">BHI", 3, 1, len(body)) + body + b"\xce"
        self.client.send(frames)

    @staticmethod
    def properties(header: bytes) -> BasicProperties:
        """Decoded with WarrenMQ's codec, which keeps each integer's wire type (``Long(1)``)."""
        return BasicProperties.decode(header, 12)

    def close(self) -> None:
        self.client.close()
