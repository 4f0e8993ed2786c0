"""The durable message store: an append-only log of CRC-checked records in segment files.

Theory of operation.  Every change is a record (:mod:`.records`: MSG,
DELIVERED, ACK, DROPQ) appended to the active segment file
(``<dir>/<number>.seg``); :mod:`.index` maps each stored message to its record.

Records are buffered in memory (a message record as its parts: the body is not
copied into it) and written by ``write_pending`` once per batch with
``pwritev`` at the offset the batch was given when it was taken (so a batch
whose write failed part way can be written again where it belongs); ``sync``
fsyncs once for the whole batch (group commit) and
confirms for the batch's persistent messages go out only after it (see
``MessageStore``).  Under the broker, ``take_pending``/``write_batch``/
``written`` split that cycle so that the write, like the fsync, runs on a
worker thread of the committer while the event loop goes on; the segment's
size, and so what ``read_body`` may read, only grows once the write is done.
Nothing switches files or compacts while a write is in flight.  Batches
written and not yet known to be fsynced are kept (``_unsynced``: what ``retry``
writes again, each to its own file and offset, after a failed write or fsync,
since after a failed fsync the kernel may have dropped the dirty pages); a
segment switched away from while its last batches wait for their fsync stays
open (``_retired``) and every ``sync`` fsyncs it too, since an fsync covers one
file, until an fsync covered them.  Nothing is created on disk before
the first record: the directory and the active segment file are made then.
A large message
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

Recovery.  A clean close (every record taken written and synced) writes a
checkpoint (``CHECKPOINT``): the index's chunks, each queue's ids in order,
the delivered and expiring ids (``_delivered``/``_expiring``, kept up to date
for this), and each segment's number, size and CRC.  The next start loads it
if the segments still match, deleting it first (it must never outlive the
state it describes); otherwise (a crash) it scans the segments in order
(:class:`~.records.Scanner`, which fills the index's chunks in place).  A
torn record at the end of the last segment (a crash mid-write) is copied to
``<segment>.torn-<time>-<offset>`` and truncated away, logged at ERROR.  A
record whose CRC does not match elsewhere is reported in the log and skipped.
Either way ``recover_ids()`` gives each queue its ids (a packed array, publish
order), and ``recover()`` the same as objects with headers read back.
Files are 0640 and directories 0750 (:mod:`.files`).
"""
from __future__ import annotations

import logging
import marshal
import os
import struct
import sys
import time
from array import array

from ..protocol.properties import HI_EXPIRATION as _HI_EXP
from .base import MessageStore, RecoveredMessage, RecoveredQueue
from .records import (
    CRC_MSG as _CRC_MSG, I32 as _I, MAGIC, MSG_HEAD as _MSG_HEAD, QI as _QI, REC as _REC, REC_SIZE, T_ACK,
    T_DELIVERED, T_DROPQ, T_MSG, Scanner, crc32 as _crc32, msg_parts as _msg_parts,
    parse_at as _parse_at, record as _record,
)
from .index import M32 as _M32, Index, fields as _fields, ref as _ref
from .files import fsync_dir, open_file, secure_dir

log = logging.getLogger("warrenmq.store")

DEFAULT_SEGMENT_SIZE = 64 << 20
# read_messages: records at most this far apart are read with one pread, of at most this many bytes
_READ_GAP = 64 << 10
_READ_SPAN = 4 << 20
# bodies at least this large are written from where they are; smaller pieces are joined into runs, so
# a batch is a few large buffers (each writev lets the writer thread wait for the GIL once)
_LARGE = 8192
_IOV_MAX = min(os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 1024, 1024)
#: the index a clean shutdown leaves (see _write_checkpoint); a start that finds it valid skips the scan
CHECKPOINT = "clean-shutdown.idx"
_CKPT_MAGIC = b"WMQIDX01"
_CKPT_READ = 4 << 20  # the checkpoint keeps each segment's CRC, checked (read this much at a time) before use
_RECOVER_BATCH = 4096


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

    def __init__(self, directory: str, fsync: bool = True, segment_size: int = DEFAULT_SEGMENT_SIZE,
                 checkpoint: bool = True):
        super().__init__()
        self.dir = directory
        self.fsync = fsync
        self.checkpoint = checkpoint  # write an index at a clean close, for the next start to load
        self.segment_size = segment_size
        self.next_msg_id = 1
        self.segments: dict[int, _Segment] = {}
        # msg_id -> its segment number, the queues still holding it (an int, or a set when several), and
        # its record's offset and length, packed by _ref (read with _fields)
        self.refs = Index()
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
        self._retired: list = []  # fds of segments switched away from whose last batches await an fsync
        self._active: _Segment | None = None
        self._recovered: dict[int, RecoveredQueue] | None = None
        # what a checkpoint needs that the index does not hold: (mid << 32 | queue id) of messages handed
        # to a consumer and not yet removed from that queue, and the ids of messages with an expiration
        self._delivered: set = set()
        self._expiring: set = set()
        self._drop: list = []  # paged-out messages whose body goes once their record is written
        self._read_fds: dict[int, int] = {}
        self.corrupt_records = 0
        if not self._load_checkpoint():
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
        if header[12] & _HI_EXP:
            self._expiring.add(mid)
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
        else:
            return
        self._delivered.add(msg_id << 32 | queue_id)

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
        if self._delivered:
            self._delivered.discard(msg_id << 32 | queue_id)
        if gone:
            del self.refs[msg_id]
            if self._expiring:
                self._expiring.discard(msg_id)
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
                parsed = _parse_at(data, off - start)
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
        the batch is written at, its epoch, and that segment's file descriptor."""
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
        batch = (buf, size, self._drop, seg.size + self._inflight, self.epoch, self._fd)
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
        bufs, fd, off = batch[0], batch[5], batch[3]
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
        self.sync()

    def sync(self) -> None:
        """fsync the active segment, and the segments switched away from whose last batches were not
        fsynced yet (an fsync covers one file)."""
        if self.fsync:
            for fd in list(self._retired):
                os.fsync(fd)
            os.fsync(self._fd)

    def synced(self, epoch: int) -> None:
        super().synced(epoch)
        unsynced = self._unsynced
        while unsynced and unsynced[0][4] <= epoch:
            del unsynced[0]
        if self._retired:  # a switched-from segment is closed once an fsync covered its last batch
            waiting = {b[5] for b in unsynced}
            for fd in [fd for fd in self._retired if fd not in waiting]:
                self._retired.remove(fd)
                os.close(fd)
        active = self._active
        if active is not None and active.size >= self.segment_size and not self._inflight:
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
        secure_dir(self.dir)
        self._open_new_segment()
        return self._active

    def _open_new_segment(self) -> None:
        if self._fd >= 0:
            if self.fsync and any(b[5] == self._fd for b in self._unsynced):
                self._retired.append(self._fd)  # the next sync() covers its last batches, then it goes
            else:
                os.close(self._fd)
        number = max(self.segments, default=0) + 1
        seg = _Segment(number, self._path(number))
        self._fd = open_file(seg.path, os.O_WRONLY)
        self.segments[number] = seg
        self._active = seg
        if self.fsync:
            fsync_dir(self.dir)

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
            parsed = _parse_at(data, off)
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
        """Recovery: apply every segment's records (:class:`~.records.Scanner`, which builds the index's
        chunks in place), cut a torn tail off the last segment (keeping a copy), and derive the segments'
        counts and the per-queue id arrays."""
        names = sorted(n for n in os.listdir(self.dir) if n.endswith(".seg")) if os.path.isdir(self.dir) else []
        scanner = Scanner(_HI_EXP)
        for i, name in enumerate(names):
            number = int(name[:-4])
            path = os.path.join(self.dir, name)
            with open(path, "rb") as f:
                data = f.read()
            end = scanner.segment(data, number, path, i == len(names) - 1)
            if end < len(data):
                self._cut_torn_tail(path, data, end)
            self.segments[number] = _Segment(number, path, end)
            del data
        self.corrupt_records += scanner.corrupt
        self.next_msg_id = scanner.max_id + 1
        refs = self.refs
        per_queue: dict[int, array] = {}
        live: dict[int, int] = {}
        for n in sorted(scanner.chunks):
            c = scanner.chunks[n]
            if not c[2]:
                continue
            refs.chunks[n] = c
            refs.count += c[2]
            refs.newest = max(refs.newest, n)
            hi, lo = c[0], c[1]
            base = n << 12
            qid_last, ids, seg_last, seg_n = -1, None, -1, 0
            for i, v in enumerate(lo):
                if v:
                    qid = v & _M32
                    if qid != qid_last:
                        ids = per_queue.get(qid)
                        if ids is None:
                            ids = per_queue[qid] = array("Q")
                        qid_last = qid
                    ids.append(base | i)
                    segno = hi[i] >> 40
                    if segno != seg_last:
                        if seg_n:
                            live[seg_last] = live.get(seg_last, 0) + seg_n
                        seg_last, seg_n = segno, 0
                    seg_n += 1
            if seg_n:
                live[seg_last] = live.get(seg_last, 0) + seg_n
        if scanner.multi:
            touched = set()
            for mid, m in scanner.multi.items():
                refs.multi[mid] = m
                refs.count += 1
                live[m[0]] = live.get(m[0], 0) + 1
                for qid in m[1]:
                    per_queue.setdefault(qid, array("Q")).append(mid)
                    touched.add(qid)
            for qid in touched:
                per_queue[qid] = array("Q", sorted(per_queue[qid]))
        for segno, count in live.items():
            seg = self.segments.get(segno)
            if seg is not None:
                seg.live = seg.count = count
        self._delivered = {x for x in scanner.delivered if (x >> 32) in refs}
        self._expiring = {mid for mid in scanner.expiring if mid in refs}
        self._recovered = self._recovered_queues(per_queue)

    def _cut_torn_tail(self, path: str, data, end: int) -> None:
        """A crash in the middle of a write left a torn record at the end of the last segment: copy what
        is cut beside it (``<segment>.torn-<time>``), then truncate.  It may have held a message whose
        publisher was never confirmed, or, after a disk fault, one that was: an operator can look."""
        copy = f"{path}.torn-{time.strftime('%Y%m%dT%H%M%S')}-{end}"
        fd = open_file(copy, os.O_WRONLY | os.O_TRUNC)
        try:
            os.write(fd, data[end:])
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        log.error("torn record at the end of %s: %d bytes from offset %d cut off; they are kept in %s",
                  path, len(data) - end, end, copy)
        with open(path, "r+b") as f:
            f.truncate(end)

    def _recovered_queues(self, per_queue: dict) -> dict[int, RecoveredQueue]:
        delivered: dict[int, set] = {}
        for x in self._delivered:
            qid = x & _M32
            d = delivered.get(qid)
            if d is None:
                d = delivered[qid] = set()
            d.add(x >> 32)
        expiring = self._expiring
        return {qid: RecoveredQueue(ids, delivered.get(qid, set()), expiring) for qid, ids in per_queue.items()}

    def recover_ids(self) -> dict[int, RecoveredQueue]:
        rec, self._recovered = self._recovered or {}, {}
        return rec

    def recover(self) -> dict[int, list[RecoveredMessage]]:
        """:meth:`recover_ids` with each message's exchange, routing key and header read back (bodies stay
        on disk)."""
        out: dict[int, list[RecoveredMessage]] = {}
        names: dict = {}
        for qid, rq in self.recover_ids().items():
            lst = out[qid] = []
            ids, delivered = rq.ids, rq.delivered
            for i in range(0, len(ids), _RECOVER_BATCH):
                chunk = ids[i:i + _RECOVER_BATCH]
                for mid, parts in zip(chunk, self.read_messages(chunk)):
                    if parts is None:
                        continue
                    ex_rk, header, _ = parts
                    pair = names.get(ex_rk)
                    if pair is None:
                        n = ex_rk[0]
                        pair = names[ex_rk] = (ex_rk[1:1 + n].decode("utf-8", "surrogateescape"),
                                               ex_rk[2 + n:].decode("utf-8", "surrogateescape"))
                    lst.append(RecoveredMessage(mid, pair[0], pair[1], header, None, mid in delivered, ex_rk))
        return out

    # ---------------------------------------------------------------- checkpoint
    def _checkpoint_path(self) -> str:
        return os.path.join(self.dir, CHECKPOINT)

    def _write_checkpoint(self) -> None:
        """At a clean close (every batch written and synced): the index, the segments and the per-queue
        id arrays, so that the next start loads them instead of scanning every record."""
        if not self.segments or not os.path.isdir(self.dir):
            return
        chunks = {}
        per_queue: dict[int, array] = {}
        for n in sorted(self.refs.chunks):
            c = self.refs.chunks[n]
            if c.__class__ is dict:
                chunks[n] = dict(c)
                for mid in sorted(c):
                    qid = c[mid] & _M32
                    ids = per_queue.get(qid)
                    if ids is None:
                        ids = per_queue[qid] = array("Q")
                    ids.append(mid)
                continue
            chunks[n] = (c[0].tobytes(), c[1].tobytes(), c[2])
            base = n << 12
            for i, v in enumerate(c[1]):
                if v:
                    qid = v & _M32
                    ids = per_queue.get(qid)
                    if ids is None:
                        ids = per_queue[qid] = array("Q")
                    ids.append(base | i)
        multi = {}
        if self.refs.multi:
            touched = set()
            for mid, (segno, holders, off, length) in self.refs.multi.items():
                multi[mid] = (segno, set(holders), off, length)
                for qid in holders:
                    per_queue.setdefault(qid, array("Q")).append(mid)
                    touched.add(qid)
            for qid in touched:
                per_queue[qid] = array("Q", sorted(per_queue[qid]))
        segs = []
        for seg in sorted(self.segments.values(), key=lambda s: s.number):
            segs.append((seg.number, seg.size, seg.live, seg.count, self._file_crc(seg.path, seg.size)))
        body = marshal.dumps({
            "next": self.next_msg_id, "segments": segs, "chunks": chunks, "multi": multi,
            "count": self.refs.count, "newest": self.refs.newest,
            "queues": {qid: ids.tobytes() for qid, ids in per_queue.items()},
            "delivered": set(self._delivered), "expiring": set(self._expiring),
            "byteorder": sys.byteorder,
        })
        path = self._checkpoint_path()
        tmp = path + ".tmp"
        fd = open_file(tmp, os.O_WRONLY | os.O_TRUNC)
        try:
            os.write(fd, _CKPT_MAGIC + _I.pack(_crc32(body)) + body)
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        if self.fsync:
            fsync_dir(self.dir)

    @staticmethod
    def _file_crc(path: str, size: int) -> int:
        """The CRC-32 of a segment's first ``size`` bytes (all of it; ISA-L does gigabytes a second)."""
        crc = 0
        with open(path, "rb") as f:
            while size > 0:
                b = f.read(min(size, _CKPT_READ))
                if not b:
                    raise ValueError(f"{path} is shorter than {size} bytes")
                crc = _crc32(b, crc)
                size -= len(b)
        return crc

    def _load_checkpoint(self) -> bool:
        """Recovery after a clean close: load the checkpoint if it matches the segments on disk (names,
        sizes, CRCs of their whole content); it is deleted first, so that it never outlives the state it
        describes. False (then the segments are scanned) when there is none or it does not match."""
        path = self._checkpoint_path()
        try:
            os.unlink(path + ".tmp")  # a close killed while writing it
        except OSError:
            pass
        try:
            with open(path, "rb") as f:
                blob = f.read()
        except FileNotFoundError:
            return False
        except OSError as e:
            log.warning("index checkpoint %s unreadable (%s): scanning the segments", path, e)
            blob = b""
        os.unlink(path)
        if self.fsync:
            fsync_dir(self.dir)
        try:
            if blob[:8] != _CKPT_MAGIC or _I.unpack_from(blob, 8)[0] != _crc32(memoryview(blob)[12:]):
                raise ValueError("bad magic or checksum")
            d = marshal.loads(memoryview(blob)[12:])
            if d["byteorder"] != sys.byteorder:
                raise ValueError("written on another byte order")
            names = sorted(n for n in os.listdir(self.dir) if n.endswith(".seg"))
            if names != [f"{number:010d}.seg" for number, *_ in d["segments"]]:
                raise ValueError("the segment files differ")
            segments = {}
            for number, size, live, count, crc in d["segments"]:
                seg_path = self._path(number)
                if os.path.getsize(seg_path) != size or self._file_crc(seg_path, size) != crc:
                    raise ValueError(f"{seg_path} changed")
                seg = segments[number] = _Segment(number, seg_path, size)
                seg.live, seg.count = live, count
            refs = Index()
            for n, c in d["chunks"].items():
                if c.__class__ is dict:
                    refs.chunks[n] = c
                else:
                    hi, lo = array("Q"), array("Q")
                    hi.frombytes(c[0])
                    lo.frombytes(c[1])
                    refs.chunks[n] = [hi, lo, c[2]]
            for mid, (segno, holders, off, length) in d["multi"].items():
                refs.multi[mid] = [segno, holders, off, length]
            refs.count, refs.newest = d["count"], d["newest"]
            per_queue = {}
            for qid, raw in d["queues"].items():
                ids = per_queue[qid] = array("Q")
                ids.frombytes(raw)
        except Exception as e:  # whatever is wrong with it, the scan recovers from the segments themselves
            log.warning("index checkpoint %s not used (%s): scanning the segments", path, e)
            return False
        self.segments = segments
        self.refs = refs
        self.next_msg_id = d["next"]
        self._delivered = d["delivered"]
        self._expiring = d["expiring"]
        self._recovered = self._recovered_queues(per_queue)
        return True

    def close(self) -> None:
        clean = False
        try:
            super().close()
            # a checkpoint only when every record taken was written and synced (not after a failure)
            clean = self.synced_epoch >= self.epoch and not self._inflight and not self._buf_bytes
        finally:  # the files are closed even when the last write fails
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
            for fd in self._retired:
                os.close(fd)
            self._retired = []
            for number in list(self._read_fds):
                self._close_reader(number)
        if clean and self.checkpoint:
            try:
                self._write_checkpoint()
            except OSError as e:  # the next start scans instead
                log.warning("index checkpoint not written: %s", e)
                try:
                    os.unlink(self._checkpoint_path())
                except OSError:
                    pass

    def stats(self) -> dict:
        return {"messages": len(self.refs), "segments": len(self.segments), "corrupt_records": self.corrupt_records,
                "bytes": sum(s.size for s in self.segments.values())}
