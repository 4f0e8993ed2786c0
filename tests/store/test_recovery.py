"""Recovery at start: the scan of the segments (after a crash) and the checkpoint a clean close leaves
give back the same messages, in publish order, with their redelivered flags; a queue past its paging
limit takes the recovered ids as its lazy tail without reading them."""
import logging
import os
import shutil
import signal

import pika
import pytest

from warrenmq.broker.queues import LazyMessages
from warrenmq.store import SegmentStore
from warrenmq.store.segments import CHECKPOINT
from warrenmq.testing import EmbeddedBroker

from support.process import BrokerProcess
from support.store import commit, loaded, message


def history(d, n=3000, segment_size=4096):
    """A store with many small segments (some compacted), messages for queues 1 and 2 (some for both,
    some with an expiration), acks, deliveries and a deleted queue 3; returns the store (open) and
    what recovery must give: {queue: [(mid, delivered)]}, and the expiring ids."""
    s = SegmentStore(d, segment_size=segment_size)
    held = {1: {}, 2: {}}
    dropped = []
    expiring = set()
    for i in range(n):
        if i % 10 == 3:
            m = message(i, size=20, expiration="600000")
        else:
            m = message(i, size=20)
        queues = [1, 2] if i % 7 == 0 else [3] if i % 11 == 0 else [1 + i % 2]
        s.persist(m, queues)
        for q in queues:
            if q in held:
                held[q][m.store_id] = False
            else:
                dropped.append(m.store_id)
        if i % 10 == 3:
            expiring.add(m.store_id)
        if i % 50 == 49:
            commit(s)
            # settle most of what came before, so that old segments die and get compacted
            for q in (1, 2):
                for mid in sorted(held[q])[:-8]:
                    if mid % 5 == 0:
                        continue  # some stay behind
                    if mid % 3 == 0:
                        s.delivered(q, mid)
                        held[q][mid] = True
                    else:
                        s.remove(q, mid)
                        del held[q][mid]
    s.drop_queue(3)  # as the broker deletes a queue: the record, then each message let go
    for mid in dropped:
        s.remove(3, mid)
    commit(s)
    want = {q: sorted(h.items()) for q, h in held.items() if h}
    return s, want, {mid for mid in expiring if any(mid in h for h in held.values())}


def got(s):
    out = {}
    for q, rq in s.recover_ids().items():
        out[q] = [(mid, mid in rq.delivered) for mid in rq.ids]
        exp = rq.expiring
    return out, exp


def test_the_checkpoint_and_the_scan_recover_the_same_messages_in_order(tmp_path):
    d = str(tmp_path / "a")
    s, want, expiring = history(d)
    assert len(s.segments) > 3
    s.close()
    assert os.path.exists(os.path.join(d, CHECKPOINT))
    crashed = str(tmp_path / "b")
    shutil.copytree(d, crashed)
    os.unlink(os.path.join(crashed, CHECKPOINT))  # as after kill -9: nothing but the segments

    fast = SegmentStore(d, segment_size=4096)
    assert not os.path.exists(os.path.join(d, CHECKPOINT))  # used once, then gone
    scanned = SegmentStore(crashed, segment_size=4096)
    for s2 in (fast, scanned):
        ids, exp = got(s2)
        assert ids == want
        assert exp & {m for q in want.values() for m, _ in q} == expiring
        assert s2.next_msg_id == 3001
        assert s2.stats()["messages"] == len({m for q in want.values() for m, _ in q})
    assert fast.stats() == scanned.stats()
    assert sorted(fast.refs.items()) == sorted(scanned.refs.items())
    # (the checkpoint also keeps how many messages each segment had: the scan only knows the live ones)
    assert {n: (x.live, x.size) for n, x in fast.segments.items()} == \
        {n: (x.live, x.size) for n, x in scanned.segments.items()}
    # and what they go on with is the same: bodies, headers, further writes, another restart
    for s2 in (fast, scanned):
        for q, lst in want.items():
            for mid, _ in lst:
                parts = s2.read_messages([mid])[0]
                assert parts is not None and parts[2].startswith(b"m")
        m = message(9999)
        s2.persist(m, [1])
        commit(s2)
        s2.close()
    for path in (d, crashed):
        rec = loaded(SegmentStore(path, segment_size=4096))
        assert [r.msg_id for r in rec[1]] == [mid for mid, _ in want[1]] + [3001]
        assert [r.delivered for r in rec[1]][:-1] == [dl for _, dl in want[1]]
        assert rec[1][-1].body == message(9999).body


def test_a_stale_or_damaged_checkpoint_is_not_trusted(tmp_path, caplog):
    d = str(tmp_path / "a")
    s, want, _ = history(d, n=500)
    s.close()
    ckpt = os.path.join(d, CHECKPOINT)
    saved = open(ckpt, "rb").read()
    s2 = SegmentStore(d, segment_size=4096)
    s2.recover_ids()
    extra = message(777)
    s2.persist(extra, [2])
    commit(s2)
    s2.checkpoint = False  # a crash: no checkpoint of this run
    s2.close()
    with open(ckpt, "wb") as f:  # the checkpoint of the run before comes back
        f.write(saved)
    with caplog.at_level(logging.WARNING, "warrenmq.store"):
        ids, _ = got(SegmentStore(d, segment_size=4096))
    assert "not used" in caplog.text
    assert ids[2] == want[2] + [(extra.store_id, False)]

    d2 = str(tmp_path / "b")
    s, want, _ = history(d2, n=500)
    s.close()
    ckpt = os.path.join(d2, CHECKPOINT)
    blob = bytearray(open(ckpt, "rb").read())
    blob[len(blob) // 2] ^= 0xFF
    open(ckpt, "wb").write(bytes(blob))
    caplog.clear()
    with caplog.at_level(logging.WARNING, "warrenmq.store"):
        ids, _ = got(SegmentStore(d2, segment_size=4096))
    assert "not used" in caplog.text
    assert ids == want


def test_a_store_that_failed_leaves_no_checkpoint(tmp_path):
    d = str(tmp_path / "a")
    s = SegmentStore(d)
    s.persist(message(1), [1])
    epoch, batch = s.take_pending()  # taken, never written: as when the last write failed
    s.close()
    assert not os.path.exists(os.path.join(d, CHECKPOINT))


# ------------------------------------------------------------------------------------ through a broker
LIMIT = 10
N = 3000


def fill(url):
    """N persistent messages (every 10th with an expiration), then the first 200 fetched and not acked
    (they come back redelivered), then one more; returns [(body, redelivered, has expiration)] as a
    consumer must see them."""
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare("rec", durable=True)
    want = []
    for i in range(N):
        exp = "3600000" if i % 10 == 4 else None
        ch.basic_publish("", "rec", b"r%05d" % i, pika.BasicProperties(delivery_mode=2, expiration=exp))
        want.append((b"r%05d" % i, i < 200, exp is not None))
    for _ in range(200):
        method, _, _ = ch.basic_get("rec", auto_ack=False)
        assert method is not None
    # a confirmed publish after them: its fsync covers the records of those deliveries too
    ch.basic_publish("", "rec", b"last", pika.BasicProperties(delivery_mode=2))
    want.append((b"last", False, False))
    return conn, want


def drain_all(url):
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    out = []
    while True:
        method, props, body = ch.basic_get("rec", auto_ack=True)
        if method is None:
            break
        out.append((body, method.redelivered, props.expiration is not None))
    conn.close()
    return out


@pytest.mark.timeout(120)
def test_a_clean_restart_restores_the_tail_as_ids_in_order_with_flags(tmp_path):
    data = str(tmp_path / "data")
    # the first run keeps everything as objects; the second has a small limit, so the 200 delivered
    # messages and those with an expiration lie in its tail and must keep their flags there
    with EmbeddedBroker(data_dir=data, queue_max_in_memory=5000) as b:
        conn, want = fill(b.url)
        conn.close()
    assert os.path.exists(os.path.join(data, "msg_store", CHECKPOINT))
    with EmbeddedBroker(data_dir=data, queue_max_in_memory=LIMIT) as b:
        def probe():
            msgs = b.broker.vhosts["/"].queues["rec"].messages
            assert isinstance(msgs, LazyMessages)
            return len(msgs), len(msgs.head), len(msgs.side)
        count, head, side = b.call(probe)
        assert (count, head) == (N + 1, LIMIT + 1)
        # objects only for the delivered and the expiring ones past the head
        assert side == len([w for w in want[LIMIT + 1:] if w[1] or w[2]])
        assert drain_all(b.url) == want


@pytest.mark.timeout(120)
def test_kill_9_recovers_every_message_in_order_with_flags(tmp_path, monkeypatch):
    data = str(tmp_path / "data")
    monkeypatch.setenv("WARRENMQ_QUEUE_MAX_IN_MEMORY", "5000")
    with BrokerProcess(data) as b:
        conn, want = fill(b.url)
        b.proc.send_signal(signal.SIGKILL)
        b.proc.wait(20)
    assert not os.path.exists(os.path.join(data, "msg_store", CHECKPOINT))
    monkeypatch.setenv("WARRENMQ_QUEUE_MAX_IN_MEMORY", str(LIMIT))
    with BrokerProcess(data) as b:
        assert drain_all(b.url) == want
        b.stop()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("arguments", [{"x-message-ttl": 3600000}, {"x-max-priority": 5}])
def test_queues_that_cannot_go_lazy_recover_in_order_past_the_limit(tmp_path, arguments):
    data = str(tmp_path / "data")
    bodies = [b"n%04d" % i for i in range(1500)]
    with EmbeddedBroker(data_dir=data, queue_max_in_memory=LIMIT) as b:
        conn = pika.BlockingConnection(pika.URLParameters(b.url))
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare("nl", durable=True, arguments=arguments)
        for body in bodies:
            ch.basic_publish("", "nl", body, pika.BasicProperties(delivery_mode=2))
        conn.close()
    with EmbeddedBroker(data_dir=data, queue_max_in_memory=LIMIT) as b:
        conn = pika.BlockingConnection(pika.URLParameters(b.url))
        ch = conn.channel()
        out = []
        while True:
            method, _, body = ch.basic_get("nl", auto_ack=True)
            if method is None:
                break
            out.append(body)
        assert out == bodies
        assert b.call(lambda: b.broker.memory.used) == 0
        conn.close()
