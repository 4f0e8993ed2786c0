"""One conformance suite for every message store: memory and segment log.

It covers every store method the broker calls: the message path (persist,
delivered, remove, drop_queue), the batch cycle (write_pending, take_pending,
write_batch, written, sync, synced, retry), paging (stash, page_out, read_body,
read_messages) and recovery; and the definitions (SQLite and in memory).

A "reopen" builds a new store over the same state (the same directory, or the
same state dict for the memory store), as a broker restart would.
"""
import os
import random

import pytest

from support.store import commit, loaded, message
from warrenmq.broker.vhost import VHost
from warrenmq.config import BrokerConfig
from warrenmq.store import Definitions, MemoryStore, SegmentStore, Storage, open_storage
from warrenmq.store.memory import MemoryDefinitions
from warrenmq.store.metadata import SQLiteDefinitions


class MemoryFactory:
    def __init__(self, tmp_path):
        self.state = {"msgs": {}, "next": 1}

    def open(self):
        return MemoryStore(self.state)


class SegmentFactory:
    def __init__(self, tmp_path, segment_size=1 << 20):
        self.dir = str(tmp_path / "msgs")
        self.segment_size = segment_size

    def open(self):
        return SegmentStore(self.dir, fsync=True, segment_size=self.segment_size)


@pytest.fixture(params=["memory", "segments"])
def factory(request, tmp_path):
    return {"memory": MemoryFactory, "segments": SegmentFactory}[request.param](tmp_path)


def test_persisted_messages_come_back_in_order_with_their_bytes(factory):
    s = factory.open()
    msgs = [message(i) for i in range(50)]
    for m in msgs:
        s.persist(m, [7])
    commit(s)
    s.close()
    s2 = factory.open()
    rec = loaded(s2)
    assert list(rec) == [7]
    got = rec[7]
    assert [r.body for r in got] == [m.body for m in msgs]
    assert [r.header for r in got] == [m.header for m in msgs]
    assert [(r.exchange, r.routing_key) for r in got] == [("ex", f"rk.{i}") for i in range(50)]
    assert [r.msg_id for r in got] == [m.store_id for m in msgs]
    assert not any(r.delivered for r in got)


def test_removed_messages_stay_gone_per_queue(factory):
    s = factory.open()
    a, b, c = message(1), message(2), message(3)
    s.persist(a, [1, 2])  # one message in two queues, stored once
    s.persist(b, [1])
    s.persist(c, [2])
    s.remove(1, a.store_id)
    s.remove(2, c.store_id)
    commit(s)
    s.close()
    s2 = factory.open()
    rec = loaded(s2)
    assert [r.body for r in rec[1]] == [b.body]
    assert [r.body for r in rec[2]] == [a.body]


def test_delivered_flag_survives(factory):
    s = factory.open()
    a, b = message(1), message(2)
    s.persist(a, [1, 2])
    s.persist(b, [1])
    s.delivered(1, a.store_id)
    commit(s)
    s.close()
    s2 = factory.open()
    rec = loaded(s2)
    assert [(r.body, r.delivered) for r in rec[1]] == [(a.body, True), (b.body, False)]
    assert [(r.body, r.delivered) for r in rec[2]] == [(a.body, False)]


def test_drop_queue_forgets_its_messages_only(factory):
    s = factory.open()
    a, b = message(1), message(2)
    s.persist(a, [1, 2])
    s.persist(b, [1])
    s.drop_queue(1)
    s.remove(1, a.store_id)
    s.remove(1, b.store_id)
    commit(s)
    s.close()
    s2 = factory.open()
    rec = loaded(s2)
    assert 1 not in rec
    assert [r.body for r in rec[2]] == [a.body]


def test_ids_keep_growing_across_reopen(factory):
    s = factory.open()
    a = message(1)
    s.persist(a, [1])
    commit(s)
    s.close()
    s2 = factory.open()
    s2.recover()
    b = message(2)
    s2.persist(b, [1])
    assert b.store_id > a.store_id
    commit(s2)
    s2.close()
    assert [r.body for r in loaded(factory.open())[1]] == [a.body, b.body]


def test_epochs_and_pending_notifications(factory):
    # the publish path's contract: epoch = persist(); the confirm waits only while epoch > synced_epoch
    s = factory.open()
    calls = []
    s.on_pending = lambda: calls.append(1)
    m = message(1)
    epoch = s.persist(m, [1])
    assert s.has_pending and calls == [1]
    if s.durable:
        assert epoch > s.synced_epoch, "a durable store's confirm waits for the batch's fsync"
    else:
        assert epoch <= s.synced_epoch, "nothing to wait for: the confirm goes at once"
    s.persist(message(2), [1])
    assert calls == [1], "on_pending fires once per batch"
    written = s.write_pending()
    assert written >= epoch and not s.has_pending
    s.sync()
    s.synced(written)
    assert s.synced_epoch >= epoch
    again = s.persist(message(3), [1])
    assert again > s.synced_epoch if s.durable else again <= s.synced_epoch
    assert calls == [1, 1]
    s.close()


def test_close_writes_what_is_pending(factory):
    s = factory.open()
    m = message(1)
    s.persist(m, [3])
    s.close()  # no explicit commit
    assert [r.body for r in loaded(factory.open())[3]] == [m.body]


def test_random_workload_matches_a_model(factory):
    rnd = random.Random(1234)
    s = factory.open()
    model: dict = {}  # qid -> list of bodies in order
    live: dict = {}  # (qid, store_id) -> body
    order: list = []
    for i in range(600):
        op = rnd.random()
        if op < 0.6 or not live:
            qids = rnd.sample([1, 2, 3], rnd.randint(1, 3))
            m = message(i, size=rnd.randint(0, 3000))
            s.persist(m, qids)
            for q in qids:
                live[(q, m.store_id)] = m.body
                order.append((q, m.store_id))
        else:
            key = rnd.choice(sorted(live))
            s.remove(*key)
            del live[key]
        if rnd.random() < 0.1:
            commit(s)
        if rnd.random() < 0.02:
            s.close()
            s = factory.open()
            s.recover()
    s.close()
    for q, sid in order:
        if (q, sid) in live:
            model.setdefault(q, []).append(live[(q, sid)])
    s2 = factory.open()
    rec = loaded(s2)
    assert {q: [r.body for r in rs] for q, rs in rec.items()} == model


def test_segment_store_deletes_dead_segments_and_compacts(tmp_path):
    f = SegmentFactory(tmp_path, segment_size=64 * 1024)
    s = f.open()
    keep = message(0, size=100)
    s.persist(keep, [1])  # one long-lived message in the first segment
    churn = []
    for i in range(1, 400):
        m = message(i, size=1000)
        s.persist(m, [1])
        churn.append(m)
        commit(s)
    for m in churn:
        s.remove(1, m.store_id)
        commit(s)
    for _ in range(3):
        commit(s)
    files = sorted(os.listdir(f.dir))
    size = sum(os.path.getsize(os.path.join(f.dir, n)) for n in files)
    assert size < 200 * 1024, f"dead data not reclaimed: {len(files)} segments, {size} bytes"
    s.close()
    rec = loaded(f.open())
    assert [r.body for r in rec[1]] == [keep.body]


def test_records_added_while_a_batch_is_being_written(factory):
    # the committer's cycle: take_pending on the loop, write_batch and sync on worker threads, written back
    # on the loop; messages persisted in between belong to the next batch and must land after it
    s = factory.open()
    first = [message(i, size=300) for i in range(5)]
    for m in first:
        s.persist(m, [1])
    epoch, batch = s.take_pending()
    assert not s.has_pending
    later = [message(i, size=70) for i in range(5, 9)]
    for m in later:
        s.persist(m, [1])
    s.write_batch(batch)
    s.sync()
    s.written(batch)
    s.synced(epoch)
    assert s.has_pending
    commit(s)
    for m in first + later:
        assert s.read_body(m.store_id) == m.body
    s.close()
    assert [r.body for r in loaded(factory.open())[1]] == [m.body for m in first + later]


def test_short_writes_are_completed(factory, monkeypatch):
    import os
    real = os.pwritev
    monkeypatch.setattr(os, "pwritev", lambda fd, bufs, off: real(fd, [memoryview(b"".join(bufs))[:37]], off))
    s = factory.open()
    msgs = [message(i, size=100) for i in range(6)]
    for m in msgs:
        s.persist(m, [1])
    commit(s)
    s.close()
    monkeypatch.setattr(os, "pwritev", real)
    assert [r.body for r in loaded(factory.open())[1]] == [m.body for m in msgs]


def test_compaction_moves_messages_held_by_several_queues(tmp_path, caplog):
    f = SegmentFactory(tmp_path, segment_size=16 * 1024)
    s = f.open()
    both = message(0, size=100)
    s.persist(both, [1, 2])  # in the first segment, held by two queues
    one = message(1, size=100)
    s.persist(one, [2])
    churn = [message(i, size=1000) for i in range(2, 60)]
    for m in churn:
        s.persist(m, [1])
        commit(s)
    with caplog.at_level("INFO", logger="warrenmq.store"):
        for m in churn:
            s.remove(1, m.store_id)
            commit(s)
        commit(s)
    assert "compacted" in caplog.text
    s.remove(1, both.store_id)  # after the move: queue 2 still holds it
    commit(s)
    assert s.read_body(both.store_id) == both.body and s.read_body(one.store_id) == one.body
    s.close()
    rec = loaded(f.open())
    assert 1 not in rec
    assert [r.body for r in rec[2]] == [both.body, one.body]


def test_random_workload_with_small_segments_matches_the_model(tmp_path):
    # segments of 16 KiB: files switch and dead ones go all along
    f = SegmentFactory(tmp_path, segment_size=16 * 1024)
    test_random_workload_matches_a_model(f)


def test_large_messages_round_trip(factory):
    # bodies of 8 KiB and more are written from where they are, between runs of joined small records
    s = factory.open()
    msgs = [message(i, size=n) for i, n in enumerate((8191, 8192, 70000, 10, 200000))]
    for m in msgs[:3]:
        s.persist(m, [1])
    epoch, batch = s.take_pending()
    for m in msgs[3:]:
        s.persist(m, [1, 2])
    s.write_batch(batch)
    s.sync()
    s.written(batch)
    s.synced(epoch)
    commit(s)
    assert [s.read_body(m.store_id) for m in msgs] == [m.body for m in msgs]
    s.close()
    rec = loaded(factory.open())
    assert [r.body for r in rec[1]] == [m.body for m in msgs]
    assert [r.body for r in rec[2]] == [m.body for m in msgs[3:]]


def test_segments_switch_under_continuous_load(tmp_path):
    # with records always pending when a batch's fsync completes, the store still moves on to a new
    # segment file once the active one is full (the pending records move with it)
    f = SegmentFactory(tmp_path, segment_size=16 * 1024)
    s = f.open()
    msgs = []
    epoch, batch = s.take_pending()
    for round_ in range(40):
        for i in range(5):
            m = message(round_ * 5 + i, size=400)
            s.persist(m, [1])
            msgs.append(m)
        s.write_batch(batch)
        s.sync()
        s.written(batch)
        s.synced(epoch)
        assert s.has_pending
        epoch, batch = s.take_pending()
    s.write_batch(batch)
    s.sync()
    s.written(batch)
    s.synced(epoch)
    for m in msgs[::7]:
        assert s.read_body(m.store_id) == m.body
    sizes = [os.path.getsize(os.path.join(f.dir, n)) for n in os.listdir(f.dir)]
    assert len(sizes) > 5 and max(sizes) < 16 * 1024 + 5 * 500, sizes
    s.close()
    assert [r.body for r in loaded(f.open())[1]] == [m.body for m in msgs]


def test_read_messages_returns_what_is_stored_in_the_order_asked(factory):
    s = factory.open()
    msgs = [message(i, size=50 + i) for i in range(6)]
    for m in msgs[:4]:
        s.persist(m, [1])
    commit(s)
    s.remove(1, msgs[1].store_id)
    commit(s)
    got = s.read_messages([msgs[3].store_id, msgs[0].store_id, msgs[1].store_id, 999999])
    assert got[2] is None and got[3] is None
    for (ex_rk, header, body), m in zip(got[:2], (msgs[3], msgs[0])):
        assert (ex_rk, header, body) == (m.ex_rk, m.header, m.body)
    s.close()


def test_a_failed_write_is_retried_where_it_belongs(factory, monkeypatch):
    # the committer's failure path: write_batch fails part way (ENOSPC after some bytes), later records
    # are taken aside in their own batch, then retry() writes both in order; nothing is lost or doubled
    import errno
    s = factory.open()
    before = [message(i, size=200) for i in range(3)]
    for m in before:
        s.persist(m, [1])
    commit(s)
    failing = [message(i, size=9000 if i == 4 else 150) for i in range(3, 7)]
    for m in failing:
        s.persist(m, [1])
    e1, b1 = s.take_pending()
    real = os.pwritev

    def half_then_full(fd, bufs, off):
        data = b"".join(bytes(b) for b in bufs)
        if len(data) > 100:
            real(fd, [data[:len(data) // 2]], off)
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "pwritev", half_then_full)
    if s.durable:
        with pytest.raises(OSError):
            s.write_batch(b1)
    later = [message(i, size=120) for i in range(7, 10)]
    for m in later:
        s.persist(m, [1])
    e2, b2 = s.take_pending()
    if s.durable:
        with pytest.raises(OSError):
            s.retry([b1, b2])  # the fault is still there
    monkeypatch.setattr(os, "pwritev", real)
    s.retry([b1, b2])
    s.written(b1)
    s.written(b2)
    s.synced(max(e1, e2))
    assert s.synced_epoch >= max(e1, e2)
    msgs = before + failing + later
    assert [s.read_body(m.store_id) for m in msgs] == [m.body for m in msgs]
    s.close()
    assert [r.body for r in loaded(factory.open())[1]] == [m.body for m in msgs]


def test_an_fsync_failure_writes_the_unsynced_batches_again(tmp_path, monkeypatch):
    # after a failed fsync the kernel may have dropped the dirty pages: retry() writes what that fsync
    # should have covered again (here: zeroed on disk behind the store's back), then fsyncs
    import errno
    f = SegmentFactory(tmp_path)
    s = f.open()
    msgs = [message(i, size=500) for i in range(4)]
    for m in msgs:
        s.persist(m, [1])
    epoch, batch = s.take_pending()
    s.write_batch(batch)
    s.written(batch)
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")))
    with pytest.raises(OSError):
        s.sync()
    monkeypatch.undo()
    seg = max(os.listdir(f.dir))
    with open(os.path.join(f.dir, seg), "r+b") as fh:  # the pages the failed writeback lost
        fh.write(bytes(os.path.getsize(os.path.join(f.dir, seg))))
    s.retry([])
    s.synced(epoch)
    assert [s.read_body(m.store_id) for m in msgs] == [m.body for m in msgs]
    s.close()
    assert [r.body for r in loaded(f.open())[1]] == [m.body for m in msgs]


def test_stashed_bodies_are_paged_out_read_back_and_forgotten(factory):
    # the page store's use of the interface: a body that belongs to no queue, never recovered
    s = factory.open()
    m = message(1, size=4000)
    body = m.body
    mid = s.stash(m)
    assert mid and m.store_id == 0, "stash does not make the message persistent"
    m.paged = True
    s.page_out(m)
    commit(s)
    assert m.body is None, "paged out once written"
    assert s.read_body(mid) == body
    assert s.read_messages([mid])[0] == (m.ex_rk, m.header, body)
    s.remove(0, mid)
    commit(s)
    assert s.read_body(mid) is None
    s.close()
    assert loaded(factory.open()) == {}


def test_a_persisted_body_is_paged_out_and_read_back(factory):
    s = factory.open()
    m = message(1, size=3000)
    body = m.body
    s.persist(m, [1])
    m.paged = True
    s.page_out(m)
    commit(s)
    assert m.body is None and s.read_body(m.store_id) == body
    s.close()


def test_nothing_is_created_on_disk_before_the_first_record(tmp_path):
    d = tmp_path / "msgs"
    s = SegmentStore(str(d))
    assert not d.exists()
    assert s.recover() == {}
    s.close()
    assert not d.exists()
    s = SegmentStore(str(d))
    m = message(1)
    s.persist(m, [1])
    commit(s)
    assert d.exists()
    s.close()


# ------------------------------------------------------------------ definitions
@pytest.fixture(params=["sqlite", "memory"])
def definitions(request, tmp_path):
    if request.param == "sqlite":
        d = SQLiteDefinitions(str(tmp_path / "defs.sqlite3"))
    else:
        d = MemoryDefinitions()
    yield d
    d.close()


def test_definitions_hand_out_distinct_queue_ids(definitions):
    vh = VHost("/", store=MemoryStore(), defs=definitions)
    a, _ = vh.declare_queue("a", None, durable=True)
    b, _ = vh.declare_queue("b", None, durable=True)
    t, _ = vh.declare_queue("t", None, durable=False)
    assert a.store_id and b.store_id and a.store_id != b.store_id
    assert t.store_id == 0, "a transient queue is not in the store"
    vh.bind_queue(a, "amq.direct", "k", {})
    vh.unbind_queue("a", None, "amq.direct", "k", {})
    vh.declare_exchange("x", "topic", durable=True)
    vh.delete_queue(b)
    assert isinstance(definitions.load()["vhosts"], list)


def test_the_base_definitions_record_nothing():
    d = Definitions()
    vh = VHost("/", defs=d)
    q, _ = vh.declare_queue("q", None, durable=True)
    assert q.store_id == 0
    assert d.load()["queues"] == []


def test_open_storage_in_memory_and_in_a_directory(tmp_path):
    mem = open_storage(BrokerConfig(data_dir=""))
    assert isinstance(mem, Storage) and not mem.durable and mem.pages is None
    assert isinstance(mem.messages, MemoryStore) and isinstance(mem.definitions, MemoryDefinitions)
    mem.close()
    data = tmp_path / "data"
    (data / "pages").mkdir(parents=True)
    (data / "pages" / "0000000001.seg").write_bytes(b"stale")
    st = open_storage(BrokerConfig(data_dir=str(data)))
    try:
        assert st.durable and st.path == str(data)
        assert isinstance(st.messages, SegmentStore) and isinstance(st.pages, SegmentStore)
        assert not (data / "pages").exists(), "the page store of the previous run is wiped"
        assert not (data / "msg_store").exists(), "nothing is created before it is needed"
        with pytest.raises(RuntimeError, match="in use by another broker"):
            open_storage(BrokerConfig(data_dir=str(data)))
    finally:
        st.close()
    open_storage(BrokerConfig(data_dir=str(data))).close()  # the lock went with close()


def test_what_the_committer_and_the_broker_ask_besides(factory):
    # may_overlap (may a batch be written during an fsync) and stats (counts for inspection)
    s = factory.open()
    assert s.may_overlap is True
    m = message(1)
    s.persist(m, [1])
    commit(s)
    assert s.stats()["messages"] == 1
    s.remove(1, m.store_id)
    commit(s)
    assert s.stats()["messages"] == 0
    s.close()


def test_a_segment_switched_from_before_its_last_fsync_is_fsynced_by_the_next_sync(tmp_path, monkeypatch):
    # the committer overlaps the write of batch N+1 with the fsync of batch N: when the fsync of N
    # completes, the segment may switch while N+1, written to the old file, has not been fsynced; the
    # next sync must cover that file too (an fsync covers one file), and the file is closed after it
    from warrenmq.store import segments
    synced_files = []
    real_fsync = os.fsync
    monkeypatch.setattr(segments.os, "fsync", lambda fd: (synced_files.append(os.readlink(f"/proc/self/fd/{fd}")),
                                                          real_fsync(fd)))
    f = SegmentFactory(tmp_path, segment_size=4 * 1024)
    s = f.open()
    for i in range(8):
        s.persist(message(i, size=400), [1])
    epoch_n, batch_n = s.take_pending()
    s.write_batch(batch_n)
    s.written(batch_n)
    first = batch_n[5]
    s.persist(message(100, size=400), [1])
    epoch_n1, batch_n1 = s.take_pending()  # written to the same (full) file while N's fsync runs
    s.sync()  # the fsync of N ...
    s.write_batch(batch_n1)
    s.written(batch_n1)
    s.synced(epoch_n)  # ... completes: the file is full, nothing in flight: a new segment
    old_path = os.readlink(f"/proc/self/fd/{first}")
    assert s._active.path != old_path
    synced_files.clear()
    s.sync()  # the fsync that covers N+1
    assert old_path in synced_files
    s.synced(epoch_n1)
    assert first not in s._retired
    s.close()
    assert len(loaded(f.open())[1]) == 9
