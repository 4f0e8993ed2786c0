"""A queue's client for domain tests (tests/broker/test_queue_*.py): no sockets, no frames.

``Client`` is what a queue delivers to: it implements what ``Queue.dispatch`` and
``Consumer.ready`` call on a channel (``deliver(consumer, entry)``, ``paused``,
``global_prefetch``, ``unacked_count``) and settles the way the AMQP session does
(ack: the consumer's credit comes back and the queue dispatches again; reject with
requeue: the queue puts the entries back).  It is the tests' client, not a stand-in
for broker code: every queue method it calls is the real one.
"""
from __future__ import annotations

from warrenmq.broker.message import Message
from warrenmq.broker.queues import Consumer
from warrenmq.protocol.properties import content_header
from warrenmq.protocol.spec import BasicProperties


def message(body: bytes = b"m", routing_key: str = "q", **properties) -> Message:
    """A published message as the session builds it (raw content header, properties as given)."""
    props = BasicProperties(**properties)
    return Message("", routing_key, content_header(props, len(body)), body)


class Client:
    def __init__(self, global_prefetch: int = 0):
        self.paused = False
        self.global_prefetch = global_prefetch
        self.unacked_count = 0
        self.delivered: list = []  # (consumer tag, body) in delivery order
        self.unacked: list = []  # entries delivered and not settled, in delivery order

    def consume(self, queue, tag: str, prefetch: int = 0, priority: int = 0, no_ack: bool = False) -> Consumer:
        c = Consumer(tag, queue, self, no_ack, False, prefetch, {"x-priority": priority} if priority else None)
        c.priority = priority
        queue.add_consumer(c)
        return c

    def cancel(self, consumer) -> None:
        consumer.queue.remove_consumer(consumer)
        mine = [e for e in self.unacked if e.consumer is consumer]
        if mine:
            self.reject(mine, requeue=True)
        q = consumer.queue
        if q.messages and q.consumers:
            q.dispatch()

    # what the queue calls
    def deliver(self, consumer, entry) -> None:
        entry.delivery_count += 1
        msg = entry.message
        if msg.paged:
            entry.queue.page_in(msg)
        self.delivered.append((consumer.tag, msg.body))
        q = entry.queue
        if consumer.no_ack:
            q.n_deliver_no_ack += 1
            q.settle(entry)
            return
        entry.consumer = consumer
        consumer.unacked += 1
        self.unacked_count += 1
        q.unacked += 1
        self.unacked.append(entry)

    # settling, as the session does it
    def _release(self, entries) -> set:
        queues = set()
        for e in entries:
            self.unacked.remove(e)
            if e.consumer is not None:
                e.consumer.unacked -= 1
                e.consumer = None
            self.unacked_count -= 1
            e.queue.unacked -= 1
            queues.add(e.queue)
        return queues

    def ack(self, entries=None) -> None:
        """Ack ``entries`` (default: everything unacked), then let their queues dispatch."""
        entries = list(self.unacked if entries is None else entries)
        queues = self._release(entries)
        for e in entries:
            e.queue.stats_acked += 1
            e.queue.settle(e)
        for q in queues:
            if q.messages and q.consumers:
                q.dispatch()

    def reject(self, entries=None, requeue: bool = True) -> None:
        entries = list(self.unacked if entries is None else entries)
        queues = self._release(entries)
        if requeue:
            by_queue: dict = {}
            for e in entries:
                by_queue.setdefault(e.queue, []).append(e)
            for q, es in by_queue.items():
                q.requeue(es)
        else:
            for e in entries:
                if e.queue.dlx is not None:
                    e.queue.dead_letter([e], "rejected")
                e.queue.settle(e)
        for q in queues:
            if q.messages and q.consumers:
                q.dispatch()

    def take(self) -> list:
        """The bodies delivered since the last take."""
        got, self.delivered = [b for _, b in self.delivered], []
        return got


def ready(queue) -> list:
    """The bodies of ``queue``'s ready messages, in the order they will be delivered."""
    return [e.message.body for e in queue.messages]
