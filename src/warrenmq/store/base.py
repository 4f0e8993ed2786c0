"""The message store interface.

Theory of operation: the broker calls the store on the message path only for
persistent messages in durable queues.  ``persist`` records a message once for
all the durable queues it was routed to and returns the *epoch* (group-commit
batch number) whose completion makes it safe to confirm; ``delivered`` and
``remove`` record what happened to it in one queue.  Records are buffered;
the application drives the batch cycle: ``write_pending()`` (returns the epoch
written), ``sync()`` (fsync, may run in a worker thread), ``synced(epoch)``.
``on_pending`` is called when the buffer goes from empty to non-empty, so the
application can schedule a cycle (exactly as the protocol layer's
``on_output``).  ``recover()`` returns, per queue id, the messages still held,
in publish order, with a flag saying whether they had been delivered.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class RecoveredMessage:
    msg_id: int
    exchange: str
    routing_key: str
    header: bytes
    body: bytes | None  # None: not read during recovery; ``store.read_body(msg_id)`` has it
    delivered: bool
    ex_rk: bytes | None = None  # exchange and routing key as two short strings, when the store kept them


class MessageStore:
    """Base class and documentation of the interface; see the module docstring."""

    #: True when ``persist`` actually makes messages survive a restart
    durable = False

    def __init__(self):
        self.on_pending = None  # callable() -> None
        self.epoch = 0  # last epoch written
        self.synced_epoch = 0  # last epoch known to be on disk

    # message path -------------------------------------------------------
    def persist(self, msg, queue_ids) -> int:
        """Record ``msg`` for the durable queues ``queue_ids``; set ``msg.store_id``; return its epoch."""
        raise NotImplementedError

    def delivered(self, queue_id: int, msg_id: int) -> None:
        raise NotImplementedError

    def remove(self, queue_id: int, msg_id: int) -> None:
        raise NotImplementedError

    def drop_queue(self, queue_id: int) -> None:
        """Forget every message of a deleted queue."""
        raise NotImplementedError

    # paging ---------------------------------------------------------------
    def read_body(self, msg_id: int):
        """The body of a stored message, or ``None``."""
        raise NotImplementedError

    def read_messages(self, mids) -> list:
        """``(ex_rk, header, body)`` of each stored message in ``mids`` (``None`` when not stored), in the
        order asked: exchange and routing key as two short strings, the content header as published."""
        raise NotImplementedError

    def page_out(self, msg) -> None:
        """Drop ``msg.body`` from memory once it is safely stored (``msg.paged`` is set)."""

    # batch cycle ----------------------------------------------------------
    @property
    def has_pending(self) -> bool:
        raise NotImplementedError

    def write_pending(self) -> int:
        raise NotImplementedError

    def sync(self) -> None:
        raise NotImplementedError

    def synced(self, epoch: int) -> None:
        if epoch > self.synced_epoch:
            self.synced_epoch = epoch

    # the same cycle with the writing off the caller's thread (StoreCommitter): ``take_pending()`` on the
    # loop thread returns (epoch, batch); ``write_batch(batch)`` may run on a worker thread, ``sync()`` on
    # another, even while the next batch is written (when ``may_overlap``); ``written(batch)`` is called
    # back on the loop thread once the write is done, ``synced(epoch)`` once an fsync that began after
    # it is done
    def take_pending(self):
        return self.write_pending(), None

    def write_batch(self, batch) -> None:
        pass

    def written(self, batch) -> None:
        pass

    @property
    def may_overlap(self) -> bool:
        """Whether a batch may be written while an fsync is in flight."""
        return True

    # lifecycle ---------------------------------------------------------------
    def recover(self) -> dict[int, list[RecoveredMessage]]:
        raise NotImplementedError

    def close(self) -> None:
        """Write and sync what is pending, release files."""
        if self.has_pending:
            epoch = self.write_pending()
            self.sync()
            self.synced(epoch)

    def stats(self) -> dict:
        return {}
