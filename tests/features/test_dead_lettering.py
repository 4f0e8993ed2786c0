"""Dead lettering (``x-dead-letter-exchange``, ``x-dead-letter-routing-key``), as RabbitMQ 3.10 does it.

A queue with a dead-letter exchange republishes the messages it loses there:
reason ``rejected`` (reject/nack without requeue), ``expired`` (TTL),
``maxlen`` (length limit), ``delivery_limit`` (quorum queues, see
test_queue_types).  The new message carries an ``x-death`` array (most recent
first, one table per queue and reason, ``count`` incremented), on the first
death also ``x-first-death-*``; its ``expiration`` becomes the table's
``original-expiration``.  RabbitMQ sorts the header table when it sets a value.
Expected values were observed on RabbitMQ 3.10.8 (byte for byte where the
raw header is checked).
"""
from __future__ import annotations

import datetime
import time

import pika
import pytest

from support.features import RawGetter, bodies, drain, get, get_none, unique
from warrenmq.protocol.codec import INT_TYPES

pytestmark = pytest.mark.timeout(60)
Long = INT_TYPES["l"]


@pytest.fixture
def dlq(ch, cleanup):
    """A queue bound to a direct DLX with key 'dead', and a helper to declare source queues."""
    dlx, q = unique("dlx"), unique("dlq")
    ch.exchange_declare(dlx, "direct")
    ch.queue_declare(q)
    ch.queue_bind(q, dlx, "dead")
    cleanup[0].append(q)
    cleanup[1].append(dlx)
    return dlx, q


def source(ch, cleanup, **arguments) -> str:
    q = unique("src")
    ch.queue_declare(q, arguments=arguments)
    cleanup[0].append(q)
    return q


def assert_recent(t) -> None:
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    assert isinstance(t, datetime.datetime)
    assert abs((now - t.replace(tzinfo=None)).total_seconds()) < 30


def test_a_rejected_message_gets_x_death_and_first_death_headers(ch, dlq, cleanup):
    dlx, dq = dlq
    q = source(ch, cleanup, **{"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": "dead"})
    props = pika.BasicProperties(content_type="text/plain", headers={"b": 1, "a": "x"}, delivery_mode=2,
                                 priority=3, message_id="m1", app_id="app")
    ch.basic_publish("", q, b"hello", props)
    method, _, _ = get(ch, q, auto_ack=False)
    ch.basic_reject(method.delivery_tag, requeue=False)
    method, p, body = get(ch, dq)
    assert body == b"hello"
    assert (method.exchange, method.routing_key, method.redelivered) == (dlx, "dead", False)
    # the headers come out sorted, x-death first among the x- ones
    assert list(p.headers) == ["a", "b", "x-death", "x-first-death-exchange", "x-first-death-queue",
                               "x-first-death-reason"]
    (death,) = p.headers["x-death"]
    # the first x-death table is in RabbitMQ's own (unsorted) order
    assert list(death) == ["count", "reason", "queue", "time", "exchange", "routing-keys"]
    assert death["count"] == 1 and death["reason"] == "rejected" and death["queue"] == q
    assert death["exchange"] == "" and death["routing-keys"] == [q]
    assert_recent(death["time"])
    assert (p.headers["x-first-death-exchange"], p.headers["x-first-death-queue"],
            p.headers["x-first-death-reason"]) == ("", q, "rejected")
    assert "x-last-death-reason" not in p.headers  # RabbitMQ 3.10 has none
    # the other properties are kept
    assert (p.content_type, p.delivery_mode, p.priority, p.message_id, p.app_id) == ("text/plain", 2, 3, "m1", "app")


def test_x_death_types_on_the_wire(ch, dlq, cleanup, url):
    """count is a long, time a timestamp, the strings longstr: checked on the raw header."""
    dlx, dq = dlq
    q = source(ch, cleanup, **{"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": "dead"})
    ch.basic_publish("", q, b"x", pika.BasicProperties(expiration="60000"))
    method, _, _ = get(ch, q, auto_ack=False)
    ch.basic_nack(method.delivery_tag, requeue=False)
    raw = RawGetter(url)
    try:
        _, header, _ = raw.get(dq)
    finally:
        raw.close()
    props = RawGetter.properties(header)
    assert props.expiration is None
    death = props.headers["x-death"][0]
    assert type(death["count"]) is Long and death["count"] == 1
    assert isinstance(death["time"], datetime.datetime)
    assert death["original-expiration"] == "60000"
    assert list(death)[-1] == "original-expiration"
    # flags: only headers present; the table starts with x-death (an array of one table)
    assert header[12:14] == b"\x20\x00"
    assert header[18:19] == b"\x07" and header[19:26] == b"x-death" and header[26:27] == b"A"
    assert b"\x05count\x6c\x00\x00\x00\x00\x00\x00\x00\x01" in header  # 'l' + int64 1
    assert b"\x04time\x54" in header  # 'T'


def test_a_second_death_in_the_same_queue_for_the_same_reason_increments_count(ch, dlq, cleanup):
    dlx, dq = dlq
    q = source(ch, cleanup, **{"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": "dead"})
    ch.basic_publish("", q, b"m")
    method, _, _ = get(ch, q, auto_ack=False)
    ch.basic_reject(method.delivery_tag, requeue=False)
    _, p, body = get(ch, dq)
    first = p.headers["x-death"][0]
    ch.basic_publish("", q, body, p)  # a client re-publishes the dead letter to the same queue
    method, _, _ = get(ch, q, auto_ack=False)
    ch.basic_reject(method.delivery_tag, requeue=False)
    _, p2, _ = get(ch, dq)
    (death,) = p2.headers["x-death"]
    assert death["count"] == 2
    assert list(death) == sorted(death)  # an updated table is sorted
    assert death["time"] == first["time"]  # only count changes
    assert p2.headers["x-first-death-reason"] == "rejected"


def test_a_death_for_another_reason_is_prepended(ch, dlq, cleanup):
    dlx, dq = dlq
    q = source(ch, cleanup, **{"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": "dead"})
    ch.basic_publish("", q, b"m")
    method, _, _ = get(ch, q, auto_ack=False)
    ch.basic_reject(method.delivery_tag, requeue=False)
    _, p, body = get(ch, dq)
    ttl_q = source(ch, cleanup, **{"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": "dead",
                                   "x-message-ttl": 0})
    ch.basic_publish("", ttl_q, body, p)
    _, p2, _ = get(ch, dq)
    deaths = p2.headers["x-death"]
    assert [(d["queue"], d["reason"], d["count"]) for d in deaths] == [(ttl_q, "expired", 1), (q, "rejected", 1)]
    assert list(deaths[0]) == sorted(deaths[0])
    assert (p2.headers["x-first-death-queue"], p2.headers["x-first-death-reason"]) == (q, "rejected")


def test_nack_multiple_dead_letters_each_message_in_order(ch, dlq, cleanup):
    dlx, dq = dlq
    q = source(ch, cleanup, **{"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": "dead"})
    for i in range(3):
        ch.basic_publish("", q, b"%d" % i)
    tags = [get(ch, q, auto_ack=False)[0].delivery_tag for _ in range(3)]
    ch.basic_nack(tags[-1], multiple=True, requeue=False)
    got = drain(ch, dq)
    assert bodies(got) == [b"0", b"1", b"2"]
    assert all(p.headers["x-death"][0]["reason"] == "rejected" for _, p, _ in got)


def test_requeued_and_acked_messages_are_not_dead_lettered(ch, dlq, cleanup):
    dlx, dq = dlq
    q = source(ch, cleanup, **{"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": "dead"})
    ch.basic_publish("", q, b"a")
    ch.basic_publish("", q, b"b")
    m1, _, _ = get(ch, q, auto_ack=False)
    m2, _, _ = get(ch, q, auto_ack=False)
    ch.basic_reject(m1.delivery_tag, requeue=True)
    ch.basic_ack(m2.delivery_tag)
    assert get_none(ch, dq)
    assert get(ch, q)[0].redelivered


def test_without_a_routing_key_the_message_keeps_its_own_and_its_cc_keys(ch, cleanup):
    dlx, a, cc = unique("dlx"), unique("a"), unique("cc")
    ch.exchange_declare(dlx, "direct")
    cleanup[1].append(dlx)
    for name in (a, cc):
        ch.queue_declare(name)
        cleanup[0].append(name)
    ch.queue_bind(cc, dlx, "cc-key")
    q = source(ch, cleanup, **{"x-dead-letter-exchange": dlx})
    ch.queue_bind(a, dlx, q)  # the original routing key is the source queue's name
    ch.basic_publish("", q, b"m", pika.BasicProperties(headers={"CC": ["cc-key"]}))
    method, _, _ = get(ch, q, auto_ack=False)
    ch.basic_reject(method.delivery_tag, requeue=False)
    for name in (a, cc):
        method, p, body = get(ch, name)
        assert (method.exchange, method.routing_key, body) == (dlx, q, b"m")
        assert p.headers["CC"] == ["cc-key"]  # CC stays without a dead-letter routing key
        assert p.headers["x-death"][0]["routing-keys"] == [q, "cc-key"]


def test_a_dead_letter_routing_key_replaces_the_keys_and_removes_cc(ch, dlq, cleanup):
    dlx, dq = dlq
    q = source(ch, cleanup, **{"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": "dead"})
    ch.basic_publish("", q, b"m", pika.BasicProperties(headers={"CC": ["x"], "BCC": ["y"]}))
    method, _, _ = get(ch, q, auto_ack=False)
    ch.basic_reject(method.delivery_tag, requeue=False)
    method, p, _ = get(ch, dq)
    assert method.routing_key == "dead"
    assert "CC" not in p.headers and "BCC" not in p.headers
    assert p.headers["x-death"][0]["routing-keys"] == [q, "x"]  # BCC was gone before it died


def test_the_default_exchange_as_dead_letter_exchange(ch, cleanup):
    target = unique("target")
    ch.queue_declare(target)
    cleanup[0].append(target)
    q = source(ch, cleanup, **{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": target})
    ch.basic_publish("", q, b"m")
    method, _, _ = get(ch, q, auto_ack=False)
    ch.basic_reject(method.delivery_tag, requeue=False)
    method, _, body = get(ch, target)
    assert (method.exchange, method.routing_key, body) == ("", target, b"m")


def test_expired_messages_are_dead_lettered_with_their_original_expiration(ch, dlq, cleanup):
    dlx, dq = dlq
    q = source(ch, cleanup, **{"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": "dead",
                               "x-message-ttl": 50})
    ch.basic_publish("", q, b"queue-ttl")
    ch.basic_publish("", q, b"message-ttl", pika.BasicProperties(expiration="10"))
    got = [get(ch, dq), get(ch, dq)]
    assert bodies(got) == [b"queue-ttl", b"message-ttl"]
    assert get_none(ch, dq)
    d0, d1 = (p.headers["x-death"][0] for _, p, _ in got)
    assert d0["reason"] == d1["reason"] == "expired"
    assert "original-expiration" not in d0
    assert d1["original-expiration"] == "10"
    assert got[1][1].expiration is None


def test_messages_dropped_by_max_length_are_dead_lettered_as_maxlen(ch, dlq, cleanup):
    dlx, dq = dlq
    q = source(ch, cleanup, **{"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": "dead",
                               "x-max-length": 1})
    for b in (b"1", b"2", b"3"):
        ch.basic_publish("", q, b)
    got = drain(ch, dq)
    assert bodies(got) == [b"1", b"2"]
    assert {p.headers["x-death"][0]["reason"] for _, p, _ in got} == {"maxlen"}


def test_a_missing_dead_letter_exchange_drops_the_message(ch, cleanup):
    q = source(ch, cleanup, **{"x-dead-letter-exchange": unique("nowhere")})
    ch.basic_publish("", q, b"m")
    method, _, _ = get(ch, q, auto_ack=False)
    ch.basic_reject(method.delivery_tag, requeue=False)
    assert ch.queue_declare(q, passive=True).method.message_count == 0


def test_purge_and_delete_do_not_dead_letter(ch, dlq, cleanup):
    dlx, dq = dlq
    q = source(ch, cleanup, **{"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": "dead"})
    ch.basic_publish("", q, b"1")
    ch.basic_publish("", q, b"2")
    get(ch, q, auto_ack=False)  # unacked when the queue goes
    ch.queue_purge(q)
    ch.queue_delete(q)
    assert get_none(ch, dq)


def test_an_expiry_cycle_back_to_the_same_queue_drops_the_message(ch, cleanup):
    q = source(ch, cleanup, **{"x-message-ttl": 20, "x-dead-letter-exchange": ""})  # back to itself
    ch.basic_publish("", q, b"m")
    time.sleep(0.5)
    assert ch.queue_declare(q, passive=True).method.message_count == 0


def test_an_expiry_cycle_through_two_queues_drops_the_message_when_it_comes_back(ch, cleanup):
    a, b, watch = unique("a"), unique("b"), unique("watch")
    ch.exchange_declare(watch, "fanout")
    cleanup[1].append(watch)
    w = source(ch, cleanup)
    ch.queue_bind(w, watch, "")
    ch.queue_declare(a, arguments={"x-message-ttl": 20, "x-dead-letter-exchange": "",
                                   "x-dead-letter-routing-key": b})
    ch.queue_declare(b, arguments={"x-message-ttl": 20, "x-dead-letter-exchange": "",
                                   "x-dead-letter-routing-key": a})
    cleanup[0].extend([a, b])
    ch.basic_publish("", a, b"m")
    time.sleep(0.6)
    assert [ch.queue_declare(n, passive=True).method.message_count for n in (a, b)] == [0, 0]


def test_a_cycle_with_a_rejection_in_it_goes_on(ch, cleanup):
    r1, r2 = unique("r1"), unique("r2")
    ch.queue_declare(r1, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": r2})
    ch.queue_declare(r2, arguments={"x-message-ttl": 20, "x-dead-letter-exchange": "",
                                    "x-dead-letter-routing-key": r1})
    cleanup[0].extend([r1, r2])
    ch.basic_publish("", r1, b"m")
    for round_ in (1, 2):
        method, _, _ = get(ch, r1, auto_ack=False)
        ch.basic_reject(method.delivery_tag, requeue=False)
        method, p, body = get(ch, r1, auto_ack=False)  # back after expiring in r2
        assert body == b"m"
        assert [(d["queue"], d["reason"], d["count"]) for d in p.headers["x-death"]] == [
            (r2, "expired", round_), (r1, "rejected", round_)]
        ch.basic_reject(method.delivery_tag, requeue=True)


def test_dead_letters_route_through_an_alternate_exchange(ch, cleanup):
    dlx, ae, target = unique("dlx"), unique("ae"), unique("target")
    ch.exchange_declare(ae, "fanout")
    ch.exchange_declare(dlx, "direct", arguments={"alternate-exchange": ae})
    cleanup[1].extend([dlx, ae])
    ch.queue_declare(target)
    cleanup[0].append(target)
    ch.queue_bind(target, ae, "")
    q = source(ch, cleanup, **{"x-dead-letter-exchange": dlx})
    ch.basic_publish("", q, b"m")
    method, _, _ = get(ch, q, auto_ack=False)
    ch.basic_reject(method.delivery_tag, requeue=False)
    method, p, _ = get(ch, target)
    assert method.exchange == dlx and p.headers["x-death"][0]["reason"] == "rejected"


def test_a_consumer_receives_dead_letters(ch, dlq, cleanup, conn):
    dlx, dq = dlq
    q = source(ch, cleanup, **{"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": "dead"})
    got = []
    ch2 = conn.channel()
    ch2.basic_consume(dq, lambda c, m, p, b: got.append((b, p.headers["x-death"][0]["reason"])), auto_ack=True)
    ch.basic_publish("", q, b"m")
    method, _, _ = get(ch, q, auto_ack=False)
    ch.basic_reject(method.delivery_tag, requeue=False)
    deadline = time.monotonic() + 5
    while not got and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.05)
    assert got == [(b"m", "rejected")]


def test_rejects_in_a_transaction_dead_letter_on_commit(ch, dlq, cleanup):
    dlx, dq = dlq
    q = source(ch, cleanup, **{"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": "dead"})
    ch.basic_publish("", q, b"m")
    method, _, _ = get(ch, q, auto_ack=False)
    ch.tx_select()
    ch.basic_reject(method.delivery_tag, requeue=False)
    assert get_none(ch, dq)
    ch.tx_commit()
    assert get(ch, dq)[2] == b"m"


@pytest.mark.parametrize("arguments, reason", [
    ({"x-dead-letter-routing-key": "k"}, "routing_key_but_no_dlx_defined"),
    ({"x-dead-letter-exchange": "x", "x-dead-letter-routing-key": 5}, "{unacceptable_type,signedint}"),
])
def test_dead_letter_arguments_are_validated(new_channel, arguments, reason):
    _, c = new_channel()
    q = unique("bad")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        c.queue_declare(q, arguments=arguments)
    assert (e.value.reply_code, e.value.reply_text) == (
        406, f"PRECONDITION_FAILED - invalid arg '{list(arguments)[-1]}' for queue '{q}' in vhost '/': {reason}")


def test_a_non_string_dead_letter_exchange_is_refused(new_channel):
    _, c = new_channel()
    q = unique("bad")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        c.queue_declare(q, arguments={"x-dead-letter-exchange": 5, "x-expires": 0})
    assert (e.value.reply_code, e.value.reply_text) == (
        406, f"PRECONDITION_FAILED - invalid type 'signedint' for arg 'x-dead-letter-exchange' in queue '{q}' "
             "in vhost '/'")


def test_redeclaring_with_another_dead_letter_exchange_is_refused(ch, new_channel, cleanup):
    q = source(ch, cleanup, **{"x-dead-letter-exchange": "a"})
    _, c = new_channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        c.queue_declare(q, arguments={"x-dead-letter-exchange": "b"})
    assert e.value.reply_text == (f"PRECONDITION_FAILED - inequivalent arg 'x-dead-letter-exchange' for queue "
                                  f"'{q}' in vhost '/': received 'b' but current is 'a'")
