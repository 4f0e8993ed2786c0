"""The ``x-federation-upstream`` exchange type, as a federation downstream declares it on its upstream.

Routes like fanout, except that a message whose ``x-received-from`` header shows
it already crossed ``x-max-hops`` links, or came from the downstream named by
``x-downstream-name``/``x-downstream-vhost``, goes nowhere (RabbitMQ's
rabbitmq_federation plugin).  Runs against RabbitMQ 3.10 with that plugin too
(``WARRENMQ_FEATURE_TESTS_URL``).
"""
from __future__ import annotations

import pytest
from pika.compat import long
from pika.exceptions import ChannelClosedByBroker

from .helpers import unique

pytestmark = pytest.mark.timeout(60)
XFU = "x-federation-upstream"


def hop(cluster, vhost="/"):
    return {"uri": "amqp://somewhere", "exchange": "x", "redelivered": False,
            "cluster-name": cluster, "vhost": vhost}


def fed_exchange(publisher, max_hops, **extra):
    args = {"x-max-hops": long(max_hops), "x-downstream-name": "down-cluster", "x-downstream-vhost": "/",
            "x-internal-purpose": "federation", **extra}
    x = publisher.exchange(unique("fedx"), XFU, **args)
    q = publisher.declare(unique("fedq"))
    publisher.ch.queue_bind(q, x)
    return x, q


def test_routes_like_fanout_without_the_header(publisher):
    x, q = fed_exchange(publisher, 1)
    q2 = publisher.declare(unique("fedq"))
    publisher.ch.queue_bind(q2, x, routing_key="any-key")
    publisher.publish("whatever", ["a", "b"], exchange=x)
    assert publisher.count(q) == 2
    assert publisher.count(q2) == 2


def test_a_message_that_crossed_max_hops_goes_nowhere(publisher):
    x, q = fed_exchange(publisher, 2)
    publisher.publish("k", ["one hop"], exchange=x, headers={"x-received-from": [hop("elsewhere")]})
    assert publisher.count(q) == 1
    publisher.publish("k", ["two hops"], exchange=x,
                      headers={"x-received-from": [hop("elsewhere"), hop("third")]})
    assert publisher.count(q) == 1
    publisher.publish("k", ["other headers only"], exchange=x, headers={"x-other": 1})
    assert publisher.count(q) == 2


def test_a_message_from_the_downstream_itself_goes_nowhere(publisher):
    x, q = fed_exchange(publisher, 5)
    publisher.publish("k", ["from it"], exchange=x, headers={"x-received-from": [hop("down-cluster", "/")]})
    assert publisher.count(q) == 0
    publisher.publish("k", ["its name, another vhost"], exchange=x,
                      headers={"x-received-from": [hop("down-cluster", "other")]})
    assert publisher.count(q) == 1


def test_a_message_through_a_bound_exchange_is_filtered_too(publisher):
    src = publisher.exchange(unique("fedsrc"), "direct")
    x, q = fed_exchange(publisher, 1)
    publisher.ch.exchange_bind(x, src, routing_key="k")
    publisher.publish("k", ["fresh"], exchange=src)
    publisher.publish("other", ["not bound"], exchange=src)
    publisher.publish("k", ["crossed one"], exchange=src, headers={"x-received-from": [hop("elsewhere")]})
    assert publisher.count(q) == 1


@pytest.mark.parametrize("args, text", [
    ({}, "PRECONDITION_FAILED - Argument x-max-hops missing"),
    ({"x-max-hops": 1}, "PRECONDITION_FAILED - Argument x-max-hops must be of type long"),
    ({"x-max-hops": "1"}, "PRECONDITION_FAILED - Argument x-max-hops must be of type long"),
])
def test_declare_needs_max_hops_as_a_long(conn, args, text):
    ch = conn.channel()
    with pytest.raises(ChannelClosedByBroker) as e:
        ch.exchange_declare(unique("fedbad"), XFU, arguments=args)
    assert e.value.reply_code == 406
    assert e.value.reply_text == text


def test_redeclare_compares_max_hops(publisher, conn):
    x, _ = fed_exchange(publisher, 1)
    ch = conn.channel()
    ch.exchange_declare(x, XFU, arguments={"x-max-hops": long(1), "x-downstream-name": "another"})
    with pytest.raises(ChannelClosedByBroker) as e:
        ch.exchange_declare(x, XFU, arguments={"x-max-hops": long(2)})
    assert e.value.reply_code == 406
    assert e.value.reply_text == (f"PRECONDITION_FAILED - inequivalent arg 'x-max-hops' for exchange '{x}' in "
                                  "vhost '/': received '2' but current is '1'")
