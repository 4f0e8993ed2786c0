"""A large message record that every queue let go of before its batch was taken is never written.

RabbitMQ's message store drops a pending write when the message is removed first; the segment store
does the same for bodies of 8 KiB and more, so that under a steady publish/consume load most large
bodies never reach the disk.  What is written must stay exactly as if nothing had been cut: offsets,
reads, recovery, confirms (epochs) and the order of ACK records.
"""
import asyncio
import os
import random
import threading
import time

import aio_pika
import pytest

from support.store import commit, loaded, message
from warrenmq.store import SegmentStore
from warrenmq.store.records import REC_SIZE, T_DELIVERED, T_MSG
from warrenmq.testing import EmbeddedBroker

BIG = 20000


def store(tmp_path, segment_size=1 << 20) -> SegmentStore:
    return SegmentStore(str(tmp_path / "msgs"), fsync=True, segment_size=segment_size)


def on_disk(tmp_path) -> bytes:
    d = tmp_path / "msgs"
    return b"".join((d / n).read_bytes() for n in sorted(os.listdir(d)))


def test_a_large_message_removed_before_its_batch_is_never_written(tmp_path):
    s = store(tmp_path)
    a, b, c, d = message(1, BIG), message(2, BIG), message(3, 100), message(4, BIG)
    for m in (a, b, c, d):
        s.persist(m, [1])
    s.delivered(1, b.store_id)
    s.remove(1, b.store_id)
    epoch = commit(s)
    assert s.synced_epoch == epoch
    assert b.body not in on_disk(tmp_path) and a.body in on_disk(tmp_path)
    # the records after the cut one were moved back: reads find them where they are
    assert [s.read_body(m.store_id) for m in (a, b, c, d)] == [a.body, None, c.body, d.body]
    s.close()
    assert [r.body for r in loaded(store(tmp_path))[1]] == [a.body, c.body, d.body]


def test_delivered_records_of_pending_large_messages_follow_them_unless_cut(tmp_path):
    s = store(tmp_path)
    kept, cut = message(1, BIG), message(2, BIG)
    s.persist(kept, [1])
    s.persist(cut, [1])
    s.delivered(1, kept.store_id)
    s.delivered(1, cut.store_id)
    s.remove(1, cut.store_id)
    commit(s)
    data = on_disk(tmp_path)
    types = []
    off = 0
    while off < len(data):  # the type of each record written
        size = int.from_bytes(data[off + 2:off + 6], "big")
        types.append(data[off + REC_SIZE - 1])
        off += REC_SIZE + size
    assert types == [T_MSG, T_DELIVERED]
    s.close()
    (r,) = loaded(store(tmp_path))[1]
    assert r.body == kept.body and r.delivered


def test_nothing_but_cut_records_still_makes_a_cycle(tmp_path):
    # the publisher's confirm waits for the epoch its message was given: it must come even though
    # nothing is left to write
    s = store(tmp_path)
    commit(s)
    m = message(1, BIG)
    want = s.persist(m, [1])
    s.remove(1, m.store_id)
    assert s.has_pending
    epoch = commit(s)
    assert epoch >= want and s.synced_epoch >= want
    assert not s.has_pending
    s.close()
    assert loaded(store(tmp_path)) == {}


def test_small_and_written_records_are_not_cut(tmp_path):
    s = store(tmp_path)
    small, taken = message(1, 8191), message(2, BIG)
    s.persist(small, [1])
    s.persist(taken, [1])
    epoch, batch = s.take_pending()
    s.remove(1, small.store_id)  # too small to be cut: its record and an ACK are written
    s.remove(1, taken.store_id)  # in flight: an ACK follows it
    s.write_batch(batch)
    s.written(batch)
    s.sync()
    s.synced(epoch)
    commit(s)
    data = on_disk(tmp_path)
    assert small.body in data and taken.body in data
    s.close()
    assert loaded(store(tmp_path)) == {}


def test_a_message_in_several_queues_is_cut_only_when_the_last_lets_go(tmp_path):
    s = store(tmp_path)
    kept, cut = message(1, BIG), message(2, BIG)
    s.persist(kept, [1, 2])
    s.persist(cut, [1, 2])
    s.remove(1, kept.store_id)
    s.remove(1, cut.store_id)
    s.remove(2, cut.store_id)
    commit(s)
    assert kept.body in on_disk(tmp_path) and cut.body not in on_disk(tmp_path)
    s.close()
    rec = loaded(store(tmp_path))
    assert list(rec) == [2] and [r.body for r in rec[2]] == [kept.body]


def test_cut_after_the_segment_switched(tmp_path):
    # records still pending when the active segment fills move to the next one; one of them cut
    # afterwards must leave the others where reads and recovery look for them
    s = store(tmp_path, segment_size=64 * 1024)
    first = [message(i, BIG) for i in range(4)]
    for m in first:
        s.persist(m, [1])
    epoch, batch = s.take_pending()
    later = [message(10 + i, BIG) for i in range(4)]
    for m in later:
        s.persist(m, [1])
    s.write_batch(batch)
    s.written(batch)
    s.sync()
    s.synced(epoch)  # the segment is full: the pending records move to a new one
    assert len(s.segments) == 2
    s.remove(1, later[1].store_id)
    commit(s)
    alive = first + later[:1] + later[2:]
    assert [s.read_body(m.store_id) for m in alive] == [m.body for m in alive]
    s.close()
    assert [r.body for r in loaded(store(tmp_path, 64 * 1024))[1]] == [m.body for m in alive]


def test_random_large_workload_matches_a_model(tmp_path):
    # large and small messages in one to three queues, removed at random, some before their batch is
    # taken, some while it is in flight; small segments so that files switch and compact all along
    rnd = random.Random(99)
    seg = 96 * 1024
    s = store(tmp_path, seg)
    live: dict = {}
    order: list = []
    inflight = None
    for i in range(500):
        op = rnd.random()
        if op < 0.5 or not live:
            qids = rnd.sample([1, 2, 3], rnd.randint(1, 3))
            m = message(i, size=rnd.choice((10, 3000, 8192, BIG)))
            s.persist(m, qids)
            for q in qids:
                live[(q, m.store_id)] = m.body
                order.append((q, m.store_id))
        elif op < 0.6:
            q, sid = rnd.choice(sorted(live))
            s.delivered(q, sid)
        else:
            key = rnd.choice(sorted(live))
            s.remove(*key)
            del live[key]
        r = rnd.random()
        if r < 0.1 and inflight is None:
            inflight = s.take_pending()
        elif r < 0.2 and inflight is not None:
            epoch, batch = inflight
            s.write_batch(batch)
            s.written(batch)
            s.sync()
            s.synced(epoch)
            inflight = None
        if inflight is None and rnd.random() < 0.05:
            for (q, sid), body in rnd.sample(sorted(live.items()), min(5, len(live))):
                got = s.read_body(sid)
                assert got in (None, body)  # None: not written yet
    if inflight is not None:
        epoch, batch = inflight
        s.write_batch(batch)
        s.written(batch)
        s.sync()
        s.synced(epoch)
    commit(s)
    for (q, sid), body in live.items():
        assert s.read_body(sid) == body
    s.close()
    model: dict = {}
    for q, sid in order:
        if (q, sid) in live:
            model.setdefault(q, []).append(live[(q, sid)])
    rec = loaded(store(tmp_path, seg))
    assert {q: [r.body for r in rs] for q, rs in rec.items()} == model


@pytest.mark.timeout(60)
def test_broker_confirms_a_message_acked_before_its_write_and_never_writes_it(tmp_path, monkeypatch):
    # The writer thread is held on its first batch (a slow disk): the second message, consumed and acked
    # meanwhile, is cut from the next batch; both publishers' confirms still come, in order.
    first, second = b"1" * BIG, b"2" * BIG
    gate, taken = threading.Event(), threading.Event()
    write_batch = SegmentStore.write_batch

    def slow_write(self, batch):
        if not taken.is_set():
            taken.set()
            assert gate.wait(10)
        write_batch(self, batch)

    monkeypatch.setattr(SegmentStore, "write_batch", slow_write)
    data = str(tmp_path / "data")

    async def scenario(b):
        conn = await aio_pika.connect(b.url)
        pub = await conn.channel(publisher_confirms=True)
        sub = await conn.channel()
        q = await sub.declare_queue("cut", durable=True)
        got = asyncio.Queue()

        async def on_message(m):
            await m.ack()
            await got.put(m.body)
        await q.consume(on_message)
        persistent = aio_pika.DeliveryMode.PERSISTENT
        c1 = asyncio.ensure_future(pub.default_exchange.publish(
            aio_pika.Message(first, delivery_mode=persistent), "cut"))
        await asyncio.get_running_loop().run_in_executor(None, taken.wait, 5)
        c2 = asyncio.ensure_future(pub.default_exchange.publish(
            aio_pika.Message(second, delivery_mode=persistent), "cut"))
        assert [await asyncio.wait_for(got.get(), 5) for _ in range(2)] == [first, second]
        store = b.broker.store
        deadline = time.monotonic() + 5
        while b.call(lambda: store.stats()["messages"]):  # both acks are in
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        assert not c1.done() and not c2.done()
        gate.set()
        await asyncio.wait_for(asyncio.gather(c1, c2), 5)
        await conn.close()

    with EmbeddedBroker(data_dir=data) as b:
        asyncio.run(scenario(b))
    stored = b"".join(p.read_bytes() for p in (tmp_path / "data").rglob("*.seg"))
    assert first in stored and second not in stored
