"""Timers for the domain, without the domain importing an event loop.

Theory of operation: the broker layer never imports asyncio.  Things that must
happen later ask the broker's :class:`Timers` for ``call_later(delay, fn)``:
a queue's head message reaching its TTL, an unused queue's ``x-expires``, a
delayed message's release, the consumer-timeout check, and the rest of a
dispatch cut into batches (``call_later(0, ...)``: the next loop turn).  The
vhosts of a broker share its one instance (``Broker.add_vhost``).

The event loop is plugged into the attribute ``loop_call_later``, not
``call_later`` (a method; ``__slots__`` makes it read-only on instances):
``BrokerApp.start`` sets ``timers.loop_call_later = loop.call_later`` and
``BrokerApp.stop`` sets it back to ``None``.  While it is ``None`` (a broker
used without a BrokerApp, e.g. driven directly by a test) ``call_later``
returns ``None`` and schedules nothing; each caller copes in its own way:
expired messages are dropped lazily when the queue next looks at its head, a
queue dispatches without batching (it checks ``loop_call_later`` itself), the
consumer timeout stays off, and ``x-expires`` deletions and delayed-message
releases do not happen at all.

A :class:`Deadline` is one timer for the earliest of several deadlines (a
queue's head expiry, a delayed-message exchange's next release): asking for a
later deadline than the one armed changes nothing, an earlier one replaces it.
"""
from __future__ import annotations

from time import monotonic


class Timers:
    __slots__ = ("loop_call_later",)

    def __init__(self, call_later=None):
        #: ``(delay_seconds, fn) -> handle with cancel()``, e.g. ``asyncio.get_running_loop().call_later``
        self.loop_call_later = call_later

    def call_later(self, delay: float, fn):
        """Schedule ``fn()`` after ``delay`` seconds; a handle with ``cancel()``, or ``None`` without a loop."""
        cl = self.loop_call_later
        if cl is None:
            return None
        return cl(delay, fn)


class Deadline:
    """One timer that fires ``fn()`` at the earliest deadline asked for (``time.monotonic()`` values)."""
    __slots__ = ("timers", "fn", "handle", "at")

    def __init__(self, timers: Timers, fn):
        self.timers = timers
        self.fn = fn
        self.handle = None  # the armed timer, or None
        self.at = 0.0  # its deadline

    def arm(self, at: float) -> None:
        """Fire at ``at`` unless already armed for that time or earlier."""
        handle = self.handle
        if handle is not None:
            if self.at <= at:
                return
            handle.cancel()
        self.handle = self.timers.call_later(max(0.0, at - monotonic()), self._fire)
        self.at = at

    def _fire(self) -> None:
        self.handle = None
        self.fn()
