"""The consistent-hash exchange (``x-consistent-hash``, RabbitMQ's rabbitmq_consistent_hash_exchange plugin).

Binding keys are weights; a message's routing key (or the ``hash-header``
header or ``hash-property`` property) picks one destination, each getting a
share proportional to its weight.  Which key lands on which queue differs from
RabbitMQ (another hash function, see docs/compatibility.md), so the tests check
the properties both brokers have: proportions, stability, minimal movement when
a binding is added, and RabbitMQ's validation texts.
"""
from __future__ import annotations

import pytest
from pika.exceptions import ChannelClosedByBroker, UnroutableError

from .helpers import unique

pytestmark = pytest.mark.timeout(60)
CH = "x-consistent-hash"


def setup(publisher, weights, **arguments):
    """A consistent-hash exchange bound to one new queue per weight; (exchange, [queues])."""
    x = publisher.exchange(unique("chx"), CH, **arguments)
    queues = []
    for w in weights:
        q = publisher.declare(unique("chq"))
        publisher.ch.queue_bind(q, x, routing_key=str(w))
        queues.append(q)
    return x, queues


def publish_fast(publisher, x, keys, **props):
    """Publish one message per routing key without waiting for each confirm (a barrier at the end)."""
    import pika
    ch = publisher.conn.channel()
    for k in keys:
        ch.basic_publish(x, k, b"m", pika.BasicProperties(**props) if props else None)
    ch.queue_declare(publisher.queues[0], passive=True)  # barrier: everything above is routed
    ch.close()


def placement(publisher, x, queues, keys) -> dict:
    """routing key -> the queue it lands on (one message at a time)."""
    where = {}
    for k in keys:
        publisher.publish(k, ["m"], exchange=x)
        for q in queues:
            if publisher.count(q):
                where[k] = q
                publisher.ch.queue_purge(q)
    return where


def test_messages_spread_in_proportion_to_the_weights(publisher):
    x, queues = setup(publisher, [1, 2, 5])
    publish_fast(publisher, x, [f"key-{i}" for i in range(4000)])
    counts = [publisher.count(q) for q in queues]
    assert sum(counts) == 4000
    for count, weight in zip(counts, [1, 2, 5]):
        assert abs(count - 4000 * weight / 8) < 4000 * weight / 8 * 0.2, counts


def test_a_routing_key_always_lands_on_the_same_queue(publisher):
    x, queues = setup(publisher, [1, 1, 1])
    publish_fast(publisher, x, ["same-key"] * 50)
    assert sorted(publisher.count(q) for q in queues) == [0, 0, 50]


def test_adding_a_binding_only_moves_keys_to_the_new_queue(publisher):
    x, queues = setup(publisher, [1, 1, 1])
    keys = [f"k{i}" for i in range(120)]
    before = placement(publisher, x, queues, keys)
    new = publisher.declare(unique("chq"))
    publisher.ch.queue_bind(new, x, routing_key="1")
    after = placement(publisher, x, queues + [new], keys)
    moved = [k for k in keys if before[k] != after[k]]
    assert all(after[k] == new for k in moved)
    assert 10 <= len(moved) <= 60  # about a quarter


def test_an_unbound_queue_gets_nothing_more(publisher):
    x, queues = setup(publisher, [1, 1])
    publisher.ch.queue_unbind(queues[1], x, routing_key="1")
    publish_fast(publisher, x, [f"key-{i}" for i in range(100)])
    assert [publisher.count(q) for q in queues] == [100, 0]


@pytest.mark.parametrize("arguments, props", [
    ({"hash-header": "user"}, lambda v: {"headers": {"user": v}}),
    ({"hash-property": "message_id"}, lambda v: {"message_id": v}),
    ({"hash-property": "correlation_id"}, lambda v: {"correlation_id": v}),
    ({"hash-property": "timestamp"}, lambda v: {"timestamp": 1_700_000_000 + int(v[1:])}),
])
def test_hashing_on_a_header_or_property_ignores_the_routing_key(publisher, arguments, props):
    x, queues = setup(publisher, [1, 1, 1, 1], **arguments)
    for i in range(40):  # one value, many routing keys: one queue
        publisher.publish(f"rk-{i}", ["m"], exchange=x, **props("v7"))
    assert sorted(publisher.count(q) for q in queues) == [0, 0, 0, 40]
    for q in queues:
        publisher.ch.queue_purge(q)
    for i in range(200):  # many values: all queues
        publisher.publish("rk", ["m"], exchange=x, **props(f"v{i}"))
    assert all(publisher.count(q) > 10 for q in queues)


def test_messages_without_the_header_all_go_to_one_queue(publisher):
    x, queues = setup(publisher, [1, 1, 1, 1], **{"hash-header": "user"})
    publish_fast(publisher, x, [f"rk-{i}" for i in range(40)])
    assert sorted(publisher.count(q) for q in queues) == [0, 0, 0, 40]


def test_an_exchange_can_be_bound_as_a_weighted_destination(publisher):
    x = publisher.exchange(unique("chx"), CH)
    fan = publisher.exchange(unique("fan"), "fanout")
    publisher.ch.exchange_bind(fan, x, routing_key="3")
    q = publisher.declare(unique("chq"))
    publisher.ch.queue_bind(q, fan)
    publisher.publish("any", ["m"], exchange=x)
    assert publisher.count(q) == 1


def test_a_mandatory_message_with_no_binding_is_returned(publisher):
    x = publisher.exchange(unique("chx"), CH)
    with pytest.raises(UnroutableError):
        publisher.publish("k", ["m"], exchange=x, mandatory=True)


@pytest.mark.parametrize("key, text", [
    ("abc", 'The binding key must be an integer: <<"abc">>'),
    ("", "The binding key must be an integer: <<>>"),
    ("1.5", 'The binding key must be an integer: <<"1.5">>'),
    (" 5", 'The binding key must be an integer: <<" 5">>'),
    ("0", "The binding key must be greater than 0"),
    ("-1", "The binding key must be greater than 0"),
])
def test_binding_keys_must_be_positive_integers(publisher, key, text):
    x = publisher.exchange(unique("chx"), CH)
    q = publisher.declare(unique("chq"))
    with pytest.raises(ChannelClosedByBroker) as e:
        publisher.ch.queue_bind(q, x, routing_key=key)
    assert (e.value.reply_code, e.value.reply_text) == (406, "PRECONDITION_FAILED - " + text)


@pytest.mark.parametrize("key", ["+5", "05", "10"])
def test_signed_and_zero_padded_weights_are_accepted(publisher, key):
    x = publisher.exchange(unique("chx"), CH)
    q = publisher.declare(unique("chq"))
    publisher.ch.queue_bind(q, x, routing_key=key)


@pytest.mark.parametrize("arguments, text", [
    ({"hash-property": "app_id"}, "Unsupported property: app_id"),
    ({"hash-property": "foo"}, "Unsupported property: foo"),
    ({"hash-header": "h", "hash-property": "message_id"}, "hash-header and hash-property are mutually exclusive"),
])
def test_exchange_arguments_are_validated(publisher, arguments, text):
    with pytest.raises(ChannelClosedByBroker) as e:
        publisher.ch.exchange_declare(unique("chx"), CH, arguments=arguments)
    assert (e.value.reply_code, e.value.reply_text) == (406, "PRECONDITION_FAILED - " + text)
