"""The in-memory broker uses the storage interfaces as a durable one does: durable queues get store ids,
persistent messages go through MemoryStore.persist, and their confirms never wait for anything."""
import pika
import pytest

from warrenmq.store.memory import MemoryStore
from warrenmq.testing import EmbeddedBroker

pytestmark = pytest.mark.timeout(30)


def test_persistent_messages_of_durable_queues_go_through_the_memory_store():
    with EmbeddedBroker() as b:
        assert b.call(lambda: (type(b.broker.store), b.broker.storage.durable)) == (MemoryStore, False)
        conn = pika.BlockingConnection(pika.URLParameters(b.url))
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare("d", durable=True)
        ch.queue_declare("t", durable=False)
        assert b.call(lambda: b.broker.vhosts["/"].queues["d"].store_id) > 0
        assert b.call(lambda: b.broker.vhosts["/"].queues["t"].store_id) == 0
        for i in range(3):  # confirmed at once (basic_publish waits for each confirm)
            ch.basic_publish("", "d", b"p%d" % i, pika.BasicProperties(delivery_mode=2))
        ch.basic_publish("", "d", b"transient")
        ch.basic_publish("", "t", b"p", pika.BasicProperties(delivery_mode=2))
        assert b.call(lambda: b.broker.store.stats()["messages"]) == 3
        got = [ch.basic_get("d", auto_ack=True)[2] for _ in range(4)]
        assert got == [b"p0", b"p1", b"p2", b"transient"]
        assert b.call(lambda: b.broker.store.stats()["messages"]) == 0
        conn.close()
