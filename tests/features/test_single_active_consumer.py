"""Single active consumer (the ``x-single-active-consumer`` queue argument), as RabbitMQ 3.10's classic queues.

Every consumer gets basic.consume-ok and counts in queue.declare-ok, but only
the active one receives.  When it is cancelled or its channel closes, the
remaining consumer with the highest ``x-priority`` takes over, the earliest
registered among equals; messages the old one left unacked come back to the
queue (on channel close) at their original place and go to the new one first.
Expected values were observed on RabbitMQ 3.10.8, except where a test says it
checks a deliberate difference.
"""
from __future__ import annotations

from decimal import Decimal

import amqp
import pytest
from pika.exceptions import ChannelClosedByBroker

from .conftest import warrenmq_only
from .helpers import VHOST, unique

pytestmark = pytest.mark.timeout(30)
SAC = {"x-single-active-consumer": True}


def sac_queue(publisher) -> str:
    return publisher.declare(unique("sac"), **SAC)


def test_only_the_first_consumer_receives_and_all_are_counted(publisher, consumers):
    q = sac_queue(publisher)
    for tag in "ABC":
        consumers.consume(q, tag)
    assert publisher.ch.queue_declare(q, passive=True).method.consumer_count == 3
    publisher.publish(q, range(5))
    consumers.wait_for(5)
    consumers.sync()
    assert consumers.summary() == {"A": ["0", "1", "2", "3", "4"], "B": [], "C": []}


def test_the_next_consumer_takes_over_when_the_active_one_is_cancelled(publisher, consumers):
    q = sac_queue(publisher)
    a = consumers.consume(q, "A")
    consumers.consume(q, "B")
    consumers.consume(q, "C")
    publisher.publish(q, [0])
    consumers.wait_for(1)
    a.basic_cancel("A")  # its delivery stays unacked on its channel: cancel does not requeue
    publisher.publish(q, [1, 2])
    consumers.wait_for(3)
    consumers.sync()
    assert consumers.summary() == {"A": ["0"], "B": ["1", "2"], "C": []}
    a.basic_ack(consumers.got["A"][0].tag)  # still allowed after the cancel


def test_closing_the_active_channel_hands_its_unacked_messages_to_the_next_in_order(publisher, consumers):
    q = sac_queue(publisher)
    a = consumers.consume(q, "A", prefetch=2)
    consumers.consume(q, "B")
    publisher.publish(q, range(4))
    consumers.wait_for(2)
    assert consumers.bodies("A") == ["0", "1"]
    a.close()  # 0 and 1 go back ahead of 2 and 3, redelivered
    consumers.wait_for(6)
    assert [(d.body, d.redelivered) for d in consumers.got["B"]] == [
        ("0", True), ("1", True), ("2", False), ("3", False)]


def test_the_highest_priority_waiting_consumer_takes_over_but_does_not_preempt(publisher, consumers):
    q = sac_queue(publisher)
    a = consumers.consume(q, "A")
    consumers.consume(q, "B")
    consumers.consume(q, "C", priority=10)
    publisher.publish(q, [0])
    consumers.wait_for(1)
    assert consumers.bodies("A") == ["0"]  # the first registered is active, whatever the others' priorities
    a.close()
    publisher.publish(q, [1])
    consumers.wait_for(3)
    consumers.sync()
    assert [(d.body, d.redelivered) for d in consumers.got["C"]] == [("0", True), ("1", False)]
    assert consumers.bodies("B") == []


def test_cancelling_a_waiting_consumer_changes_nothing(publisher, consumers):
    q = sac_queue(publisher)
    consumers.consume(q, "A")
    b = consumers.consume(q, "B")
    consumers.consume(q, "C")
    b.basic_cancel("B")
    publisher.publish(q, [0, 1])
    consumers.wait_for(2)
    assert consumers.summary() == {"A": ["0", "1"], "B": [], "C": []}


def test_the_active_consumer_at_its_prefetch_limit_blocks_the_others(publisher, consumers):
    q = sac_queue(publisher)
    a = consumers.consume(q, "A", prefetch=1)
    consumers.consume(q, "B")
    publisher.publish(q, range(3))
    consumers.wait_for(1)
    consumers.sync()
    assert consumers.summary() == {"A": ["0"], "B": []}
    assert publisher.count(q) == 2
    a.basic_ack(consumers.got["A"][0].tag)
    consumers.wait_for(2)
    assert consumers.bodies("A") == ["0", "1"]


def test_auto_ack_consumers_hand_over_too(publisher, consumers):
    q = sac_queue(publisher)
    a = consumers.consume(q, "A", auto_ack=True)
    consumers.consume(q, "B", auto_ack=True)
    publisher.publish(q, range(2))
    consumers.wait_for(2)
    a.close()
    publisher.publish(q, [2])
    consumers.wait_for(3)
    assert consumers.summary() == {"A": ["0", "1"], "B": ["2"]}


@warrenmq_only
def test_after_a_cancel_the_new_active_consumer_gets_waiting_messages_at_the_next_publish(publisher, consumers):
    """As in RabbitMQ 3.10 the successor gets nothing until the queue next runs (so a client that cancels
    and then closes its channel hands over its unacked messages first, in order).  The deliberate
    difference: RabbitMQ's queue process then crashes on that publish, cancelling every consumer;
    WarrenMQ delivers the waiting messages in order, then the new one."""
    q = sac_queue(publisher)
    a = consumers.consume(q, "A", prefetch=1)
    consumers.consume(q, "B")
    publisher.publish(q, range(3))
    consumers.wait_for(1)
    a.basic_cancel("A")
    consumers.sync()
    assert consumers.summary() == {"A": ["0"], "B": []}
    publisher.publish(q, [3])
    consumers.wait_for(4)
    assert consumers.summary() == {"A": ["0"], "B": ["1", "2", "3"]}


@warrenmq_only
def test_after_a_cancel_an_ack_of_the_old_consumer_lets_the_new_one_start(publisher, consumers):
    """RabbitMQ 3.10 would wait for a publish here; WarrenMQ runs the queue on the ack."""
    q = sac_queue(publisher)
    a = consumers.consume(q, "A", prefetch=1)
    consumers.consume(q, "B")
    publisher.publish(q, range(3))
    consumers.wait_for(1)
    a.basic_cancel("A")
    a.basic_ack(consumers.got["A"][0].tag)
    consumers.wait_for(3)
    assert consumers.summary() == {"A": ["0"], "B": ["1", "2"]}


def test_an_exclusive_consumer_is_refused_on_a_single_active_consumer_queue(publisher, consumers):
    q = sac_queue(publisher)
    with pytest.raises(ChannelClosedByBroker) as e:
        consumers.consume(q, "X", exclusive=True)
    assert (e.value.reply_code, e.value.reply_text) == (
        403, f"ACCESS_REFUSED - queue '{q}' in vhost '{VHOST}' in exclusive use")


def test_basic_get_still_works_when_no_consumer_is_active(publisher):
    q = sac_queue(publisher)
    publisher.publish(q, ["m"])
    method, _, body = publisher.ch.basic_get(q, auto_ack=True)
    assert body == b"m"


def test_false_means_an_ordinary_round_robin_queue(publisher, consumers):
    q = publisher.declare(unique("sac"), **{"x-single-active-consumer": False})
    consumers.consume(q, "A")
    consumers.consume(q, "B")
    publisher.publish(q, range(4))
    consumers.wait_for(4)
    assert consumers.summary() == {"A": ["0", "2"], "B": ["1", "3"]}


@pytest.mark.parametrize("value, type_name", [
    ("abc", "longstr"), (1, "signedint"), (0, "signedint"), (None, "void"), (Decimal("1"), "decimal"),
])
def test_the_argument_must_be_a_boolean(publisher, value, type_name):
    q = unique("sac")
    with pytest.raises(ChannelClosedByBroker) as e:
        publisher.ch.queue_declare(q, arguments={"x-single-active-consumer": value})
    assert (e.value.reply_code, e.value.reply_text) == (
        406, f"PRECONDITION_FAILED - invalid arg 'x-single-active-consumer' for queue '{q}' in vhost '{VHOST}': "
             f"{{unacceptable_type,{type_name}}}")


@pytest.mark.parametrize("redeclare, text", [
    ({}, "received none but current is the value 'true' of type 'bool'"),
    ({"x-single-active-consumer": False}, "received 'false' but current is 'true'"),
])
def test_redeclaring_with_another_value_is_refused(publisher, redeclare, text):
    q = sac_queue(publisher)
    with pytest.raises(ChannelClosedByBroker) as e:
        publisher.ch.queue_declare(q, arguments=redeclare or None)
    assert e.value.reply_text == (f"PRECONDITION_FAILED - inequivalent arg 'x-single-active-consumer' for queue "
                                  f"'{q}' in vhost '{VHOST}': {text}")


def test_py_amqp_consumers_on_a_single_active_consumer_queue(url, publisher):
    q = sac_queue(publisher)
    host = url.split("@", 1)[1].split("/", 1)[0]
    with amqp.Connection(host) as conn:
        ch1, ch2 = conn.channel(), conn.channel()
        got = []
        ch1.basic_consume(q, consumer_tag="one", callback=lambda m: got.append(("one", m.body)))
        ch2.basic_consume(q, consumer_tag="two", callback=lambda m: got.append(("two", m.body)))
        publisher.publish(q, [0])
        conn.drain_events(timeout=5)
        ch1.close()
        publisher.publish(q, [1])
        while len(got) < 3:
            conn.drain_events(timeout=5)
    assert got == [("one", b"0"), ("two", b"0"), ("two", b"1")]
