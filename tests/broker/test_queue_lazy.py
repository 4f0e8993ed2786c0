"""The lazy tail through the domain API: a durable queue past its paging limit keeps persistent messages as
store ids only, reads them back in batches, in order, and releases what it held.  A VHost over a real
MemoryStore or SegmentStore (tmp_path) and a real page store; no sockets."""
import pytest
from support.queue_client import Client, message

from warrenmq.broker.message import Message
from warrenmq.broker.queues import Fifo, LazyMessages, SizedMessages
from warrenmq.broker.queues.lazy import REFILL_BATCH
from warrenmq.broker.vhost import VHost
from warrenmq.store.memory import MemoryDefinitions, MemoryStore
from warrenmq.store.metadata import SQLiteDefinitions
from warrenmq.store.segments import SegmentStore

LIMIT = 20


@pytest.fixture(params=["memory", "segments"])
def vh(request, tmp_path):
    store = MemoryStore() if request.param == "memory" else SegmentStore(str(tmp_path / "msgs"), fsync=False)
    defs = MemoryDefinitions() if request.param == "memory" else SQLiteDefinitions(str(tmp_path / "defs.sqlite3"))
    vh = VHost("/", store=store, defs=defs)
    vh.page_store = SegmentStore(str(tmp_path / "pages"), fsync=False)
    vh.page_limit = LIMIT
    yield vh
    store.close()
    vh.page_store.close()
    defs.close()


def sync(store):
    """One group-commit cycle, as the transport runs it."""
    epoch = store.write_pending()
    store.sync()
    store.synced(epoch)


def publish(vh, q, body, persistent=True, **props):
    """Route ``body`` to ``q`` as the session does: persisted first when persistent, then enqueued."""
    msg = message(body, delivery_mode=2 if persistent else 1, **props)
    if persistent:
        vh.store.persist(msg, [q.store_id])
    msg.pageable = True  # (one queue holds it)
    return q.publish(msg)


def shape(q):
    """(ready, entries held as objects, entries held as store ids only)."""
    msgs = q.messages
    msgs._settle_synced()
    tail = len(msgs.ids) - msgs.pos
    return len(msgs), len(msgs.head) + len(msgs.side), tail - len(msgs.side)


def drain(q) -> list:
    """Get and settle every ready message: their bodies (paged ones read back), in order."""
    got = []
    while (e := q.get()) is not None:
        if e.message.paged:
            q.page_in(e.message)
        got.append(e.message.body)
        q.settle(e)
    return got


def bodies(n, prefix=b"m"):
    return [prefix + b"%05d" % i for i in range(n)]


def test_a_backlog_past_the_limit_becomes_ids_and_comes_back_in_order(vh):
    q, _ = vh.declare_queue("lazy", None, durable=True)
    assert q.store_id and q.messages.__class__ is Fifo
    sent = bodies(3 * REFILL_BATCH)
    for b in sent:
        publish(vh, q, b)
    assert isinstance(q.messages, LazyMessages)
    count, objects, ids = shape(q)
    assert count == len(sent) and objects == len(sent)  # not synced yet: every new entry is still an object
    sync(vh.store)
    count, objects, ids = shape(q)
    # the head: the limit, plus the entry whose publish went past it
    assert count == len(sent) and objects == LIMIT + 1 and ids == len(sent) - LIMIT - 1
    client = Client()
    client.consume(q, "c", prefetch=50)
    while client.unacked:
        client.ack()
    assert client.take() == sent
    assert len(q.messages) == 0 and vh.memory.used == 0
    if isinstance(vh.store, MemoryStore):
        assert vh.store.state["msgs"] == {}


def test_transient_expiring_and_redelivered_entries_keep_their_place_as_objects(vh):
    q, _ = vh.declare_queue("mixed", None, durable=True)
    for b in bodies(LIMIT):
        publish(vh, q, b)
    early = [q.get() for _ in range(2)]  # will come back redelivered
    for b in bodies(LIMIT + 2, b"h"):  # refill the head past the limit
        publish(vh, q, b)
    publish(vh, q, b"transient", persistent=False)
    publish(vh, q, b"stored")
    publish(vh, q, b"expiring", expiration="60000")  # (from now on the queue has deadlines: no more ids)
    sync(vh.store)
    assert isinstance(q.messages, LazyMessages)
    q.messages._settle_synced()
    side = sorted((e.message.persistent, e.message.expiration or "") for e in q.messages.side.values())
    assert side == [(False, ""), (True, "60000")]  # the transient and the expiring message
    q.requeue(early)
    assert [e.redelivered for e in list(q.messages)[:3]] == [True, True, False]
    assert drain(q) == bodies(LIMIT) + bodies(LIMIT + 2, b"h") + [b"transient", b"stored", b"expiring"]
    assert vh.memory.used == 0


def test_purge_forgets_the_tail_without_reading_it(vh):
    q, _ = vh.declare_queue("p", None, durable=True)
    for b in bodies(200):
        publish(vh, q, b)
    sync(vh.store)
    assert shape(q)[2] == 200 - LIMIT - 1
    assert q.purge() == 200
    assert len(q.messages) == 0 and vh.memory.used == 0
    if isinstance(vh.store, MemoryStore):
        assert vh.store.state["msgs"] == {}


def test_a_byte_limit_materializes_the_tail(vh):
    q, _ = vh.declare_queue("b", None, durable=True)
    for b in bodies(100):
        publish(vh, q, b)
    sync(vh.store)
    vh.policies.set("p", "^b$", {"max-length-bytes": 6 * 50})  # each body is 6 bytes: the older half goes
    assert isinstance(q.messages, SizedMessages) and q.messages.inner.__class__ is Fifo
    assert len(q.messages) == 50 and q.messages.bytes == 300
    assert drain(q) == bodies(100)[50:]


def test_restored_messages_beyond_the_limit_stay_on_disk(vh, tmp_path):
    q, _ = vh.declare_queue("r", None, durable=True)
    for b in bodies(100):
        publish(vh, q, b)
    sync(vh.store)
    store = vh.store
    if isinstance(store, SegmentStore):  # a restart: a new store over the same files
        store.close()
        store = SegmentStore(store.dir, fsync=False)
    records = store.recover()[q.store_id]
    vh2 = VHost("/", store=store)
    vh2.page_store, vh2.page_limit = vh.page_store, LIMIT
    q2, _ = vh2.declare_queue("r", None, durable=True)
    q2.store_id = q.store_id  # as the broker's recovery does
    for r in records:
        q2.restore(Message(r.exchange, r.routing_key, r.header, r.body, r.ex_rk), r.msg_id, r.delivered)
    assert isinstance(q2.messages, LazyMessages)
    assert shape(q2) == (100, LIMIT + 1, 100 - LIMIT - 1)  # on disk already: ids at once, no sync needed
    assert drain(q2) == bodies(100)
    assert vh2.memory.used == 0  # a body the store gave back beyond the limit never counted


def flush_pages(pages):
    """One page-store flush, as the transport's PageFlusher runs it."""
    if pages.has_pending:
        _, batch = pages.take_pending()
        pages.write_batch(batch)
        pages.written(batch)


def test_under_the_memory_alarm_a_transient_backlog_moves_to_the_page_store_and_comes_back(vh):
    q, _ = vh.declare_queue("transient", None)  # not durable: nothing of it is in the message store
    sent = bodies(3 * REFILL_BATCH)
    for b in sent:
        publish(vh, q, b, persistent=False)
    assert q.messages.__class__ is Fifo, "no alarm: a transient backlog stays in memory"
    used = vh.memory.used
    vh.memory.add(vh.memory.high + 1)  # the alarm is on
    assert vh.memory.alarm
    freed = q.page_out_ready(1 << 40)
    assert freed > 0 and isinstance(q.messages, LazyMessages)
    flush_pages(vh.page_store)
    count, objects, ids = shape(q)
    assert count == len(sent) and objects == LIMIT and ids == len(sent) - LIMIT
    assert vh.memory.used - (vh.memory.high + 1) == used - sum(map(len, sent[LIMIT:])), \
        "the bodies moved to disk no longer count"
    # publishes during the alarm go to the tail too
    more = bodies(10, b"n")
    for b in more:
        publish(vh, q, b, persistent=False)
    flush_pages(vh.page_store)
    assert shape(q)[2] == len(sent) - LIMIT + len(more)
    vh.memory.release(vh.memory.high + 1)
    vh.memory.sample(rss=1)
    client = Client()
    client.consume(q, "c", prefetch=50)
    while client.unacked:
        client.ack()
    assert client.take() == sent + more
    assert len(q.messages) == 0 and vh.memory.used == 0
    assert len(vh.page_store.refs) == 0, "every page-store record was let go of"


def test_a_transient_tail_not_written_yet_stays_in_memory_and_purge_lets_go_of_the_page_store(vh):
    q, _ = vh.declare_queue("transient", None)
    for b in bodies(200):
        publish(vh, q, b, persistent=False)
    vh.memory.add(vh.memory.high + 1)
    q.page_out_ready(1 << 40)
    count, objects, ids = shape(q)
    assert (count, objects, ids) == (200, 200, 0), "records not written yet: every entry is still an object"
    flush_pages(vh.page_store)
    assert shape(q) == (200, LIMIT, 200 - LIMIT)
    assert q.purge() == 200
    assert len(vh.page_store.refs) == 0 and vh.memory.used == vh.memory.high + 1
