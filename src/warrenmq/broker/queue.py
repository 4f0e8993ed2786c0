"""Queues and consumers: store messages, dispatch them round-robin, settle acks.

Theory of operation: a :class:`Queue` holds ready entries in a deque, in
sequence order.  ``publish`` appends an entry and, when consumers exist, runs
``dispatch``: while messages are ready it asks the consumers, round robin, for
one that may take a message (credit under its prefetch, channel not paused by
flow or by a full socket) and hands the entry to that consumer's channel.
Unacked entries live in their channel's map until the channel acks, rejects or
closes; requeued entries go back to their original position (by sequence
number, as RabbitMQ does) marked redelivered.

Nothing here knows about frames: delivering means calling
``channel.deliver(consumer, entry)``, which the session implements.
"""
from __future__ import annotations

from collections import deque
from heapq import merge

from .message import QueueEntry

KIND_QUEUE = 0


class Consumer:
    __slots__ = ("tag", "queue", "channel", "no_ack", "exclusive", "prefetch", "unacked", "arguments",
                 "prefix")

    def __init__(self, tag: str, queue, channel, no_ack: bool, exclusive: bool, prefetch: int, arguments):
        self.tag = tag
        self.queue = queue
        self.channel = channel
        self.no_ack = no_ack
        self.exclusive = exclusive
        self.prefetch = prefetch
        self.unacked = 0
        self.arguments = arguments or {}
        self.prefix = b""  # set by the session: the encoded head of its basic.deliver frames

    def ready(self) -> bool:
        ch = self.channel
        if ch.paused:
            return False
        if self.no_ack:
            return True
        if self.prefetch and self.unacked >= self.prefetch:
            return False
        gp = ch.global_prefetch
        return not gp or ch.unacked_count < gp


class Queue:
    kind = KIND_QUEUE
    __slots__ = ("name", "vhost", "durable", "exclusive_owner", "auto_delete", "arguments", "messages",
                 "consumers", "next_seq", "unacked", "had_consumer", "bindings", "deleted", "exclusive_consumer",
                 "_dispatching", "stats_published", "stats_delivered", "stats_acked", "memory")

    def __init__(self, name: str, vhost, durable=False, exclusive_owner=None, auto_delete=False, arguments=None):
        self.name = name
        self.vhost = vhost
        self.durable = durable
        self.exclusive_owner = exclusive_owner
        self.auto_delete = auto_delete
        self.arguments = arguments or {}
        self.messages: deque[QueueEntry] = deque()
        self.consumers: deque[Consumer] = deque()
        self.next_seq = 0
        self.unacked = 0
        self.had_consumer = False
        self.bindings: set = set()  # (exchange, key, args_key) where this queue is the destination
        self.deleted = False
        self.exclusive_consumer = None
        self._dispatching = False
        self.stats_published = 0
        self.stats_delivered = 0
        self.stats_acked = 0
        self.memory = vhost.memory

    @property
    def exclusive(self) -> bool:
        return self.exclusive_owner is not None

    @property
    def message_count(self) -> int:
        return len(self.messages)

    def __repr__(self) -> str:
        return f"<Queue {self.name!r} ready={len(self.messages)} unacked={self.unacked}>"

    # ----------------------------------------------------------- enqueue/deliver
    def publish(self, msg) -> None:
        seq = self.next_seq
        self.next_seq = seq + 1
        self.stats_published += 1
        mem = self.memory
        mem.used += len(msg.body)
        if mem.used > mem.high and not mem.alarm:
            mem.add(0)
        self.messages.append(QueueEntry(msg, seq, self))
        if self.consumers:
            self.dispatch()

    def dispatch(self) -> None:
        """Hand ready messages to consumers with credit, round robin."""
        if self._dispatching:
            return
        messages = self.messages
        consumers = self.consumers
        self._dispatching = True
        try:
            while messages and consumers:
                # find the next consumer (in round-robin order) that may take a message
                for _ in range(len(consumers)):
                    c = consumers[0]
                    consumers.rotate(-1)
                    if c.ready():
                        break
                else:
                    return
                entry = messages.popleft()
                self.stats_delivered += 1
                c.channel.deliver(c, entry)
        finally:
            self._dispatching = False

    def get(self):
        """Pop the head entry for basic.get, or ``None``."""
        if self.messages:
            self.stats_delivered += 1
            return self.messages.popleft()
        return None

    def requeue(self, entries: list) -> None:
        """Put delivered entries back in their original places, marked redelivered."""
        if self.deleted:
            return
        for e in entries:
            e.redelivered = True
            e.consumer = None
        entries.sort(key=_seq)
        msgs = self.messages
        if not msgs or entries[-1].seq < msgs[0].seq:
            msgs.extendleft(reversed(entries))
        else:
            head = []
            last = entries[-1].seq
            while msgs and msgs[0].seq < last:
                head.append(msgs.popleft())
            msgs.extendleft(reversed(list(merge(head, entries, key=_seq))))
        if self.consumers:
            self.dispatch()

    def purge(self) -> int:
        """Drop every ready message; return how many went."""
        msgs = self.messages
        n = len(msgs)
        if n:
            self.memory.release(sum(len(e.message.body) for e in msgs))
            msgs.clear()
        return n

    # ----------------------------------------------------------------- consumers
    def add_consumer(self, consumer: Consumer) -> None:
        self.consumers.append(consumer)
        self.had_consumer = True
        if consumer.exclusive:
            self.exclusive_consumer = consumer
        self.dispatch()

    def remove_consumer(self, consumer: Consumer) -> None:
        try:
            self.consumers.remove(consumer)
        except ValueError:
            return
        if self.exclusive_consumer is consumer:
            self.exclusive_consumer = None


def _seq(entry: QueueEntry) -> int:
    return entry.seq
