"""Alternate exchanges (the ``alternate-exchange`` exchange argument), as RabbitMQ 3.10.

An exchange that routes a message nowhere hands it to its alternate exchange,
whose own AE applies in turn (each exchange at most once, so loops end); a
missing AE is no error.  A mandatory message is returned only when that chain
fails too.  The AE applies per exchange: an exchange that routes the message to
another exchange (an exchange-to-exchange binding) has routed it, even if that
one finds no queue.  Expected values were observed on RabbitMQ 3.10.8.
"""
from __future__ import annotations

import pika
import pytest

from support.features import bodies, drain, get, get_none, unique

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def topo(ch, cleanup):
    """Declare exchanges and queues, registered for cleanup: topo.x(type, **args), topo.q()."""
    class Topo:
        def x(self, type_="direct", internal=False, **arguments):
            name = unique("x")
            ch.exchange_declare(name, type_, internal=internal, arguments=arguments or None)
            cleanup[1].append(name)
            return name

        def q(self, exchange=None, key=""):
            name = unique("q")
            ch.queue_declare(name)
            cleanup[0].append(name)
            if exchange is not None:
                ch.queue_bind(name, exchange, key)
            return name
    return Topo()


class Returns:
    """basic.return frames received on a channel: (reply_code, exchange, routing_key, body)."""

    def __init__(self, ch):
        self.ch = ch
        self._got = []
        ch.add_on_return_callback(lambda c, m, p, b: self._got.append((m.reply_code, m.exchange, m.routing_key, b)))

    @property
    def got(self) -> list:
        self.ch.basic_qos(prefetch_count=0)  # a round trip: earlier returns have arrived
        self.ch.connection.process_data_events(time_limit=0)  # and their callbacks ran
        return self._got


def test_unroutable_messages_go_to_the_alternate_exchange(ch, topo):
    ae = topo.x("fanout")
    caught = topo.q(ae)
    x = topo.x("direct", **{"alternate-exchange": ae})
    main = topo.q(x, "main")
    ch.basic_publish(x, "main", b"routed")
    ch.basic_publish(x, "other", b"unroutable")
    assert bodies(drain(ch, main)) == [b"routed"]
    method, _, body = get(ch, caught)
    assert (method.exchange, method.routing_key, body) == (x, "other", b"unroutable")  # as published
    assert get_none(ch, caught)


def test_alternate_exchanges_chain(ch, topo):
    ae = topo.x("fanout")
    caught = topo.q(ae)
    x3 = topo.x("direct", **{"alternate-exchange": ae})
    x2 = topo.x("direct", **{"alternate-exchange": x3})
    ch.basic_publish(x2, "k", b"m")
    method, _, body = get(ch, caught)
    assert (method.exchange, body) == (x2, b"m")


def test_a_mandatory_message_is_returned_only_when_the_alternate_route_fails(ch, topo):
    returns = Returns(ch)
    ae = topo.x("fanout")
    caught = topo.q(ae)
    good = topo.x("direct", **{"alternate-exchange": ae})
    missing = topo.x("direct", **{"alternate-exchange": unique("missing")})
    empty_ae = topo.x("fanout")
    dead_end = topo.x("direct", **{"alternate-exchange": empty_ae})
    ch.basic_publish(good, "k", b"good", mandatory=True)
    ch.basic_publish(missing, "k", b"missing", mandatory=True)
    ch.basic_publish(dead_end, "k", b"dead-end", mandatory=True)
    assert bodies(drain(ch, caught)) == [b"good"]
    assert sorted(returns.got) == sorted([(312, missing, "k", b"missing"), (312, dead_end, "k", b"dead-end")])


def test_an_alternate_exchange_loop_ends_in_a_return(ch, topo):
    returns = Returns(ch)
    l1, l2 = unique("l1"), unique("l2")
    ch.exchange_declare(l1, "direct", arguments={"alternate-exchange": l2})
    ch.exchange_declare(l2, "direct", arguments={"alternate-exchange": l1})
    ch.basic_publish(l1, "k", b"loop", mandatory=True)
    got = returns.got
    for x in (l1, l2):
        ch.exchange_delete(x)
    assert got == [(312, l1, "k", b"loop")]


def test_a_loop_through_an_exchange_that_routes_finds_its_queues(ch, topo):
    fan = topo.x("fanout")
    q = topo.q(fan)
    a = unique("a")
    ch.exchange_declare(a, "direct", arguments={"alternate-exchange": fan})
    ch.exchange_bind(a, fan, "")  # fan -> a (and a's AE is fan)
    topo_cleanup = a
    ch.basic_publish(a, "nothing", b"m")
    assert bodies(drain(ch, q)) == [b"m"]
    ch.exchange_delete(topo_cleanup)


def test_an_exchange_that_routes_to_an_exchange_has_routed(ch, topo):
    returns = Returns(ch)
    ae = topo.x("fanout")
    caught = topo.q(ae)
    inner = topo.x("direct")
    outer = topo.x("direct", **{"alternate-exchange": ae})
    ch.exchange_bind(inner, outer, "k")
    ch.basic_publish(outer, "k", b"via-inner", mandatory=True)  # inner routes it nowhere: returned
    ch.basic_publish(outer, "zz", b"via-ae", mandatory=True)
    assert bodies(drain(ch, caught)) == [b"via-ae"]
    assert returns.got == [(312, outer, "k", b"via-inner")]


def test_an_internal_exchange_can_be_an_alternate_exchange(ch, topo):
    ae = topo.x("fanout", internal=True)
    caught = topo.q(ae)
    x = topo.x("direct", **{"alternate-exchange": ae})
    ch.basic_publish(x, "k", b"m")
    assert bodies(drain(ch, caught)) == [b"m"]


def test_an_alternate_exchange_declared_later_is_used(ch, topo):
    ae = unique("later")
    x = topo.x("direct", **{"alternate-exchange": ae})
    ch.exchange_declare(ae, "fanout")
    caught = topo.q(ae)
    ch.basic_publish(x, "k", b"m")
    ch.exchange_delete(ae)
    assert bodies(drain(ch, caught)) == [b"m"]


def test_confirms_ack_messages_caught_by_the_alternate_exchange(ch, topo):
    ae = topo.x("fanout")
    caught = topo.q(ae)
    x = topo.x("direct", **{"alternate-exchange": ae})
    ch.confirm_delivery()
    ch.basic_publish(x, "k", b"m", mandatory=True)  # raises UnroutableError or NackError otherwise
    assert bodies(drain(ch, caught)) == [b"m"]


def test_cc_keys_that_route_keep_the_message_from_the_alternate_exchange(ch, topo):
    ae = topo.x("fanout")
    caught = topo.q(ae)
    x = topo.x("direct", **{"alternate-exchange": ae})
    main = topo.q(x, "main")
    ch.basic_publish(x, "zz", b"m", pika.BasicProperties(headers={"CC": ["main"]}))
    assert bodies(drain(ch, main)) == [b"m"]
    assert get_none(ch, caught, settle=0.1)


@pytest.mark.parametrize("value, type_name", [(5, "signedint"), (b"bin", "binary"), (True, "bool")])
def test_the_argument_must_be_a_string(new_channel, value, type_name):
    _, c = new_channel()
    x = unique("x")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        c.exchange_declare(x, "direct", arguments={"alternate-exchange": value})
    assert (e.value.reply_code, e.value.reply_text) == (
        406, f"PRECONDITION_FAILED - invalid type '{type_name}' for arg 'alternate-exchange' in exchange '{x}' in "
             "vhost '/'")


def test_redeclaring_with_another_alternate_exchange_is_refused(ch, topo, new_channel):
    x = topo.x("direct", **{"alternate-exchange": "a"})
    _, c = new_channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        c.exchange_declare(x, "direct", arguments={"alternate-exchange": "b"})
    assert e.value.reply_text == (f"PRECONDITION_FAILED - inequivalent arg 'alternate-exchange' for exchange '{x}' "
                                  "in vhost '/': received 'b' but current is 'a'")
