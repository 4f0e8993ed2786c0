"""Queues and consumers: store messages, dispatch them round-robin, settle acks.

Theory of operation: a :class:`Queue` holds ready entries in a deque, in
sequence order.  ``publish`` appends an entry and, when consumers exist, runs
``dispatch``: while messages are ready it asks the consumers, round robin, for
one that may take a message (credit under its prefetch, channel not paused by
flow or by a full socket) and hands the entry to that consumer's channel.
Unacked entries live in their channel's map until the channel acks, rejects or
closes; requeued entries go back to their original position (by sequence
number, as RabbitMQ does) marked redelivered.

Priority queues (``x-max-priority``) keep one deque per priority level in a
:class:`PriorityMessages` (same interface as the deque) and serve the highest
level first, FIFO within a level; a missing priority is 0 and one above the
maximum counts as the maximum, as in RabbitMQ.

TTL (``x-message-ttl`` and the ``expiration`` property, the lower one wins):
an entry gets a deadline when it is enqueued, unless a consumer takes it at
once (so a TTL of 0 still reaches a waiting consumer).  As in RabbitMQ only the
head of the queue expires: expired entries are dropped when they reach the head
(before a delivery or a get), and a timer (the broker's
:class:`~.timers.Timers`) fires at the head's deadline so counts drop without
traffic.  Delivered (unacked) entries never expire; requeued ones keep their
deadline.

Queue expiry (``x-expires``): a queue unused for that many milliseconds is
deleted.  As in RabbitMQ "unused" means no consumers, and the countdown
restarts on every declare of the queue (passive too) and every basic.get, and
starts when the last consumer goes; publishing does not count.

Consumer priorities (``x-priority`` consume argument) and single active
consumer (``x-single-active-consumer`` queue argument) change only *which*
consumer ``dispatch`` picks, through ``_pick`` (``None``: the plain round-robin
loop, the only path while no consumer has a priority and SAC is off).  With
priorities, consumers sit in levels, highest first; a message goes to the
highest level that has a consumer with credit, round robin within the level
(RabbitMQ's priority_queue of consumers).  With SAC, only ``active_consumer``
receives; when it goes, the remaining consumer with the highest priority, the
earliest registered among equals, takes over (RabbitMQ 3.10's classic queue).

Length limits (``x-max-length``, ``x-max-length-bytes``, ``x-overflow``):
``limit`` is a :class:`LengthLimit` or None, so a queue without one pays one
attribute check per publish.  Only ready messages count; with a byte limit the
ready entries live in a :class:`SizedMessages`, which keeps their total size.
drop-head trims from the head after a message is in (or requeued);
reject-publish(-dlx) refuses the message first (``publish`` returns False, the
session nacks it in confirm mode).  Messages the queue loses (rejected,
expired, dropped, refused with reject-publish-dlx) go to its dead-letter
exchange (``dlx``) through ``deadletter.dead_letter``.

Nothing here knows about frames: delivering means calling
``channel.deliver(consumer, entry)``, which the session implements.
"""
from __future__ import annotations

import logging
from array import array
from collections import deque
from heapq import merge
from time import monotonic

from ..protocol.codec import field_type_name
from ..protocol.errors import SoftError
from ..protocol.spec import PRECONDITION_FAILED
from .deadletter import dead_letter
from .message import Message, QueueEntry
from .policy import KIND_QUEUE as _POLICY_QUEUE, effective as _effective, policy_for

log = logging.getLogger("warrenmq.queue")

#: the highest ``x-max-priority`` RabbitMQ accepts
MAX_SUPPORTED_PRIORITY = 255
#: RabbitMQ's ceiling for ``x-expires`` and ``x-message-ttl``: ten years in milliseconds
MAX_EXPIRY = 315_360_000_000
def _int_arg(zero_ok: bool = True, maximum=None, too_big: str = ""):
    """A check for an argument RabbitMQ requires to be a non-negative integer (its reason text or None)."""
    def check(v, arguments):
        if isinstance(v, bool) or not isinstance(v, int):
            return f'"expected integer, got {field_type_name(v)}"'
        if v < 0:
            return f"{{value_negative,{v}}}"
        if v == 0 and not zero_ok:
            return "{value_zero,0}"
        if maximum is not None and v > maximum:
            return f"{{{too_big},{v}}}"
        return None
    return check


def _str_arg(values=None, invalid=None):
    """A check for a longstr argument, optionally one of ``values`` (else ``invalid(v)`` is the reason)."""
    def check(v, arguments):
        if v.__class__ is not str:
            return f"{{unacceptable_type,{field_type_name(v)}}}"
        if values is not None and v not in values:
            return invalid(v)
        return None
    return check


def _dlrk_arg(v, arguments):
    if v.__class__ is not str:
        return f"{{unacceptable_type,{field_type_name(v)}}}"
    return None if "x-dead-letter-exchange" in arguments else "routing_key_but_no_dlx_defined"


def _bool_arg(v, arguments):
    return None if v is True or v is False else f"{{unacceptable_type,{field_type_name(v)}}}"


#: the x-overflow values RabbitMQ knows
OVERFLOW_MODES = ("drop-head", "reject-publish", "reject-publish-dlx")

#: RabbitMQ 3.10's queue argument checks, in its checking order (``rabbit_amqqueue:declare_args``);
#: a check returns RabbitMQ's reason text or None
QUEUE_ARG_CHECKS = (
    ("x-expires", _int_arg(False, MAX_EXPIRY, "value_too_large")),
    ("x-message-ttl", _int_arg(True, MAX_EXPIRY, "value_too_large")),
    ("x-dead-letter-exchange", _str_arg()),
    ("x-dead-letter-routing-key", _dlrk_arg),
    ("x-dead-letter-strategy", _str_arg(("at-most-once", "at-least-once"), lambda v: "invalid_dlx_strategy")),
    ("x-max-length", _int_arg()),
    ("x-max-length-bytes", _int_arg()),
    ("x-max-in-memory-length", _int_arg()),
    ("x-max-in-memory-bytes", _int_arg()),
    ("x-max-priority", _int_arg(True, MAX_SUPPORTED_PRIORITY, "max_value_exceeded")),
    ("x-overflow", _str_arg(OVERFLOW_MODES, lambda v: "invalid_overflow")),
    ("x-queue-mode", _str_arg(("default", "lazy"), lambda v: f'"unsupported queue mode \'{v}\'"')),
    ("x-single-active-consumer", _bool_arg),
    ("x-quorum-initial-group-size", _int_arg(False)),
    ("x-queue-leader-locator", _str_arg(("client-local", "balanced", "random", "least-leaders"),
                                        lambda v: "invalid_queue_locator_arg")),
)

#: the arguments each queue type takes (RabbitMQ 3.10; another type's argument is an error, an unknown
#: one is ignored)
QUEUE_TYPE_ARGS = {
    "classic": frozenset(("x-expires", "x-message-ttl", "x-dead-letter-exchange", "x-dead-letter-routing-key",
                          "x-max-length", "x-max-length-bytes", "x-max-priority", "x-overflow", "x-queue-mode",
                          "x-queue-version", "x-single-active-consumer", "x-queue-type", "x-queue-master-locator")),
    "quorum": frozenset(("x-expires", "x-message-ttl", "x-dead-letter-exchange", "x-dead-letter-routing-key",
                         "x-dead-letter-strategy", "x-max-length", "x-max-length-bytes", "x-max-in-memory-length",
                         "x-max-in-memory-bytes", "x-overflow", "x-single-active-consumer", "x-queue-type",
                         "x-quorum-initial-group-size", "x-delivery-limit", "x-queue-leader-locator")),
    "stream": frozenset(("x-max-length-bytes", "x-queue-type", "x-max-age", "x-stream-max-segment-size-bytes",
                         "x-initial-cluster-size", "x-queue-leader-locator")),
}
_KNOWN_QUEUE_ARGS = frozenset().union(*QUEUE_TYPE_ARGS.values())
#: the queue type's module name, as RabbitMQ's texts show it
QUEUE_TYPE_MODULES = {"classic": "rabbit_classic_queue", "quorum": "rabbit_quorum_queue",
                      "stream": "rabbit_stream_queue"}


def queue_type_of(arguments) -> str:
    """The queue type ``arguments`` ask for (assumed valid): classic, quorum or stream."""
    t = arguments.get("x-queue-type") if arguments else None
    return t if t in ("quorum", "stream") else "classic"


def check_queue_arguments(name: str, vhost_name: str, arguments: dict) -> str:
    """Validate a new queue's arguments as RabbitMQ 3.10 does, with its PRECONDITION_FAILED texts; return
    the queue type.  Order: x-queue-type, then each argument the type takes (``QUEUE_ARG_CHECKS`` order),
    then arguments of another type (in the order given).  Stream queues are refused (not implemented)."""
    def invalid(key, reason):
        return SoftError(PRECONDITION_FAILED, f"invalid arg '{key}' for queue '{name}' in vhost '{vhost_name}': "
                                              f"{reason}")
    qtype = "classic"
    if "x-queue-type" in arguments:
        t = arguments["x-queue-type"]
        if t.__class__ is not str:
            raise invalid("x-queue-type", f"{{unacceptable_type,{field_type_name(t)}}}")
        if t not in QUEUE_TYPE_ARGS:
            raise invalid("x-queue-type", f'"unsupported queue type \'{t}\'"')
        if t == "stream":  # RabbitMQ 3.10 has streams; WarrenMQ does not (docs/compatibility.md)
            raise invalid("x-queue-type", "\"unsupported queue type 'stream': WarrenMQ does not implement "
                                          "stream queues\"")
        qtype = t
    allowed = QUEUE_TYPE_ARGS[qtype]
    for key, check in QUEUE_ARG_CHECKS:
        if key in arguments and key in allowed:
            reason = check(arguments[key], arguments)
            if reason is not None:
                raise invalid(key, reason)
    for key in arguments:
        if key in _KNOWN_QUEUE_ARGS and key not in allowed:
            raise SoftError(PRECONDITION_FAILED, f"invalid arg '{key}' for queue '{name}' in vhost "
                            f"'{vhost_name}' of queue type {QUEUE_TYPE_MODULES[qtype]}")
    return qtype


def check_consumer_priority(queue_name: str, vhost_name: str, arguments) -> int:
    """The ``x-priority`` of a basic.consume (0 when absent), validated with RabbitMQ's text."""
    p = arguments.get("x-priority", 0) if arguments else 0
    if isinstance(p, bool) or not isinstance(p, int):
        raise SoftError(PRECONDITION_FAILED, f"invalid arg 'x-priority' for queue '{queue_name}' in vhost "
                        f"'{vhost_name}': \"expected integer, got {field_type_name(p)}\"")
    return int(p)

KIND_QUEUE = 0
#: deliveries one dispatch call hands out before yielding to the event loop (see Queue.dispatch)
DISPATCH_BATCH = 256
#: a message that is not in the message store is paged out only if its body is at least this large
PAGE_MIN_BODY = 512
#: LazyMessages reads messages back from the store this many at a time
REFILL_BATCH = 512


class Consumer:
    __slots__ = ("tag", "queue", "channel", "no_ack", "exclusive", "prefetch", "unacked", "arguments",
                 "prefix", "priority")

    def __init__(self, tag: str, queue, channel, no_ack: bool, exclusive: bool, prefetch: int, arguments):
        self.tag = tag
        self.queue = queue
        self.channel = channel
        self.no_ack = no_ack
        self.exclusive = exclusive
        self.prefetch = prefetch
        self.unacked = 0
        self.arguments = arguments or {}
        self.prefix = b""  # set by the session: the encoded head of its basic.deliver frames
        self.priority = 0  # x-priority (set by the session before add_consumer)

    def ready(self) -> bool:
        ch = self.channel
        if ch.paused:
            return False
        if self.no_ack:
            return True
        if self.prefetch and self.unacked >= self.prefetch:
            return False
        gp = ch.global_prefetch
        return not gp or ch.unacked_count < gp


def _merge_sorted(msgs: deque, entries: list) -> None:
    """Put ``entries`` (sorted by seq) back into ``msgs`` at their original places."""
    if not msgs or entries[-1].seq < msgs[0].seq:
        msgs.extendleft(reversed(entries))
    else:
        head = []
        last = entries[-1].seq
        while msgs and msgs[0].seq < last:
            head.append(msgs.popleft())
        msgs.extendleft(reversed(list(merge(head, entries, key=_seq))))


class PriorityMessages:
    """The ready entries of a priority queue: a deque per level, highest level first.

    Offers the part of the deque interface that queues and sessions use.
    """
    __slots__ = ("levels", "max_priority", "count")

    def __init__(self, max_priority: int):
        self.max_priority = max_priority
        self.levels = [deque() for _ in range(max_priority + 1)]
        self.count = 0

    def level(self, entry) -> int:
        p = entry.message.priority
        return p if p <= self.max_priority else self.max_priority

    def __len__(self) -> int:
        return self.count

    def __bool__(self) -> bool:
        return self.count > 0

    def __iter__(self):
        for level in reversed(self.levels):
            yield from level

    def __getitem__(self, i: int):
        if i == 0 and self.count:
            for level in reversed(self.levels):
                if level:
                    return level[0]
        raise IndexError(i)

    def append(self, entry) -> None:
        self.levels[self.level(entry)].append(entry)
        self.count += 1

    def popleft(self):
        for level in reversed(self.levels):
            if level:
                self.count -= 1
                return level.popleft()
        raise IndexError("pop from an empty queue")

    def clear(self) -> None:
        for level in self.levels:
            level.clear()
        self.count = 0

    def requeue(self, entries: list) -> None:
        """Put ``entries`` (sorted by seq) back at their original places in their levels."""
        by_level: dict = {}
        for e in entries:
            by_level.setdefault(self.level(e), []).append(e)
        for lvl, es in by_level.items():
            _merge_sorted(self.levels[lvl], es)
        self.count += len(entries)


class LazyMessages:
    """The ready entries of a durable queue whose backlog went past its paging limit (RabbitMQ's lazy
    mode, always on beyond the limit).

    The first ``limit`` entries are objects (``head``, a deque). Behind them, the *tail* holds persistent
    messages already in the message store as nothing but their store id and sequence number, in two
    packed arrays (16 bytes a message), and reads them back from the store, ``REFILL_BATCH`` at a time,
    whenever the head runs low. So a backlog of millions costs memory only for its head. Entries that
    cannot be only an id stay objects in ``side`` (by sequence number) at their place in the tail:
    transient messages, messages with a TTL or an expiration, redelivered ones, and, until the store
    has synced the batch that holds their record, every new entry (``unsynced``). The head is never
    empty while the tail is not, so ``bool()`` and ``[0]`` look at the head only. Offers the part of
    the deque interface that queues and sessions use; ``materialize`` turns it back into a deque for
    the features that need every entry as an object (a byte length limit).
    """
    __slots__ = ("queue", "head", "ids", "seqs", "pos", "side", "unsynced", "limit", "low", "names")

    def __init__(self, queue, head: deque, limit: int):
        self.queue = queue
        self.head = head
        self.limit = limit
        self.low = max(limit - REFILL_BATCH, 0)  # the head is refilled when it is down to this
        self.ids = array("Q")  # store ids of the tail (0: the entry is in ``side``)
        self.seqs = array("Q")  # their sequence numbers
        self.pos = 0  # the tail starts at this index of ids/seqs
        self.side: dict = {}  # seq -> entry kept as an object in the tail
        self.unsynced: deque = deque()  # (store epoch, seq) of side entries that may become ids
        self.names: dict = {}  # raw exchange + routing key -> (exchange, routing key)

    def __len__(self) -> int:
        return len(self.head) + len(self.ids) - self.pos

    def __bool__(self) -> bool:
        return bool(self.head)

    def __getitem__(self, i: int):
        if i == 0:
            return self.head[0]
        raise IndexError(i)

    def __iter__(self):
        """Every entry, the tail's read from the store as copies (for inspection, e.g. by tests)."""
        yield from self.head
        for i in range(self.pos, len(self.ids), REFILL_BATCH):
            yield from self._load(i, min(i + REFILL_BATCH, len(self.ids)))

    def append(self, entry, on_disk: bool = False) -> None:
        """Add ``entry`` at the end; ``on_disk``: its record is known to be on disk (recovery)."""
        ids = self.ids
        if self.pos == len(ids):
            if len(self.head) < self.limit:
                self.head.append(entry)
                return
            if self.pos:  # the tail ran dry: start afresh
                self._clear_tail()
                ids = self.ids
        msg = entry.message
        q = self.queue
        seq = entry.seq
        self.seqs.append(seq)
        if (msg.__class__ is Message and msg.store_id and msg.pageable and not entry.redelivered
                and not entry.expires and not q.has_ttl and not msg.header[12] & 0x01):
            ids.append(msg.store_id)
            if not on_disk:  # persisted in the store's current batch: an object until that is synced
                self.side[seq] = entry
                self.unsynced.append((q.store.epoch + 1, seq))
        else:
            ids.append(0)
            self.side[seq] = entry
        self._settle_synced()

    def _settle_synced(self) -> None:
        """Side entries whose record the store has synced become ids only."""
        unsynced = self.unsynced
        if unsynced:
            synced = self.queue.store.synced_epoch
            side = self.side
            while unsynced and unsynced[0][0] <= synced:
                side.pop(unsynced.popleft()[1], None)

    def popleft(self):
        head = self.head
        entry = head.popleft()
        if len(head) <= self.low and self.pos < len(self.ids):
            self._refill()
        return entry

    def _refill(self) -> None:
        self._settle_synced()
        head, n = self.head, len(self.ids)
        while self.pos < n:
            end = min(self.pos + min(REFILL_BATCH, max(self.limit - len(head), 1)), n)
            head.extend(self._load(self.pos, end, take=True))
            self.pos = end
            if head:  # (only unreadable records could leave it empty: then go on)
                return

    def _load(self, start: int, end: int, take: bool = False) -> list:
        """Entries for tail positions [start, end): side entries as they are, the others read from the
        store (their bodies count as queued memory when ``take``)."""
        q = self.queue
        ids, seqs, side = self.ids, self.seqs, self.side
        want = [ids[i] for i in range(start, end) if ids[i] and seqs[i] not in side]
        parts = dict(zip(want, q.store.read_messages(want))) if want else {}
        names = self.names
        out = []
        size = 0
        for i in range(start, end):
            seq = seqs[i]
            entry = side.pop(seq, None) if take else side.get(seq)
            if entry is None:
                sid = ids[i]
                p = parts.get(sid)
                if p is None:  # its record cannot be read: it is lost, say so rather than stall
                    log.error("queue %r: stored message %d could not be read back; dropped", q.name, sid)
                    if take and q.store_id:
                        q.store.remove(q.store_id, sid)
                    continue
                ex_rk, header, body = p
                pair = names.get(ex_rk)
                if pair is None:
                    if len(names) >= 4096:
                        names.clear()
                    n = ex_rk[0]
                    pair = names[ex_rk] = (ex_rk[1:1 + n].decode("utf-8", "surrogateescape"),
                                           ex_rk[2 + n:].decode("utf-8", "surrogateescape"))
                msg = Message(pair[0], pair[1], header, body, ex_rk)
                msg.store_id = sid
                msg.pageable = True
                size += len(body)
                entry = QueueEntry(msg, seq, q)
            out.append(entry)
        if take and size:
            q.memory.add(size)
        return out

    def clear(self) -> None:
        self.head.clear()
        self._clear_tail()

    def _clear_tail(self) -> None:
        self.ids, self.seqs, self.pos = array("Q"), array("Q"), 0
        self.side.clear()
        self.unsynced.clear()

    def take_all(self) -> tuple:
        """Empty the queue: (the entries that are objects, the store ids of the others)."""
        side = self.side
        entries = list(self.head)
        sids = []
        for i in range(self.pos, len(self.ids)):
            e = side.get(self.seqs[i])
            if e is not None:
                entries.append(e)
            else:
                sids.append(self.ids[i])
        self.clear()
        return entries, sids

    def requeue(self, entries: list) -> None:
        # requeued entries came from the head, so they go back into it (the tail only has later ones)
        _merge_sorted(self.head, entries)

    def materialize(self) -> deque:
        """Every entry as an object, in a deque (bodies beyond the head stay on disk: paged)."""
        head = self.head
        for i in range(self.pos, len(self.ids), REFILL_BATCH):
            for e in self._load(i, min(i + REFILL_BATCH, len(self.ids)), take=True):
                msg = e.message
                if msg.store_id and not msg.paged and msg.body is not None and len(head) >= self.limit:
                    self.queue.page_out(msg)
                head.append(e)
        self._clear_tail()
        return head


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


class SizedMessages:
    """The ready entries of a queue with ``x-max-length-bytes``: a deque (or :class:`PriorityMessages`)
    that also keeps the total size of the ready bodies (RabbitMQ's ``message_bytes_ready``)."""
    __slots__ = ("inner", "bytes")

    def __init__(self, inner):
        self.inner = inner
        self.bytes = sum(_size(e) for e in inner)

    def __len__(self) -> int:
        return len(self.inner)

    def __bool__(self) -> bool:
        return bool(self.inner)

    def __iter__(self):
        return iter(self.inner)

    def __getitem__(self, i: int):
        return self.inner[i]

    def append(self, entry) -> None:
        self.inner.append(entry)
        self.bytes += _size(entry)

    def popleft(self):
        entry = self.inner.popleft()
        self.bytes -= _size(entry)
        return entry

    def clear(self) -> None:
        self.inner.clear()
        self.bytes = 0

    def requeue(self, entries: list) -> None:
        inner = self.inner
        if inner.__class__ is deque:
            _merge_sorted(inner, entries)
        else:
            inner.requeue(entries)
        self.bytes += sum(_size(e) for e in entries)


def _size(entry) -> int:
    """The body size of a ready entry (from its content header, so a paged-out body counts too)."""
    return int.from_bytes(entry.message.header[4:12], "big")


class Queue:
    kind = KIND_QUEUE
    queue_type = "classic"
    __slots__ = ("name", "vhost", "durable", "exclusive_owner", "auto_delete", "arguments", "messages",
                 "consumers", "next_seq", "unacked", "had_consumer", "bindings", "deleted", "exclusive_consumer",
                 "_dispatching", "stats_published", "stats_delivered", "stats_acked", "memory", "message_ttl",
                 "has_ttl", "_expiry_timer", "_expiry_at", "expires", "_expires_timer", "store_id", "store",
                 "_pick", "single_active", "active_consumer", "consumer_levels", "page_store", "page_limit",
                 "dlx", "dlrk", "limit", "policy")

    def __init__(self, name: str, vhost, durable=False, exclusive_owner=None, auto_delete=False, arguments=None):
        self.name = name
        self.vhost = vhost
        self.durable = durable
        self.exclusive_owner = exclusive_owner
        self.auto_delete = auto_delete
        self.arguments = arguments = arguments or {}
        # the policy in force (policy.py): policy-able settings are read through self.effective(arg)
        self.policy = policy_for(vhost, _POLICY_QUEUE, name)
        max_priority = self.effective("x-max-priority")
        if isinstance(max_priority, int) and not isinstance(max_priority, bool) and max_priority > 0:
            self.messages = PriorityMessages(min(max_priority, MAX_SUPPORTED_PRIORITY))
        else:
            self.messages: deque[QueueEntry] = deque()
        ttl = self.effective("x-message-ttl")
        self.message_ttl = ttl if isinstance(ttl, int) and not isinstance(ttl, bool) and ttl >= 0 else None
        self.has_ttl = self.message_ttl is not None  # entries may carry deadlines
        self._expiry_timer = None
        self._expiry_at = 0.0
        self.consumers: deque[Consumer] = deque()
        self.next_seq = 0
        self.unacked = 0
        self.had_consumer = False
        self.bindings: set = set()  # (exchange, key, args_key) where this queue is the destination
        self.deleted = False
        self.exclusive_consumer = None
        # which consumer dispatch picks: None = plain round robin (see the module docstring)
        self.single_active = arguments.get("x-single-active-consumer") is True
        self.active_consumer = None
        self.consumer_levels = None  # [(priority, deque of consumers)], highest first, while priorities are used
        self._pick = self._pick_single_active if self.single_active else None
        self._dispatching = False
        self.stats_published = 0
        self.stats_delivered = 0
        self.stats_acked = 0
        self.memory = vhost.memory
        expires = self.effective("x-expires")  # queue expiry (ms unused), validated on declare
        self.expires = expires if isinstance(expires, int) and not isinstance(expires, bool) and expires > 0 \
            else None
        self._expires_timer = None
        if self.expires:
            self.reset_expires()
        dlx = self.effective("x-dead-letter-exchange")  # dead lettering (deadletter.py)
        self.dlx = dlx if dlx.__class__ is str else None
        dlrk = self.effective("x-dead-letter-routing-key")
        self.dlrk = dlrk if dlrk.__class__ is str and self.dlx is not None else None
        self.limit = None  # length limit (x-max-length, x-max-length-bytes, x-overflow): a LengthLimit or None
        max_length, max_bytes = self.effective("x-max-length"), self.effective("x-max-length-bytes")
        if max_length is not None or max_bytes is not None:
            self.set_length_limit(max_length, max_bytes, self.effective("x-overflow"))
        self.store = vhost.store
        self.page_store = vhost.page_store
        self.page_limit = vhost.page_limit if vhost.page_store is not None else 0
        self.store_id = 0  # the message store's queue id when durable and stored (0: not stored)

    @property
    def exclusive(self) -> bool:
        return self.exclusive_owner is not None

    # ------------------------------------------------------------------ policies
    def effective(self, arg: str):
        """The value in force for queue argument ``arg`` (e.g. ``x-message-ttl``): the argument
        combined with the queue's policy as RabbitMQ does (policy.py)."""
        if self.policy is None:
            return self.arguments.get(arg)
        return _effective(self, arg)

    def apply_policy(self, policy) -> None:
        """``policy`` (or None) is now the one in force: re-read every setting a policy can change, as
        RabbitMQ's queue does on a policy change (x-max-priority is fixed at creation)."""
        self.policy = policy
        ttl = self.effective("x-message-ttl")  # for messages enqueued from now on
        self.message_ttl = ttl if isinstance(ttl, int) and not isinstance(ttl, bool) and ttl >= 0 else None
        if self.message_ttl is not None:
            self.has_ttl = True
        expires = self.effective("x-expires")
        expires = expires if isinstance(expires, int) and not isinstance(expires, bool) and expires > 0 else None
        if expires != self.expires:
            self.expires = expires
            if expires:
                self.reset_expires()  # the countdown restarts with the new value
            else:
                self.cancel_expires()
        dlx = self.effective("x-dead-letter-exchange")
        self.dlx = dlx if dlx.__class__ is str else None
        dlrk = self.effective("x-dead-letter-routing-key")
        self.dlrk = dlrk if dlrk.__class__ is str and self.dlx is not None else None
        max_length, max_bytes = self.effective("x-max-length"), self.effective("x-max-length-bytes")
        if max_length is not None or max_bytes is not None or self.limit is not None:
            self.set_length_limit(max_length, max_bytes, self.effective("x-overflow"))

    @property
    def message_count(self) -> int:
        return len(self.messages)

    def __repr__(self) -> str:
        return f"<Queue {self.name!r} ready={len(self.messages)} unacked={self.unacked}>"

    # ----------------------------------------------------------- enqueue/deliver
    def publish(self, msg):
        """Enqueue ``msg`` (and dispatch).  Returns False, and nothing else, when the queue refuses it
        (a length limit with x-overflow reject-publish*): the publisher's confirm is then a nack."""
        limit = self.limit
        if limit is not None and limit.rejects and not self._admit(msg, limit):
            return False
        seq = self.next_seq
        self.next_seq = seq + 1
        self.stats_published += 1
        mem = self.memory
        mem.used += len(msg.body)
        if mem.used > mem.high and not mem.alarm:
            mem.add(0)
        entry = QueueEntry(msg, seq, self)
        messages = self.messages
        messages.append(entry)
        if self.page_limit and len(messages) > self.page_limit:
            if msg.pageable:
                self.page_out(msg)
            self._go_lazy()
        ttl = self.message_ttl
        if msg.header[12] & 0x01:  # the expiration property is present
            mttl = msg.ttl
            if mttl is not None and (ttl is None or mttl < ttl):
                ttl = mttl
        if ttl is None:
            # After every dispatch either the queue is empty or no consumer can take a message, and
            # consumers only regain credit through calls that dispatch (ack, qos, consume, resumed
            # writing, requeue). So with a backlog already waiting, a new message cannot be delivered now.
            # (A queue with a consumer picker, for priorities or single active consumer, may deliberately
            # wait for the next publish, so it always dispatches.)
            if self.consumers and (len(self.messages) == 1 or self._pick is not None):
                self.dispatch()
            if limit is not None:
                self._drop_head()
            return
        self.has_ttl = True
        deadline = monotonic() + ttl / 1000.0
        if self.consumers:
            self.dispatch()
            if entry.delivery_count:  # a consumer took it at once: it never expires
                return
        entry.expires = deadline
        self._schedule_expiry()
        if limit is not None:
            self._drop_head()

    def dispatch(self) -> None:
        """Hand ready messages to consumers with credit, round robin (or as ``_pick`` chooses)."""
        if self._dispatching:
            return
        messages = self.messages
        consumers = self.consumers
        self._dispatching = True
        has_ttl = self.has_ttl
        pick = self._pick
        # Deliveries leave only when the loop turn ends: hand out at most a batch per call and let the
        # loop write it (a consumer whose socket is full is then paused) before continuing.
        batch = DISPATCH_BATCH if self.vhost.timers.loop_call_later is not None else 0
        sent = 0
        try:
            while messages and consumers:
                if has_ttl and messages[0].expires and not self._drop_expired():
                    return
                if pick is not None:  # consumer priorities or single active consumer
                    c = pick()
                    if c is None:
                        return
                else:
                    # find the next consumer (in round-robin order) that may take a message
                    for _ in range(len(consumers)):
                        c = consumers[0]
                        consumers.rotate(-1)
                        if c.ready():
                            break
                    else:
                        return
                entry = messages.popleft()
                self.stats_delivered += 1
                c.channel.deliver(c, entry)
                sent += 1
                if sent == batch and messages:
                    self.vhost.timers.call_later(0, self.dispatch)
                    return
        finally:
            self._dispatching = False
            if has_ttl:
                self._schedule_expiry()

    def get(self):
        """Pop the head entry for basic.get, or ``None``."""
        if self.expires:
            self.reset_expires()
        if self.has_ttl:
            self._drop_expired()
            if self.messages:
                self.stats_delivered += 1
                entry = self.messages.popleft()
                self._schedule_expiry()
                return entry
            return None
        if self.messages:
            self.stats_delivered += 1
            return self.messages.popleft()
        return None

    def requeue(self, entries: list) -> None:
        """Put delivered entries back in their original places, marked redelivered."""
        if self.deleted:
            self.settle_many(entries)
            return
        for e in entries:
            e.redelivered = True
            e.consumer = None
        entries.sort(key=_seq)
        msgs = self.messages
        if msgs.__class__ is deque:
            _merge_sorted(msgs, entries)
        else:  # PriorityMessages, SizedMessages
            msgs.requeue(entries)
        if self.limit is not None:  # as RabbitMQ: requeued messages count, drop-head drops them first
            self._drop_head()
        if self.consumers:
            self.dispatch()
        elif self.has_ttl:
            self._schedule_expiry()

    def restore(self, msg, store_id: int, delivered: bool) -> None:
        """Append a message recovered from the store (at start, before any client connects).

        ``msg.body`` is None when it was left on disk: beyond the paging limit it stays there."""
        msg.store_id = store_id
        msg.pageable = True
        if msg.body is None:
            if self.page_limit and len(self.messages) >= self.page_limit:
                msg.paged = True
            else:
                msg.body = self.store.read_body(store_id) or b""
        if not msg.paged:
            self.memory.used += len(msg.body)
        entry = QueueEntry(msg, self.next_seq, self)
        self.next_seq += 1
        entry.redelivered = delivered
        msgs = self.messages
        if msgs.__class__ is LazyMessages:
            msgs.append(entry, on_disk=True)
        else:
            msgs.append(entry)
            if self.page_limit and len(msgs) > self.page_limit:
                self._go_lazy()

    # ----------------------------------------------------------------- paging
    def _go_lazy(self) -> None:
        """Past the paging limit, a durable classic queue keeps the rest of its backlog in the store."""
        msgs = self.messages
        if msgs.__class__ is deque and self.store_id and self.queue_type == "classic":
            self.messages = LazyMessages(self, msgs, self.page_limit)

    def page_out(self, msg) -> None:
        """Keep ``msg``'s body on disk only: in the message store if it is there, else the page store."""
        if msg.paged or msg.body is None:
            return
        if msg.store_id and self.store_id:
            store = self.store  # already written: paging costs nothing more
        else:
            if len(msg.body) < PAGE_MIN_BODY:
                return  # writing a small body out costs more than keeping it (its index stays anyway)
            store = self.page_store
            if not msg.page_id:
                msg.page_id = store.stash(msg)
        msg.paged = True
        self.memory.release(len(msg.body))
        store.page_out(msg)

    def page_in(self, msg) -> None:
        """Bring a paged body back into memory (before a delivery)."""
        if msg.body is None:
            if msg.page_id:
                msg.body = self.page_store.read_body(msg.page_id)
            else:
                msg.body = self.store.read_body(msg.store_id)
            if msg.body is None:  # unreadable: deliver it empty rather than lose the delivery
                msg.body = b""
        msg.paged = False
        if msg.page_id:
            self.page_store.remove(0, msg.page_id)
            msg.page_id = 0
        self.memory.used += len(msg.body)

    def settle(self, entry) -> None:
        """``entry`` left this queue for good (acked, auto-acked, dropped): release what it held."""
        msg = entry.message
        if msg.paged:  # dropped (purge, expiry) without ever being read back
            self._forget_paged(msg)
        else:
            self.memory.release(len(msg.body))
        if msg.store_id and self.store_id:
            self.store.remove(self.store_id, msg.store_id)

    def _forget_paged(self, msg) -> None:
        msg.paged = False
        if msg.page_id:
            self.page_store.remove(0, msg.page_id)
            msg.page_id = 0

    def settle_many(self, entries) -> None:
        if not entries:
            return
        size = 0
        for e in entries:
            msg = e.message
            if msg.paged:
                self._forget_paged(msg)
            else:
                size += len(msg.body)
        self.memory.release(size)
        if self.store_id:
            qid = self.store_id
            remove = self.store.remove
            for e in entries:
                sid = e.message.store_id
                if sid:
                    remove(qid, sid)

    def purge(self) -> int:
        """Drop every ready message; return how many went."""
        msgs = self.messages
        n = len(msgs)
        if n:
            if msgs.__class__ is LazyMessages:
                entries, sids = msgs.take_all()
                self.settle_many(entries)
                if self.store_id:
                    qid, remove = self.store_id, self.store.remove
                    for sid in sids:
                        remove(qid, sid)
            else:
                self.settle_many(list(msgs))
                msgs.clear()
        return n

    # ---------------------------------------------------------------- expiry
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

    def dead_letter(self, entries: list, reason: str) -> None:
        """Republish the messages of ``entries`` to the dead-letter exchange (before they are settled)."""
        messages = []
        for e in entries:
            msg = e.message
            if msg.paged:
                self.page_in(msg)
            messages.append(msg)
        dead_letter(self, messages, reason)

    # ---------------------------------------------------------- length limit
    def set_length_limit(self, max_length, max_length_bytes, overflow) -> None:
        """Apply x-max-length / x-max-length-bytes / x-overflow (None: absent; invalid values count as
        absent, validation is the caller's).  Messages over a new limit are dropped at once (drop-head)."""
        if not (isinstance(max_length, int) and not isinstance(max_length, bool) and max_length >= 0):
            max_length = None
        if not (isinstance(max_length_bytes, int) and not isinstance(max_length_bytes, bool)
                and max_length_bytes >= 0):
            max_length_bytes = None
        if overflow not in OVERFLOW_MODES:
            overflow = "drop-head"
        msgs = self.messages
        if max_length_bytes is not None and msgs.__class__ is not SizedMessages:
            if msgs.__class__ is LazyMessages:  # the byte count needs every entry
                msgs = msgs.materialize()
            self.messages = SizedMessages(msgs)
        elif max_length_bytes is None and msgs.__class__ is SizedMessages:
            self.messages = msgs.inner
        if max_length is None and max_length_bytes is None:
            self.limit = None
            return
        self.limit = LengthLimit(max_length, max_length_bytes, self.overflow_mode(overflow))
        self._drop_head()

    def overflow_mode(self, overflow: str) -> str:
        return overflow

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

    def _schedule_expiry(self) -> None:
        """Arm the timer for the head entry's deadline, if it has one."""
        messages = self.messages
        if not messages or self.deleted:
            return
        at = messages[0].expires
        if not at:
            return
        timer = self._expiry_timer
        if timer is not None:
            if self._expiry_at <= at:
                return
            timer.cancel()
        self._expiry_timer = self.vhost.timers.call_later(max(0.0, at - monotonic()), self._on_expiry_timer)
        self._expiry_at = at

    def _on_expiry_timer(self) -> None:
        self._expiry_timer = None
        if self.deleted:
            return
        self._drop_expired()
        if self.consumers and self.messages:
            self.dispatch()
        else:
            self._schedule_expiry()

    # ----------------------------------------------------------------- consumers
    def add_consumer(self, consumer: Consumer) -> None:
        if self._expires_timer is not None:
            self.cancel_expires()
        self.consumers.append(consumer)
        self.had_consumer = True
        if consumer.exclusive:
            self.exclusive_consumer = consumer
        if self.single_active:
            if self.active_consumer is None:
                self.active_consumer = consumer
        elif consumer.priority or self.consumer_levels is not None:
            self._level_add(consumer)
        self.dispatch()

    def remove_consumer(self, consumer: Consumer) -> None:
        """Forget ``consumer``.  Does not dispatch: the session does once the channel's unacked messages
        are back in the queue (so a new single active consumer gets them first, in order)."""
        try:
            self.consumers.remove(consumer)
        except ValueError:
            return
        if self.exclusive_consumer is consumer:
            self.exclusive_consumer = None
        if self.single_active:
            if self.active_consumer is consumer:
                self._next_active_consumer()
        elif self.consumer_levels is not None:
            self._level_remove(consumer)
        if self.expires and not self.consumers and not self.deleted:
            self.reset_expires()

    # ------------------------------------------- consumer priorities, single active consumer
    def _pick_by_priority(self):
        """The consumer for the next message: the highest level with a ready consumer, round robin within."""
        for _, level in self.consumer_levels:
            for _ in range(len(level)):
                c = level[0]
                level.rotate(-1)
                if c.ready():
                    return c
        return None

    def _pick_single_active(self):
        c = self.active_consumer
        return c if c is not None and c.ready() else None

    def _next_active_consumer(self) -> None:
        """The active consumer went: the highest priority remaining one, the earliest registered among
        equals, takes over (RabbitMQ 3.10 takes the head of its consumer priority queue)."""
        best = None
        for c in self.consumers:  # registration order (never rotated with SAC on)
            if best is None or c.priority > best.priority:
                best = c
        self.active_consumer = best

    def _level_add(self, consumer: Consumer) -> None:
        levels = self.consumer_levels
        if levels is None:  # the first consumer with a priority: sort every consumer into levels
            levels = self.consumer_levels = []
            self._pick = self._pick_by_priority
            todo = list(self.consumers)
        else:
            todo = [consumer]
        for c in todo:
            p = c.priority
            for i, (lp, level) in enumerate(levels):
                if lp == p:
                    level.append(c)
                    break
                if lp < p:
                    levels.insert(i, (p, deque([c])))
                    break
            else:
                levels.append((p, deque([c])))

    def _level_remove(self, consumer: Consumer) -> None:
        levels = self.consumer_levels
        for i, (lp, level) in enumerate(levels):
            if lp == consumer.priority:
                try:
                    level.remove(consumer)
                except ValueError:
                    pass
                if not level:
                    del levels[i]
                break
        if not levels or (len(levels) == 1 and levels[0][0] == 0):  # no priorities left: plain round robin
            self.consumer_levels = None
            self._pick = None

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


def _seq(entry: QueueEntry) -> int:
    return entry.seq
