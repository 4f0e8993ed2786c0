"""Durability through real clients: clean restarts keep exactly the persistent messages of durable queues."""
import pika
import pytest

from support.process import BrokerProcess

PERSISTENT = pika.BasicProperties(delivery_mode=2)


def connect(b):
    return pika.BlockingConnection(pika.URLParameters(b.url))


def drain(ch, queue):
    out = []
    while True:
        method, props, body = ch.basic_get(queue, auto_ack=True)
        if method is None:
            return out
        out.append((body, method.redelivered))


@pytest.mark.timeout(60)
def test_clean_restart_keeps_persistent_messages_of_durable_queues(tmp_path):
    data = str(tmp_path / "data")
    with BrokerProcess(data) as b:
        conn = connect(b)
        ch = conn.channel()
        ch.confirm_delivery()
        ch.exchange_declare("orders", "topic", durable=True)
        ch.exchange_declare("audit", "fanout", durable=True)
        ch.exchange_declare("scratch", "fanout", durable=False)
        ch.exchange_bind("audit", "orders", "#")
        ch.queue_declare("durable-q", durable=True, arguments={"x-max-priority": 5})
        ch.queue_declare("transient-q", durable=False)
        ch.queue_declare("audit-q", durable=True)
        ch.queue_bind("durable-q", "orders", "order.*")
        ch.queue_bind("transient-q", "orders", "order.*")
        ch.queue_bind("audit-q", "audit")
        for i in range(30):
            props = PERSISTENT if i % 3 else pika.BasicProperties(delivery_mode=1)
            ch.basic_publish("orders", "order.new", f"m{i}".encode(), props)
        # one delivered but unacked: it must come back redelivered
        ch2 = conn.channel()
        method, _, body = ch2.basic_get("durable-q")
        assert body == b"m0"  # transient: acked away
        ch2.basic_ack(method.delivery_tag)
        method, _, body = ch2.basic_get("durable-q")
        assert body == b"m1"
        conn.close()
        assert b.stop() == 0

    with BrokerProcess(data) as b:
        conn = connect(b)
        ch = conn.channel()
        expected = [f"m{i}".encode() for i in range(30) if i % 3]
        got = drain(ch, "durable-q")
        assert [body for body, _ in got] == expected
        assert [red for _, red in got] == [True] + [False] * (len(expected) - 1)
        assert [body for body, _ in drain(ch, "audit-q")] == expected
        # the queue's arguments and the bindings came back too
        ch.queue_declare("durable-q", durable=True, arguments={"x-max-priority": 5})
        ch.exchange_declare("orders", "topic", durable=True, passive=True)
        ch.basic_publish("orders", "order.again", b"after", PERSISTENT)
        assert drain(ch, "durable-q") == [(b"after", False)]
        assert drain(ch, "audit-q") == [(b"after", False)]
        for name in ("transient-q",):
            with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
                conn.channel().queue_declare(name, passive=True)
            assert info.value.reply_code == 404
        with pytest.raises(pika.exceptions.ChannelClosedByBroker):
            conn.channel().exchange_declare("scratch", passive=True)
        conn.close()
        b.stop()


@pytest.mark.timeout(60)
def test_deleted_and_acked_stay_gone_and_exclusive_queues_are_not_restored(tmp_path):
    data = str(tmp_path / "data")
    with BrokerProcess(data) as b:
        conn = connect(b)
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare("q1", durable=True)
        ch.queue_declare("q2", durable=True)
        ch.queue_declare("excl", durable=True, exclusive=True)
        for i in range(10):
            ch.basic_publish("", "q1", f"a{i}".encode(), PERSISTENT)
            ch.basic_publish("", "q2", f"b{i}".encode(), PERSISTENT)
            ch.basic_publish("", "excl", b"x", PERSISTENT)
        for _ in range(4):
            method, _, _ = ch.basic_get("q1")
            ch.basic_ack(method.delivery_tag)
        ch.queue_delete("q2")
        conn.close()
        b.stop()
    with BrokerProcess(data) as b:
        conn = connect(b)
        ch = conn.channel()
        assert [body for body, _ in drain(ch, "q1")] == [f"a{i}".encode() for i in range(4, 10)]
        for name in ("q2", "excl"):
            with pytest.raises(pika.exceptions.ChannelClosedByBroker):
                conn.channel().queue_declare(name, passive=True)
        conn.close()
        b.stop()


@pytest.mark.timeout(60)
def test_users_and_vhosts_are_durable(tmp_path):
    """The default user and vhost are created once; a restart keeps the stored password hash."""
    data = str(tmp_path / "data")
    with BrokerProcess(data) as b:
        connect(b).close()
        b.stop()
    with BrokerProcess(data) as b:
        connect(b).close()
        with pytest.raises(pika.exceptions.ProbableAuthenticationError):
            pika.BlockingConnection(pika.URLParameters(b.url.replace("guest:guest", "guest:wrong")))
        b.stop()
