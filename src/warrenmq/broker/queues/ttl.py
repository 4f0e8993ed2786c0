"""TTL and expiry: message TTL, per-message expiration, the head expiry timer, and queue expiry.

Theory of operation.  *Message TTL* (``x-message-ttl`` and the ``expiration``
property, the lower one wins): ``Queue.publish`` gives an entry a deadline
(``entry.expires``, a ``time.monotonic()`` value) when it is enqueued, unless a
consumer takes it at once (so a TTL of 0 still reaches a waiting consumer).  As
in RabbitMQ only the head of the queue expires: expired entries are dropped when
they reach the head (``_drop_expired``, before a delivery or a get), and one
timer (the broker's :class:`~..timers.Timers`) is armed for the head's deadline
(``_schedule_expiry``), so counts drop without traffic.  Delivered (unacked)
entries never expire; requeued ones keep their deadline.  ``has_ttl`` becomes
True with the first deadline and stays so: it is the one check the dispatch loop
pays for all of this.  Expired entries are dead-lettered (reason ``expired``) if
the queue has a dead-letter exchange.  Without an event loop (``Timers`` with
no ``call_later``) nothing fires and expiry happens only when the head is looked at.

*Queue expiry* (``x-expires``): a queue unused for that many milliseconds is
deleted.  As in RabbitMQ "unused" means no consumers, and the countdown restarts
on every declare of the queue (passive too) and every basic.get, and starts when
the last consumer goes; publishing does not count.
"""
from __future__ import annotations

from time import monotonic

from ..timers import Deadline


class Expiry:
    """The TTL and expiry part of :class:`~.core.Queue` (a mixin: its state is in ``_SLOTS``)."""
    __slots__ = ()
    _SLOTS = ("message_ttl", "has_ttl", "_expiry", "expires", "_expires_timer")

    # ------------------------------------------------------------- message TTL
    def _drop_expired(self) -> int:
        """Drop the expired entries at the head; return how many entries are left."""
        messages = self.messages
        now = monotonic()
        dropped = []
        while messages:
            at = messages[0].expires
            if not at or at > now:
                break
            dropped.append(messages.popleft())
        if dropped:
            self.expired(dropped)
        return len(messages)

    def expired(self, entries: list) -> None:
        """Entries whose TTL ran out at the head of the queue: dead-lettered (reason expired), then gone."""
        if self.dlx is not None:
            self.dead_letter(entries, "expired")
        self.settle_many(entries)

    def _schedule_expiry(self) -> None:
        """Arm the timer for the head entry's deadline, if it has one."""
        messages = self.messages
        if not messages or self.deleted:
            return
        at = messages[0].expires
        if not at:
            return
        deadline = self._expiry
        if deadline is None:  # made the first time a deadline is needed: most queues never have one
            deadline = self._expiry = Deadline(self.vhost.timers, self._on_expiry_timer)
        deadline.arm(at)

    def _on_expiry_timer(self) -> None:
        if self.deleted:
            return
        self._drop_expired()
        if self.consumers and self.messages:
            self.dispatch()
        else:
            self._schedule_expiry()

    # ------------------------------------------------------------ queue expiry
    def reset_expires(self) -> None:
        """Restart the ``x-expires`` countdown if the queue is unused (no consumers), as RabbitMQ does
        on declare (also passive), basic.get and the last consumer going; publishes do not count."""
        if self.consumers or self.deleted:
            return
        if self._expires_timer is not None:
            self._expires_timer.cancel()
        self._expires_timer = self.vhost.timers.call_later(self.expires / 1000.0, self._on_expires)

    def cancel_expires(self) -> None:
        if self._expires_timer is not None:
            self._expires_timer.cancel()
            self._expires_timer = None

    def _on_expires(self) -> None:
        self._expires_timer = None
        if not self.deleted and not self.consumers:
            self.vhost.delete_queue(self)
