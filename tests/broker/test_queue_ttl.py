"""TTL and expiry through the domain API: x-message-ttl, the expiration property, the head expiry timer,
x-expires.  The vhost's Timers run on a real asyncio loop; TTLs are a few milliseconds."""
import asyncio
import time

from support.queue_client import Client, message, ready

from warrenmq.broker.timers import Timers
from warrenmq.broker.vhost import VHost


def run(scenario):
    """Run ``scenario(vhost)`` (a coroutine function) on a fresh loop, the vhost's timers on it."""
    async def main():
        vh = VHost("/")
        vh.timers = Timers(asyncio.get_running_loop().call_later)
        return await scenario(vh)
    return asyncio.run(main())


async def until(predicate, timeout=2.0):
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        assert loop.time() < end, "timed out"
        await asyncio.sleep(0.002)


def test_message_ttl_drops_messages_at_the_head_by_timer_and_dead_letters_them():
    async def scenario(vh):
        vh.declare_exchange("dlx", "fanout")
        dead, _ = vh.declare_queue("dead", None)
        vh.bind_queue(dead, "dlx", "", None)
        q, _ = vh.declare_queue("q", None, arguments={"x-message-ttl": 20, "x-dead-letter-exchange": "dlx"})
        q.publish(message(b"a"))
        q.publish(message(b"b"))
        assert ready(q) == [b"a", b"b"]
        await until(lambda: not q.messages)  # no traffic: the head timer fires
        assert ready(dead) == [b"a", b"b"]
        assert dead.messages[0].message.properties.headers["x-death"][0]["reason"] == "expired"
        assert vh.memory.used == 2  # only the dead-lettered copies
    run(scenario)


def test_a_waiting_consumer_gets_a_message_even_with_ttl_0_and_delivered_messages_never_expire():
    async def scenario(vh):
        q, _ = vh.declare_queue("q", None, arguments={"x-message-ttl": 0})
        client = Client()
        client.consume(q, "c", prefetch=1)
        q.publish(message(b"now"))
        q.publish(message(b"late"))  # no credit: it expires at once
        assert client.take() == [b"now"]
        await asyncio.sleep(0.01)
        client.reject()  # requeued: it keeps no deadline, so it is delivered again
        assert client.take() == [b"now"]
        assert len(q.messages) == 0 and q.stats_published == 2
    run(scenario)


def test_the_expiration_property_and_the_queue_ttl_lower_one_wins_only_the_head_expires():
    async def scenario(vh):
        q, _ = vh.declare_queue("q", None, arguments={"x-message-ttl": 1000})
        q.publish(message(b"long"))  # 1000 ms, at the head
        q.publish(message(b"short", expiration="10"))  # 10 ms, behind it: waits for the head
        q.publish(message(b"none-set"))
        await asyncio.sleep(0.05)
        assert ready(q) == [b"long", b"short", b"none-set"]
        assert q.get().message.body == b"long"
        assert q.get().message.body == b"none-set"  # "short" expired when it reached the head
    run(scenario)


def test_per_message_expiration_without_a_queue_ttl_fires_its_timer():
    async def scenario(vh):
        q, _ = vh.declare_queue("q", None)
        assert not q.has_ttl
        q.publish(message(b"x", expiration="15"))
        q.publish(message(b"y"))
        assert q.has_ttl
        await until(lambda: ready(q) == [b"y"])
    run(scenario)


def test_expiry_without_a_loop_happens_when_the_head_is_looked_at():
    vh = VHost("/")  # Timers without a loop: nothing fires
    q, _ = vh.declare_queue("q", None, arguments={"x-message-ttl": 1})
    q.publish(message(b"a"))
    time.sleep(0.01)
    assert len(q.messages) == 1
    assert q.get() is None and len(q.messages) == 0


def test_x_expires_deletes_an_unused_queue_and_a_consumer_or_a_get_holds_it_off():
    async def scenario(vh):
        q, _ = vh.declare_queue("q", None, arguments={"x-expires": 30})
        client = Client()
        c = client.consume(q, "c")
        await asyncio.sleep(0.06)
        assert "q" in vh.queues  # a consumer: in use
        client.cancel(c)  # the countdown starts now
        await asyncio.sleep(0.015)
        q.get()  # restarts it
        await asyncio.sleep(0.02)
        assert "q" in vh.queues
        await until(lambda: "q" not in vh.queues)
        assert q.deleted
    run(scenario)


def test_a_policy_change_restarts_the_expires_countdown_and_sets_a_message_ttl():
    async def scenario(vh):
        q, _ = vh.declare_queue("q", None)
        vh.policies.set("p", "^q$", {"expires": 20, "message-ttl": 5})
        assert q.expires == 20 and q.message_ttl == 5
        q.publish(message(b"a"))
        await until(lambda: not q.messages)
        await until(lambda: "q" not in vh.queues)
    run(scenario)
