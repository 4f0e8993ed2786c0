"""The ``CC`` and ``BCC`` headers, and the ``user_id`` check, as RabbitMQ 3.10.

CC and BCC are arrays of extra routing keys (their longstr elements; other
elements are ignored).  They count for the exchanges that route by key (direct,
topic, the default exchange), not for fanout or headers exchanges.  BCC is
removed from the message before anything sees it (queues, returns, dead
letters); CC stays.  A CC or BCC that is not an array is a channel error, as is
a ``user_id`` property other than the connection's user.  Expected values were
observed on RabbitMQ 3.10.8.
"""
from __future__ import annotations

import pika
import pytest

from support.features import bodies, connect, drain, get, get_none, unique

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def queues(ch, cleanup):
    """Queues a, b, c; a direct exchange binding them with keys ka, kb, kc."""
    x = unique("direct")
    ch.exchange_declare(x, "direct")
    cleanup[1].append(x)
    names = {}
    for n in "abc":
        names[n] = unique(n)
        ch.queue_declare(names[n])
        ch.queue_bind(names[n], x, "k" + n)
        cleanup[0].append(names[n])
    names["x"] = x
    return names


def headers_of(ch, q):
    got = drain(ch, q)
    return [(b, p.headers) for _, p, b in got]


def test_cc_and_bcc_add_routing_keys_and_bcc_is_removed(ch, queues):
    ch.basic_publish(queues["x"], "ka", b"m", pika.BasicProperties(headers={"CC": ["kb"], "BCC": ["kc"], "z": 1}))
    for n in "abc":
        assert headers_of(ch, queues[n]) == [(b"m", {"CC": ["kb"], "z": 1})]


def test_the_delivery_shows_the_published_routing_key(ch, queues):
    ch.basic_publish(queues["x"], "nothing", b"m", pika.BasicProperties(headers={"CC": ["kb"]}))
    method, _, _ = get(ch, queues["b"])
    assert method.routing_key == "nothing"


def test_a_bcc_only_message_keeps_an_empty_header_table(ch, queues):
    ch.basic_publish(queues["x"], "zz", b"m", pika.BasicProperties(headers={"BCC": ["kc"]}))
    (_, props, _), = drain(ch, queues["c"])
    assert props.headers == {}


def test_each_queue_gets_the_message_once(ch, queues):
    ch.basic_publish(queues["x"], "ka", b"m", pika.BasicProperties(headers={"CC": ["ka", "kb", "kb"],
                                                                             "BCC": ["ka"]}))
    assert bodies(drain(ch, queues["a"])) == [b"m"]
    assert bodies(drain(ch, queues["b"])) == [b"m"]


def test_only_longstr_elements_are_keys(ch, queues):
    ch.basic_publish(queues["x"], "zz", b"m", pika.BasicProperties(headers={"CC": ["kb", 5, b"kc"]}))
    assert bodies(drain(ch, queues["b"])) == [b"m"]
    assert get_none(ch, queues["c"], settle=0.1)


def test_x_death_lists_only_the_longstr_keys(ch, cleanup):
    dlq, src = unique("dlq"), unique("src")
    ch.queue_declare(dlq)
    ch.queue_declare(src, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq})
    cleanup[0].extend([dlq, src])
    ch.basic_publish("", src, b"m", pika.BasicProperties(headers={"CC": ["k1", 5, b"k2", "k3"]}))
    method, _, _ = get(ch, src, auto_ack=False)
    ch.basic_reject(method.delivery_tag, requeue=False)
    _, props, _ = get(ch, dlq)
    assert props.headers["x-death"][0]["routing-keys"] == [src, "k1", "k3"]


def test_topic_exchanges_match_each_key(ch, cleanup):
    t = unique("topic")
    ch.exchange_declare(t, "topic")
    cleanup[1].append(t)
    a, b = unique("a"), unique("b")
    for q, pattern in ((a, "x.*"), (b, "y.#")):
        ch.queue_declare(q)
        ch.queue_bind(q, t, pattern)
        cleanup[0].append(q)
    ch.basic_publish(t, "q", b"m", pika.BasicProperties(headers={"CC": ["x.1"], "BCC": ["y.2.3"]}))
    assert bodies(drain(ch, a)) == [b"m"]
    assert bodies(drain(ch, b)) == [b"m"]


def test_the_default_exchange_routes_by_each_key(ch, cleanup):
    a, b = unique("a"), unique("b")
    for q in (a, b):
        ch.queue_declare(q)
        cleanup[0].append(q)
    ch.basic_publish("", "nothing", b"m", pika.BasicProperties(headers={"CC": [a], "BCC": [b]}))
    assert headers_of(ch, a) == [(b"m", {"CC": [a]})]
    assert headers_of(ch, b) == [(b"m", {"CC": [a]})]


def test_fanout_and_headers_exchanges_ignore_the_keys_but_bcc_still_goes(ch, cleanup):
    f, h = unique("fan"), unique("hdr")
    ch.exchange_declare(f, "fanout")
    ch.exchange_declare(h, "headers")
    cleanup[1].extend([f, h])
    a, b = unique("a"), unique("b")
    for q in (a, b):
        ch.queue_declare(q)
        cleanup[0].append(q)
    ch.queue_bind(a, f, "")
    ch.queue_bind(b, h, "", arguments={"x-match": "any", "CC": ["kb"]})
    ch.basic_publish(f, "q", b"f", pika.BasicProperties(headers={"CC": [b], "BCC": ["y"]}))
    ch.basic_publish(h, "q", b"h", pika.BasicProperties(headers={"CC": ["kb"]}))  # matched as a header
    assert headers_of(ch, a) == [(b"f", {"CC": [b]})]
    assert bodies(drain(ch, b)) == [b"h"]


def test_a_message_routed_only_by_cc_is_not_returned_and_a_returned_one_has_no_bcc(ch, queues):
    returned = []
    ch.add_on_return_callback(lambda c, m, p, b: returned.append((m.routing_key, p.headers, b)))
    ch.basic_publish(queues["x"], "zz", b"cc", pika.BasicProperties(headers={"CC": ["kb"]}), mandatory=True)
    ch.basic_publish(queues["x"], "zz", b"none", pika.BasicProperties(headers={"CC": ["n1"], "BCC": ["n2"]}),
                     mandatory=True)
    ch.basic_qos(prefetch_count=0)
    ch.connection.process_data_events(time_limit=0)
    assert returned == [("zz", {"CC": ["n1"]}, b"none")]
    assert bodies(drain(ch, queues["b"])) == [b"cc"]


@pytest.mark.parametrize("headers, text", [
    ({"CC": "kb"}, '{unacceptable_type_in_header,"CC",longstr}'),
    ({"BCC": 5}, '{unacceptable_type_in_header,"BCC",signedint}'),
    ({"CC": ["a"], "BCC": {"x": 1}}, '{unacceptable_type_in_header,"BCC",table}'),
    ({"CC": None}, '{unacceptable_type_in_header,"CC",void}'),
    ({"BCC": "x", "CC": 1}, '{unacceptable_type_in_header,"CC",signedint}'),  # CC is checked first
])
def test_cc_and_bcc_must_be_arrays(new_channel, headers, text):
    _, c = new_channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        c.basic_publish("", "q", b"m", pika.BasicProperties(headers=headers))
        c.basic_qos(prefetch_count=0)
    assert (e.value.reply_code, e.value.reply_text) == (406, f"PRECONDITION_FAILED - invalid message: {text}")


def test_lower_case_cc_is_just_a_header(ch, cleanup):
    q = unique("q")
    ch.queue_declare(q)
    cleanup[0].append(q)
    ch.basic_publish("", q, b"m", pika.BasicProperties(headers={"cc": "x", "bcc": "y"}))
    assert headers_of(ch, q) == [(b"m", {"cc": "x", "bcc": "y"})]


def test_dead_lettering_keeps_cc_and_bcc_keys_for_routing(ch, cleanup):
    """Without a dead-letter routing key a dead letter is routed by all the keys it was published with."""
    dlx = unique("dlx")
    ch.exchange_declare(dlx, "direct")
    cleanup[1].append(dlx)
    cc_q, bcc_q = unique("cc"), unique("bcc")
    for q, key in ((cc_q, "c-key"), (bcc_q, "b-key")):
        ch.queue_declare(q)
        ch.queue_bind(q, dlx, key)
        cleanup[0].append(q)
    src = unique("src")
    ch.queue_declare(src, arguments={"x-dead-letter-exchange": dlx})
    cleanup[0].append(src)
    ch.basic_publish("", "zz", b"m", pika.BasicProperties(headers={"CC": [src, "c-key"], "BCC": ["b-key"]}))
    method, _, _ = get(ch, src, auto_ack=False)
    ch.basic_reject(method.delivery_tag, requeue=False)
    for q in (cc_q, bcc_q):
        (method, props, _), = drain(ch, q)
        assert method.routing_key == "zz"
        assert props.headers["x-death"][0]["routing-keys"] == ["zz", src, "c-key"]


# ------------------------------------------------------------------------------------ user_id
def test_a_user_id_matching_the_connection_user_is_accepted(ch, cleanup):
    q = unique("q")
    ch.queue_declare(q)
    cleanup[0].append(q)
    ch.basic_publish("", q, b"m", pika.BasicProperties(user_id="guest"))
    (_, props, _), = drain(ch, q)
    assert props.user_id == "guest"


@pytest.mark.parametrize("user_id", ["other", "", "Guest"])
def test_another_user_id_closes_the_channel(new_channel, user_id):
    _, c = new_channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        c.basic_publish("", "q", b"m", pika.BasicProperties(user_id=user_id))
        c.basic_qos(prefetch_count=0)
    assert (e.value.reply_code, e.value.reply_text) == (
        406, f"PRECONDITION_FAILED - user_id property set to '{user_id}' but authenticated user was 'guest'")


def test_user_id_is_checked_before_expiration_and_cc(new_channel):
    _, c = new_channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        c.basic_publish("", "q", b"m", pika.BasicProperties(user_id="x", expiration="bad", headers={"CC": "x"}))
        c.basic_qos(prefetch_count=0)
    assert e.value.reply_text == "PRECONDITION_FAILED - user_id property set to 'x' but authenticated user was 'guest'"
    _, c = new_channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        c.basic_publish("", "q", b"m", pika.BasicProperties(expiration="bad", headers={"CC": "x"}))
        c.basic_qos(prefetch_count=0)
    assert e.value.reply_text == "PRECONDITION_FAILED - invalid expiration 'bad': no_integer"


def test_a_missing_exchange_is_reported_before_the_user_id(new_channel):
    _, c = new_channel()
    x = unique("missing")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        c.basic_publish(x, "q", b"m", pika.BasicProperties(user_id="x"))
        c.basic_qos(prefetch_count=0)
    assert (e.value.reply_code, e.value.reply_text) == (404, f"NOT_FOUND - no exchange '{x}' in vhost '/'")


def test_an_impersonator_may_set_any_user_id(embedded):
    embedded.call(lambda: embedded.broker.add_user("imp", "pw", tags=["impersonator"], vhosts={"/"}))
    conn = connect(f"amqp://imp:pw@{embedded.host}:{embedded.port}/%2F")
    try:
        ch = conn.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.basic_publish("", q, b"m", pika.BasicProperties(user_id="someone-else"))
        (_, props, _), = drain(ch, q)
        assert props.user_id == "someone-else"
    finally:
        conn.close()
