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
still held: a compacted copy of a message keeps only the queues that still held it, an ACK removes a
queue, a DROPQ every message of one.  A record whose magic, length or CRC is wrong is skipped: the
scanner resynchronises on the next magic marker that starts a valid record, so nothing else is lost;
at the end of the last segment such a tail is a torn write, and the store truncates it.
"""
from __future__ import annotations

import logging
import struct

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


class Scanner:
    """Recovery: the records of a store's segments applied in order (see the module docstring)."""

    def __init__(self):
        # mid -> [(ex_rk, exchange, routing key), header, holders, delivered, segment, offset, length];
        # holders is a queue id, a set of them, or None once no queue holds the message; delivered is
        # None or a set of queue ids
        self.msgs: dict[int, list] = {}
        self.names: dict[bytes, tuple] = {}  # raw exchange+routing key -> one shared (raw, ex, rk)
        self.corrupt = 0  # records skipped

    def segment(self, data: bytes, number: int, path: str, last: bool) -> int:
        """Apply the records of one segment; return the offset where valid data ends."""
        off = 0
        n = len(data)
        while off < n:
            rec = parse_at(data, off)
            if rec is None:
                nxt = resync(data, off + 1)
                if nxt is None:
                    if last:
                        return off  # a torn tail: truncate
                    log.error("corrupted data at %s offset %d to the end of the segment skipped", path, off)
                    self.corrupt += 1
                    return n
                log.error("corrupted record at %s offset %d skipped (%d bytes)", path, off, nxt - off)
                self.corrupt += 1
                off = nxt
                continue
            rtype, payload, length = rec
            try:
                self._apply(rtype, payload, number, off, length)
            except (struct.error, IndexError, UnicodeDecodeError) as e:
                log.error("undecodable record at %s offset %d skipped: %s", path, off, e)
                self.corrupt += 1
            off += length
        return off

    def _apply(self, rtype, payload, segno, off, length) -> None:
        msgs = self.msgs
        if rtype == T_MSG:
            mid, nq = MSG_HEAD.unpack_from(payload, 0)
            p = MSG_HEAD.size
            if nq == 1:
                qids = I32.unpack_from(payload, p)[0]
            else:
                qids = set(struct.unpack_from(f">{nq}I", payload, p))
            p += 4 * nq
            q = p + 1 + payload[p]
            e = q + 1 + payload[q]
            raw = payload[p:e]
            names = self.names.get(raw)
            if names is None:  # messages share a few exchange/routing key pairs: keep one copy of each
                names = self.names[raw] = (raw, payload[p + 1:q].decode("utf-8", "surrogateescape"),
                                            payload[q + 1:e].decode("utf-8", "surrogateescape"))
            hlen, = I32.unpack_from(payload, e)
            header = payload[e + 4:e + 4 + hlen]
            # the body stays on disk: read back on demand (read_body), so a backlog need not fit in memory
            old = msgs.get(mid)
            delivered = None
            if old is not None:  # a compacted copy: keep the queues that still hold it
                held = old[2]
                if held is None:
                    qids = None
                else:
                    qids = as_set(qids) & as_set(held)
                    qids = (next(iter(qids)) if len(qids) == 1 else qids) if qids else None
                delivered = old[3]
            msgs[mid] = [names, header, qids, delivered, segno, off, length]
        elif rtype == T_ACK:
            qid, mid = QI.unpack_from(payload)
            m = msgs.get(mid)
            if m is not None:
                held = m[2]
                if held.__class__ is int:
                    if held == qid:
                        del msgs[mid]
                elif held is not None:
                    held.discard(qid)
                    if not held:
                        del msgs[mid]
        elif rtype == T_DELIVERED:
            qid, mid = QI.unpack_from(payload)
            m = msgs.get(mid)
            if m is not None:
                if m[3] is None:
                    m[3] = {qid}
                else:
                    m[3].add(qid)
        elif rtype == T_DROPQ:
            qid, = I32.unpack_from(payload)
            for m in msgs.values():
                held = m[2]
                if held.__class__ is int:
                    if held == qid:
                        m[2] = None
                elif held is not None:
                    held.discard(qid)
                    if not held:
                        m[2] = None
        else:
            raise IndexError(f"unknown record type {rtype}")
