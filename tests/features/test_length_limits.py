"""Queue length limits (``x-max-length``, ``x-max-length-bytes``, ``x-overflow``), as RabbitMQ 3.10.

Only ready messages count (not unacked ones); bytes are body bytes.  drop-head
(the default) drops, or dead-letters with reason ``maxlen``, from the head
once a message is in, requeued messages included; reject-publish refuses the
new message (nack in confirm mode; no basic.return: it was routed), checking
before any consumer could take it; reject-publish-dlx also dead-letters it.
Expected values were observed on RabbitMQ 3.10.8.
"""
from __future__ import annotations

from decimal import Decimal

import pika
import pytest

from support.features import RawGetter, bodies, drain, get, get_none, unique, wait_count
from warrenmq.protocol import spec

pytestmark = pytest.mark.timeout(60)


def declare(ch, cleanup, **arguments) -> str:
    q = unique("len")
    ch.queue_declare(q, arguments=arguments)
    cleanup[0].append(q)
    return q


def publish(ch, q, *bodies_, **props):
    for b in bodies_:
        ch.basic_publish("", q, b, pika.BasicProperties(**props) if props else None)


def test_drop_head_keeps_the_newest_messages(ch, cleanup):
    q = declare(ch, cleanup, **{"x-max-length": 2})
    publish(ch, q, b"1", b"2", b"3", b"4")
    assert bodies(drain(ch, q)) == [b"3", b"4"]


def test_max_length_bytes_counts_body_bytes(ch, cleanup):
    q = declare(ch, cleanup, **{"x-max-length-bytes": 10})
    publish(ch, q, b"12345", b"123456", b"1234")  # 11 bytes after the second: the first goes
    assert bodies(drain(ch, q)) == [b"123456", b"1234"]
    publish(ch, q, b"12345678901")  # alone over the limit: dropped too
    assert wait_count(ch, q, 0) == 0


def test_both_limits_apply(ch, cleanup):
    q = declare(ch, cleanup, **{"x-max-length": 3, "x-max-length-bytes": 4})
    publish(ch, q, b"a", b"bb", b"cc", b"d")
    assert bodies(drain(ch, q)) == [b"cc", b"d"]


def test_unacked_messages_do_not_count_but_requeued_ones_do(ch, cleanup):
    dlq = declare(ch, cleanup)
    q = declare(ch, cleanup, **{"x-max-length": 2, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq})
    publish(ch, q, b"1", b"2")
    get(ch, q, auto_ack=False)
    get(ch, q, auto_ack=False)
    publish(ch, q, b"3", b"4")  # 2 ready, 2 unacked: nothing dropped
    assert wait_count(ch, q, 2) == 2
    assert get_none(ch, dlq)
    ch.basic_nack(0, multiple=True, requeue=True)  # back at the head: 4 ready, the head two go
    assert [(b, p.headers["x-death"][0]["reason"]) for _, p, b in drain(ch, dlq)] == [(b"1", "maxlen"),
                                                                                       (b"2", "maxlen")]
    got = drain(ch, q)
    assert [(m.redelivered, b) for m, _, b in got] == [(False, b"3"), (False, b"4")]


def test_max_length_zero_with_drop_head_still_reaches_a_waiting_consumer(ch, conn, cleanup):
    q = declare(ch, cleanup, **{"x-max-length": 0})
    got = []
    ch.basic_consume(q, lambda c, m, p, b: got.append(b), auto_ack=True)
    publish(ch, q, b"direct")
    conn.process_data_events(time_limit=0.3)
    assert got == [b"direct"]
    ch.basic_cancel(ch.consumer_tags[0])
    publish(ch, q, b"dropped")
    assert wait_count(ch, q, 0) == 0


def test_drop_head_in_a_priority_queue_drops_the_highest_priority_first(ch, cleanup):
    q = declare(ch, cleanup, **{"x-max-length": 2, "x-max-priority": 5})
    publish(ch, q, b"low", priority=1)
    publish(ch, q, b"high", priority=5)
    publish(ch, q, b"mid", priority=3)  # three ready: the head (highest priority) goes
    assert bodies(drain(ch, q)) == [b"mid", b"low"]


def test_reject_publish_nacks_in_confirm_mode_and_keeps_the_queue(ch, cleanup):
    q = declare(ch, cleanup, **{"x-max-length": 1, "x-overflow": "reject-publish"})
    ch.confirm_delivery()
    ch.basic_publish("", q, b"1", mandatory=True)
    with pytest.raises(pika.exceptions.NackError):
        ch.basic_publish("", q, b"2", mandatory=True)  # refused, and not returned (it was routed)
    assert bodies(drain(ch, q)) == [b"1"]
    ch.basic_publish("", q, b"3")  # room again
    assert bodies(drain(ch, q)) == [b"3"]


def test_a_publish_refused_by_one_of_its_queues_is_nacked_but_reaches_the_others(ch, cleanup):
    full = declare(ch, cleanup, **{"x-max-length": 0, "x-overflow": "reject-publish"})
    other = declare(ch, cleanup)
    fan = unique("fan")
    ch.exchange_declare(fan, "fanout")
    cleanup[1].append(fan)
    ch.queue_bind(full, fan, "")
    ch.queue_bind(other, fan, "")
    ch.confirm_delivery()
    with pytest.raises(pika.exceptions.NackError):
        ch.basic_publish(fan, "", b"m")
    assert bodies(drain(ch, other)) == [b"m"]
    ch.basic_publish("", unique("unroutable"), b"x")  # confirms go on: an unroutable publish is acked


def test_the_broker_nack_has_requeue_set(url, cleanup):
    """RabbitMQ's basic.nack to a publisher carries requeue=true (the field's default)."""
    q = unique("len")
    cleanup[0].append(q)
    raw = RawGetter(url)
    try:
        raw.call(spec.QueueDeclare(0, q, False, False, False, False, False, {"x-max-length": 0,
                                                                         "x-overflow": "reject-publish"}))
        assert isinstance(raw.call(spec.ConfirmSelect(False)), spec.ConfirmSelectOk)
        raw.publish("", q, b"m")
        nack = raw.client.read_method()[1]
    finally:
        raw.close()
    assert isinstance(nack, spec.BasicNack)
    assert (nack.delivery_tag, nack.requeue) == (1, True)


def test_reject_publish_without_confirms_drops_silently(ch, cleanup):
    q = declare(ch, cleanup, **{"x-max-length": 1, "x-overflow": "reject-publish"})
    publish(ch, q, b"1", b"2", b"3")
    assert bodies(drain(ch, q)) == [b"1"]
    assert ch.is_open


def test_reject_publish_refuses_even_with_a_waiting_consumer(ch, conn, cleanup):
    q = declare(ch, cleanup, **{"x-max-length": 0, "x-overflow": "reject-publish"})
    got = []
    c2 = conn.channel()
    c2.basic_consume(q, lambda c, m, p, b: got.append(b), auto_ack=True)
    ch.confirm_delivery()
    with pytest.raises(pika.exceptions.NackError):
        ch.basic_publish("", q, b"m")
    conn.process_data_events(time_limit=0.3)
    assert got == []


def test_reject_publish_counts_bytes_too(ch, cleanup):
    q = declare(ch, cleanup, **{"x-max-length-bytes": 5, "x-overflow": "reject-publish"})
    ch.confirm_delivery()
    ch.basic_publish("", q, b"123")
    with pytest.raises(pika.exceptions.NackError):
        ch.basic_publish("", q, b"456")
    ch.basic_publish("", q, b"45")
    assert bodies(drain(ch, q)) == [b"123", b"45"]


def test_reject_publish_dlx_dead_letters_the_refused_message(ch, cleanup):
    dlq = declare(ch, cleanup)
    q = declare(ch, cleanup, **{"x-max-length": 1, "x-overflow": "reject-publish-dlx",
                                "x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq})
    ch.confirm_delivery()
    ch.basic_publish("", q, b"kept")
    with pytest.raises(pika.exceptions.NackError):
        ch.basic_publish("", q, b"refused", pika.BasicProperties(expiration="5000"))
    (_, p, body), = drain(ch, dlq)
    assert body == b"refused"
    death = p.headers["x-death"][0]
    assert (death["reason"], death["queue"], death["original-expiration"]) == ("maxlen", q, "5000")
    assert bodies(drain(ch, q)) == [b"kept"]


def test_reject_publish_does_not_drop_requeued_messages(ch, cleanup):
    q = declare(ch, cleanup, **{"x-max-length": 1, "x-overflow": "reject-publish"})
    publish(ch, q, b"1")
    get(ch, q, auto_ack=False)
    publish(ch, q, b"2")  # the first is unacked: there is room
    ch.basic_nack(0, multiple=True, requeue=True)  # now 2 ready: over the limit, nothing dropped
    assert wait_count(ch, q, 2) == 2


@pytest.mark.parametrize("arguments, reason", [
    ({"x-max-length": -1}, "{value_negative,-1}"),
    ({"x-max-length": "abc"}, '"expected integer, got longstr"'),
    ({"x-max-length": Decimal("1.5")}, '"expected integer, got decimal"'),
    ({"x-max-length-bytes": -1}, "{value_negative,-1}"),
    ({"x-max-length-bytes": "x"}, '"expected integer, got longstr"'),
    ({"x-overflow": "foo"}, "invalid_overflow"),
    ({"x-overflow": 5}, "{unacceptable_type,signedint}"),
    ({"x-overflow": b"drop-head"}, "{unacceptable_type,binary}"),
])
def test_arguments_are_validated(new_channel, arguments, reason):
    _, c = new_channel()
    q = unique("bad")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        c.queue_declare(q, arguments=arguments)
    key = list(arguments)[0]
    assert (e.value.reply_code, e.value.reply_text) == (
        406, f"PRECONDITION_FAILED - invalid arg '{key}' for queue '{q}' in vhost '/': {reason}")


@pytest.mark.parametrize("arguments", [{"x-max-length": 0}, {"x-max-length": 2 ** 40},
                                       {"x-overflow": "reject-publish-dlx"}, {"x-overflow": "drop-head"}])
def test_valid_arguments_are_accepted(ch, cleanup, arguments):
    declare(ch, cleanup, **arguments)


def test_redeclaring_with_another_limit_is_refused(ch, new_channel, cleanup):
    q = declare(ch, cleanup, **{"x-max-length": 10})
    _, c = new_channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        c.queue_declare(q, arguments={"x-max-length": 11})
    assert e.value.reply_text == (f"PRECONDITION_FAILED - inequivalent arg 'x-max-length' for queue '{q}' in vhost "
                                  "'/': received '11' but current is '10'")
