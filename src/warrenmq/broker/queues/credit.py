"""Credit flow: a queue whose consumers fall behind throttles the connections publishing into it.

Theory of operation: RabbitMQ keeps a publisher in step with the queues it feeds with credit
(``credit_flow_default_credit``): a connection out of credit is not read until the queue gives
credit back.  Here the credit is the queue's ready backlog.  After the one publish path
(:meth:`~..vhost.VHost.publish`) enqueued a message from a publishing connection, a queue that
has consumers and more than ``flow_high`` ready messages calls :meth:`CreditFlow.throttle`: the
connection (the channel's ``owner``, any protocol adapter's) is told ``set_flow(True)`` once, and
the queue remembers it in ``throttled``.  When the ready count falls below ``flow_low``
(deliveries, basic.get, purge, deletion) or the last consumer goes, :meth:`release_flow` tells
every remembered connection ``set_flow(False)`` (hysteresis: a publisher is not switched on and
off for every message).  A connection counts the queues that throttle it and is read again only
when none does.  A queue with no consumers never throttles: its backlog is by design, and paging
and the memory alarm look after it.

A consumer that stops taking messages altogether (its prefetch is full and it never acks) is not
"behind", it is stuck, and it must not hold its publishers (and every other queue they feed) for
good: while a queue throttles, a timer checks every ``FLOW_STALL`` seconds that it delivered
something since the last check; if not, it releases its publishers and does not throttle again
until it delivers one more message (its backlog is then a backlog, as without consumers).

The hot path pays one length comparison per routed publish (in VHost.publish) and one
``throttled is not None`` test per dispatch.  ``flow_high`` is effectively infinite when the
feature is off (``flow_high = 0`` in the configuration).
"""
from __future__ import annotations

#: flow_high of a queue when flow control is off: no backlog ever reaches it
FLOW_OFF = 1 << 62
#: seconds a throttling queue may go without delivering anything before it stops throttling
FLOW_STALL = 1.0


class CreditFlow:
    """The credit-flow state of :class:`~.core.Queue` (a mixin: its state is in ``_SLOTS``)."""
    __slots__ = ()
    _SLOTS = ("flow_high", "flow_low", "throttled", "_flow_timer", "_flow_seen", "_flow_stalled")

    def init_flow(self, vhost) -> None:
        self.flow_high = vhost.flow_high or FLOW_OFF
        self.flow_low = vhost.flow_low
        self.throttled = None  # the publishing connections this queue throttles (a set), None: none
        self._flow_timer = None  # the stall check while throttling (see FLOW_STALL)
        self._flow_seen = 0  # stats_delivered at the last stall check
        self._flow_stalled = -1  # stats_delivered when it stopped throttling for a stall (-1: it did not)

    def throttle(self, publisher) -> None:
        """``publisher`` just enqueued into this queue while it is over ``flow_high`` with consumers."""
        throttled = self.throttled
        if throttled is None:
            if self.stats_delivered == self._flow_stalled:  # stuck consumers: a backlog, not a reason
                return
            throttled = self.throttled = set()
            self._flow_seen = self.stats_delivered
            self._flow_timer = self.vhost.timers.call_later(FLOW_STALL, self._flow_check_stall)
        elif publisher in throttled:
            return
        throttled.add(publisher)
        publisher.set_flow(True)

    def _flow_check_stall(self) -> None:
        self._flow_timer = None
        if self.throttled is None:
            return
        delivered = self.stats_delivered
        if delivered == self._flow_seen:
            self._flow_stalled = delivered
            self.release_flow()
        else:
            self._flow_seen = delivered
            self._flow_timer = self.vhost.timers.call_later(FLOW_STALL, self._flow_check_stall)

    def release_flow(self) -> None:
        """Give every throttled publisher its credit back (the backlog drained, or the consumers went)."""
        throttled = self.throttled
        self.throttled = None
        if self._flow_timer is not None:
            self._flow_timer.cancel()
            self._flow_timer = None
        if throttled:
            for publisher in throttled:
                publisher.set_flow(False)

    def check_flow(self) -> None:
        """Release the throttled publishers if the backlog is below the low mark (or no one consumes)."""
        if self.throttled is not None and (len(self.messages) < self.flow_low or not self.consumers):
            self.release_flow()
