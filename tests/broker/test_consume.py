"""Consuming and settling through a domain channel: credit, acks, rejects, requeues, get."""
import pytest

from warrenmq.protocol.errors import SoftError
from warrenmq.protocol.spec import PRECONDITION_FAILED

from .conftest import TestChannel, publish


def setup_queue(broker, name="q", n=0, **kw):
    vh = broker.vhosts["/"]
    q, _ = vh.declare_queue(name, None, **kw)
    ch = TestChannel(broker, 99)
    for i in range(n):
        publish(ch, "", name, b"m%d" % i)
    return q


def consume(channel, q, tag="c", no_ack=False):
    c = channel.consume(q, tag, no_ack, False, {})
    channel.start(c)
    return c


def test_prefetch_credit_limits_deliveries_and_acks_give_it_back(broker, channel):
    q = setup_queue(broker, n=5)
    channel.set_qos(2, False)
    consume(channel, q)
    assert [s[2] for s in channel.take("deliver")] == [1, 2]
    channel.ack(1, False)
    assert [s[4] for s in channel.take("deliver")] == [b"m2"]
    channel.ack(3, True)  # multiple: tags 2 and 3
    assert [s[4] for s in channel.take("deliver")] == [b"m3", b"m4"]
    assert (len(q.messages), q.unacked, q.stats_acked) == (0, 2, 3)


def test_a_global_prefetch_limits_the_channel_across_consumers(broker, channel):
    q1, q2 = setup_queue(broker, "q1", 3), setup_queue(broker, "q2", 3)
    channel.set_qos(2, True)
    consume(channel, q1, "a")
    consume(channel, q2, "b")
    assert len(channel.take("deliver")) == 2
    channel.ack(0, True)
    assert len(channel.take("deliver")) == 2


def test_round_robin_between_consumers_of_one_queue(broker):
    q = setup_queue(broker)
    ch = TestChannel(broker)
    consume(ch, q, "a", no_ack=True)
    consume(ch, q, "b", no_ack=True)
    for i in range(4):
        publish(ch, "", "q", b"%d" % i)
    assert [(s[1], s[4]) for s in ch.take("deliver")] == [("a", b"0"), ("b", b"1"), ("a", b"2"), ("b", b"3")]


def test_reject_with_requeue_puts_the_message_back_in_place_redelivered(broker, channel):
    q = setup_queue(broker, n=3)
    channel.set_qos(1, False)
    consume(channel, q)
    channel.take()
    channel.reject(1, False, True)
    assert channel.take("deliver") == [("deliver", "c", 2, True, b"m0")]


def test_closing_a_channel_requeues_its_unacked_messages(broker, channel):
    q = setup_queue(broker, n=2)
    consume(channel, q)
    channel.close()
    assert [(e.message.body, e.redelivered) for e in q.messages] == [(b"m0", True), (b"m1", True)]
    assert q.consumers == type(q.consumers)() and q.unacked == 0


def test_unknown_delivery_tags_are_rabbitmqs_precondition_failed(broker, channel):
    setup_queue(broker, n=1)
    with pytest.raises(SoftError) as e:
        channel.ack(7, False)
    assert (e.value.code, e.value.reply_text) == (PRECONDITION_FAILED, "PRECONDITION_FAILED - unknown delivery tag 7")


def test_get_takes_the_head_with_a_delivery_tag(broker, channel):
    q = setup_queue(broker, n=2)
    tag, entry = channel.get(q, False)
    assert (tag, entry.message.body, q.unacked) == (1, b"m0", 1)
    tag, entry = channel.get(q, True)
    assert (tag, entry.message.body, q.unacked) == (2, b"m1", 1)
    assert channel.get(q, False) is None


def test_deleting_a_queue_cancels_its_consumers(broker, channel):
    q = setup_queue(broker)
    consume(channel, q, "gone")
    broker.vhosts["/"].delete_queue(q)
    assert channel.take() == [("cancel", "gone")] and not channel.consumers


def test_a_paused_channel_gets_nothing_until_the_queue_dispatches_again(broker, channel):
    q = setup_queue(broker, n=2)
    channel.paused = True
    consume(channel, q, no_ack=True)
    assert channel.take() == []
    channel.paused = False
    channel.dispatch_consumers()
    assert len(channel.take("deliver")) == 2
