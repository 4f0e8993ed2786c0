"""The storage interfaces: message store, definitions, and the bundle the broker receives.

Theory of operation: the broker calls the message store on the message path
only for persistent messages in durable queues.  ``persist`` records a message
once for all the durable queues it was routed to and returns the *epoch*
(group-commit batch number) whose completion makes it safe to confirm: the
confirm waits only while ``epoch > store.synced_epoch`` (a store that keeps
nothing on disk returns an epoch already synced, so its confirms never wait);
``delivered`` and ``remove`` record what happened to it in one queue.  Records are buffered;
the application drives the batch cycle: ``write_pending()`` (returns the epoch
written), ``sync()`` (fsync, may run in a worker thread), ``synced(epoch)``.
``on_pending`` is called when the buffer goes from empty to non-empty, so the
application can schedule a cycle (exactly as the protocol layer's
``on_output``).  ``recover()`` returns, per queue id, the messages still held,
in publish order, with a flag saying whether they had been delivered.  A store
may also offer ``recover_ids()``: the same per queue as store ids in packed
arrays, for a broker that restores a large backlog without an object per
message (``None``: use ``recover()``).

A failed write or fsync leaves the store *failed* until a retry succeeds:
``retry(batches)`` writes again every record not known to be on disk (the
batches whose write failed, in order, and those written since the last fsync
that succeeded: after a failed fsync the kernel may have dropped them) at the
places they were given, then fsyncs.  Nothing is lost or reordered by a failure.

The same interface serves paging: ``stash`` writes a body that belongs to no
queue (the page store), ``page_out`` drops a body from memory once it is
written, ``read_body``/``read_messages`` read bodies back, ``remove(0, id)``
forgets a stashed one.

:class:`Definitions` is the interface of durable definitions (vhosts, users,
permissions, topic permissions, exchanges, queues, bindings, policies); every method is a change the broker
reports.  The base class records nothing (the broker uses it while it rebuilds
what it loaded); implementations hand out queue ids, which durable queues give
the message store.

:class:`Storage` is what the broker receives: the message store, the page
store (or ``None``), the definitions, and whether they survive a restart; it is
built by :func:`warrenmq.store.open_storage` outside the domain.
"""
from __future__ import annotations

import contextlib
from array import array
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


@dataclass(slots=True)
class RecoveredQueue:
    """What ``recover_ids()`` returns for one queue: no object per message."""
    ids: array  # store ids of the messages the queue still holds, in publish order ("Q")
    delivered: set  # those of them that had been handed to a consumer (they come back redelivered)
    expiring: set  # store ids (of any queue) whose properties carry an expiration


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

    def stash(self, msg) -> int:
        """Keep ``msg``'s body for paging only (no queue, never recovered); return its id for
        ``read_body`` and ``remove(0, id)``."""
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

    def retry(self, batches) -> None:
        """After a failed ``write_batch`` or ``sync`` (on a worker thread, nothing else in flight): write
        ``batches`` (taken, never ``written``) and every batch written since the last good fsync again,
        in order and where they belong, then fsync. Raises while the fault lasts."""
        for batch in batches:
            self.write_batch(batch)
        self.sync()

    # lifecycle ---------------------------------------------------------------
    def recover(self) -> dict[int, list[RecoveredMessage]]:
        raise NotImplementedError

    def recover_ids(self) -> dict[int, RecoveredQueue] | None:
        """Per queue id, the store ids ``recover()`` would return (``read_messages`` has the rest), or
        ``None`` when this store only offers ``recover()``.  Either call takes what was recovered."""
        return None

    def close(self) -> None:
        """Write and sync what is pending, release files."""
        if self.has_pending:
            epoch = self.write_pending()
            self.sync()
            self.synced(epoch)

    def stats(self) -> dict:
        return {}


class Definitions:
    """Durable definitions: the broker reports every change; see the module docstring.

    This base class records nothing and hands out no queue ids (0: not stored)."""

    def vhost_added(self, name: str) -> None:
        pass

    def vhost_deleted(self, name: str) -> None:
        pass

    def user_saved(self, name: str, password_hash: bytes, tags: list,
                   hashing_algorithm: str = "rabbit_password_hashing_sha256") -> None:
        pass

    def user_deleted(self, name: str) -> None:
        pass

    def permission_set(self, user: str, vhost: str, configure: str, write: str, read: str) -> None:
        pass

    def permission_cleared(self, user: str, vhost: str) -> None:
        pass

    def topic_permission_set(self, user: str, vhost: str, exchange: str, write: str, read: str) -> None:
        pass

    def topic_permission_cleared(self, user: str, vhost: str, exchange: str) -> None:
        pass

    def exchange_declared(self, vhost: str, ex) -> None:
        pass

    def exchange_deleted(self, vhost: str, name: str) -> None:
        pass

    def queue_declared(self, vhost: str, q) -> int:
        """Record a durable queue; return its id for the message store (0: messages are not stored)."""
        return 0

    def queue_deleted(self, vhost: str, name: str) -> None:
        pass

    def binding_added(self, vhost: str, source: str, dest: str, kind: str, key: str, arguments) -> None:
        pass

    def binding_removed(self, vhost: str, source: str, dest: str, kind: str, key: str, arguments) -> None:
        pass

    def policy_set(self, vhost: str, name: str, pattern: str, apply_to: str, priority: int, definition: dict) -> None:
        pass

    def policy_cleared(self, vhost: str, name: str) -> None:
        pass

    def limits_set(self, kind: str, name: str, limits: dict) -> None:
        """The limits of vhost or user ``name`` (``kind`` "vhost" or "user") are now ``limits`` ({}: none)."""
        pass

    def vhost_metadata_set(self, name: str, description: str, tags: list, default_queue_type: str | None) -> None:
        pass

    def operator_policy_set(self, vhost: str, name: str, pattern: str, apply_to: str, priority: int,
                            definition: dict) -> None:
        pass

    def operator_policy_cleared(self, vhost: str, name: str) -> None:
        pass

    def parameter_set(self, component: str, vhost: str, name: str, value) -> None:
        """Runtime parameter (``component``, ``vhost``, ``name``) is now ``value`` (JSON)."""
        pass

    def parameter_cleared(self, component: str, vhost: str, name: str) -> None:
        pass

    def global_parameter_set(self, name: str, value) -> None:
        pass

    def global_parameter_cleared(self, name: str) -> None:
        pass

    def retained_set(self, vhost: str, topic: str, packet: bytes) -> None:
        """MQTT: the retained message of ``topic`` in ``vhost`` is now ``packet`` (opaque bytes: the
        MQTT adapter's encoding)."""
        pass

    def retained_cleared(self, vhost: str, topic: str) -> None:
        pass

    def load_retained(self) -> list:
        """The retained MQTT messages stored: ``(vhost, topic, packet)`` tuples."""
        return []

    @contextlib.contextmanager
    def batch(self):
        """Make the changes reported inside the block durable together (one transaction, one sync) rather
        than one by one; a store without transactions records them as they come."""
        yield

    def load(self) -> dict:
        """Everything stored, for the broker to rebuild (empty lists when nothing is)."""
        return {"vhosts": [], "users": [], "permissions": [], "exchanges": [], "queues": [], "bindings": [],
                "policies": [], "limits": [], "topic_permissions": [], "vhost_metadata": [],
                "operator_policies": [], "parameters": [], "global_parameters": []}

    def close(self) -> None:
        pass


#: definitions that record nothing (while the broker rebuilds what it loaded)
NO_DEFINITIONS = Definitions()


class Storage:
    """What the broker is given: its stores, opened (and closed) outside the domain."""

    __slots__ = ("messages", "pages", "definitions", "durable", "path", "_release")

    def __init__(self, messages: MessageStore, definitions: Definitions, pages: MessageStore | None = None,
                 durable: bool = False, path: str = "", release=None):
        self.messages = messages  # persistent messages of durable queues
        self.pages = pages  # bodies paged out of memory (never recovered), or None: no paging
        self.definitions = definitions
        self.durable = durable  # whether all of it survives a restart of the process
        self.path = path  # the data directory ("" when nothing is on disk)
        self._release = release  # callable() releasing what open_storage took (the directory lock)

    def close(self) -> None:
        """Write and sync what is pending, close files, release the data directory."""
        error = None
        for part in (self.messages, self.pages, self.definitions):
            if part is not None:
                try:
                    part.close()
                except Exception as e:  # close the rest all the same; the first error is raised
                    error = error or e
        release, self._release = self._release, None
        if release is not None:
            release()
        if error is not None:
            raise error
