"""What the feature suites share: pika connections that record deliveries, and round-trip barriers.

A *barrier* is a synchronous method on a connection: the broker answers it only
after everything it received earlier on that connection was handled, and
frames it sends on one connection arrive in order, so after a barrier on the
consumers' connection every delivery caused by earlier (confirmed) publishes
has been received.  Tests wait for events this way, never by sleeping.
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import pika

TIMEOUT = 5.0  # generous upper bound for anything that should take milliseconds
VHOST = "/"


def unique(prefix: str) -> str:
    return f"{prefix}.{uuid.uuid4().hex[:10]}"


def connect(url: str) -> pika.BlockingConnection:
    params = pika.URLParameters(url)
    params.connection_attempts = 1
    return pika.BlockingConnection(params)


@dataclass
class Delivery:
    body: str
    redelivered: bool
    tag: int
    channel: object
    properties: object
    at: float  # time.monotonic() when the callback ran


class Consumers:
    """One connection holding consumers, each on its own channel, recording what each one receives."""

    def __init__(self, url: str):
        self.conn = connect(url)
        self.admin = self.conn.channel()
        self.got: dict[str, list[Delivery]] = {}

    def consume(self, queue: str, tag: str, prefetch: int = 0, priority=None, auto_ack: bool = False,
                exclusive: bool = False, arguments: dict | None = None):
        ch = self.conn.channel()
        if prefetch:
            ch.basic_qos(prefetch_count=prefetch)
        args = dict(arguments or {})
        if priority is not None:
            args["x-priority"] = priority
        got = self.got.setdefault(tag, [])

        def on_message(channel, method, properties, body):
            got.append(Delivery(body.decode(), method.redelivered, method.delivery_tag, channel, properties,
                                time.monotonic()))
        ch.basic_consume(queue, on_message, auto_ack=auto_ack, exclusive=exclusive, consumer_tag=tag,
                         arguments=args or None)
        return ch

    def sync(self) -> None:
        """Barrier: run the callbacks of everything the broker sent before answering a round trip."""
        self.admin.basic_qos(prefetch_count=0)
        self.conn.process_data_events(time_limit=0)

    def total(self) -> int:
        return sum(len(v) for v in self.got.values())

    def wait_for(self, n: int, timeout: float = TIMEOUT) -> None:
        """Wait until ``n`` deliveries in all have been received."""
        deadline = time.monotonic() + timeout
        while self.total() < n:
            assert time.monotonic() < deadline, f"only {self.total()} of {n} deliveries: {self.summary()}"
            self.conn.process_data_events(time_limit=0.02)

    def bodies(self, tag: str) -> list[str]:
        return [d.body for d in self.got.get(tag, [])]

    def summary(self) -> dict:
        return {tag: [d.body for d in ds] for tag, ds in self.got.items()}

    def clear(self) -> None:
        for ds in self.got.values():
            ds.clear()

    def close(self) -> None:
        if self.conn.is_open:
            self.conn.close()


class Publisher:
    """A connection publishing in confirm mode: a publish returns once the broker has routed the message."""

    def __init__(self, url: str):
        self.conn = connect(url)
        self.ch = self.conn.channel()
        self.ch.confirm_delivery()
        self.queues: list[str] = []
        self.exchanges: list[str] = []

    def publish(self, routing_key: str, bodies, exchange: str = "", headers: dict | None = None,
                mandatory: bool = False, **props) -> None:
        for body in bodies:
            self.ch.basic_publish(exchange, routing_key, str(body).encode(),
                                  pika.BasicProperties(headers=headers, **props), mandatory=mandatory)

    def declare(self, queue: str, **arguments) -> str:
        """Declare ``queue`` (deleted again by close())."""
        self.ch.queue_declare(queue, arguments=arguments or None)
        self.queues.append(queue)
        return queue

    def exchange(self, name: str, type_: str, **arguments) -> str:
        """Declare exchange ``name`` (deleted again by close())."""
        self.ch.exchange_declare(name, type_, arguments=arguments or None)
        self.exchanges.append(name)
        return name

    def count(self, queue: str) -> int:
        return self.ch.queue_declare(queue, passive=True).method.message_count

    def close(self) -> None:
        """Delete what was declared (on a fresh channel: the test may have closed ours), then disconnect."""
        if self.conn.is_open:
            ch = self.conn.channel()
            for q in self.queues:
                ch.queue_delete(q)
            for x in self.exchanges:
                ch.exchange_delete(x)
            self.conn.close()
