"""Ready containers: where a queue keeps the entries waiting for a consumer, behind one interface.

Theory of operation: a queue's ``messages`` is one of four containers, chosen by
its settings, and the queue only ever calls methods on it (no class checks):

* :class:`Fifo` (the common case): a ``collections.deque`` subclass, so
  ``append``, ``popleft``, ``len``, ``bool`` and ``[0]``, the calls on the hot
  path, are deque's own C code;
* :class:`PriorityMessages` (``x-max-priority``): one Fifo per level, highest
  level first, FIFO within a level;
* :class:`SizedMessages` (``x-max-length-bytes``): wraps a Fifo or a
  PriorityMessages and keeps the total body size of the ready entries;
* :class:`~.lazy.LazyMessages` (a durable queue past its paging limit): a
  Fifo head plus a tail of store ids (see lazy.py).

Every container offers (besides ``append``/``popleft``/``len``/``bool``/``[0]``/
iteration/``clear``) the operations in :class:`ReadyMessages`: ``requeue``
(sorted entries back at their original places, by sequence number),
``put_back`` (one returned entry behind the returned ones at the head: quorum
queues with a delivery limit), ``restore`` (an entry recovered from the store),
``take_all`` (empty it: entries, plus store ids of entries that are ids only),
``materialize`` (every entry as an object), ``bytes`` (total ready body size),
``with_byte_count``/``without_byte_count`` (the container with or without a
byte count, for a byte limit being set or lifted) and ``pageable_tail`` (may it
become a lazy tail).  ``[0]`` and ``popleft`` raise IndexError when empty.
"""
from __future__ import annotations

from collections import deque
from heapq import merge
from typing import Protocol


def entry_size(entry) -> int:
    """The body size of a ready entry (from its content header, so a paged-out body counts too)."""
    return int.from_bytes(entry.message.header[4:12], "big")


def _seq(entry) -> int:
    return entry.seq


def merge_sorted(msgs: deque, entries: list) -> None:
    """Put ``entries`` (sorted by seq) back into ``msgs`` at their original places."""
    if not msgs or entries[-1].seq < msgs[0].seq:
        msgs.extendleft(reversed(entries))
    else:
        head = []
        last = entries[-1].seq
        while msgs and msgs[0].seq < last:
            head.append(msgs.popleft())
        msgs.extendleft(reversed(list(merge(head, entries, key=_seq))))


def _put_back(msgs: deque, entry) -> None:
    """Insert ``entry`` behind the returned (redelivered) entries waiting at the head of ``msgs``."""
    i = 0
    for e in msgs:
        if not e.redelivered:
            break
        i += 1
    msgs.insert(i, entry)


class ReadyMessages(Protocol):
    """The interface every ready container offers (documentation; the containers do not inherit it)."""
    pageable_tail: bool  # may this container turn into a lazy tail (only a plain Fifo may)

    def append(self, entry) -> None: ...
    def popleft(self): ...
    def clear(self) -> None: ...
    def requeue(self, entries: list) -> None: ...
    def put_back(self, entry) -> None: ...
    def restore(self, entry) -> None: ...
    def take_all(self) -> tuple: ...
    def materialize(self): ...
    @property
    def bytes(self) -> int: ...
    def with_byte_count(self): ...
    def without_byte_count(self): ...


class _AllInMemory:
    """What the containers that keep every entry as an object share."""
    __slots__ = ()

    def take_all(self) -> tuple:
        entries = list(self)
        self.clear()
        return entries, ()

    def materialize(self):
        return self

    @property
    def bytes(self) -> int:
        return sum(map(entry_size, self))

    def with_byte_count(self):
        return SizedMessages(self)

    def without_byte_count(self):
        return self


class Fifo(_AllInMemory, deque):
    """The plain ready container: the entries in sequence order."""
    __slots__ = ()
    pageable_tail = True

    def requeue(self, entries: list) -> None:
        merge_sorted(self, entries)

    def put_back(self, entry) -> None:
        _put_back(self, entry)

    def restore(self, entry) -> None:
        self.append(entry)


class PriorityMessages(_AllInMemory):
    """The ready entries of a priority queue: a Fifo per level, highest level first.  A missing priority
    is 0 and one above the maximum counts as the maximum, as in RabbitMQ."""
    __slots__ = ("levels", "max_priority", "count")
    pageable_tail = False

    def __init__(self, max_priority: int):
        self.max_priority = max_priority
        self.levels = [Fifo() for _ in range(max_priority + 1)]
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
            merge_sorted(self.levels[lvl], es)
        self.count += len(entries)

    def put_back(self, entry) -> None:
        _put_back(self.levels[self.level(entry)], entry)
        self.count += 1

    restore = append


class SizedMessages:
    """The ready entries of a queue with ``x-max-length-bytes``: a Fifo or a :class:`PriorityMessages`
    (``inner``) and the total size of the ready bodies (RabbitMQ's ``message_bytes_ready``)."""
    __slots__ = ("inner", "bytes")
    pageable_tail = False

    def __init__(self, inner):
        self.inner = inner
        self.bytes = sum(map(entry_size, inner))

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
        self.bytes += entry_size(entry)

    def popleft(self):
        entry = self.inner.popleft()
        self.bytes -= entry_size(entry)
        return entry

    def clear(self) -> None:
        self.inner.clear()
        self.bytes = 0

    def requeue(self, entries: list) -> None:
        self.inner.requeue(entries)
        self.bytes += sum(map(entry_size, entries))

    def put_back(self, entry) -> None:
        self.inner.put_back(entry)
        self.bytes += entry_size(entry)

    restore = append

    def take_all(self) -> tuple:
        self.bytes = 0
        return self.inner.take_all()

    def materialize(self):
        return self

    def with_byte_count(self):
        return self

    def without_byte_count(self):
        return self.inner
