"""Consumers, and which consumer gets the next message: round robin, consumer priorities, single
active consumer.

Theory of operation: a :class:`Consumer` may take a message (``ready``) while
its channel is not paused (flow, or a full socket) and it has credit under its
own prefetch and its channel's global prefetch.  ``Queue.dispatch`` picks the
consumer for each message through ``queue._pick``; ``None`` means the plain
round-robin loop over ``queue.consumers`` (rotated as it goes), the only path
while no consumer has a priority and single active consumer is off.

Consumer priorities (the ``x-priority`` consume argument): once a consumer with
a priority arrives, consumers are sorted into ``consumer_levels``, highest
first; a message goes to the highest level that has a consumer with credit,
round robin within the level (RabbitMQ's priority_queue of consumers).  When
only priority 0 is left, the queue goes back to the plain loop.

Single active consumer (``x-single-active-consumer``, fixed at declare): only
``active_consumer`` receives; when it goes, the remaining consumer with the
highest priority, the earliest registered among equals, takes over (RabbitMQ
3.10's classic queue).  ``remove_consumer`` does not dispatch: the session does
once the channel's unacked messages are back in the queue, so the new active
consumer gets them first, in order.
"""
from __future__ import annotations

from collections import deque


class Consumer:
    __slots__ = ("tag", "queue", "channel", "no_ack", "exclusive", "prefetch", "unacked", "arguments",
                 "prefix", "priority")

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
        self.priority = 0  # x-priority (set by the session before add_consumer)

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


class ConsumerChoice:
    """The consumer bookkeeping of :class:`~.core.Queue` (a mixin: its state is in ``_SLOTS``)."""
    __slots__ = ()
    _SLOTS = ("consumers", "had_consumer", "exclusive_consumer", "_pick", "single_active", "active_consumer",
              "consumer_levels")

    def add_consumer(self, consumer: Consumer) -> None:
        if self._expires_timer is not None:
            self.cancel_expires()
        self.consumers.append(consumer)
        self.had_consumer = True
        if consumer.exclusive:
            self.exclusive_consumer = consumer
        if self.single_active:
            if self.active_consumer is None:
                self.active_consumer = consumer
        elif consumer.priority or self.consumer_levels is not None:
            self._level_add(consumer)
        self.dispatch()

    def remove_consumer(self, consumer: Consumer) -> None:
        """Forget ``consumer``.  Does not dispatch: the session does once the channel's unacked messages
        are back in the queue (so a new single active consumer gets them first, in order)."""
        try:
            self.consumers.remove(consumer)
        except ValueError:
            return
        if self.exclusive_consumer is consumer:
            self.exclusive_consumer = None
        if self.single_active:
            if self.active_consumer is consumer:
                self._next_active_consumer()
        elif self.consumer_levels is not None:
            self._level_remove(consumer)
        if self.expires and not self.consumers and not self.deleted:
            self.reset_expires()
        if self.throttled is not None and not self.consumers:  # a backlog without consumers never throttles
            self.release_flow()

    def _pick_by_priority(self):
        """The consumer for the next message: the highest level with a ready consumer, round robin within."""
        for _, level in self.consumer_levels:
            for _ in range(len(level)):
                c = level[0]
                level.rotate(-1)
                if c.ready():
                    return c
        return None

    def _pick_single_active(self):
        c = self.active_consumer
        return c if c is not None and c.ready() else None

    def _next_active_consumer(self) -> None:
        """The active consumer went: the highest priority remaining one, the earliest registered among
        equals, takes over (RabbitMQ 3.10 takes the head of its consumer priority queue)."""
        best = None
        for c in self.consumers:  # registration order (never rotated with SAC on)
            if best is None or c.priority > best.priority:
                best = c
        self.active_consumer = best

    def _level_add(self, consumer: Consumer) -> None:
        levels = self.consumer_levels
        if levels is None:  # the first consumer with a priority: sort every consumer into levels
            levels = self.consumer_levels = []
            self._pick = self._pick_by_priority
            todo = list(self.consumers)
        else:
            todo = [consumer]
        for c in todo:
            p = c.priority
            for i, (lp, level) in enumerate(levels):
                if lp == p:
                    level.append(c)
                    break
                if lp < p:
                    levels.insert(i, (p, deque([c])))
                    break
            else:
                levels.append((p, deque([c])))

    def _level_remove(self, consumer: Consumer) -> None:
        levels = self.consumer_levels
        for i, (lp, level) in enumerate(levels):
            if lp == consumer.priority:
                try:
                    level.remove(consumer)
                except ValueError:
                    pass
                if not level:
                    del levels[i]
                break
        if not levels or (len(levels) == 1 and levels[0][0] == 0):  # no priorities left: plain round robin
            self.consumer_levels = None
            self._pick = None
