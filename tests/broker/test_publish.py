"""The one publish path (VHost.publish) and a channel's publish checks."""
import pytest

from warrenmq.broker.vhost import REJECTED, ROUTED, UNROUTABLE
from warrenmq.protocol.errors import SoftError
from warrenmq.protocol.spec import ACCESS_REFUSED, NOT_FOUND, NO_ROUTE, PRECONDITION_FAILED

from .conftest import TestChannel, header, make_broker, publish


def message(channel, exchange, routing_key, body=b"x", **props):
    from warrenmq.broker.message import Message
    return Message(exchange, routing_key, header(len(body), **props), body)


def declare(vhost, name, **kw):
    return vhost.declare_queue(name, None, **kw)[0]


def test_a_direct_exchange_routes_by_key_to_every_bound_queue(broker, channel):
    vh = broker.vhosts["/"]
    vh.declare_exchange("logs", "direct")
    a, b = declare(vh, "a"), declare(vh, "b")
    vh.bind_queue(a, "logs", "error", {})
    vh.bind_queue(b, "logs", "error", {})
    vh.bind_queue(b, "logs", "info", {})
    assert vh.publish(vh.exchanges["logs"], message(channel, "logs", "error")) == ROUTED
    assert vh.publish(vh.exchanges["logs"], message(channel, "logs", "info")) == ROUTED
    assert (len(a.messages), len(b.messages)) == (1, 2)
    assert vh.publish(vh.exchanges["logs"], message(channel, "logs", "debug")) == UNROUTABLE


def test_an_unroutable_mandatory_publish_is_returned_and_a_plain_one_dropped(channel):
    publish(channel, "amq.direct", "nowhere", b"m1", mandatory=True)
    publish(channel, "amq.direct", "nowhere", b"m2")
    assert channel.take() == [("return", NO_ROUTE, "NO_ROUTE", b"m1")]


def test_alternate_exchange_takes_what_its_exchange_cannot_route(broker, channel):
    vh = broker.vhosts["/"]
    vh.declare_exchange("ae", "fanout")
    vh.declare_exchange("main", "direct", arguments={"alternate-exchange": "ae"})
    q = declare(vh, "unrouted")
    vh.bind_queue(q, "ae", "", {})
    publish(channel, "main", "whatever", b"m", mandatory=True)
    assert channel.take() == [] and [e.message.body for e in q.messages] == [b"m"]


def test_cc_and_bcc_headers_add_routing_keys_and_bcc_is_not_delivered(broker, channel):
    vh = broker.vhosts["/"]
    qs = {n: declare(vh, n) for n in ("k1", "k2", "k3")}
    publish(channel, "", "k1", b"m", headers={"CC": ["k2"], "BCC": ["k3"]})
    assert [len(q.messages) for q in qs.values()] == [1, 1, 1]
    assert "BCC" not in qs["k1"].messages[0].message.properties.headers


def test_publish_checks_exchange_and_properties_as_rabbitmq(broker, channel):
    vh = broker.vhosts["/"]
    vh.declare_exchange("internal-x", "fanout", internal=True)
    with pytest.raises(SoftError) as e:
        publish(channel, "missing", "k")
    assert (e.value.code, e.value.reply_text) == (NOT_FOUND, "NOT_FOUND - no exchange 'missing' in vhost '/'")
    with pytest.raises(SoftError) as e:
        publish(channel, "internal-x", "k")
    assert e.value.code == ACCESS_REFUSED
    with pytest.raises(SoftError) as e:
        publish(channel, "", "k", expiration="soon")
    assert (e.value.code, e.value.reply_text) == (PRECONDITION_FAILED, "PRECONDITION_FAILED - invalid expiration 'soon': no_integer")
    with pytest.raises(SoftError) as e:
        publish(channel, "", "k", user_id="mallory")
    assert "user_id property set to 'mallory'" in e.value.reply_text


def test_a_full_reject_publish_queue_refuses_and_the_outcome_says_so(broker, channel):
    vh = broker.vhosts["/"]
    q = declare(vh, "full", arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    assert vh.publish(vh.exchanges[""], message(channel, "", "full")) == ROUTED
    assert vh.publish(vh.exchanges[""], message(channel, "", "full")) == REJECTED
    assert len(q.messages) == 1


def test_a_persistent_message_in_a_durable_queue_is_stored_and_its_epoch_returned(tmp_path):
    b = make_broker(tmp_path / "data")
    try:
        vh = b.vhosts["/"]
        durable = declare(vh, "durable", durable=True)
        transient = declare(vh, "transient")
        ch = TestChannel(b)
        persistent = message(ch, "", "durable", b"p", delivery_mode=2)
        epoch = vh.publish(vh.exchanges[""], persistent)
        assert epoch > b.store.synced_epoch and persistent.store_id
        assert persistent.pageable  # every queue holding it keeps it in the store
        assert vh.publish(vh.exchanges[""], message(ch, "", "durable", b"t")) == ROUTED  # transient
        to_transient = message(ch, "", "transient", b"p2", delivery_mode=2)
        assert vh.publish(vh.exchanges[""], to_transient) == ROUTED and not to_transient.store_id
        assert len(durable.messages) == 2 and len(transient.messages) == 1
    finally:
        b.close()
    b = make_broker(tmp_path / "data")
    try:
        assert [e.message.body for e in b.vhosts["/"].queues["durable"].messages] == [b"p"]
    finally:
        b.close()


def test_the_recorder_sees_every_publish_of_the_vhost(broker, channel):
    vh = broker.vhosts["/"]
    seen = []
    vh.recorder = lambda ex, msg: seen.append((ex.name, msg.routing_key))
    publish(channel, "amq.topic", "a.b")
    assert seen == [("amq.topic", "a.b")]


def test_a_direct_reply_is_delivered_to_the_reply_consumer_at_once(broker):
    requester, responder = TestChannel(broker, 1), TestChannel(broker, 2)
    broker.direct_reply.consume(requester, "", True)
    publish(requester, "", "rpc", b"request", reply_to="amq.rabbitmq.reply-to")  # rewritten to its address
    declare(broker.vhosts["/"], "rpc")
    publish(requester, "", "rpc", b"request", reply_to="amq.rabbitmq.reply-to")
    address = broker.vhosts["/"].queues["rpc"].messages[0].message.properties.reply_to
    assert address.startswith("amq.rabbitmq.reply-to.")
    publish(responder, "", address, b"answer", mandatory=True)
    # as RabbitMQ: delivered, and the publish itself routed to no queue, so a mandatory one comes back
    assert requester.take() == [("reply", 1, b"answer")]
    assert responder.take() == [("return", NO_ROUTE, "NO_ROUTE", b"answer")]


def test_a_released_delayed_message_is_persisted_and_recorded_once(tmp_path):
    import time
    b = make_broker(tmp_path / "data")
    try:
        vh = b.vhosts["/"]
        vh.declare_exchange("later", "x-delayed-message", durable=True, arguments={"x-delayed-type": "direct"})
        q = declare(vh, "durable", durable=True)
        vh.bind_queue(q, "later", "k", {})
        seen = []
        vh.recorder = lambda ex, msg: seen.append(ex.name)
        publish(TestChannel(b), "later", "k", b"p", delivery_mode=2, headers={"x-delay": 1})
        assert len(q.messages) == 0
        time.sleep(0.01)
        vh.exchanges["later"]._release()
        [entry] = list(q.messages)
        assert entry.message.store_id and seen == ["later"]
    finally:
        b.close()
