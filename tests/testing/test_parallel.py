"""Many embedded brokers in one process at once: each is a broker of its own.

Threaded brokers started concurrently from many threads, brokers on one
running loop, both kinds side by side, and the pytest fixtures together in one
test (the case of parallel fixtures).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import threading

import aio_pika
import pika
import pytest

from warrenmq.testing import AsyncEmbeddedBroker, EmbeddedBroker

pytest_plugins = ["pytester"]

pytestmark = pytest.mark.timeout(120)

N = 8


def roundtrip(broker: EmbeddedBroker, tag: str) -> list[bytes]:
    """Publish ``tag`` through pika to ``broker``; return what its queue then holds."""
    conn = pika.BlockingConnection(pika.URLParameters(broker.url))
    ch = conn.channel()
    ch.queue_declare("shared-name")  # the same queue name on every broker
    ch.confirm_delivery()
    ch.basic_publish("", "shared-name", tag.encode())
    conn.close()
    return [m.body for m in broker.wait_for_messages("shared-name", 1)]


def embedded_threads() -> set:
    return {t for t in threading.enumerate() if t.name == "warrenmq-embedded"}


def test_threaded_brokers_started_and_used_concurrently():
    before = embedded_threads()
    barrier = threading.Barrier(N)

    def life(i: int):
        barrier.wait()  # all start at the same moment
        with EmbeddedBroker() as b:
            barrier.wait()  # all running at once
            got = roundtrip(b, f"broker-{i}")
            barrier.wait()  # nobody stops before everybody has checked
            return b.port, got

    with concurrent.futures.ThreadPoolExecutor(N) as pool:
        results = list(pool.map(life, range(N), timeout=60))
    ports = [port for port, _ in results]
    assert len(set(ports)) == N
    assert [got for _, got in results] == [[f"broker-{i}".encode()] for i in range(N)]
    assert embedded_threads() == before  # all stopped


def test_async_brokers_on_one_loop():
    async def main():
        brokers = [AsyncEmbeddedBroker() for _ in range(N)]
        await asyncio.gather(*(b.start() for b in brokers))
        try:
            assert len({b.port for b in brokers}) == N

            async def use(i, b):
                conn = await aio_pika.connect(b.url)
                async with conn:
                    ch = await conn.channel()
                    q = await ch.declare_queue("shared-name")
                    await ch.default_exchange.publish(aio_pika.Message(f"async-{i}".encode()), "shared-name")
                    await b.wait_for_messages("shared-name", 1)
                    msg = await q.get(timeout=5)
                    await msg.ack()
                    return msg.body

            bodies = await asyncio.gather(*(use(i, b) for i, b in enumerate(brokers)))
            assert bodies == [f"async-{i}".encode() for i in range(N)]
            for b in brokers:
                assert b.queue("shared-name").acked == 1
        finally:
            await asyncio.gather(*(b.stop() for b in brokers))
    asyncio.run(asyncio.wait_for(main(), 60))


def test_threaded_and_async_brokers_side_by_side():
    with EmbeddedBroker() as threaded:
        async def main():
            async with AsyncEmbeddedBroker() as local:
                conn = await aio_pika.connect(local.url)
                async with conn:
                    ch = await conn.channel()
                    await ch.declare_queue("q")
                    await ch.default_exchange.publish(aio_pika.Message(b"to-local"), "q")
                    await local.wait_for_messages("q", 1)
                # the threaded broker, from this loop's thread, while the local one runs
                assert await asyncio.to_thread(roundtrip, threaded, "to-threaded") == [b"to-threaded"]
                assert [m.body for m in local.messages("q")] == [b"to-local"]
        asyncio.run(asyncio.wait_for(main(), 30))
        assert [m.body for m in threaded.messages("shared-name")] == [b"to-threaded"]
        assert "q" not in threaded.queues()


def test_fixtures_in_parallel(pytester):
    pytester.makepyfile(test_many='''
        import pika
        from warrenmq.testing import EmbeddedBroker

        def test_all_at_once(warrenmq_broker, warrenmq_session_broker, warrenmq_url):
            with EmbeddedBroker() as third:
                brokers = [warrenmq_broker, warrenmq_session_broker, third]
                assert len({b.port for b in brokers}) == 3
                assert warrenmq_url == warrenmq_broker.url
                for i, b in enumerate(brokers):
                    conn = pika.BlockingConnection(pika.URLParameters(b.url))
                    ch = conn.channel()
                    ch.queue_declare("q")
                    ch.basic_publish("", "q", str(i).encode())
                    conn.close()
                for i, b in enumerate(brokers):
                    assert [m.body for m in b.wait_for_messages("q", 1)] == [str(i).encode()]
    ''')
    result = pytester.runpytest("-p", "no:hypothesispytest", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
