"""Policies (warrenmq.broker.policy): what the differential suite cannot compare with RabbitMQ.

tests/differential/test_policies.py checks the behaviour clients see against a real RabbitMQ (message
TTL, length limits, overflow, expiry, dead lettering, alternate exchanges, delivery limit, apply-to,
priority); here: the Python API, validation texts, WarrenMQ's extension ``max-priority``, the tie-break,
resolution rules, and durability of policies across a restart.
"""
from __future__ import annotations

import pika
import pytest

from warrenmq.broker.broker import Broker
from warrenmq.broker.policy import KIND_EXCHANGE, KIND_QUEUE, Policy, effective
from warrenmq.config import BrokerConfig
from warrenmq.store import open_storage

pytestmark = pytest.mark.timeout(30)


def in_memory_broker() -> Broker:
    config = BrokerConfig(data_dir="")
    return Broker(config, open_storage(config))


@pytest.mark.parametrize("definition, apply_to, priority, pattern, message", [
    ({"max-priority": 300}, "all", 0, ".*", "300 is not a valid max priority"),
    ({"foo": 1}, "all", 0, ".*", '[{<<"foo">>,1}] are not recognised policy settings'),
    ({"message-ttl": -1}, "all", 0, ".*", "-1 is not a valid message TTL"),
    ({"message-ttl": "5"}, "all", 0, ".*", '<<"5">> is not a valid message TTL'),
    ({"expires": 0}, "all", 0, ".*", "0 is not a valid queue expiry"),
    ({"max-length": -1}, "all", 0, ".*", "-1 is not a valid maximum length"),
    ({"max-length-bytes": True}, "all", 0, ".*", "true is not a valid maximum length in bytes"),
    ({"overflow": "x"}, "all", 0, ".*", '<<"x">> is not a valid overflow value'),
    ({"delivery-limit": -2}, "all", 0, ".*", "-2 is not a valid delivery limit"),
    ({"dead-letter-exchange": 5}, "all", 0, ".*", "5 is not a valid dead letter exchange name"),
    ({"alternate-exchange": None}, "all", 0, ".*", "null is not a valid alternate exchange name"),
    ({}, "all", 0, ".*", "no policy provided"),
    ({"max-length": 1}, "things", 0, ".*", "'things' is not a valid apply-to value"),
    ({"max-length": 1}, "all", "high", ".*", '<<"high">> is not a valid priority'),
    ({"max-length": 1}, "all", 0, "(", "is not a valid regex"),
])
def test_validation(definition, apply_to, priority, pattern, message):
    b = in_memory_broker()
    with pytest.raises(ValueError) as e:
        b.set_policy("/", "p", pattern, definition, priority=priority, apply_to=apply_to)
    assert message in str(e.value)
    assert b.list_policies() == []


def test_api_set_list_replace_clear():
    b = in_memory_broker()
    b.set_policy("/", "ttl", "^q", {"message-ttl": 100}, priority=2, apply_to="queues")
    assert b.list_policies("/") == [{"vhost": "/", "name": "ttl", "pattern": "^q", "apply-to": "queues",
                                     "definition": {"message-ttl": 100}, "priority": 2}]
    b.set_policy("/", "ttl", "^q", {"message-ttl": 50})  # same name: replaced
    assert [p["definition"] for p in b.list_policies()] == [{"message-ttl": 50}]
    b.clear_policy("/", "ttl")
    assert b.list_policies() == []
    with pytest.raises(KeyError):
        b.clear_policy("/", "ttl")
    with pytest.raises(KeyError):
        b.set_policy("nope", "p", ".*", {"max-length": 1})


def test_match_priority_and_tie_break():
    b = in_memory_broker()
    vh = b.vhosts["/"]
    b.set_policy("/", "b-low", "^orders", {"max-length": 1}, priority=0)
    b.set_policy("/", "a-low", "^orders", {"max-length": 2}, priority=0)
    b.set_policy("/", "high", "^orders\\.", {"max-length": 3}, priority=7, apply_to="exchanges")
    assert vh.policies.match(KIND_QUEUE, "orders.eu").name == "a-low"  # equal priority: first name
    assert vh.policies.match(KIND_EXCHANGE, "orders.eu").name == "high"
    assert vh.policies.match(KIND_EXCHANGE, "orders").name == "a-low"
    assert vh.policies.match(KIND_QUEUE, "x.orders") is None  # search, but anchored by the pattern


def test_effective_resolution():
    class Obj:
        def __init__(self, arguments, policy):
            self.arguments, self.policy = arguments, policy

    p = Policy("/", "p", ".*", {"message-ttl": 500, "max-length": 10, "overflow": "reject-publish",
                                "dead-letter-exchange": "pdlx", "delivery-limit": 4,
                                "alternate-exchange": "pae"})
    assert effective(Obj({}, p), "x-message-ttl") == 500
    assert effective(Obj({"x-message-ttl": 100}, p), "x-message-ttl") == 100  # the lower wins
    assert effective(Obj({"x-message-ttl": 900}, p), "x-message-ttl") == 500
    assert effective(Obj({"x-max-length": 20}, p), "x-max-length") == 10
    assert effective(Obj({"x-delivery-limit": 2}, p), "x-delivery-limit") == 2
    assert effective(Obj({"x-overflow": "drop-head"}, p), "x-overflow") == "drop-head"  # the argument wins
    assert effective(Obj({}, p), "x-overflow") == "reject-publish"
    assert effective(Obj({"x-dead-letter-exchange": "own"}, p), "x-dead-letter-exchange") == "own"
    assert effective(Obj({"alternate-exchange": "own"}, p), "alternate-exchange") == "own"
    assert effective(Obj({}, p), "alternate-exchange") == "pae"
    assert effective(Obj({}, p), "x-expires") is None
    assert effective(Obj({"x-foo": 1}, p), "x-foo") == 1
    assert effective(Obj({"x-message-ttl": 100}, None), "x-message-ttl") == 100


def test_max_priority_policy_applies_at_declare_only(broker):
    """RabbitMQ 3.10 rejects max-priority in a policy; WarrenMQ takes it for queues declared afterwards."""
    conn = pika.BlockingConnection(pika.URLParameters(broker.url))
    ch = conn.channel()
    ch.queue_declare("before")
    broker.call(lambda: broker.broker.set_policy("/", "prio", "^(before|after|own)$", {"max-priority": 5}))
    ch.queue_declare("after")
    ch.queue_declare("own", arguments={"x-max-priority": 2})
    for q in ("before", "after", "own"):
        for p in (1, 9, 3):
            ch.basic_publish("", q, str(p).encode(), pika.BasicProperties(priority=p))

    def bodies(q):
        out = []
        while True:
            m, _, body = ch.basic_get(q, auto_ack=True)
            if m is None:
                return out
            out.append(body)
    assert bodies("before") == [b"1", b"9", b"3"]  # created before the policy: FIFO
    assert bodies("after") == [b"9", b"3", b"1"]   # 9 counts as 5
    assert bodies("own") == [b"9", b"3", b"1"]     # its own x-max-priority 2: 9 and 3 count as 2 (FIFO)
    # the policy is not an argument: redeclaring without x-max-priority is equivalent
    ch.queue_declare("after")
    broker.call(lambda: broker.broker.clear_policy("/", "prio"))
    for p in (1, 9):
        ch.basic_publish("", "after", str(p).encode(), pika.BasicProperties(priority=p))
    assert bodies("after") == [b"9", b"1"]  # still a priority queue
    conn.close()


def test_policy_reaches_existing_queues_and_exchanges(broker):
    conn = pika.BlockingConnection(pika.URLParameters(broker.url))
    ch = conn.channel()
    ch.queue_declare("q1")
    ch.exchange_declare("x1", "direct")
    b = broker.broker
    broker.call(lambda: b.set_policy("/", "p", "1$", {"message-ttl": 5, "alternate-exchange": "ae"}))

    def state():
        vh = b.vhosts["/"]
        return (vh.queues["q1"].message_ttl, vh.queues["q1"].policy and vh.queues["q1"].policy.name,
                vh.exchanges["x1"].effective("alternate-exchange"))
    assert broker.call(state) == (5, "p", "ae")
    broker.call(lambda: b.clear_policy("/", "p"))
    assert broker.call(state) == (None, None, None)
    conn.close()


def test_policies_survive_a_restart(tmp_path):
    config = BrokerConfig(data_dir=str(tmp_path / "data"))
    b = Broker(config, open_storage(config))
    b.set_policy("/", "dur", "^d", {"max-length": 3, "dead-letter-exchange": "dlx"}, priority=4,
                 apply_to="queues")
    b.set_policy("/", "gone", "^g", {"expires": 1000})
    b.clear_policy("/", "gone")
    b.close()
    b2 = Broker(config, open_storage(config))
    try:
        assert b2.list_policies() == [{"vhost": "/", "name": "dur", "pattern": "^d", "apply-to": "queues",
                                       "definition": {"max-length": 3, "dead-letter-exchange": "dlx"},
                                       "priority": 4}]
        q, _ = b2.vhosts["/"].declare_queue("dq", None)
        assert q.policy.name == "dur" and q.limit.max_length == 3 and q.dlx == "dlx"
    finally:
        b2.close()
