"""Timers for the domain, without the domain importing an event loop.

Theory of operation: the broker layer never imports asyncio.  Things that must
happen later (a queue's head message reaching its TTL) ask the broker's
:class:`Timers` for ``call_later(delay, fn)``.  The application plugs its event
loop in at start (``timers.call_later = loop.call_later``); until then, or
when a broker is used without a loop, ``call_later`` returns ``None`` and the
callers fall back to checking lazily (a queue drops expired messages when it
next looks at its head).
"""
from __future__ import annotations


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
