"""Paging and the lazy tail: how a queue keeps a backlog larger than memory.

Theory of operation.  Two mechanisms, both active only with a data directory
(``queue.page_limit`` is the broker's ``queue_max_in_memory``, else 0):

*Paging bodies* (any queue).  When a publish leaves more than ``page_limit``
entries ready, the new message's body is *paged out* (``page_out``): the
:class:`~..message.Message` object stays in the queue, ``msg.paged`` is set, and
``msg.body`` is dropped, so only the entry and its header stay in memory.  If the
message is already in the message store (persistent, in a durable queue), the
store just lets go of the body once its record is written (``store.page_out``);
otherwise the body is written to the transient *page store* first
(``page_store.stash``, ``msg.page_id``), unless it is smaller than
``PAGE_MIN_BODY`` (writing it would cost more than keeping it).  Only a
``pageable`` message is paged: routing sets that flag when no other queue holds
the same object in memory (one queue, or the store has it for every queue).
Whatever consumes a paged message first calls ``page_in`` (the session before a
delivery, dead lettering, a quorum queue before it rewrites the headers), which
reads the body back and forgets the page-store copy.  Memory accounting
(``queue.memory``, the memory alarm) counts bodies in memory only: ``page_out``
releases, ``page_in`` adds.

*The lazy tail* (durable classic queues).  Paging still leaves one entry and one
message object per ready message.  So once such a queue's backlog passes
``page_limit`` its plain :class:`~.containers.Fifo` is replaced by a
:class:`LazyMessages` (``_go_lazy``), RabbitMQ's lazy mode switched on beyond the
limit.  It keeps the first ``limit`` entries as objects (``head``) and, behind
them, the *tail*: two packed arrays, the store id and the sequence number of each
message (16 bytes a message, no objects).  When the head runs down to
``limit - REFILL_BATCH`` entries the next batch of the tail is read back from the
store in one call (``store.read_messages``) and becomes entries again, new
Message objects whose bodies count as memory from then on.  A backlog of millions
thus costs memory for its head only.

Only a message the store can give back exactly may be an id: a plain Message
(not one that carries CC/BCC keys or a delivery count), in the store, pageable,
never delivered, with no deadline (no queue TTL, no ``expiration``).  Any other
entry in the tail stays an object in ``side`` (by sequence number) and keeps its
place: ``seqs`` lists it, ``ids`` holds 0 for it.  A new persistent message is
also kept in ``side`` until the store has *synced* the batch that holds its record
(``unsynced``: (epoch, seq) pairs, released by ``_settle_synced`` as
``store.synced_epoch`` moves on), since reading back a record that is not on
disk yet would fail.  Recovered messages (``restore``) are on disk already.

*Recovery* (``restore_stored``): a store that offers ``recover_ids`` gives each
queue its messages as an array of store ids.  The first ``page_limit`` (and one)
are read back in batches (``read_messages``) and restored as objects as before;
past them, a queue that goes lazy takes the rest of the array as its tail as it
is (``LazyMessages.restore_ids``): no object, no record read, except for the few
that must stay objects (delivered before, or with an expiration).

*Under memory pressure* (``memory.paging``: the process is past the memory
alarm's paging level, see flow.py) any classic queue past ``page_limit`` gets a
lazy tail, and a transient message in it is written to the page store
(``_stash``) and kept as its page-store id with :data:`PAGE_BIT` set (in
``side`` until the page store has written it: ``unwritten``); reading it back
takes it out of the page store.  The memory sampler calls ``page_out_ready``,
which turns the queue lazy and moves the head's entries beyond ``limit`` to the
front of the tail, :data:`SPILL_BATCH` at a time (``spill``), then pages out
large bodies at the head.  A queue that went lazy stays so.

Invariants the queue relies on: the head is never empty while the tail is not
(``bool()`` and ``[0]`` look at the head only, so the dispatch loop costs the same
as with a Fifo); requeued entries came from the head, so they go back into the
head; ``take_all`` (purge, delete) returns the tail's ids without reading them,
for the store to forget; ``materialize`` reads the whole tail back (bodies past
the head stay paged) when a feature needs every entry as an object (a byte
length limit, whose count needs every size).  A record that cannot be read back
is logged and dropped rather than stalling the queue.
"""
from __future__ import annotations

import logging
from array import array
from bisect import bisect_left
from collections import deque

from ...protocol.properties import HI_EXPIRATION
from ..message import Message, QueueEntry
from .containers import Fifo, SizedMessages, entry_size

log = logging.getLogger("warrenmq.queue")

#: a message that is not in the message store is paged out only if its body is at least this large
PAGE_MIN_BODY = 512
#: LazyMessages reads messages back from the store this many at a time
REFILL_BATCH = 512
#: restore_stored reads the messages restored as objects this many at a time
RESTORE_BATCH = 4096


def _names(cache: dict, ex_rk: bytes) -> tuple:
    """(exchange, routing key) of the raw pair ``ex_rk`` (two short strings), one shared copy each."""
    pair = cache.get(ex_rk)
    if pair is None:
        if len(cache) >= 4096:
            cache.clear()
        n = ex_rk[0]
        pair = cache[ex_rk] = (ex_rk[1:1 + n].decode("utf-8", "surrogateescape"),
                               ex_rk[2 + n:].decode("utf-8", "surrogateescape"))
    return pair

#: under memory pressure, LazyMessages.spill moves at most this many head entries to the tail at a time
SPILL_BATCH = 20_000
#: memory an entry held as objects costs beyond its body (Message, QueueEntry, seq: see message.py)
ENTRY_OVERHEAD = 250
#: a tail id with this bit set is a transient message's id in the page store (else the message store's)
PAGE_BIT = 1 << 63
PAGE_MASK = PAGE_BIT - 1


class Paging:
    """The paging part of :class:`~.core.Queue` (a mixin: its state is in ``_SLOTS``)."""
    __slots__ = ()
    _SLOTS = ("store", "store_id", "page_store", "page_limit", "paged_upto")

    def _go_lazy(self) -> None:
        """Past the paging limit, a durable classic queue keeps the rest of its backlog in the store; under
        memory pressure (``memory.paging``: see flow.py) any classic queue does (transient messages: in
        the page store)."""
        msgs = self.messages
        if (msgs.pageable_tail and (self.store_id or self.memory.paging) and self.queue_type == "classic"
                and self.page_limit):
            self.set_ready(LazyMessages(self, msgs, self.page_limit))

    def restore_stored(self, recovered) -> int:
        """Recovery: append the messages of ``recovered`` (a :class:`~warrenmq.store.RecoveredQueue`: store
        ids in publish order) in that order; return how many were restored.  Objects for the head, read in
        batches; the rest, once the queue went lazy, taken as a tail of ids (see the module docstring)."""
        store, qid = self.store, self.store_id
        ids, delivered = recovered.ids, recovered.delivered
        n = len(ids)
        cache: dict = {}
        done = 0
        i = 0
        while i < n:
            msgs = self.messages
            if msgs.__class__ is LazyMessages and not self.has_ttl:
                return done + msgs.restore_ids(ids, i, delivered, recovered.expiring, cache)
            end = min(i + RESTORE_BATCH, n)
            if self.page_limit:
                if len(msgs) <= self.page_limit:  # stop where the queue may go lazy
                    end = min(end, i + self.page_limit + 1 - len(msgs))
                else:  # a queue that cannot go lazy: its bodies are read and dropped again, fewer at a time
                    end = min(end, i + REFILL_BATCH)
            chunk = ids[i:end]
            for sid, parts in zip(chunk, store.read_messages(chunk)):
                if parts is None:  # (read_messages logged it)
                    store.remove(qid, sid)
                    continue
                ex_rk, header, body = parts
                ex, rk = _names(cache, ex_rk)
                self.restore(Message(ex, rk, header, body, ex_rk), sid, sid in delivered)
                done += 1
            i = end
        return done

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

    def page_out_ready(self, budget: int) -> int:
        """Memory pressure (flow.py): move the backlog past the paging limit to a lazy tail (a slice of
        at most SPILL_BATCH entries a call), then page out the bodies of ready messages at the head, newest
        first (they are delivered last), until ``budget`` bytes are freed; returns the bytes freed.  Only entries
        published since the last call are looked at (``paged_upto``), so a sweep under a long alarm
        costs what was added since.  Needs a page store (a data directory)."""
        if self.page_store is None or budget <= 0:
            return 0
        msgs = self.messages
        if self.page_limit and len(msgs) > self.page_limit:
            self._go_lazy()  # past the paging limit: the rest of the backlog becomes a lazy tail
            msgs = self.messages
        spill = getattr(msgs, "spill", None)
        if spill is not None:
            spilled = spill()
            if spilled >= budget:
                return spilled
            budget -= spilled
        else:
            spilled = 0
        msgs = getattr(msgs, "head", msgs)  # a lazy tail: only its head has bodies in memory
        upto = getattr(self, "paged_upto", -1)
        freed = 0
        newest = upto
        ordered = isinstance(msgs, deque)  # a Fifo: in sequence order, so walked from the newest
        for entry in (reversed(msgs) if ordered else msgs):
            seq = entry.seq
            if seq <= upto:
                if ordered:  # the rest was looked at before
                    break
                continue
            if seq > newest:
                newest = seq
            msg = entry.message
            if msg.pageable and not msg.paged and msg.body is not None:
                n = len(msg.body)
                self.page_out(msg)
                if msg.paged:
                    freed += n
                    if freed >= budget:
                        return spilled + freed  # (paged_upto unchanged: older entries are looked at next time)
        self.paged_upto = newest
        return spilled + freed

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

    def _forget_paged(self, msg) -> None:
        msg.paged = False
        if msg.page_id:
            self.page_store.remove(0, msg.page_id)
            msg.page_id = 0


class LazyMessages:
    """The ready entries of a durable queue whose backlog went past its paging limit (see the module
    docstring): ``head`` (a Fifo of at most ``limit`` entries), then the tail (``ids``/``seqs`` from
    ``pos`` on, ``side`` for the tail entries kept as objects)."""
    __slots__ = ("queue", "head", "ids", "seqs", "pos", "side", "unsynced", "unwritten", "limit", "low", "names")
    pageable_tail = False

    def __init__(self, queue, head: Fifo, limit: int):
        self.queue = queue
        self.head = head
        self.limit = limit
        self.low = max(limit - REFILL_BATCH, 0)  # the head is refilled when it is down to this
        self.ids = array("Q")  # store ids of the tail (0: the entry is in ``side``)
        self.seqs = array("Q")  # their sequence numbers
        self.pos = 0  # the tail starts at this index of ids/seqs
        self.side: dict = {}  # seq -> entry kept as an object in the tail
        self.unsynced: deque = deque()  # (store epoch, seq) of side entries that may become ids
        self.unwritten: deque = deque()  # (page store epoch, seq): side entries stashed in the page store
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
        if self.pos == len(self.ids):
            if len(self.head) < self.limit:
                self.head.append(entry)
                return
            if self.pos:  # the tail ran dry: start afresh
                self._clear_tail()
        self._tail_append(entry, on_disk)
        self._settle_synced()

    def _stash(self, entry) -> None:
        """A transient message goes to the tail: its record into the page store (kept as an object in
        ``side`` until that is written), its body no longer counted as memory."""
        msg = entry.message
        pages = self.queue.page_store
        if not msg.page_id:
            msg.page_id = pages.stash(msg)
        if not msg.paged:
            msg.paged = True
            self.queue.memory.release(len(msg.body))
            pages.page_out(msg)  # the body goes once written, even if the entry stays in ``side`` a while
        self.ids.append(msg.page_id | PAGE_BIT)
        self.side[entry.seq] = entry
        self.unwritten.append((pages.epoch, entry.seq))

    def spill(self, most: int = 0) -> int:
        """Memory alarm: move the head's entries beyond ``limit`` (at most ``most``, default
        :data:`SPILL_BATCH`) to the front of the tail; returns an estimate of the bytes freed."""
        head = self.head
        k = min(len(head) - self.limit, most or SPILL_BATCH)
        if k <= 0:
            return 0
        moved = [head.pop() for _ in range(k)]
        moved.reverse()
        old_ids, old_seqs, pos = self.ids, self.seqs, self.pos
        self.ids, self.seqs, self.pos = array("Q"), array("Q"), 0
        side = self.side
        self.side = {}
        freed = 0
        for entry in moved:  # (append's tail branch, with the head full)
            freed += ENTRY_OVERHEAD + (len(entry.message.body) if entry.message.body is not None else 0)
            self._tail_append(entry, page_body=True)
        self.ids.extend(old_ids[pos:])
        self.seqs.extend(old_seqs[pos:])
        self.side.update(side)
        self._settle_synced()
        return freed

    def _tail_append(self, entry, on_disk: bool = False, page_body: bool = False) -> None:
        """``entry`` at the end of the tail: as its store id (an object in ``side`` until the store has
        synced, unless ``on_disk``), as its page-store id (a transient message), or as an object when it
        carries what an id cannot (a redelivery, an expiry, a TTL queue's timestamps).  ``page_body``: a
        persistent message's body leaves memory too (a spill under the memory alarm)."""
        msg = entry.message
        q = self.queue
        seq = entry.seq
        self.seqs.append(seq)
        pageable = (msg.__class__ is Message and msg.pageable and not entry.redelivered and not entry.expires
                    and not q.has_ttl and not msg.header[12] & HI_EXPIRATION)
        if pageable and msg.store_id:
            self.ids.append(msg.store_id)
            if page_body and not msg.paged:
                q.page_out(msg)
            if not on_disk:  # persisted in the store's current batch: an object until that is synced
                self.side[seq] = entry
                self.unsynced.append((q.store.epoch + 1, seq))
        elif pageable and q.page_store is not None:
            self._stash(entry)
        else:
            self.ids.append(0)
            self.side[seq] = entry

    def restore(self, entry) -> None:
        self.append(entry, on_disk=True)

    def restore_ids(self, ids: array, start: int, delivered: set, expiring: set, cache: dict) -> int:
        """Recovery: ``ids[start:]`` (store ids, in order, on disk) become the end of the tail without
        being read, but for those that must stay objects (delivered before, or with an expiration): those
        are read and kept in ``side``, paged.  Returns how many were added."""
        q = self.queue
        tail = ids[start:]
        m = len(tail)
        if not m:
            return 0
        if self.pos == len(self.ids) and self.pos:
            self._clear_tail()
        seq0 = q.next_seq
        special = []
        for sid in (delivered | expiring) if expiring else delivered:
            j = bisect_left(tail, sid)
            if j < m and tail[j] == sid:
                special.append(j)
        if special:
            special.sort()
            wanted = [tail[j] for j in special]
            for j, parts in zip(special, q.store.read_messages(wanted)):
                if parts is None:
                    continue  # left as an id: read again (and dropped, logged) when its turn comes
                ex_rk, header, _ = parts
                ex, rk = _names(cache, ex_rk)
                msg = Message(ex, rk, header, None, ex_rk)
                msg.store_id = tail[j]
                msg.pageable = True
                msg.paged = True
                entry = QueueEntry(msg, seq0 + j, q)
                entry.redelivered = tail[j] in delivered
                self.side[seq0 + j] = entry
                tail[j] = 0
        self.ids.extend(tail)
        self.seqs.extend(range(seq0, seq0 + m))
        q.next_seq = seq0 + m
        return m

    def _settle_synced(self) -> None:
        """Side entries whose record the store has synced (or the page store has written) become ids only."""
        unsynced = self.unsynced
        if unsynced:
            synced = self.queue.store.synced_epoch
            side = self.side
            while unsynced and unsynced[0][0] <= synced:
                side.pop(unsynced.popleft()[1], None)
        unwritten = self.unwritten
        if unwritten:
            pages = self.queue.page_store
            if getattr(pages, "_inflight", 0):  # a batch taken is not written yet (or failed)
                return
            epoch = pages.epoch  # a record stashed at epoch e is in batch e + 1
            side = self.side
            while unwritten and unwritten[0][0] < epoch:
                side.pop(unwritten.popleft()[1], None)

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
        paged = [i for i in want if i & PAGE_BIT]
        if paged:
            want = [i for i in want if not i & PAGE_BIT]
        parts = dict(zip(want, q.store.read_messages(want))) if want else {}
        if paged:
            parts.update(zip(paged, q.page_store.read_messages([i & PAGE_MASK for i in paged])))
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
                    if take and sid & PAGE_BIT:
                        q.page_store.remove(0, sid & PAGE_MASK)
                    elif take and q.store_id:
                        q.store.remove(q.store_id, sid)
                    continue
                ex_rk, header, body = p
                ex, rk = _names(names, ex_rk)
                msg = Message(ex, rk, header, body, ex_rk)
                if sid & PAGE_BIT:  # a transient message: back in memory, out of the page store
                    if take:
                        q.page_store.remove(0, sid & PAGE_MASK)
                else:
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
        self._forget_tail_pages()
        self._clear_tail()

    def _forget_tail_pages(self) -> None:
        """The page store lets go of the tail's transient records (their entries are dropped)."""
        ids, side, seqs = self.ids, self.side, self.seqs
        pages = self.queue.page_store
        for i in range(self.pos, len(ids)):
            sid = ids[i]
            if sid & PAGE_BIT and seqs[i] not in side:
                pages.remove(0, sid & PAGE_MASK)

    def _clear_tail(self) -> None:
        self.ids, self.seqs, self.pos = array("Q"), array("Q"), 0
        self.side.clear()
        self.unsynced.clear()
        self.unwritten.clear()

    def take_all(self) -> tuple:
        """Empty the queue: (the entries that are objects, the store ids of the others)."""
        side = self.side
        entries = list(self.head)
        sids = []
        for i in range(self.pos, len(self.ids)):
            e = side.get(self.seqs[i])
            if e is not None:
                entries.append(e)
            elif not self.ids[i] & PAGE_BIT:  # (page-store records are let go of by clear)
                sids.append(self.ids[i])
        self.clear()
        return entries, sids

    def requeue(self, entries: list) -> None:
        # requeued entries came from the head, so they go back into it (the tail only has later ones)
        self.head.requeue(entries)

    def put_back(self, entry) -> None:
        self.head.put_back(entry)

    def materialize(self) -> Fifo:
        """Every entry as an object, in a Fifo (bodies beyond the head stay on disk: paged)."""
        head = self.head
        for i in range(self.pos, len(self.ids), REFILL_BATCH):
            for e in self._load(i, min(i + REFILL_BATCH, len(self.ids)), take=True):
                msg = e.message
                if msg.store_id and not msg.paged and msg.body is not None and len(head) >= self.limit:
                    self.queue.page_out(msg)
                head.append(e)
        self._clear_tail()
        return head

    @property
    def bytes(self) -> int:
        return sum(map(entry_size, self))

    def with_byte_count(self):
        return SizedMessages(self.materialize())

    def without_byte_count(self):
        return self
