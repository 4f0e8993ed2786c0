"""Length limits and overflow: ``x-max-length``, ``x-max-length-bytes``, ``x-overflow``.

Theory of operation: ``queue.limit`` is a :class:`LengthLimit` or None, so a
queue without one pays one attribute check per publish.  As in RabbitMQ only
ready messages count; with a byte limit the ready container keeps their total
size (``with_byte_count``: a :class:`~.containers.SizedMessages`).  The overflow
modes:

* ``drop-head`` (the default): ``_drop_head`` trims from the head after a
  message is in (or requeued); the dropped messages are dead-lettered with
  reason ``maxlen`` if the queue has a dead-letter exchange;
* ``reject-publish``: ``_admit`` refuses a message that does not fit before it
  is enqueued (or offered to consumers); ``Queue.publish`` returns False and the
  session nacks it in confirm mode;
* ``reject-publish-dlx``: as reject-publish, and the refused message is
  dead-lettered (reason ``maxlen``).  Quorum queues do not support it and act as
  drop-head (args.py maps it).

A message the queue refuses was perhaps persisted for it already (the store is
written before routing finishes): ``_admit`` removes it there.
"""
from __future__ import annotations

from ..deadletter import dead_letter


class LengthLimit:
    """A queue's length limit; ``None`` for an absent maximum."""
    __slots__ = ("max_length", "max_bytes", "overflow", "rejects")

    def __init__(self, max_length, max_bytes, overflow: str):
        self.max_length = max_length
        self.max_bytes = max_bytes
        self.overflow = overflow
        self.rejects = overflow != "drop-head"  # reject-publish, reject-publish-dlx

    def __repr__(self) -> str:
        return f"LengthLimit({self.max_length}, {self.max_bytes}, {self.overflow!r})"


class Limits:
    """The length-limit part of :class:`~.core.Queue` (a mixin: its state is in ``_SLOTS``)."""
    __slots__ = ()
    _SLOTS = ("limit",)

    def set_length_limit(self, max_length, max_length_bytes, overflow: str) -> None:
        """Apply a limit (``None``: no maximum; values already normalised, see args.read_settings).
        Messages over a new limit are dropped at once (drop-head)."""
        msgs = self.messages
        self.set_ready(msgs.with_byte_count() if max_length_bytes is not None else msgs.without_byte_count())
        if max_length is None and max_length_bytes is None:
            self.limit = None
            return
        self.limit = LengthLimit(max_length, max_length_bytes, overflow)
        self._drop_head()

    def _admit(self, msg, limit) -> bool:
        """x-overflow reject-publish(-dlx): whether ``msg`` fits (RabbitMQ counts ready messages only, and
        checks before trying consumers).  A refused message is dead-lettered with reject-publish-dlx."""
        msgs = self.messages
        if ((limit.max_length is None or len(msgs) < limit.max_length)
                and (limit.max_bytes is None
                     or msgs.bytes + int.from_bytes(msg.header[4:12], "big") <= limit.max_bytes)):
            return True
        if limit.overflow == "reject-publish-dlx" and self.dlx is not None:
            dead_letter(self, [msg], "maxlen")
        if msg.store_id and self.store_id:  # persisted for this queue before routing: forget it here
            self.store.remove(self.store_id, msg.store_id)
        return False

    def _drop_head(self) -> None:
        """x-overflow drop-head: drop (dead-letter, reason maxlen) ready messages from the head while the
        queue is over its limit."""
        limit = self.limit
        if limit is None or limit.rejects:
            return
        msgs = self.messages
        max_length, max_bytes = limit.max_length, limit.max_bytes
        dropped = []
        while msgs and ((max_length is not None and len(msgs) > max_length)
                        or (max_bytes is not None and msgs.bytes > max_bytes)):
            dropped.append(msgs.popleft())
        if dropped:
            if self.dlx is not None:
                self.dead_letter(dropped, "maxlen")
            self.settle_many(dropped)
