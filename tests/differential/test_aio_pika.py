"""Scenarios driven through aio-pika (aiormq underneath): work queues, errors, headers."""
from __future__ import annotations

import asyncio

import pytest

pytestmark = pytest.mark.timeout(60)


def test_aio_pika_work_queue(differ):
    async def scenario(env):
        import aio_pika
        conn = await env.aio_connect()
        ch = await conn.channel()
        await ch.set_qos(prefetch_count=2)
        q = await ch.declare_queue(env.queue("work"))
        for i in range(5):
            await ch.default_exchange.publish(aio_pika.Message(str(i).encode(), priority=i % 2,
                                                               headers={"n": i, "s": "x"}), q.name)
        got = []
        async with q.iterator() as it:
            async for m in it:
                got.append(m)
                if len(got) == 2:
                    break
        env.record("first two", [[m.body, m.redelivered, m.headers, m.priority] for m in got])
        await got[0].nack(requeue=True)
        await got[1].reject(requeue=False)
        rest = []
        while (m := await q.get(no_ack=False, fail=False)) is not None:
            rest.append(m)
        env.record("rest", [[m.body, m.redelivered, m.message_count] for m in rest])
        for m in rest:
            await m.ack()
        env.record("declare-ok", (await ch.declare_queue(q.name, passive=True)).declaration_result.message_count)
    differ(scenario)


def test_aio_pika_errors(differ):
    async def scenario(env):
        import aio_pika
        conn = await env.aio_connect()
        name = env.queue("q")
        ch = await conn.channel()
        await ch.declare_queue(name, arguments={"x-message-ttl": 1000})
        await env.aattempt("inequivalent", ch.declare_queue(name))
        ch = await conn.channel()
        await env.aattempt("passive missing", ch.declare_queue(env.name("missing"), passive=True))
        ch = await conn.channel()
        await env.aattempt("missing exchange", ch.get_exchange(env.name("missing-x"), ensure=True))
        ch = await conn.channel()
        x = await ch.declare_exchange(env.exchange("x"), aio_pika.ExchangeType.TOPIC)
        await env.aattempt("redeclare as fanout", ch.declare_exchange(x.name, aio_pika.ExchangeType.FANOUT))
        ch = await conn.channel(publisher_confirms=True)
        await env.aattempt("publish to a deleted exchange",
                           _publish_after_delete(ch, env.exchange("gone")))
        await asyncio.sleep(0.1)
        env.record("connection still open", not conn.is_closed)
    differ(scenario)


async def _publish_after_delete(ch, name):
    import aio_pika
    x = await ch.declare_exchange(name, aio_pika.ExchangeType.DIRECT)
    await x.delete()
    x = await ch.get_exchange(name, ensure=False)
    return await x.publish(aio_pika.Message(b"x"), "k")
