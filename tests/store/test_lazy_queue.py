"""Beyond its paging limit a durable queue keeps persistent messages as store ids only (LazyMessages):
the backlog costs memory for its head, and every queue operation still sees every message in order."""
import pika
import pytest

from warrenmq.broker.queues import LazyMessages
from warrenmq.testing import EmbeddedBroker

LIMIT = 100


def publish(ch, queue, bodies, persistent=True):
    for body in bodies:
        ch.basic_publish("", queue, body, pika.BasicProperties(delivery_mode=2 if persistent else 1))


def shape(b, name):
    """(ready count, entries held as objects, entries held as store ids only)."""
    def probe():
        msgs = b.broker.vhosts["/"].queues[name].messages
        assert isinstance(msgs, LazyMessages)
        msgs._settle_synced()
        tail = len(msgs.ids) - msgs.pos
        return len(msgs), len(msgs.head) + len(msgs.side), tail - len(msgs.side)
    return b.call(probe)


def drain(ch, queue, n, everything=True):
    """Get and ack ``n`` messages: [(body, redelivered, delivery_mode)]; then the queue must be empty."""
    got = []
    for _ in range(n):
        method, props, body = ch.basic_get(queue, auto_ack=False)
        assert method is not None, f"only {len(got)} of {n} messages"
        got.append((body, method.redelivered, props.delivery_mode))
        ch.basic_ack(method.delivery_tag)
    if everything:
        assert ch.basic_get(queue)[0] is None
    return got


def durable_queue(url, name):
    """A connection and a channel in confirm mode, with the durable queue ``name`` declared."""
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ch.confirm_delivery()  # each publish waits for its fsync
    ch.queue_declare(name, durable=True)
    return conn, ch


@pytest.fixture
def broker(tmp_path):
    with EmbeddedBroker(data_dir=str(tmp_path / "data"), queue_max_in_memory=LIMIT) as b:
        yield b


@pytest.mark.timeout(60)
def test_a_persistent_backlog_beyond_the_limit_is_kept_as_ids_and_comes_back_in_order(broker):
    conn, ch = durable_queue(broker.url, "lazy")
    bodies = [b"m%05d" % i for i in range(3000)]
    publish(ch, "lazy", bodies)
    count, objects, ids_only = shape(broker, "lazy")
    assert count == 3000
    assert objects <= LIMIT + 1 and ids_only >= 3000 - LIMIT - 1, (objects, ids_only)
    got = drain(ch, "lazy", 3000)
    assert [g[0] for g in got] == bodies
    assert all(g[2] == 2 and not g[1] for g in got)
    assert broker.call(lambda: broker.broker.memory.used) == 0
    conn.close()


@pytest.mark.timeout(60)
def test_transient_and_expiring_messages_keep_their_place_in_the_tail(broker):
    conn = pika.BlockingConnection(pika.URLParameters(broker.url))
    ch = conn.channel()
    ch.queue_declare("mixed", durable=True)
    expected = []
    for i in range(1500):
        body = b"x%05d" % i
        if i % 3 == 0:
            ch.basic_publish("", "mixed", body, pika.BasicProperties(delivery_mode=1))
        elif i % 3 == 1:
            ch.basic_publish("", "mixed", body, pika.BasicProperties(delivery_mode=2, expiration="600000"))
        else:
            ch.basic_publish("", "mixed", body, pika.BasicProperties(delivery_mode=2))
        expected.append(body)
    conn.process_data_events(time_limit=0.3)
    got = drain(ch, "mixed", 1500)
    assert [g[0] for g in got] == expected
    conn.close()


@pytest.mark.timeout(60)
def test_requeue_consume_purge_and_delete_with_a_tail(broker):
    conn, ch = durable_queue(broker.url, "q")
    bodies = [b"r%04d" % i for i in range(1000)]
    publish(ch, "q", bodies)
    # take 50 without acking, requeue them: they go back to the front, marked redelivered
    tags = []
    for _ in range(50):
        method, _, _ = ch.basic_get("q")
        tags.append(method.delivery_tag)
    ch.basic_nack(tags[-1], multiple=True, requeue=True)
    got = []

    def on_message(c, method, props, body):
        got.append((body, method.redelivered))
        c.basic_ack(method.delivery_tag)
        if len(got) == 600:
            c.stop_consuming()
    ch.basic_qos(prefetch_count=50)
    tag = ch.basic_consume("q", on_message)
    ch.start_consuming()
    ch.basic_cancel(tag)
    assert [g[0] for g in got] == bodies[:600]
    assert [g[1] for g in got] == [True] * 50 + [False] * 550
    assert ch.queue_declare("q", passive=True).method.message_count == 400
    assert ch.queue_purge("q").method.message_count == 400
    assert ch.queue_declare("q", passive=True).method.message_count == 0
    publish(ch, "q", bodies)
    assert ch.queue_delete("q").method.message_count == 1000
    assert broker.call(lambda: broker.broker.store.stats()["messages"]) == 0
    conn.close()


@pytest.mark.timeout(60)
def test_a_tail_survives_a_restart_and_a_byte_limit_policy_turns_it_back_into_objects(tmp_path):
    data = str(tmp_path / "data")
    bodies = [b"p%04d" % i for i in range(1200)]
    with EmbeddedBroker(data_dir=data, queue_max_in_memory=LIMIT) as b:
        conn, ch = durable_queue(b.url, "keep")
        publish(ch, "keep", bodies)
        conn.close()
    with EmbeddedBroker(data_dir=data, queue_max_in_memory=LIMIT) as b:
        count, objects, ids_only = shape(b, "keep")
        assert (count, objects, ids_only) == (1200, LIMIT + 1, 1200 - LIMIT - 1)
        # a byte limit needs every message's size: the queue holds objects again, then drops its head
        b.call(lambda: b.broker.vhosts["/"].policies.set("cap", "^keep$", {"max-length-bytes": 5 * 1000}, 0,
                                                          "queues"))
        q = b.call(lambda: b.broker.vhosts["/"].queues["keep"])
        assert not isinstance(q.messages, LazyMessages)
        conn = pika.BlockingConnection(pika.URLParameters(b.url))
        ch = conn.channel()
        got = drain(ch, "keep", 1000)
        assert [g[0] for g in got] == bodies[200:]
        conn.close()


@pytest.mark.timeout(60)
def test_an_unreadable_record_in_the_tail_is_dropped_and_the_rest_delivered(tmp_path, caplog):
    import os
    data = str(tmp_path / "data")
    with EmbeddedBroker(data_dir=data, queue_max_in_memory=10) as b:
        conn, ch = durable_queue(b.url, "q")
        bodies = [b"body-%03d" % i for i in range(100)]
        publish(ch, "q", bodies)
        # damage one record of the tail on disk: its CRC no longer matches
        store_dir = os.path.join(data, "msg_store")
        for name in os.listdir(store_dir):
            path = os.path.join(store_dir, name)
            with open(path, "r+b") as f:
                content = f.read()
                at = content.find(b"body-050")
                if at >= 0:
                    f.seek(at)
                    f.write(b"BODY")
        with caplog.at_level("ERROR", logger="warrenmq"):
            got = drain(ch, "q", 99)
        assert [g[0] for g in got] == bodies[:50] + bodies[51:]
        assert "could not be read back; dropped" in caplog.text
        conn.close()


@pytest.mark.timeout(60)
def test_a_tail_that_ran_dry_starts_again_in_order(broker):
    conn, ch = durable_queue(broker.url, "again")
    first = [b"a%04d" % i for i in range(300)]
    publish(ch, "again", first)
    got = drain(ch, "again", 260, everything=False)  # the tail is read back completely
    assert [g[0] for g in got] == first[:260]
    second = [b"b%04d" % i for i in range(400)]
    publish(ch, "again", second)  # fills the head, then starts a new tail
    count, objects, ids_only = shape(broker, "again")
    assert count == 440 and ids_only > 200
    assert [g[0] for g in drain(ch, "again", 440)] == first[260:] + second
    conn.close()

