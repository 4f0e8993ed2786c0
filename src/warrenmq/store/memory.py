"""The in-memory stores: the storage interfaces with nothing written to disk.

Theory of operation: :class:`MemoryStore` keeps the same bookkeeping a durable
store keeps (which queues still hold which message, and whether it was
delivered) in one dict entry per message, referring to the message's bytes
(nothing is copied).  It writes nothing, so every epoch it hands out is
already synced: ``persist`` returns ``synced_epoch`` and a confirm never waits
for it.  ``recover()`` on a store built over the same ``state`` returns what
the previous instance held, which lets the shared conformance suite treat both
stores alike; a new broker process starts empty.

:class:`MemoryDefinitions` records no definition but hands out queue ids, so
the durable queues of an in-memory broker have a ``store_id`` and their
persistent messages go through the message store as with a data directory.
"""
from __future__ import annotations

from .base import Definitions, MessageStore, RecoveredMessage

# a message's entry: [message, body, holders, delivered]; holders is one queue id (int; 0 for a stashed body)
# or a set of them, delivered None or a set of queue ids. The body is kept apart from the message, whose
# body goes when it is paged out.
_MSG, _BODY, _HOLDERS, _DELIVERED = range(4)


class MemoryStore(MessageStore):
    durable = False

    def __init__(self, state: dict | None = None):
        super().__init__()
        self.state = state if state is not None else {"msgs": {}, "next": 1}
        self._msgs = self.state["msgs"]
        self._next = self.state["next"]
        self._pending = False

    def persist(self, msg, queue_ids) -> int:
        mid = self._next
        self._next = mid + 1
        msg.store_id = mid
        self._msgs[mid] = [msg, msg.body, queue_ids[0] if len(queue_ids) == 1 else set(queue_ids), None]
        if not self._pending:
            self._mark()
        return self.synced_epoch  # nothing to wait for

    def stash(self, msg) -> int:
        mid = self._next
        self._next = mid + 1
        self._msgs[mid] = [msg, msg.body, 0, None]
        return mid

    def _mark(self) -> None:
        self._pending = True
        if self.on_pending is not None:
            self.on_pending()

    def delivered(self, queue_id: int, msg_id: int) -> None:
        rec = self._msgs.get(msg_id)
        if rec is not None:
            d = rec[_DELIVERED]
            if d is None:
                rec[_DELIVERED] = {queue_id}
            else:
                d.add(queue_id)

    def remove(self, queue_id: int, msg_id: int) -> None:
        msgs = self._msgs
        rec = msgs.get(msg_id)
        if rec is not None:
            holders = rec[_HOLDERS]
            if holders.__class__ is int:
                if holders == queue_id:
                    del msgs[msg_id]
            elif queue_id in holders:
                holders.discard(queue_id)
                if not holders:
                    del msgs[msg_id]

    def drop_queue(self, queue_id: int) -> None:
        msgs = self._msgs
        for mid in [m for m, rec in msgs.items()
                    if rec[_HOLDERS] == queue_id or rec[_HOLDERS].__class__ is set and queue_id in rec[_HOLDERS]]:
            self.remove(queue_id, mid)

    def read_body(self, msg_id: int):
        rec = self._msgs.get(msg_id)
        return rec[_BODY] if rec is not None else None

    def read_messages(self, mids) -> list:
        msgs = self._msgs
        out = []
        for mid in mids:
            rec = msgs.get(mid)
            out.append(None if rec is None else (rec[_MSG].ex_rk, rec[_MSG].header, rec[_BODY]))
        return out

    def page_out(self, msg) -> None:
        """The body is dropped at once: the store holds it."""
        if msg.paged:
            msg.body = None

    @property
    def has_pending(self) -> bool:
        return self._pending

    def write_pending(self) -> int:
        self._pending = False
        self.epoch += 1
        self.synced_epoch = self.epoch
        return self.epoch

    def sync(self) -> None:
        pass

    def recover(self) -> dict[int, list[RecoveredMessage]]:
        out: dict[int, list[RecoveredMessage]] = {}
        for mid, (msg, body, holders, delivered) in self._msgs.items():
            for qid in ((holders,) if holders.__class__ is int else sorted(holders)):
                if qid:  # 0: a stashed body, never recovered
                    out.setdefault(qid, []).append(
                        RecoveredMessage(mid, msg.exchange, msg.routing_key, msg.header, body,
                                         delivered is not None and qid in delivered, msg.ex_rk))
        return out

    def close(self) -> None:
        super().close()
        self.state["next"] = self._next  # for a store reopened over the same state

    def stats(self) -> dict:
        return {"messages": len(self._msgs)}


class MemoryDefinitions(Definitions):
    """No definition is kept; durable queues get ids for the message store."""

    def __init__(self):
        self._next_queue_id = 1

    def queue_declared(self, vhost: str, q) -> int:
        qid = self._next_queue_id
        self._next_queue_id = qid + 1
        return qid
