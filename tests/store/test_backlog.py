"""Paging: a backlog larger than the in-memory budget waits on disk and drains complete and in order."""
import pika
import pytest

from warrenmq.broker.queues import LazyMessages
from warrenmq.testing import EmbeddedBroker


def queue_state(b, name):
    """(ready messages, entries held as objects with their body in memory, queued bytes in memory)."""
    def probe():
        q = b.broker.vhosts["/"].queues[name]
        msgs = q.messages
        # beyond the paging limit a durable queue keeps only ids for persistent messages (LazyMessages)
        objects = list(msgs.head) + list(msgs.side.values()) if isinstance(msgs, LazyMessages) else list(msgs)
        in_memory = sum(1 for e in objects if e.message.body is not None)
        return len(msgs), in_memory, b.broker.memory.used
    return b.call(probe)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("durable", [True, False])
def test_backlog_beyond_memory_budget_drains_in_order(tmp_path, durable):
    limit = 500
    n = 6000
    body = lambda i: (b"%06d" % i) * 170  # about 1 KiB, different per message  # noqa: E731
    with EmbeddedBroker(data_dir=str(tmp_path / "data"), queue_max_in_memory=limit) as b:
        conn = pika.BlockingConnection(pika.URLParameters(b.url))
        ch = conn.channel()
        ch.queue_declare("backlog", durable=durable)
        for i in range(n):
            mode = 2 if (durable and i % 2) else 1  # persistent and transient mixed
            ch.basic_publish("", "backlog", body(i), pika.BasicProperties(delivery_mode=mode))
        conn.process_data_events(time_limit=0.2)
        count, in_memory, used = queue_state(b, "backlog")
        assert count == n
        assert in_memory <= limit + 50, f"{in_memory} bodies in memory with a budget of {limit}"
        assert used <= (limit + 50) * 1100
        # drain with a consumer and manual acks: every message, in order, with its own body
        ch.basic_qos(prefetch_count=200)
        got = []

        def on_message(c, method, props, data):
            got.append(data)
            c.basic_ack(method.delivery_tag)
            if len(got) == n:
                c.stop_consuming()
        ch.basic_consume("backlog", on_message)
        ch.start_consuming()
        assert got == [body(i) for i in range(n)]
        assert queue_state(b, "backlog")[0] == 0
        assert b.call(lambda: b.broker.memory.used) == 0
        conn.close()


@pytest.mark.timeout(120)
def test_paged_persistent_backlog_survives_restart(tmp_path):
    data = str(tmp_path / "data")
    n = 3000
    with EmbeddedBroker(data_dir=data, queue_max_in_memory=200) as b:
        conn = pika.BlockingConnection(pika.URLParameters(b.url))
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare("pq", durable=True)
        for i in range(n):
            ch.basic_publish("", "pq", b"body-%d" % i, pika.BasicProperties(delivery_mode=2))
        conn.close()
    with EmbeddedBroker(data_dir=data, queue_max_in_memory=200) as b:
        count, in_memory, _ = queue_state(b, "pq")
        assert count == n and in_memory <= 200, (count, in_memory)
        conn = pika.BlockingConnection(pika.URLParameters(b.url))
        ch = conn.channel()
        got = []
        for _ in range(n):
            method, _, data_ = ch.basic_get("pq", auto_ack=True)
            got.append(data_)
        assert got == [b"body-%d" % i for i in range(n)]
        conn.close()
