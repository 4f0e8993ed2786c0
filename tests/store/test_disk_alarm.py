"""Below the disk free limit, publishers are blocked and what is stored stays intact."""
import time

import pika
import pytest

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
        assert b.call(lambda: sorted(b.broker.alarms)) == ["disk"]
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


@pytest.mark.timeout(60)
def test_a_failed_store_write_raises_the_disk_alarm_and_stops_confirms(tmp_path, monkeypatch):
    import errno
    import os

    def no_space(fd, buffers):  # the writer thread's writev fails as on a full disk
        raise OSError(errno.ENOSPC, "No space left on device")

    with EmbeddedBroker(data_dir=str(tmp_path / "data")) as b:
        conn = pika.BlockingConnection(pika.URLParameters(b.url))
        ch = conn.channel()
        ch.queue_declare("q", durable=True)
        monkeypatch.setattr(os, "writev", no_space)
        ch.basic_publish("", "q", b"lost?", pika.BasicProperties(delivery_mode=2))
        deadline = time.monotonic() + 5
        while b.call(lambda: sorted(b.broker.alarms)) != ["disk"]:
            assert time.monotonic() < deadline, "no disk alarm after a failed write"
            conn.process_data_events(time_limit=0.05)
        committer = b.app.committer
        assert isinstance(committer.failed, OSError) and committer.failed.errno == errno.ENOSPC
        assert not committer.writing and not committer.syncing
        monkeypatch.undo()
        conn.close()
