"""``EmbeddedBroker(durable=True)``: a temporary data directory of its own, kept across restarts.

A restart (same port, same data directory) recovers durable queues and
persistent messages as a real broker restart does; ``reset()`` empties the
directory; leaving the ``with`` block removes it.
"""
from __future__ import annotations

import asyncio
import os
import tempfile

import aio_pika
import pika
import pytest

from warrenmq.config import BrokerConfig
from warrenmq.testing import AsyncEmbeddedBroker, EmbeddedBroker

pytestmark = pytest.mark.timeout(60)


def declare_and_publish(url: str) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ch.confirm_delivery()
    ch.exchange_declare("durable-x", "direct", durable=True)
    ch.queue_declare("durable-q", durable=True)
    ch.queue_bind("durable-q", "durable-x", "k")
    ch.queue_declare("transient-q")
    ch.basic_publish("durable-x", "k", b"persistent", pika.BasicProperties(delivery_mode=2))
    ch.basic_publish("durable-x", "k", b"transient")
    ch.basic_publish("", "transient-q", b"gone", pika.BasicProperties(delivery_mode=2))
    conn.close()


def test_durable_broker_recovers_after_restart():
    with EmbeddedBroker(durable=True) as b:
        data_dir = b.config.data_dir
        assert data_dir and os.path.isdir(data_dir) and b.owns_data_dir
        declare_and_publish(b.url)
        port = b.port
        b.restart()
        assert b.port == port
        assert list(b.queues()) == ["durable-q"]
        assert b.queue("durable-q").bindings == (("durable-x", "k"),)
        assert [m.body for m in b.messages("durable-q")] == [b"persistent"]
        # the same URL works after the restart
        conn = pika.BlockingConnection(pika.URLParameters(b.url))
        assert conn.channel().basic_get("durable-q", auto_ack=True)[2] == b"persistent"
        conn.close()
    assert not os.path.exists(data_dir)  # removed with the broker


def test_in_memory_broker_forgets_everything_on_restart():
    with EmbeddedBroker() as b:
        assert b.config.data_dir == "" and not b.owns_data_dir
        declare_and_publish(b.url)
        b.restart()
        assert b.queues() == {}


def test_reset_empties_the_data_directory():
    with EmbeddedBroker(durable=True) as b:
        declare_and_publish(b.url)
        b.reset()
        assert b.queues() == {} and "durable-x" not in b.exchanges()
        b.restart()  # nothing comes back from disk either
        assert b.queues() == {} and "durable-x" not in b.exchanges()


def test_durable_brokers_side_by_side_have_their_own_directories():
    with EmbeddedBroker(durable=True) as a, EmbeddedBroker(durable=True) as b:
        assert a.config.data_dir != b.config.data_dir
        declare_and_publish(a.url)
        a.restart()
        b.restart()
        assert "durable-q" in a.queues() and b.queues() == {}


def test_durable_option_conflicts_with_an_explicit_data_dir(tmp_path):
    with pytest.raises(ValueError, match="durable=True makes a temporary data_dir"):
        EmbeddedBroker(durable=True, data_dir=str(tmp_path))


def test_durable_with_a_config_gets_a_temporary_directory_too():
    config = BrokerConfig(host="127.0.0.1", port=0)  # data_dir defaults to the user's real one
    b = EmbeddedBroker(config, durable=True)
    assert os.path.dirname(b.config.data_dir) == tempfile.gettempdir()
    with b:
        declare_and_publish(b.url)
    assert not os.path.exists(b.config.data_dir)


def test_async_durable_broker_restart():
    async def main():
        async with AsyncEmbeddedBroker(durable=True) as b:
            data_dir = b.config.data_dir
            conn = await aio_pika.connect(b.url)
            async with conn:
                ch = await conn.channel()  # publisher confirms: the message is on disk when publish returns
                q = await ch.declare_queue("aq", durable=True)
                await ch.default_exchange.publish(
                    aio_pika.Message(b"kept", delivery_mode=aio_pika.DeliveryMode.PERSISTENT), "aq")
                assert q.name == "aq"
            await b.restart()
            assert [m.body for m in b.messages("aq")] == [b"kept"]
            await b.reset()
            assert b.queues() == {}
        assert not os.path.exists(data_dir)
    asyncio.run(asyncio.wait_for(main(), 30))


def test_messages_shows_bodies_a_queue_paged_out_to_disk():
    with EmbeddedBroker(durable=True, queue_max_in_memory=2) as b:
        conn = pika.BlockingConnection(pika.URLParameters(b.url))
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare("big", durable=True)
        ch.queue_declare("plain")
        with b.record("") as rec:
            for i in range(6):
                ch.basic_publish("", "big", f"persistent-{i}".encode(), pika.BasicProperties(delivery_mode=2))
                ch.basic_publish("", "plain", f"transient-{i}".encode())
        paged = b.call(lambda: sum(e.message.body is None for q in b.broker.vhosts["/"].queues.values()
                                   for e in q.messages))
        assert paged > 0  # the premise: some bodies live on disk only
        assert [m.body for m in b.messages("big")] == [f"persistent-{i}".encode() for i in range(6)]
        assert [m.body for m in b.messages("plain")] == [f"transient-{i}".encode() for i in range(6)]
        assert len(rec.bodies) == 12 and rec.bodies[:2] == [b"persistent-0", b"transient-0"]
        # reading them did not page them in, and clients still get every body
        assert b.call(lambda: sum(e.message.body is None for q in b.broker.vhosts["/"].queues.values()
                                  for e in q.messages)) == paged
        got = [ch.basic_get("big", auto_ack=True)[2] for _ in range(6)]
        assert got == [f"persistent-{i}".encode() for i in range(6)]
        conn.close()


def test_back_door_publishes_are_persisted_as_a_clients_are():
    """A persistent message injected through the back door into a durable queue survives a restart
    (the back door publishes through the broker's one publish path)."""
    with EmbeddedBroker(durable=True) as b:
        conn = pika.BlockingConnection(pika.URLParameters(b.url))
        conn.channel().queue_declare("durable-q", durable=True)
        conn.close()
        b.publish("", "durable-q", b"published", delivery_mode=2)
        b.enqueue("durable-q", b"enqueued", delivery_mode=2)
        b.enqueue("durable-q", b"transient")
        b.restart()
        assert [m.body for m in b.messages("durable-q")] == [b"published", b"enqueued"]
