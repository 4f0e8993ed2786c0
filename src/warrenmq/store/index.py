"""The message store's index: message id -> where its record is and which queues still hold it.

Theory of operation: millions of stored messages must cost little memory, so an entry is one int
when a single queue holds the message (:func:`ref`: segment, offset, length and queue id packed
together), and :class:`Index` keeps those ints in packed arrays, chunk by chunk of consecutive ids
(about 16 bytes a message).  A message held by several queues has a list entry instead
(``[segment, set of queue ids, offset, length]``).
"""
from __future__ import annotations

from array import array


M32 = (1 << 32) - 1  # the low 32 bits of a packed entry: its queue id
_M40 = (1 << 40) - 1


def ref(segno: int, holders, off: int, length: int):
    """The index entry of a stored message: one int when a single queue holds it (most messages; about
    40 bytes instead of a list and its ints), else ``[segment, set of queue ids, offset, length]``."""
    if holders.__class__ is int:
        return (((segno << 40 | off) << 32 | length) << 32) | holders
    return [segno, holders, off, length]


def fields(ref) -> tuple:
    """(segment, holders, offset, length) of an index entry."""
    if ref.__class__ is int:
        return ref >> 104, ref & M32, (ref >> 64) & _M40, (ref >> 32) & M32
    return ref[0], ref[1], ref[2], ref[3]


_CHUNK_BITS = 12
_CHUNK_MASK = (1 << _CHUNK_BITS) - 1
_SPARSE = 32  # an old chunk with fewer live entries than this becomes a dict
_ZERO = array("Q", (0,))


class Index:
    """The message store's index: message id -> its entry (see :func:`ref`), in about 16 bytes a message.

    Message ids grow one by one, so entries held by a single queue live in chunks of 4,096 ids, each
    two packed arrays of unsigned 64-bit ints: ``hi`` = segment << 40 | offset, ``lo`` = length << 32
    | queue id (0: no entry; a record is never empty). A chunk goes when its last entry does, and an
    old chunk pinned by a few long-lived messages becomes a small dict of packed entries. Entries held
    by several queues (a list with a set) are kept in ``multi``."""
    __slots__ = ("chunks", "multi", "count", "newest")

    def __init__(self):
        self.chunks: dict = {}  # chunk number -> [hi, lo, live] or {mid: packed entry}
        self.multi: dict = {}
        self.count = 0
        self.newest = -1  # the chunk new ids go to: never made sparse

    def __len__(self) -> int:
        return self.count

    def __contains__(self, mid: int) -> bool:
        return self.get(mid) is not None

    def get(self, mid: int, default=None):
        c = self.chunks.get(mid >> _CHUNK_BITS)
        if c is not None:
            if c.__class__ is dict:
                v = c.get(mid)
                if v is not None:
                    return v
            else:
                i = mid & _CHUNK_MASK
                lo = c[1][i]
                if lo:
                    return c[0][i] << 64 | lo
        if self.multi:
            return self.multi.get(mid, default)
        return default

    def __setitem__(self, mid: int, ref) -> None:
        if ref.__class__ is not int:
            if self._pop_packed(mid) is None and mid not in self.multi:
                self.count += 1
            self.multi[mid] = ref
            return
        if self.multi and self.multi.pop(mid, None) is not None:
            self.count -= 1
        n = mid >> _CHUNK_BITS
        c = self.chunks.get(n)
        if c is None:
            c = self.chunks[n] = [_ZERO * (1 << _CHUNK_BITS), _ZERO * (1 << _CHUNK_BITS), 0]
            if n > self.newest:
                self.newest = n
        if c.__class__ is dict:
            if mid not in c:
                self.count += 1
            c[mid] = ref
            return
        i = mid & _CHUNK_MASK
        if not c[1][i]:
            c[2] += 1
            self.count += 1
        c[0][i] = ref >> 64
        c[1][i] = ref & 0xFFFFFFFFFFFFFFFF

    def __delitem__(self, mid: int) -> None:
        if self._pop_packed(mid) is None:
            del self.multi[mid]
        self.count -= 1

    def _pop_packed(self, mid: int):
        """Remove ``mid``'s packed entry if it has one (returning it); ``count`` is the caller's."""
        n = mid >> _CHUNK_BITS
        c = self.chunks.get(n)
        if c is None:
            return None
        if c.__class__ is dict:
            v = c.pop(mid, None)
            if v is not None and not c:
                del self.chunks[n]
            return v
        i = mid & _CHUNK_MASK
        lo = c[1][i]
        if not lo:
            return None
        v = c[0][i] << 64 | lo
        c[0][i] = c[1][i] = 0
        c[2] -= 1
        if not c[2]:
            del self.chunks[n]
        elif c[2] < _SPARSE and n != self.newest:
            self.chunks[n] = {mid: e for mid, e in self._chunk_items(n, c)}
        return v

    @staticmethod
    def _chunk_items(n: int, c):
        hi, lo = c[0], c[1]
        base = n << _CHUNK_BITS
        for i, v in enumerate(lo):
            if v:
                yield base | i, hi[i] << 64 | v

    def items(self) -> list:
        out = []
        for n, c in self.chunks.items():
            out.extend(c.items() if c.__class__ is dict else self._chunk_items(n, c))
        out.extend(self.multi.items())
        return out
