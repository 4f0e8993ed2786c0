"""The in-memory message store: the store interface with nothing written to disk.

Theory of operation: it keeps the same bookkeeping a durable store keeps (which
queues still hold which message, and whether it was delivered) in dicts, and
every batch is "on disk" as soon as it is written, so confirms never wait.
``recover()`` on a store built over the same ``state`` returns what the
previous instance held, which lets the shared conformance suite treat both
stores alike; a new broker process starts empty.
"""
from __future__ import annotations

from .base import MessageStore, RecoveredMessage


class MemoryStore(MessageStore):
    durable = False

    def __init__(self, state: dict | None = None):
        super().__init__()
        # msg_id -> [exchange, routing_key, header, body, set(queue_ids), set(delivered queue_ids)]
        self.state = state if state is not None else {"msgs": {}, "next": 1}
        self._pending = False

    def persist(self, msg, queue_ids) -> int:
        st = self.state
        mid = st["next"]
        st["next"] = mid + 1
        msg.store_id = mid
        st["msgs"][mid] = [msg.exchange, msg.routing_key, msg.header, msg.body, set(queue_ids), set()]
        self._mark()
        return self.epoch + 1

    def _mark(self) -> None:
        if not self._pending:
            self._pending = True
            if self.on_pending is not None:
                self.on_pending()

    def delivered(self, queue_id: int, msg_id: int) -> None:
        rec = self.state["msgs"].get(msg_id)
        if rec is not None:
            rec[5].add(queue_id)

    def remove(self, queue_id: int, msg_id: int) -> None:
        msgs = self.state["msgs"]
        rec = msgs.get(msg_id)
        if rec is not None:
            rec[4].discard(queue_id)
            if not rec[4]:
                del msgs[msg_id]

    def drop_queue(self, queue_id: int) -> None:
        msgs = self.state["msgs"]
        for mid in [m for m, rec in msgs.items() if queue_id in rec[4]]:
            self.remove(queue_id, mid)

    def read_body(self, msg_id: int):
        rec = self.state["msgs"].get(msg_id)
        return rec[3] if rec is not None else None

    def read_messages(self, mids) -> list:
        out = []
        for mid in mids:
            rec = self.state["msgs"].get(mid)
            out.append(None if rec is None else (_shortstr(rec[0]) + _shortstr(rec[1]), rec[2], rec[3]))
        return out

    @property
    def has_pending(self) -> bool:
        return self._pending

    def write_pending(self) -> int:
        self._pending = False
        self.epoch += 1
        return self.epoch

    def sync(self) -> None:
        pass

    def recover(self) -> dict[int, list[RecoveredMessage]]:
        out: dict[int, list[RecoveredMessage]] = {}
        for mid, (ex, rk, header, body, qids, delivered) in self.state["msgs"].items():
            for qid in sorted(qids):
                out.setdefault(qid, []).append(RecoveredMessage(mid, ex, rk, header, body, qid in delivered))
        return out

    def stats(self) -> dict:
        return {"messages": len(self.state["msgs"])}


def _shortstr(s: str) -> bytes:
    b = s.encode("utf-8", "surrogateescape")
    return bytes((len(b),)) + b
