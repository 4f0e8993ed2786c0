"""The delayed-message exchange (``x-delayed-message``, the rabbitmq_delayed_message_exchange plugin).

Behaviour follows the plugin's source for RabbitMQ 3.8-3.11: the exchange
routes as its ``x-delayed-type``; a message with an ``x-delay`` header of 1 ms or
more is held and then routed through the exchange with ``x-delay`` negated; it
routes nowhere at publish time, so a mandatory publish is returned at once (the
plugin documents mandatory as unsupported) and the confirm comes at once.  The
plugin is not installed on the reference RabbitMQ here, so these tests run
against WarrenMQ only.
"""
from __future__ import annotations

import time

import pytest
from pika.exceptions import ChannelClosedByBroker, ConnectionClosedByBroker, UnroutableError

from .conftest import warrenmq_only
from .helpers import VHOST, connect, unique

pytestmark = [pytest.mark.timeout(30), warrenmq_only]
DELAYED = "x-delayed-message"


def delayed_exchange(publisher, type_="direct", **extra):
    return publisher.exchange(unique("dx"), DELAYED, **{"x-delayed-type": type_}, **extra)


def bound_queue(publisher, x, key="k"):
    q = publisher.declare(unique("dq"))
    publisher.ch.queue_bind(q, x, routing_key=key)
    return q


def test_a_delayed_message_arrives_after_the_delay_with_its_delay_negated(publisher, consumers):
    x = delayed_exchange(publisher)
    q = bound_queue(publisher, x)
    consumers.consume(q, "c", auto_ack=True)
    sent = time.monotonic()
    publisher.publish("k", ["later"], exchange=x, headers={"x-delay": 300, "other": "kept"})
    consumers.wait_for(1)
    d = consumers.got["c"][0]
    assert d.at - sent >= 0.3
    assert d.body == "later"
    assert d.properties.headers == {"x-delay": -300, "other": "kept"}


def test_messages_come_out_in_delay_order(publisher, consumers):
    x = delayed_exchange(publisher)
    q = bound_queue(publisher, x)
    consumers.consume(q, "c", auto_ack=True)
    publisher.publish("k", ["slow"], exchange=x, headers={"x-delay": 400})
    publisher.publish("k", ["fast"], exchange=x, headers={"x-delay": 100})
    publisher.publish("k", ["now"], exchange=x)
    consumers.wait_for(3)
    assert consumers.bodies("c") == ["now", "fast", "slow"]


@pytest.mark.parametrize("headers", [None, {"x-delay": 0}, {"x-delay": -50}, {"x-delay": "abc"},
                                     {"x-delay": True}, {"x-delay": 2 ** 32}, {"other": 1}])
def test_messages_without_a_usable_delay_are_routed_at_once_unchanged(publisher, headers):
    x = delayed_exchange(publisher)
    q = bound_queue(publisher, x)
    publisher.publish("k", ["m"], exchange=x, headers=headers)
    assert publisher.count(q) == 1  # routed before the confirm came back
    _, props, _ = publisher.ch.basic_get(q, auto_ack=True)
    assert props.headers == headers


def test_the_longest_delay_is_an_erlang_timer_maximum(publisher):
    x = delayed_exchange(publisher)
    q = bound_queue(publisher, x)
    publisher.publish("k", ["held"], exchange=x, headers={"x-delay": 2 ** 32 - 1})
    publisher.publish("k", ["routed"], exchange=x, headers={"x-delay": 2 ** 32})
    assert publisher.count(q) == 1
    assert publisher.ch.basic_get(q, auto_ack=True)[2] == b"routed"


def test_a_numeric_string_delay_is_a_delay(publisher, consumers):
    x = delayed_exchange(publisher)
    q = bound_queue(publisher, x)
    publisher.publish("k", ["m"], exchange=x, headers={"x-delay": "150"})
    assert publisher.count(q) == 0
    consumers.consume(q, "c", auto_ack=True)
    consumers.wait_for(1)
    assert consumers.got["c"][0].properties.headers == {"x-delay": -150}


def test_routing_follows_the_delayed_type_when_the_delay_ends(publisher, consumers):
    x = delayed_exchange(publisher, "topic")
    eu = bound_queue(publisher, x, "orders.eu.*")
    us = bound_queue(publisher, x, "orders.us.*")
    publisher.publish("orders.eu.new", ["a"], exchange=x, headers={"x-delay": 200})
    late = bound_queue(publisher, x, "orders.#")  # bound during the delay: it counts
    consumers.consume(eu, "eu", auto_ack=True)
    consumers.consume(us, "us", auto_ack=True)
    consumers.consume(late, "late", auto_ack=True)
    consumers.wait_for(2)
    consumers.sync()
    assert consumers.summary() == {"eu": ["a"], "us": [], "late": ["a"]}


def test_a_mandatory_delayed_message_is_returned_at_once_and_still_delivered(publisher, consumers):
    x = delayed_exchange(publisher)
    q = bound_queue(publisher, x)
    consumers.consume(q, "c", auto_ack=True)
    with pytest.raises(UnroutableError):
        publisher.publish("k", ["m"], exchange=x, headers={"x-delay": 100}, mandatory=True)
    consumers.wait_for(1)
    assert consumers.bodies("c") == ["m"]


def test_a_held_message_also_goes_to_the_alternate_exchange_at_once(publisher, consumers):
    """It routes nowhere when published, so RabbitMQ's exchange routing hands it to the alternate exchange
    then, and the plugin still delivers it after the delay."""
    ae = publisher.exchange(unique("ae"), "fanout")
    unrouted = bound_queue(publisher, ae, "")
    x = delayed_exchange(publisher, **{"alternate-exchange": ae})
    q = bound_queue(publisher, x)
    publisher.publish("k", ["m"], exchange=x, headers={"x-delay": 100})
    assert (publisher.count(unrouted), publisher.count(q)) == (1, 0)
    consumers.consume(q, "c", auto_ack=True)
    consumers.wait_for(1)
    assert publisher.count(unrouted) == 1


def test_a_delayed_message_is_confirmed_before_it_is_routed(publisher):
    x = delayed_exchange(publisher)
    q = bound_queue(publisher, x)
    publisher.publish("k", ["m"], exchange=x, headers={"x-delay": 60_000})  # returns: the confirm came
    assert publisher.count(q) == 0


def test_held_messages_go_with_a_deleted_exchange(publisher, consumers):
    x = delayed_exchange(publisher, "fanout")
    q = bound_queue(publisher, x, "")
    publisher.publish("k", ["lost"], exchange=x, headers={"x-delay": 100})
    publisher.ch.exchange_delete(x)
    publisher.exchange(x, DELAYED, **{"x-delayed-type": "fanout"})  # same name, no binding
    publisher.ch.queue_bind(q, x)
    publisher.publish("k", ["kept"], exchange=x, headers={"x-delay": 150})
    consumers.consume(q, "c", auto_ack=True)
    consumers.wait_for(1)
    consumers.sync()
    assert consumers.bodies("c") == ["kept"]


def test_a_consistent_hash_delayed_type_validates_its_binding_keys(publisher):
    x = delayed_exchange(publisher, "x-consistent-hash")
    q = publisher.declare(unique("dq"))
    with pytest.raises(ChannelClosedByBroker) as e:
        publisher.ch.queue_bind(q, x, routing_key="abc")
    assert e.value.reply_text == 'PRECONDITION_FAILED - The binding key must be an integer: <<"abc">>'


@pytest.mark.parametrize("arguments, text", [
    ({}, "Invalid argument, 'x-delayed-type' must be an existing exchange type"),
    ({"x-delayed-type": 5}, "Invalid argument, 'x-delayed-type' must be an existing exchange type"),
    ({"x-delayed-type": DELAYED}, "Invalid argument, 'x-delayed-message' can't be used for 'x-delayed-type'"),
])
def test_the_delayed_type_is_required(publisher, arguments, text):
    with pytest.raises(ChannelClosedByBroker) as e:
        publisher.ch.exchange_declare(unique("dx"), DELAYED, arguments=arguments or None)
    assert (e.value.reply_code, e.value.reply_text) == (406, "PRECONDITION_FAILED - " + text)


def test_an_unknown_delayed_type_is_a_connection_error(url):
    conn = connect(url)
    with pytest.raises(ConnectionClosedByBroker) as e:
        conn.channel().exchange_declare(unique("dx"), DELAYED, arguments={"x-delayed-type": "nope-type"})
    assert (e.value.reply_code, e.value.reply_text) == (503, "COMMAND_INVALID - unknown exchange type 'nope-type'")


def test_redeclaring_with_another_delayed_type_is_accepted_as_by_the_plugin(publisher):
    x = delayed_exchange(publisher, "direct")
    publisher.ch.exchange_declare(x, DELAYED, arguments={"x-delayed-type": "fanout"})
    with pytest.raises(ChannelClosedByBroker) as e:
        publisher.ch.exchange_declare(x, "direct")
    assert e.value.reply_text == (f"PRECONDITION_FAILED - inequivalent arg 'type' for exchange '{x}' in vhost "
                                  f"'{VHOST}': received 'direct' but current is '{DELAYED}'")


def test_kombu_declares_and_uses_a_delayed_exchange(url):
    from kombu import Connection, Exchange, Queue
    name = unique("dx")
    with Connection(url) as conn:
        ex = Exchange(name, type=DELAYED, arguments={"x-delayed-type": "direct"}, auto_delete=True)
        q = Queue(unique("dq"), ex, routing_key="task", auto_delete=True)
        with conn.SimpleQueue(q) as sq:
            producer = conn.Producer()
            producer.publish({"n": 1}, exchange=ex, routing_key="task", headers={"x-delay": 150},
                             declare=[q])
            sent = time.monotonic()
            msg = sq.get(timeout=5)
            assert time.monotonic() - sent >= 0.15 * 0.9
            assert msg.payload == {"n": 1} and msg.headers["x-delay"] == -150
            msg.ack()
