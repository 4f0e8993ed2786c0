"""The message store's records: their format, and the scan that recovers a store from its segments.

Theory of operation: every change is a record appended to a segment file::

    magic (2) | payload length (4) | crc32 of type+payload (4) | type (1) | payload

* ``MSG``: message id, the durable queue ids it went to, exchange and routing key (as two short
  strings), the raw content header, the body.  A message routed to several durable queues is stored
  once.
* ``DELIVERED``: (queue id, message id) was handed to a consumer, so it comes back redelivered after
  a crash.
* ``ACK``: (queue id, message id) left that queue for good.
* ``DROPQ``: a queue was deleted with everything in it.

Recovery (:class:`Scanner`) applies the records of the segments in order to a table of the messages
still held, built as the index's own packed chunks (no object per message): a compacted copy of a
message keeps only the queues that still held it, an ACK removes a queue, a DROPQ every message of
one.  A record whose magic, length or CRC is wrong is skipped: the scanner resynchronises on the next
magic marker that starts a valid record, so nothing else is lost; at the end of the last segment such
a tail is a torn write, and the store copies it aside and truncates it.
"""
from __future__ import annotations

import logging
import struct
from array import array

try:  # ISA-L's CRC-32: the same checksum as zlib's, several times faster on large bodies
    from isal.isal_zlib import crc32
except ImportError:  # pragma: no cover - a platform isal has no wheels for
    from zlib import crc32

log = logging.getLogger("warrenmq.store")

MAGIC = b"\xa7W"
REC = struct.Struct(">2sIIB")
REC_SIZE = REC.size
T_MSG, T_DELIVERED, T_ACK, T_DROPQ = 1, 2, 3, 4
QI = struct.Struct(">IQ")
MSG_HEAD = struct.Struct(">QH")
I32 = struct.Struct(">I")


def msg_parts(payload: bytes) -> tuple:
    """(exchange and routing key as two short strings, content header, body) of a MSG record's payload."""
    nq = MSG_HEAD.unpack_from(payload, 0)[1]
    p = MSG_HEAD.size + 4 * nq
    q = p + 1 + payload[p]  # after the exchange
    e = q + 1 + payload[q]  # after the routing key
    hlen, = I32.unpack_from(payload, e)
    return payload[p:e], payload[e + 4:e + 4 + hlen], payload[e + 4 + hlen:]


def as_set(qids) -> set:
    return {qids} if qids.__class__ is int else set(qids)


def record(rtype: int, payload: bytes) -> bytes:
    tb = bytes((rtype,))
    return REC.pack(MAGIC, len(payload), crc32(payload, crc32(tb)), rtype) + payload


#: the CRC of a MSG record's type byte, where the CRC of its parts starts
CRC_MSG = crc32(bytes((T_MSG,)))


def parse_at(data: bytes, off: int):
    """(type, payload, length) of the valid record at ``off``, or None."""
    if len(data) - off < REC_SIZE:
        return None
    magic, size, crc, rtype = REC.unpack_from(data, off)
    end = off + REC_SIZE + size
    if magic != MAGIC or end > len(data):
        return None
    payload = data[off + REC_SIZE:end]
    if crc32(payload, crc32(bytes((rtype,)))) != crc:
        return None
    return rtype, payload, REC_SIZE + size


def resync(data: bytes, start: int):
    """Where the next valid record after ``start`` begins, or None."""
    pos = data.find(MAGIC, start)
    while pos != -1:
        if parse_at(data, pos) is not None:
            return pos
        pos = data.find(MAGIC, pos + 1)
    return None


_MSG1 = struct.Struct(">2sIIBQHI")  # a record head and the start of a MSG payload for one queue
_QREC = struct.Struct(">2sIIBIQ")  # a whole DELIVERED or ACK record
_CHUNK_BITS = 12  # as the index's chunks (index.Index): the scanner builds them in place
_CHUNK_MASK = (1 << _CHUNK_BITS) - 1
_M32 = (1 << 32) - 1
_M40 = (1 << 40) - 1
_ZERO = array("Q", (0,))
#: the high byte of the property flags of a content header (class, weight, body size, flags)
_FLAGS_HI = 12


class Scanner:
    """Recovery: the records of a store's segments applied in order (see the module docstring).

    The table it builds is the index's own (:class:`~.index.Index`): messages held by one queue in
    chunks of two packed arrays (``hi`` = segment << 40 | offset, ``lo`` = length << 32 | queue id),
    the others in ``multi`` (mid -> [segment, set of queue ids, offset, length]).  The common records
    (a MSG for one queue, an ACK, a DELIVERED) are applied inline with one ``unpack_from`` and one CRC
    each; anything else goes through :meth:`_apply`."""

    def __init__(self, expiration_flag: int = 0):
        self.chunks: dict = {}  # chunk number -> [hi, lo, live]
        self.multi: dict = {}
        self.dead: set = set()  # ids of messages every queue of which was deleted (DROPQ)
        self.delivered: set = set()  # mid << 32 | queue id
        self.expiring: set = set()  # ids of messages whose header has ``expiration_flag``
        self.expiration_flag = expiration_flag  # (the high byte of the property flags)
        self.max_id = 0
        self.corrupt = 0  # records skipped

    def segment(self, data: bytes, number: int, path: str, last: bool) -> int:
        """Apply the records of one segment; return the offset where valid data ends."""
        off = 0
        n = len(data)
        mv = memoryview(data)
        msg1, qrec = _MSG1.unpack_from, _QREC.unpack_from
        chunks, multi, dead, delivered = self.chunks, self.multi, self.dead, self.delivered
        exp_flag, expiring = self.expiration_flag, self.expiring
        seg_hi = number << 40
        cur, hi, lo, c = -1, None, None, None
        max_id = self.max_id
        while off < n:
            if n - off >= 25:
                magic, size, crc, rtype, mid, nq, qid = msg1(data, off)
                end = off + 11 + size
                if magic == MAGIC and end <= n and crc32(mv[off + 10:end]) == crc:
                    if rtype == T_MSG and nq == 1 and size >= 16:
                        if mid > max_id:
                            max_id = mid
                        k = mid >> _CHUNK_BITS
                        if k != cur:
                            c = chunks.get(k)
                            if c is None:
                                c = chunks[k] = [_ZERO * (1 << _CHUNK_BITS), _ZERO * (1 << _CHUNK_BITS), 0]
                            cur, hi, lo = k, c[0], c[1]
                        i = mid & _CHUNK_MASK
                        if lo[i] or (multi and mid in multi) or (dead and mid in dead):
                            self._msg(mid, (qid,), number, off, end - off)  # a compacted copy
                        else:
                            hi[i] = seg_hi | off
                            lo[i] = (end - off) << 32 | qid
                            c[2] += 1
                        if exp_flag:  # after the exchange and the routing key: the header
                            p = off + 25
                            p += 1 + data[p]
                            if p < end:
                                p += 5 + data[p] + _FLAGS_HI
                                if p < end and data[p] & exp_flag:
                                    expiring.add(mid)
                        off = end
                        continue
                    if (rtype == T_ACK or rtype == T_DELIVERED) and size == 12:
                        qid, mid = qrec(data, off)[4:]
                        k = mid >> _CHUNK_BITS
                        if k != cur:
                            cc = chunks.get(k)
                            if cc is not None:
                                c, cur, hi, lo = cc, k, cc[0], cc[1]
                        i = mid & _CHUNK_MASK
                        if k == cur and lo[i] and lo[i] & _M32 == qid:
                            if rtype == T_ACK:
                                lo[i] = 0
                                hi[i] = 0
                                c[2] -= 1
                                if delivered:
                                    delivered.discard(mid << 32 | qid)
                            else:
                                delivered.add(mid << 32 | qid)
                        elif multi and mid in multi:
                            self._apply(rtype, data[off + REC_SIZE:end], number, off, end - off)
                            cur = -1
                        off = end
                        continue
                    try:
                        self._apply(rtype, data[off + REC_SIZE:end], number, off, end - off)
                    except (struct.error, IndexError, UnicodeDecodeError) as e:
                        log.error("undecodable record at %s offset %d skipped: %s", path, off, e)
                        self.corrupt += 1
                    cur = -1  # (_apply may have changed any chunk)
                    off = end
                    continue
            rec = parse_at(data, off)
            if rec is None:
                nxt = resync(data, off + 1)
                if nxt is None:
                    self.max_id = max(self.max_id, max_id)
                    if last:
                        return off  # a torn tail: truncate
                    log.error("corrupted data at %s offset %d to the end of the segment skipped", path, off)
                    self.corrupt += 1
                    return n
                log.error("corrupted record at %s offset %d skipped (%d bytes)", path, off, nxt - off)
                self.corrupt += 1
                off = nxt
                continue
            rtype, payload, length = rec  # a valid record shorter than the fast path reads
            try:
                self._apply(rtype, payload, number, off, length)
            except (struct.error, IndexError, UnicodeDecodeError) as e:
                log.error("undecodable record at %s offset %d skipped: %s", path, off, e)
                self.corrupt += 1
            cur = -1
            off += length
        self.max_id = max(self.max_id, max_id)
        return off

    # the general case, entry by entry -------------------------------------------------------------
    def _get(self, mid: int):
        """(segment, holders, offset, length) of ``mid``'s entry, or None."""
        c = self.chunks.get(mid >> _CHUNK_BITS)
        if c is not None:
            i = mid & _CHUNK_MASK
            v = c[1][i]
            if v:
                return c[0][i] >> 40, v & _M32, c[0][i] & _M40, v >> 32
        m = self.multi.get(mid)
        return None if m is None else tuple(m)

    def _set(self, mid: int, segno: int, holders, off: int, length: int) -> None:
        self._forget(mid)
        if holders.__class__ is not int and len(holders) == 1:
            holders = next(iter(holders))
        if holders.__class__ is int:
            k = mid >> _CHUNK_BITS
            c = self.chunks.get(k)
            if c is None:
                c = self.chunks[k] = [_ZERO * (1 << _CHUNK_BITS), _ZERO * (1 << _CHUNK_BITS), 0]
            i = mid & _CHUNK_MASK
            c[0][i] = segno << 40 | off
            c[1][i] = length << 32 | holders
            c[2] += 1
        else:
            self.multi[mid] = [segno, holders, off, length]

    def _forget(self, mid: int) -> None:
        c = self.chunks.get(mid >> _CHUNK_BITS)
        if c is not None:
            i = mid & _CHUNK_MASK
            if c[1][i]:
                c[0][i] = c[1][i] = 0
                c[2] -= 1
        self.multi.pop(mid, None)

    def _msg(self, mid: int, qids, segno: int, off: int, length: int) -> None:
        """A MSG record: a new message, or a compacted copy of one (it keeps the queues still holding it)."""
        if mid > self.max_id:
            self.max_id = mid
        if mid in self.dead:
            return
        old = self._get(mid)
        qids = set(qids)
        if old is not None:
            qids &= as_set(old[1])
            if not qids:
                self._forget(mid)
                return
        self._set(mid, segno, qids, off, length)

    def _remove(self, mid: int, qid: int) -> bool:
        """``qid`` let go of ``mid``; True when it held it."""
        old = self._get(mid)
        if old is None:
            return False
        held = as_set(old[1])
        if qid not in held:
            return False
        held.discard(qid)
        if held:
            self._set(mid, old[0], held, old[2], old[3])
        else:
            self._forget(mid)
        return True

    def _apply(self, rtype, payload, segno, off, length) -> None:
        if rtype == T_MSG:
            mid, nq = MSG_HEAD.unpack_from(payload, 0)
            p = MSG_HEAD.size
            qids = struct.unpack_from(f">{nq}I", payload, p)
            p += 4 * nq
            q = p + 1 + payload[p]
            e = q + 1 + payload[q]
            payload[p + 1:q].decode("utf-8", "surrogateescape")  # (undecodable: the record is skipped)
            hlen, = I32.unpack_from(payload, e)
            header = payload[e + 4:e + 4 + hlen]
            self._msg(mid, qids, segno, off, length)
            if self.expiration_flag and len(header) > _FLAGS_HI and header[_FLAGS_HI] & self.expiration_flag:
                self.expiring.add(mid)
        elif rtype == T_ACK:
            qid, mid = QI.unpack_from(payload)
            self._remove(mid, qid)
            self.delivered.discard(mid << 32 | qid)
        elif rtype == T_DELIVERED:
            qid, mid = QI.unpack_from(payload)
            old = self._get(mid)
            if old is not None and qid in as_set(old[1]):
                self.delivered.add(mid << 32 | qid)
        elif rtype == T_DROPQ:
            qid, = I32.unpack_from(payload)
            gone = []
            for k, c in self.chunks.items():
                lo = c[1]
                base = k << _CHUNK_BITS
                for i, v in enumerate(lo):
                    if v and v & _M32 == qid:
                        gone.append(base | i)
            for mid, m in self.multi.items():
                if qid in m[1]:
                    gone.append(mid)
            for mid in gone:
                self._remove(mid, qid)
                if self._get(mid) is None:
                    self.dead.add(mid)
        else:
            raise IndexError(f"unknown record type {rtype}")
