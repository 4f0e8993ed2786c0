"""Consumer priorities (the ``x-priority`` basic.consume argument), as RabbitMQ 3.10 does them.

A message goes to the highest-priority consumer that has credit (prefetch
room); consumers of equal priority share round robin; a consumer without the
argument has priority 0 and negative priorities are allowed.  Every expected
value here was observed on RabbitMQ 3.10.8.
"""
from __future__ import annotations

import asyncio
from decimal import Decimal

import aio_pika
import pika
import pytest
from pika.exceptions import ChannelClosedByBroker

from .helpers import VHOST, unique

pytestmark = pytest.mark.timeout(30)


def test_higher_priority_consumers_take_messages_while_they_have_credit(publisher, consumers):
    q = publisher.declare(unique("prio"))
    a = consumers.consume(q, "A", prefetch=2, priority=10)
    consumers.consume(q, "B", prefetch=10)
    consumers.consume(q, "C", prefetch=2, priority=10)
    publisher.publish(q, range(10))
    consumers.wait_for(10)
    # A and C (priority 10) alternate until both are full; B (priority 0) gets the rest
    assert consumers.summary() == {"A": ["0", "2"], "B": ["4", "5", "6", "7", "8", "9"], "C": ["1", "3"]}

    first_of_a = consumers.got["A"][0].tag
    consumers.clear()
    a.basic_ack(first_of_a)  # A has room for one more again: it beats B
    consumers.sync()
    publisher.publish(q, [10, 11])
    consumers.wait_for(2)
    assert consumers.summary() == {"A": ["10"], "B": ["11"], "C": []}


def test_no_priority_means_zero_and_negative_priorities_rank_below_it(publisher, consumers):
    q = publisher.declare(unique("prio"))
    consumers.consume(q, "low", priority=-1)
    consumers.consume(q, "default")
    publisher.publish(q, range(3))
    consumers.wait_for(3)
    consumers.sync()
    assert consumers.summary() == {"low": [], "default": ["0", "1", "2"]}


def test_equal_priorities_share_round_robin(publisher, consumers):
    q = publisher.declare(unique("prio"))
    for tag in "FGH":
        consumers.consume(q, tag, prefetch=1, priority=5)
    consumers.consume(q, "low", prefetch=1, priority=1)
    publisher.publish(q, range(4))
    consumers.wait_for(4)
    assert consumers.summary() == {"F": ["0"], "G": ["1"], "H": ["2"], "low": ["3"]}


def test_lower_priorities_get_messages_again_once_the_high_one_is_cancelled(publisher, consumers):
    q = publisher.declare(unique("prio"))
    hi = consumers.consume(q, "hi", priority=3)
    consumers.consume(q, "x")
    consumers.consume(q, "y")
    publisher.publish(q, range(2))
    consumers.wait_for(2)
    assert consumers.bodies("hi") == ["0", "1"]
    hi.basic_cancel("hi")
    publisher.publish(q, range(2, 6))
    consumers.wait_for(6)
    assert consumers.bodies("x") == ["2", "4"] and consumers.bodies("y") == ["3", "5"]


def test_a_new_higher_priority_consumer_gets_the_waiting_messages(publisher, consumers):
    q = publisher.declare(unique("prio"))
    low = consumers.consume(q, "low", prefetch=1)
    publisher.publish(q, range(3))
    consumers.wait_for(1)
    consumers.consume(q, "high", prefetch=5, priority=1)
    consumers.wait_for(3)
    assert consumers.summary() == {"low": ["0"], "high": ["1", "2"]}
    low.basic_ack(1)
    publisher.publish(q, [3])
    consumers.wait_for(4)
    assert consumers.bodies("high") == ["1", "2", "3"]


def test_large_and_negative_integer_priorities_are_accepted(publisher, consumers):
    q = publisher.declare(unique("prio"))
    consumers.consume(q, "neg", priority=-5)
    consumers.consume(q, "big", priority=2 ** 40)
    publisher.publish(q, ["m", "n"])
    consumers.wait_for(2)
    assert consumers.bodies("big") == ["m", "n"]


@pytest.mark.parametrize("value, type_name", [
    ("abc", "longstr"), (True, "bool"), (None, "void"), (Decimal("1.5"), "decimal"), ({"a": 1}, "table"),
    ([1], "array"),
])
def test_x_priority_must_be_an_integer(publisher, consumers, value, type_name):
    q = publisher.declare(unique("prio"))
    with pytest.raises(ChannelClosedByBroker) as e:
        consumers.consume(q, "bad", arguments={"x-priority": value})
    assert e.value.reply_code == 406
    assert e.value.reply_text == (f"PRECONDITION_FAILED - invalid arg 'x-priority' for queue '{q}' in vhost "
                                  f"'{VHOST}': \"expected integer, got {type_name}\"")


def test_the_priority_is_checked_before_exclusive_use(publisher, consumers):
    q = publisher.declare(unique("prio"))
    consumers.consume(q, "first")
    with pytest.raises(ChannelClosedByBroker) as e:
        consumers.consume(q, "second", exclusive=True, arguments={"x-priority": "x"})
    assert e.value.reply_text.startswith("PRECONDITION_FAILED - invalid arg 'x-priority'")


def test_the_consumer_priorities_capability_is_advertised(url):
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        assert conn._impl.server_properties["capabilities"]["consumer_priorities"] is True
    finally:
        conn.close()


def test_aio_pika_consumers_with_priorities(url):
    async def main():
        conn = await aio_pika.connect(url)
        async with conn:
            ch_hi, ch_lo = await conn.channel(), await conn.channel()
            await ch_hi.set_qos(prefetch_count=1)
            name = unique("prio")
            q_hi = await ch_hi.declare_queue(name, auto_delete=True)
            q_lo = await ch_lo.get_queue(name)
            got = {"hi": [], "lo": []}
            done = asyncio.Event()

            def recorder(key):
                async def on_message(message):
                    got[key].append(message.body.decode())
                    if sum(map(len, got.values())) == 3:
                        done.set()
                return on_message
            await q_hi.consume(recorder("hi"), arguments={"x-priority": 10})  # never acks: room for one
            await q_lo.consume(recorder("lo"), no_ack=True)
            pub = await conn.channel(publisher_confirms=True)
            for i in range(3):
                await pub.default_exchange.publish(aio_pika.Message(str(i).encode()), routing_key=name)
            await asyncio.wait_for(done.wait(), 5)
            return {k: list(v) for k, v in got.items()}  # before closing requeues hi's unacked message
    assert asyncio.run(main()) == {"hi": ["0"], "lo": ["1", "2"]}
