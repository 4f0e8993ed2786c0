"""Publisher confirms: one tracker per channel, one registry per broker.

Theory of operation: a channel in confirm mode numbers its publishes (1, 2, ...).  A publish is
confirmed (``basic.ack``) once every queue it went to has it and, when it was persisted, once the
store has made its batch durable; it is refused (``basic.nack``) when a queue with
``x-overflow: reject-publish`` would not take it or the store failed.  Confirms go out in sequence
order, so a confirm that can be sent waits behind earlier publishes that still wait for the store.

:class:`ConfirmTracker` keeps, per channel, the last sequence number published (``seq``), the last
one confirmed to the client (``acked``), and the publishes still waiting, as ``(seq, epoch, nack)``
in sequence order: ``epoch`` is the store batch the publish waits for (for a nack: the batch the
publish before it waits for, so it keeps its place).  Everything below the first waiting entry can
be acked.  Confirms are coalesced: the tracker marks itself *dirty* in the broker's
:class:`ConfirmRegistry` on a publish, and the protocol adapter calls :meth:`ConfirmRegistry.flush`
once at the end of each batch of received frames, which sends one ``ack(multiple)`` per channel.

The store tells the broker when an epoch is durable through one callback
(:meth:`ConfirmRegistry.store_synced`), which releases what waited for it.  When the store fails,
:meth:`ConfirmRegistry.store_failed` nacks every waiting publish, and publishes persisted while it
is failed are nacked at once (the broker keeps publishers blocked meanwhile).

Sending is the adapter's: the tracker calls ``send(seq, multiple, nack)``, a callable it was given.
"""
from __future__ import annotations

from collections import deque


class ConfirmTracker:
    __slots__ = ("registry", "send", "seq", "acked", "nacked", "waiting", "closed")

    def __init__(self, registry: "ConfirmRegistry", send):
        self.registry = registry
        self.send = send  # send(seq, multiple, nack): the adapter's basic.ack / basic.nack
        self.seq = 0  # the last publish's sequence number
        self.acked = 0  # the last sequence number confirmed (acked or nacked) to the client
        self.nacked = 0  # how many of those were nacks (message statistics: confirms are acked - nacked)
        self.waiting = None  # deque of (seq, epoch, nack) while some publish waits for the store
        self.closed = False

    # ------------------------------------------------------------ publishing
    def published(self) -> int:
        """A publish arrived: its sequence number.  Its confirm goes out at the end of the batch unless
        :meth:`wait_for` or :meth:`nack` is called for it."""
        self.seq = seq = self.seq + 1
        self.registry.dirty.add(self)
        return seq

    def wait_for(self, epoch: int) -> None:
        """The publish just numbered is confirmed only once the store's ``epoch`` is durable."""
        if self.registry.failed:
            self.nack()
            return
        w = self.waiting
        if w is None:
            w = self.waiting = deque()
        w.append((self.seq, epoch, False))
        self.registry.waiting.add(self)

    def nack(self) -> None:
        """The publish just numbered is refused: a nack, in its place among the confirms."""
        seq = self.seq
        w = self.waiting
        if w:  # behind the publishes still waiting for the store
            w.append((seq, w[-1][1], True))
            return
        self._ack_upto(seq - 1)
        self.send(seq, False, True)
        self.nacked += 1
        self.acked = seq

    # ------------------------------------------------------------ sending
    def confirmable(self) -> int:
        """The highest sequence number that may be acked now."""
        w = self.waiting
        return w[0][0] - 1 if w else self.seq

    def flush(self) -> None:
        """Ack everything that no longer waits (one ``ack(multiple)``)."""
        if not self.closed:
            self._ack_upto(self.confirmable())

    def _ack_upto(self, upto: int) -> None:
        done = self.acked
        if upto > done:
            self.send(upto, upto - done > 1, False)
            self.acked = upto

    def synced(self, epoch: int) -> bool:
        """The store made ``epoch`` durable: confirm what waited for it; True while more still waits."""
        w = self.waiting
        if self.closed:
            w.clear()
            return False
        while w and w[0][1] <= epoch:
            seq, _, nack = w.popleft()
            if nack:
                self._ack_upto(seq - 1)
                self.send(seq, False, True)
                self.nacked += 1
                self.acked = seq
        self._ack_upto(self.confirmable())
        return bool(w)

    def fail(self) -> None:
        """The store cannot make anything durable: nack every publish still waiting, in order."""
        w = self.waiting
        if not w or self.closed:
            return
        for seq, _, _ in w:
            self._ack_upto(seq - 1)  # a publish in between that did not wait is acked
            self.send(seq, False, True)
            self.nacked += 1
            self.acked = seq
        w.clear()
        self._ack_upto(self.seq)

    def close(self) -> None:
        self.closed = True
        self.registry.waiting.discard(self)
        self.registry.dirty.discard(self)


class ConfirmRegistry:
    """The broker's trackers: those with confirms to flush at the end of a batch (``dirty``) and those
    waiting for the store (``waiting``)."""
    __slots__ = ("dirty", "waiting", "failed")

    def __init__(self):
        self.dirty: set = set()
        self.waiting: set = set()
        self.failed = False  # the store failed: nack instead of waiting, until it works again

    def tracker(self, send) -> ConfirmTracker:
        return ConfirmTracker(self, send)

    def flush(self) -> None:
        """End of a batch of received frames: send the coalesced confirms."""
        dirty = self.dirty
        if dirty:
            for t in dirty:
                t.flush()
            dirty.clear()

    def store_synced(self, epoch: int) -> None:
        waiting = self.waiting
        if waiting:
            for t in list(waiting):
                if not t.synced(epoch):
                    waiting.discard(t)

    def store_failed(self) -> None:
        self.failed = True
        for t in list(self.waiting):
            t.fail()
        self.waiting.clear()

    def store_recovered(self) -> None:
        self.failed = False
