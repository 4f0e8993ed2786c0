"""The durable message store: an append-only log of CRC-checked records in segment files.

Theory of operation.  Every change is a record appended to the active segment
file (``<dir>/<number>.seg``)::

    magic (2) | payload length (4) | crc32 of type+payload (4) | type (1) | payload

* ``MSG``: message id, the durable queue ids it went to, exchange and routing
  key (as two short strings), the raw content header, the body.  A message
  routed to several durable queues is stored once.
* ``DELIVERED``: (queue id, message id) was handed to a consumer, so it comes
  back redelivered after a crash.
* ``ACK``: (queue id, message id) left that queue for good.
* ``DROPQ``: a queue was deleted with everything in it.

Records are buffered in memory (a message record as its parts: the body is not
copied into it) and written by ``write_pending`` once per batch with
``pwritev`` at the offset the batch was given when it was taken (so a batch
whose write failed part way can be written again where it belongs); ``sync`` fsyncs once for the whole batch (group commit) and
confirms for the batch's persistent messages go out only after it (see
``MessageStore``).  Under the broker, ``take_pending``/``write_batch``/
``written`` split that cycle so that the write, like the fsync, runs on a
worker thread of the committer while the event loop goes on; the segment's
size, and so what ``read_body`` may read, only grows once the write is done.
Nothing switches files or compacts while a write is in flight, or while a
written batch waits for its fsync (``_unsynced``: those are what ``retry``
writes again after a failed write or fsync, since after a failed fsync the
kernel may have dropped the dirty pages).  Nothing is created on disk before
the first record: the directory and the active segment file are made then.  A large message
record that every queue has let go of before its batch is taken (a consumer
acked it while the previous batch was being written) is cut from the buffer and
never written, as RabbitMQ's message store drops a pending write for a removed
message: under a steady publish/consume load most large bodies never reach the
disk.  Its confirm still waits for the fsync of the batch it belonged to.  A
DELIVERED record for such a message waits for the batch to be taken too, and
follows it unless it was cut.

Space: each segment counts the messages it holds that some queue still needs.
Segments are deleted oldest first once that count is zero (a newer segment may
hold the ACK records that keep an older one's messages dead, so order matters).
When the oldest segment is mostly dead, its live messages are copied forward
into the active segment (compaction) so one long-lived message does not pin
every later segment.

Recovery scans the segments in order.  A torn record at the end of the last
segment (a crash mid-write) is truncated away.  A record whose CRC does not
match elsewhere is reported in the log and skipped: the scanner resynchronises
on the next magic marker that starts a valid record, so nothing else is lost.
"""
from __future__ import annotations

import logging
import os
import struct
from array import array

try:  # ISA-L's CRC-32: the same checksum as zlib's, several times faster on large bodies
    from isal.isal_zlib import crc32 as _crc32
except ImportError:  # pragma: no cover - a platform isal has no wheels for
    from zlib import crc32 as _crc32

from .base import MessageStore, RecoveredMessage

log = logging.getLogger("warrenmq.store")

MAGIC = b"\xa7W"
_REC = struct.Struct(">2sIIB")
REC_SIZE = _REC.size
T_MSG, T_DELIVERED, T_ACK, T_DROPQ = 1, 2, 3, 4
_QI = struct.Struct(">IQ")
_MSG_HEAD = struct.Struct(">QH")
_I = struct.Struct(">I")

DEFAULT_SEGMENT_SIZE = 64 << 20
_CRC_MSG = _crc32(bytes((T_MSG,)))
# read_messages: records at most this far apart are read with one pread, of at most this many bytes
_READ_GAP = 64 << 10
_READ_SPAN = 4 << 20
# bodies at least this large are written from where they are; smaller pieces are joined into runs, so
# a batch is a few large buffers (each writev lets the writer thread wait for the GIL once)
_LARGE = 8192
_IOV_MAX = min(os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 1024, 1024)


def _msg_parts(payload: bytes) -> tuple:
    """(exchange and routing key as two short strings, content header, body) of a MSG record's payload."""
    nq = _MSG_HEAD.unpack_from(payload, 0)[1]
    p = _MSG_HEAD.size + 4 * nq
    q = p + 1 + payload[p]  # after the exchange
    e = q + 1 + payload[q]  # after the routing key
    hlen, = _I.unpack_from(payload, e)
    return payload[p:e], payload[e + 4:e + 4 + hlen], payload[e + 4 + hlen:]


_M32 = (1 << 32) - 1
_M40 = (1 << 40) - 1


def _ref(segno: int, holders, off: int, length: int):
    """The index entry of a stored message: one int when a single queue holds it (most messages; about
    40 bytes instead of a list and its ints), else ``[segment, set of queue ids, offset, length]``."""
    if holders.__class__ is int:
        return (((segno << 40 | off) << 32 | length) << 32) | holders
    return [segno, holders, off, length]


def _fields(ref) -> tuple:
    """(segment, holders, offset, length) of an index entry."""
    if ref.__class__ is int:
        return ref >> 104, ref & _M32, (ref >> 64) & _M40, (ref >> 32) & _M32
    return ref[0], ref[1], ref[2], ref[3]


_CHUNK_BITS = 12
_CHUNK_MASK = (1 << _CHUNK_BITS) - 1
_SPARSE = 32  # an old chunk with fewer live entries than this becomes a dict
_ZERO = array("Q", (0,))


class _Index:
    """The message store's index: message id -> its entry (see :func:`_ref`), in about 16 bytes a message.

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


def _as_set(qids) -> set:
    return {qids} if qids.__class__ is int else set(qids)


def _msg_id(r: RecoveredMessage) -> int:
    return r.msg_id


def _record(rtype: int, payload: bytes) -> bytes:
    tb = bytes((rtype,))
    return _REC.pack(MAGIC, len(payload), _crc32(payload, _crc32(tb)), rtype) + payload


class _Segment:
    __slots__ = ("number", "path", "live", "count", "size")

    def __init__(self, number: int, path: str, size: int = 0):
        self.number = number
        self.path = path
        self.live = 0  # messages in this segment some queue still holds
        self.count = 0  # messages written to this segment
        self.size = size


class SegmentStore(MessageStore):
    durable = True

    def __init__(self, directory: str, fsync: bool = True, segment_size: int = DEFAULT_SEGMENT_SIZE):
        super().__init__()
        self.dir = directory
        self.fsync = fsync
        self.segment_size = segment_size
        self.next_msg_id = 1
        self.segments: dict[int, _Segment] = {}
        # msg_id -> its segment number, the queues still holding it (an int, or a set when several), and
        # its record's offset and length, packed by _ref (read with _fields)
        self.refs = _Index()
        self._buf: list = []
        self._buf_bytes = 0
        self._small: list = []  # small records and pieces not yet joined into a buffer of _buf
        self._pending_mids: list = []  # ids of the message records in _buf/_small (see _rotate)
        # large message records not taken yet: mid -> (position of its head in _buf, record size, prefix,
        # content header); the head (with the CRC) is made by take_pending, unless every queue let go of
        # the message first: then the record is cut (never written) and its size kept in _cut
        self._large: dict = {}
        self._cut: dict = {}
        self._late: list = []  # (queue id, message id) of DELIVERED records for messages in _large
        self._inflight = 0  # bytes taken by take_pending whose write is not done yet
        self._unsynced: list = []  # batches written since the last fsync known to cover them (see retry)
        self._fd = -1
        self._active: _Segment | None = None
        self._recovered: dict[int, list[RecoveredMessage]] | None = None
        self._drop: list = []  # paged-out messages whose body goes once their record is written
        self._read_fds: dict[int, int] = {}
        self.corrupt_records = 0
        self._scan()

    # ------------------------------------------------------------------ writing
    def _append(self, rec: bytes) -> None:
        if not self._buf_bytes:
            cb = self.on_pending
            if cb is not None:
                cb()
        self._small.append(rec)
        self._buf_bytes += len(rec)

    def persist(self, msg, queue_ids) -> int:
        mid = self.next_msg_id
        msg.store_id = mid
        self._write_msg(mid, msg, queue_ids)
        return self.epoch + 1

    def stash(self, msg) -> int:
        """Write ``msg``'s body for paging only (no queue, never recovered); return its id."""
        mid = self.next_msg_id
        self._write_msg(mid, msg, (0,))
        return mid

    def _write_msg(self, mid: int, msg, queue_ids) -> None:
        self.next_msg_id = mid + 1
        n = len(queue_ids)
        header, body = msg.header, msg.body
        prefix = b"".join((_MSG_HEAD.pack(mid, n), struct.pack(f">{n}I", *queue_ids), msg.ex_rk,
                           _I.pack(len(header))))
        size = len(prefix) + len(header) + len(body)
        seg = self._active
        if seg is None:
            seg = self._start()
        # offset of the record once the pending buffer is written
        self.refs[mid] = _ref(seg.number, queue_ids[0] if n == 1 else set(queue_ids),
                              seg.size + self._inflight + self._buf_bytes, REC_SIZE + size)
        seg.live += 1
        seg.count += 1
        self._pending_mids.append(mid)
        if not self._buf_bytes:
            cb = self.on_pending
            if cb is not None:
                cb()
        self._buf_bytes += REC_SIZE + size
        small = self._small
        if len(body) < _LARGE:
            crc = _crc32(body, _crc32(header, _crc32(prefix, _CRC_MSG)))
            small += (_REC.pack(MAGIC, size, crc, T_MSG), prefix, header, body)
            return
        # a large body is not copied (writev takes it from where it is), and its record may still be cut
        buf = self._buf
        if small:
            buf.append(b"".join(small))
            small.clear()
        self._large[mid] = (len(buf), REC_SIZE + size, prefix, header)
        buf.append(None)
        buf.append(body)

    def delivered(self, queue_id: int, msg_id: int) -> None:
        if msg_id in self._large:  # its record is not taken yet: this one follows it, unless it is cut
            self._late.append((queue_id, msg_id))
        elif msg_id in self.refs:
            self._append(_record(T_DELIVERED, _QI.pack(queue_id, msg_id)))

    def remove(self, queue_id: int, msg_id: int) -> None:
        ref = self.refs.get(msg_id)
        if ref is None:
            return
        if ref.__class__ is int:
            if ref & _M32 != queue_id:
                return
            gone = True
            segno = ref >> 104
        else:
            holders = ref[1]
            if queue_id not in holders:
                return
            holders.discard(queue_id)
            gone = not holders
            segno = ref[0]
        if gone:
            del self.refs[msg_id]
            seg = self.segments.get(segno)
            if seg is not None:
                seg.live -= 1
            large = self._large.pop(msg_id, None) if self._large else None
            if large is not None:
                # Every queue let go of the message before its record was written (a consumer acked it
                # within one write cycle): neither it nor this ACK is written, as RabbitMQ's message store
                # drops a pending write when the message is removed. Its publisher's confirm still waits
                # for this cycle's fsync, so confirms keep their order.
                pos, size = large[0], large[1]
                self._buf[pos] = self._buf[pos + 1] = b""
                self._cut[msg_id] = size
                if seg is not None:
                    seg.count -= 1
                return
        self._append(_record(T_ACK, _QI.pack(queue_id, msg_id)))

    def drop_queue(self, queue_id: int) -> None:
        """Record the deletion; the broker also calls ``remove`` for each message it held."""
        self._append(_record(T_DROPQ, _I.pack(queue_id)))

    # ------------------------------------------------------------------ paging
    def page_out(self, msg) -> None:
        """Drop ``msg.body`` from memory once its record is written (the caller set ``msg.paged``)."""
        if not self._buf_bytes and not self._drop and self.on_pending is not None:
            self.on_pending()
        self._drop.append(msg)

    def read_body(self, mid: int):
        """The body of message ``mid`` read back from its segment, or ``None`` if it is not on disk."""
        parts = self.read_messages((mid,))[0]
        return parts[2] if parts is not None else None

    def read_messages(self, mids) -> list:
        """``(ex_rk, header, body)`` of each stored message in ``mids`` (``None`` for one that is not on
        disk), in the order asked; records that lie close together in a segment come in one pread."""
        spans = []
        refs = self.refs
        for i, mid in enumerate(mids):
            ref = refs.get(mid)
            if ref is not None:
                segno, _, off, length = _fields(ref)
                spans.append((segno, off, length, i))
        spans.sort()
        out: list = [None] * len(mids)
        j, n = 0, len(spans)
        while j < n:
            segno, start, length, _ = spans[j]
            seg = self.segments.get(segno)
            end = start + length
            if seg is None or end > seg.size:  # not written yet (or gone)
                j += 1
                continue
            k = j + 1
            while (k < n and spans[k][0] == segno and spans[k][1] - end < _READ_GAP
                   and spans[k][1] + spans[k][2] - start <= _READ_SPAN and spans[k][1] + spans[k][2] <= seg.size):
                end = max(end, spans[k][1] + spans[k][2])
                k += 1
            fd = self._read_fds.get(segno)
            if fd is None:
                fd = self._read_fds[segno] = os.open(seg.path, os.O_RDONLY)
            data = os.pread(fd, end - start, start)
            for _, off, _, i in spans[j:k]:
                parsed = self._parse_at(data, off - start)
                if parsed is None or parsed[0] != T_MSG:
                    log.error("message %d: record unreadable in %s", mids[i], seg.path)
                else:
                    out[i] = _msg_parts(parsed[1])
            j = k
        return out

    @property
    def has_pending(self) -> bool:
        return self._buf_bytes > 0 or bool(self._drop)

    def write_pending(self) -> int:
        epoch, batch = self.take_pending()
        self.write_batch(batch)
        self.written(batch)
        return epoch

    def take_pending(self):
        """Start a cycle: the epoch and the batch of buffered records (and paged bodies to drop): the
        buffers, their size, the messages whose body goes once written, the offset in the active segment
        the batch is written at, its epoch."""
        self.epoch += 1
        seg = self._active
        if seg is None:
            seg = self._start()
        buf = self._buf
        if self._small:
            buf.append(b"".join(self._small))
            self._small.clear()
        if self._large:
            pack = _REC.pack
            for pos, size, prefix, header in self._large.values():
                crc = _crc32(buf[pos + 1], _crc32(header, _crc32(prefix, _CRC_MSG)))
                buf[pos] = b"".join((pack(MAGIC, size - REC_SIZE, crc, T_MSG), prefix, header))
            self._large = {}
        size = self._buf_bytes
        if self._late:
            cut = self._cut
            late = b"".join([_record(T_DELIVERED, _QI.pack(q, m)) for q, m in self._late if m not in cut])
            self._late = []
            buf.append(late)
            size += len(late)
        if self._cut:
            size -= self._close_cuts()
            buf = [b for b in buf if b]
        batch = (buf, size, self._drop, seg.size + self._inflight, self.epoch)
        self._inflight += size
        self._buf, self._buf_bytes, self._drop = [], 0, []
        self._pending_mids = []
        return self.epoch, batch

    def _close_cuts(self) -> int:
        """Move the buffered records that followed a cut one back by the cut sizes before them (offsets
        were given as if nothing was cut); return the bytes cut."""
        cut, refs = self._cut, self.refs
        shift = 0
        for mid in self._pending_mids:
            n = cut.get(mid)
            if n is not None:
                shift += n
            elif shift:
                ref = refs.get(mid)
                if ref is not None:
                    segno, holders, off, length = _fields(ref)
                    refs[mid] = _ref(segno, holders, off - shift, length)
        self._cut = {}
        return shift

    @property
    def may_overlap(self) -> bool:
        # no write in flight when synced() may switch to a new segment file
        active = self._active
        return active is None or active.size + self._inflight < self.segment_size

    def write_batch(self, batch) -> None:
        bufs, fd, off = batch[0], self._fd, batch[3]
        for i in range(0, len(bufs), _IOV_MAX):
            chunk = bufs[i:i + _IOV_MAX]
            total = sum(map(len, chunk))
            done = os.pwritev(fd, chunk, off)
            off += done
            while done < total:  # a short write: drop what was written, go on with the rest
                rest, skip = [], done
                for b in chunk:
                    if skip >= len(b):
                        skip -= len(b)
                    elif skip:
                        rest.append(memoryview(b)[skip:])
                        skip = 0
                    else:
                        rest.append(b)
                chunk = rest
                total -= done
                done = os.pwritev(fd, chunk, off)
                off += done

    def written(self, batch) -> None:
        """A batch's write is done (on the loop thread): it may be read back now."""
        self._active.size += batch[1]
        self._inflight -= batch[1]
        self._unsynced.append(batch)
        for msg in batch[2]:
            if msg.paged:
                msg.body = None

    def retry(self, batches) -> None:
        """Write the batches not known to be on disk again, at their offsets, and fsync (see MessageStore)."""
        for batch in self._unsynced + list(batches):
            self.write_batch(batch)
        if self.fsync:
            os.fsync(self._fd)

    def sync(self) -> None:
        if self.fsync:
            os.fsync(self._fd)

    def synced(self, epoch: int) -> None:
        super().synced(epoch)
        unsynced = self._unsynced
        while unsynced and unsynced[0][4] <= epoch:
            del unsynced[0]
        active = self._active
        # a new file only once every batch written to this one is synced (an fsync covers one file)
        if active is not None and active.size >= self.segment_size and not self._inflight and not unsynced:
            self._rotate()
        self._collect()

    # ------------------------------------------------------------ segments & gc
    def _path(self, number: int) -> str:
        return os.path.join(self.dir, f"{number:010d}.seg")

    def _rotate(self) -> None:
        """Switch to a new segment file. Records still buffered were placed after the end of the old one:
        they move to the start of the new one (nothing is in flight, so they follow its end exactly)."""
        old = self._active
        base = old.size
        self._open_new_segment()
        new = self._active
        refs = self.refs
        for mid in self._pending_mids:
            ref = refs.get(mid)
            if ref is None:
                continue  # removed before it was written
            segno, holders, off, length = _fields(ref)
            if segno != old.number or off < base:
                continue
            refs[mid] = _ref(new.number, holders, off - base, length)
            old.live -= 1
            old.count -= 1
            new.live += 1
            new.count += 1

    def _start(self) -> _Segment:
        """The first segment file of this run (and the directory), made with the first record."""
        os.makedirs(self.dir, exist_ok=True)
        self._open_new_segment()
        return self._active

    def _open_new_segment(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
        number = max(self.segments, default=0) + 1
        seg = _Segment(number, self._path(number))
        self._fd = os.open(seg.path, os.O_WRONLY | os.O_CREAT, 0o644)
        self.segments[number] = seg
        self._active = seg
        if self.fsync:
            dfd = os.open(self.dir, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)

    def _collect(self) -> None:
        """Delete dead segments oldest first; compact the oldest when it is mostly dead."""
        while len(self.segments) > 1:
            oldest = self.segments[min(self.segments)]
            if oldest is self._active:
                return
            if oldest.live <= 0:
                self._close_reader(oldest.number)
                os.unlink(oldest.path)
                del self.segments[oldest.number]
                continue
            if oldest.live * 4 <= oldest.count and not self._buf_bytes and not self._inflight:
                self._compact(oldest)
                continue
            return

    def _compact(self, seg: _Segment) -> None:
        """Copy the live messages of ``seg`` forward, then drop ``seg`` once the copy is on disk."""
        with open(seg.path, "rb") as f:
            data = f.read()
        moved = 0
        for mid, ref in self.refs.items():
            segno, holders, off, _length = _fields(ref)
            if segno != seg.number:
                continue
            parsed = self._parse_at(data, off)
            if parsed is None or parsed[0] != T_MSG:
                log.error("compaction: record of message %d not found in %s; segment kept", mid, seg.path)
                return
            # the copy keeps the message id (recovery lets it replace the old record) and names only
            # the queues that still hold the message, since ACKs older than the copy may be gone
            qids = [holders] if holders.__class__ is int else sorted(holders)
            payload = parsed[1]
            nq = _MSG_HEAD.unpack_from(payload, 0)[1]
            rest = payload[_MSG_HEAD.size + 4 * nq:]
            rec = _record(T_MSG, _MSG_HEAD.pack(mid, len(qids)) + struct.pack(f">{len(qids)}I", *qids) + rest)
            self.refs[mid] = _ref(self._active.number, holders, self._active.size + self._inflight + self._buf_bytes,
                                  len(rec))
            self._active.live += 1
            self._active.count += 1
            self._append(rec)
            moved += 1
        epoch = self.write_pending()
        self.sync()
        super().synced(epoch)
        self._unsynced.clear()  # that fsync covered every batch written to the active segment
        self._close_reader(seg.number)
        os.unlink(seg.path)
        del self.segments[seg.number]
        log.info("compacted %s: moved %d live messages forward", os.path.basename(seg.path), moved)

    def _close_reader(self, number: int) -> None:
        fd = self._read_fds.pop(number, None)
        if fd is not None:
            os.close(fd)

    # ------------------------------------------------------------------ recovery
    def _scan(self) -> None:
        names = sorted(n for n in os.listdir(self.dir) if n.endswith(".seg")) if os.path.isdir(self.dir) else []
        # mid -> [(ex_rk, exchange, routing key), header, holders, delivered, segment, offset, length]; holders
        # is a queue id, a set of them, or None once no queue holds the message; delivered is None or a set
        msgs: dict[int, list] = {}
        self._names: dict[bytes, tuple] = {}  # raw exchange+routing key -> one shared (raw, ex, rk)
        max_id = 0
        for i, name in enumerate(names):
            number = int(name[:-4])
            path = os.path.join(self.dir, name)
            with open(path, "rb") as f:
                data = f.read()
            last = i == len(names) - 1
            end = self._scan_segment(data, number, path, last, msgs)
            if end < len(data):
                log.warning("truncating a torn record at the end of %s (%d bytes)", path, len(data) - end)
                with open(path, "r+b") as f:
                    f.truncate(end)
                data = data[:end]
            self.segments[number] = _Segment(number, path, len(data))
            if msgs:
                max_id = max(max_id, max(msgs))
        self.next_msg_id = max_id + 1
        recovered: dict[int, list[RecoveredMessage]] = {}
        refs = self.refs
        segments = self.segments
        for mid, (names, header, qids, delivered, segno, off, length) in msgs.items():
            if qids is None:
                continue
            ex_rk, ex, rk = names
            seg = segments[segno]
            seg.live += 1
            seg.count += 1
            if qids.__class__ is int:
                refs[mid] = _ref(segno, qids, off, length)
                lst = recovered.get(qids)
                if lst is None:
                    lst = recovered[qids] = []
                lst.append(RecoveredMessage(mid, ex, rk, header, None, delivered is not None and qids in delivered,
                                            ex_rk))
                continue
            refs[mid] = _ref(segno, next(iter(qids)) if len(qids) == 1 else set(qids), off, length)
            for qid in qids:
                recovered.setdefault(qid, []).append(
                    RecoveredMessage(mid, ex, rk, header, None, delivered is not None and qid in delivered, ex_rk))
        for lst in recovered.values():
            lst.sort(key=_msg_id)
        self._recovered = recovered
        self._names = {}

    def _scan_segment(self, data: bytes, number: int, path: str, last: bool, msgs: dict) -> int:
        """Apply the records of one segment; return the offset where valid data ends."""
        off = 0
        n = len(data)
        while off < n:
            rec = self._parse_at(data, off)
            if rec is None:
                nxt = self._resync(data, off + 1)
                if nxt is None:
                    if last:
                        return off  # a torn tail: truncate
                    log.error("corrupted data at %s offset %d to the end of the segment skipped", path, off)
                    self.corrupt_records += 1
                    return n
                log.error("corrupted record at %s offset %d skipped (%d bytes)", path, off, nxt - off)
                self.corrupt_records += 1
                off = nxt
                continue
            rtype, payload, length = rec
            try:
                self._apply(rtype, payload, number, off, length, msgs)
            except (struct.error, IndexError, UnicodeDecodeError) as e:
                log.error("undecodable record at %s offset %d skipped: %s", path, off, e)
                self.corrupt_records += 1
            off += length
        return off

    @staticmethod
    def _parse_at(data: bytes, off: int):
        if len(data) - off < REC_SIZE:
            return None
        magic, size, crc, rtype = _REC.unpack_from(data, off)
        end = off + REC_SIZE + size
        if magic != MAGIC or end > len(data):
            return None
        payload = data[off + REC_SIZE:end]
        if _crc32(payload, _crc32(bytes((rtype,)))) != crc:
            return None
        return rtype, payload, REC_SIZE + size

    def _resync(self, data: bytes, start: int):
        pos = data.find(MAGIC, start)
        while pos != -1:
            if self._parse_at(data, pos) is not None:
                return pos
            pos = data.find(MAGIC, pos + 1)
        return None

    def _apply(self, rtype, payload, segno, off, length, msgs) -> None:
        if rtype == T_MSG:
            mid, nq = _MSG_HEAD.unpack_from(payload, 0)
            p = _MSG_HEAD.size
            if nq == 1:
                qids = _I.unpack_from(payload, p)[0]
            else:
                qids = set(struct.unpack_from(f">{nq}I", payload, p))
            p += 4 * nq
            q = p + 1 + payload[p]
            e = q + 1 + payload[q]
            raw = payload[p:e]
            names = self._names.get(raw)
            if names is None:  # messages share a few exchange/routing key pairs: keep one copy of each
                names = self._names[raw] = (raw, payload[p + 1:q].decode("utf-8", "surrogateescape"),
                                            payload[q + 1:e].decode("utf-8", "surrogateescape"))
            hlen, = _I.unpack_from(payload, e)
            header = payload[e + 4:e + 4 + hlen]
            # the body stays on disk: read back on demand (read_body), so a backlog need not fit in memory
            old = msgs.get(mid)
            delivered = None
            if old is not None:  # a compacted copy: keep the queues that still hold it
                held = old[2]
                if held is None:
                    qids = None
                else:
                    qids = _as_set(qids) & _as_set(held)
                    qids = (next(iter(qids)) if len(qids) == 1 else qids) if qids else None
                delivered = old[3]
            msgs[mid] = [names, header, qids, delivered, segno, off, length]
        elif rtype == T_ACK:
            qid, mid = _QI.unpack_from(payload)
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
            qid, mid = _QI.unpack_from(payload)
            m = msgs.get(mid)
            if m is not None:
                if m[3] is None:
                    m[3] = {qid}
                else:
                    m[3].add(qid)
        elif rtype == T_DROPQ:
            qid, = _I.unpack_from(payload)
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

    def recover(self) -> dict[int, list[RecoveredMessage]]:
        rec, self._recovered = self._recovered or {}, {}
        return rec

    def close(self) -> None:
        try:
            super().close()
        finally:  # the files are closed even when the last write fails
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
            for number in list(self._read_fds):
                self._close_reader(number)

    def stats(self) -> dict:
        return {"messages": len(self.refs), "segments": len(self.segments), "corrupt_records": self.corrupt_records,
                "bytes": sum(s.size for s in self.segments.values())}
