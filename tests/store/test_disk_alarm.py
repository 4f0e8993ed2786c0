"""Below the disk free limit, publishers are blocked and what is stored stays intact.

(A failed store write is another alarm: tests/store/test_store_failure.py.)"""
import time

import pika
import pytest

from warrenmq.broker.alarms import Alarm
from warrenmq.testing import EmbeddedBroker


@pytest.mark.timeout(60)
def test_low_disk_blocks_publishers_and_keeps_stored_messages(tmp_path):
    data = str(tmp_path / "data")
    with EmbeddedBroker(data_dir=data) as b:
        conn = pika.BlockingConnection(pika.URLParameters(b.url))
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare("kept", durable=True)
        for i in range(5):
            ch.basic_publish("", "kept", b"m%d" % i, pika.BasicProperties(delivery_mode=2))
        conn.close()
    # a free-space limit no disk can meet: the disk alarm is on from the start
    with EmbeddedBroker(data_dir=data, disk_free_limit=10 ** 18) as b:
        conn = pika.BlockingConnection(pika.URLParameters(b.url))
        blocked = []
        conn.add_on_connection_blocked_callback(lambda c, m: blocked.append(m.method.reason))
        ch = conn.channel()
        conn.process_data_events(time_limit=0.3)
        assert b.call(lambda: set(b.broker.alarms)) == {Alarm.DISK_FREE}
        assert blocked == [], "as in RabbitMQ, only a connection that publishes is blocked"
        # the first publish during the alarm is taken, then the connection is no longer read
        ch.basic_publish("", "kept", b"taken", pika.BasicProperties(delivery_mode=2))
        conn.process_data_events(time_limit=0.3)
        assert blocked == ["low on disk"]
        ch.basic_publish("", "kept", b"waits", pika.BasicProperties(delivery_mode=2))
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            conn.process_data_events(time_limit=0.1)
        assert b.call(lambda: len(b.broker.vhosts["/"].queues["kept"].messages)) == 6
    with EmbeddedBroker(data_dir=data) as b:
        conn = pika.BlockingConnection(pika.URLParameters(b.url))
        ch = conn.channel()
        got = [ch.basic_get("kept", auto_ack=True)[2] for _ in range(6)]
        assert got == [b"m%d" % i for i in range(5)] + [b"taken"]
        conn.close()
