"""pika's BlockingConnection against a real WarrenMQ over TCP: the RabbitMQ tutorials and the error paths.

Expected behaviour (reply codes and texts, routing tables) comes from
:mod:`.helpers`, shared with the pika-async and py-amqp suites.
"""
from __future__ import annotations

import time
import uuid

import pika
import pytest
from pika.exceptions import (
    ChannelClosedByBroker, ConnectionClosedByBroker, ProbableAccessDeniedError, UnroutableError,
)

from . import helpers as H

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def connect(url):
    """A factory of BlockingConnections to the broker, all closed after the test."""
    conns = []

    def _connect(vhost=None):
        params = pika.URLParameters(url)
        params.connection_attempts = 1
        if vhost is not None:
            params.virtual_host = vhost
        conn = pika.BlockingConnection(params)
        conns.append(conn)
        return conn

    yield _connect
    for conn in conns:
        if conn.is_open:
            conn.close()


@pytest.fixture
def conn(connect):
    return connect()


@pytest.fixture
def ch(conn):
    return conn.channel()


def pump(*conns):
    def _pump():
        for c in conns:
            c.process_data_events(time_limit=0.005)
    return _pump


def get_all(ch, queue, with_props=False):
    """Drain ``queue`` with basic.get (auto-ack): [(routing key, body)] or [(method, props, body)]."""
    out = []
    while True:
        method, props, body = ch.basic_get(queue, auto_ack=True)
        if method is None:
            return out
        out.append((method, props, body) if with_props else (method.routing_key, body))


def ready_count(ch, queue) -> int:
    return ch.queue_declare(queue, passive=True).method.message_count


def assert_channel_closed(exc_info, code, text):
    assert (exc_info.value.reply_code, exc_info.value.reply_text) == (code, text)


def declare_bound_queues(ch, exchange, bindings, **bind_kw):
    """One queue per entry of ``bindings`` (suffix -> keys or args); return suffix -> queue name."""
    names = {}
    for suffix, spec in bindings.items():
        q = names[suffix] = ch.queue_declare(H.unique(suffix)).method.queue
        if isinstance(spec, dict):
            ch.queue_bind(q, exchange, arguments=spec)
        else:
            for key in spec:
                ch.queue_bind(q, exchange, routing_key=key)
    return names


# ---------------------------------------------------------------------------- routing
def test_fanout_broadcasts_to_every_consumer(connect, ch):
    ex = H.unique("logs")
    ch.exchange_declare(ex, "fanout")
    consumers = []
    for _ in range(3):
        c = connect()
        cch = c.channel()
        q = cch.queue_declare("", exclusive=True).method.queue
        cch.queue_bind(q, ex)
        got = []
        cch.basic_consume(q, lambda _ch, m, _p, body, got=got: got.append((m.exchange, m.routing_key, body)),
                          auto_ack=True)
        consumers.append((c, q, got))
    names = [q for _, q, _ in consumers]
    assert all(n.startswith("amq.gen-") for n in names) and len(set(names)) == 3

    bodies = [f"log line {i}".encode() for i in range(5)]
    for body in bodies:
        ch.basic_publish(ex, "any.key", body)
    for c, _, got in consumers:
        H.wait_until(lambda: len(got) >= len(bodies), pump(c), what="fanout deliveries")
        c.process_data_events(0)
        assert got == [(ex, "any.key", b) for b in bodies]


def test_direct_routing(ch):
    ex = H.unique("direct")
    ch.exchange_declare(ex, "direct")
    queues = declare_bound_queues(ch, ex, H.DIRECT_BINDINGS)
    for key in H.DIRECT_KEYS:
        ch.basic_publish(ex, key, key.encode())
    for suffix, q in queues.items():
        assert get_all(ch, q) == [(k, k.encode()) for k in H.DIRECT_EXPECTED[suffix]], suffix


def test_topic_routing_with_star_and_hash(ch):
    ex = H.unique("topic")
    ch.exchange_declare(ex, "topic")
    queues = declare_bound_queues(ch, ex, H.TOPIC_BINDINGS)
    for key in H.TOPIC_KEYS:
        ch.basic_publish(ex, key, key.encode())
    for suffix, q in queues.items():
        assert get_all(ch, q) == [(k, k.encode()) for k in H.TOPIC_EXPECTED[suffix]], suffix


def test_headers_exchange_all_and_any(ch):
    ex = H.unique("headers")
    ch.exchange_declare(ex, "headers")
    queues = declare_bound_queues(ch, ex, H.HEADERS_BINDINGS)
    for case, headers in H.HEADERS_CASES:
        ch.basic_publish(ex, "", case.encode(), pika.BasicProperties(headers=headers))
    for suffix, q in queues.items():
        got = get_all(ch, q, with_props=True)
        assert [body.decode() for _, _, body in got] == H.HEADERS_EXPECTED[suffix], suffix
        assert [p.headers for _, p, _ in got] == [dict(H.HEADERS_CASES)[c] for c in H.HEADERS_EXPECTED[suffix]]


# ---------------------------------------------------------------------------- patterns
def test_work_queue_prefetch_one_dispatches_fairly(connect, ch):
    fd = H.FairDispatch()
    q = H.unique("tasks")
    ch.queue_declare(q)
    for body in fd.bodies:
        ch.basic_publish("", q, body)
    workers = []
    for i in range(fd.n_consumers):
        c = connect()
        wch = c.channel()
        wch.basic_qos(prefetch_count=1)
        wch.basic_consume(q, lambda _ch, m, _p, body, i=i: fd.delivered(i, m.delivery_tag, body, m.redelivered))
        workers.append((c, wch))

    def step():
        for c, _ in workers:
            c.process_data_events(0)
        if not fd.probed and fd.ready_to_probe:
            ok = ch.queue_declare(q, passive=True).method
            fd.probe(ok.message_count, ok.consumer_count)
        for i, tag in fd.due_acks():
            workers[i][1].basic_ack(tag)
        time.sleep(0.001)

    H.wait_until(lambda: fd.done, step, what="all tasks acked")
    fd.check()
    assert ready_count(ch, q) == 0


def test_rpc_with_reply_to_and_correlation_id(connect, conn, ch):
    server = connect()
    sch = server.channel()
    rpc_q = H.unique("rpc")
    sch.queue_declare(rpc_q)
    sch.basic_qos(prefetch_count=1)
    seen_reply_to = []

    def on_request(c, method, props, body):
        seen_reply_to.append(props.reply_to)
        c.basic_publish("", props.reply_to, H.rpc_answer(body),
                        pika.BasicProperties(correlation_id=props.correlation_id))
        c.basic_ack(method.delivery_tag)

    sch.basic_consume(rpc_q, on_request)
    callback_q = ch.queue_declare("", exclusive=True).method.queue
    responses = {}
    ch.basic_consume(callback_q, lambda _c, _m, props, body: responses.__setitem__(props.correlation_id, body),
                     auto_ack=True)
    requests = {str(uuid.uuid4()): n for n in (3, 7, 12)}
    for cid, n in requests.items():
        ch.basic_publish("", rpc_q, str(n).encode(), pika.BasicProperties(reply_to=callback_q, correlation_id=cid))
    H.wait_until(lambda: len(responses) == len(requests), pump(server, conn), what="RPC responses")
    assert responses == {cid: str(n * n).encode() for cid, n in requests.items()}
    assert seen_reply_to == [callback_q] * 3


def test_basic_get_and_get_empty(ch):
    q = H.unique("get")
    ch.queue_declare(q)
    for i in range(3):
        ch.basic_publish("", q, f"m{i}".encode(), pika.BasicProperties(content_type="text/plain",
                                                                        headers={"n": i}, message_id=f"id{i}"))
    tags = []
    for i in range(3):
        method, props, body = ch.basic_get(q)
        assert (body, method.message_count, method.redelivered, method.exchange, method.routing_key) == \
            (f"m{i}".encode(), 2 - i, False, "", q)
        assert (props.content_type, props.headers, props.message_id) == ("text/plain", {"n": i}, f"id{i}")
        tags.append(method.delivery_tag)
    assert tags == [1, 2, 3]
    assert ch.basic_get(q) == (None, None, None)
    ch.basic_ack(3, multiple=True)
    ok = ch.queue_declare(q, passive=True).method
    assert (ok.message_count, ok.consumer_count) == (0, 0)


def test_reject_and_nack_with_requeue_restore_original_position(ch):
    q = H.unique("requeue")
    ch.queue_declare(q)
    for i in range(5):
        ch.basic_publish("", q, f"m{i}".encode())
    got = [ch.basic_get(q) for _ in range(3)]
    assert [b for _, _, b in got] == [b"m0", b"m1", b"m2"]
    ch.basic_nack(got[1][0].delivery_tag, requeue=True)
    ch.basic_reject(got[0][0].delivery_tag, requeue=True)
    again = [ch.basic_get(q) for _ in range(4)]
    assert [(m.redelivered, b, m.message_count) for m, _, b in again] == [
        (True, b"m0", 3), (True, b"m1", 2), (False, b"m3", 1), (False, b"m4", 0)]
    # nack(multiple) hands back everything unacked up to the tag: all five, in queue order
    ch.basic_nack(again[-1][0].delivery_tag, multiple=True, requeue=True)
    final = get_all(ch, q, with_props=True)
    assert [(m.redelivered, b) for m, _, b in final] == [(True, f"m{i}".encode()) for i in range(5)]


def test_reject_and_nack_without_requeue_discard(conn, ch):
    q = H.unique("discard")
    ch.queue_declare(q)
    for i in range(4):
        ch.basic_publish("", q, f"m{i}".encode())
    m0, _, _ = ch.basic_get(q)
    ch.basic_reject(m0.delivery_tag, requeue=False)
    m1, _, _ = ch.basic_get(q)
    ch.basic_nack(m1.delivery_tag, requeue=False)
    m2, _, b2 = ch.basic_get(q)
    assert b2 == b"m2"
    assert ready_count(ch, q) == 1
    ch.close()  # m2 was never settled: closing the channel requeues it
    ch2 = conn.channel()
    assert [(m.redelivered, b) for m, _, b in get_all(ch2, q, with_props=True)] == [(True, b"m2"), (False, b"m3")]


def test_mandatory_unroutable_message_is_returned(conn, ch):
    ex = H.unique("direct")
    ch.exchange_declare(ex, "direct")
    q = ch.queue_declare(H.unique("routed")).method.queue
    ch.queue_bind(q, ex, routing_key="routed")
    returns = []
    ch.add_on_return_callback(lambda _c, m, p, body: returns.append(
        (m.reply_code, m.reply_text, m.exchange, m.routing_key, p.message_id, body)))
    ch.basic_publish(ex, "nowhere", b"lost", pika.BasicProperties(message_id="m1"), mandatory=True)
    ch.basic_publish(ex, "routed", b"kept", mandatory=True)
    ch.basic_publish(ex, "nowhere", b"dropped silently")
    ch.basic_publish("", H.unique("no-such-queue"), b"lost too", mandatory=True)
    H.wait_until(lambda: len(returns) >= 2, pump(conn), what="basic.return")
    assert ready_count(ch, q) == 1
    conn.process_data_events(0)
    assert returns == [(H.NO_ROUTE, H.NO_ROUTE_TEXT, ex, "nowhere", "m1", b"lost"),
                       (H.NO_ROUTE, H.NO_ROUTE_TEXT, "", returns[1][3], None, b"lost too")]
    assert returns[1][3].startswith("no-such-queue.")
    assert get_all(ch, q) == [("routed", b"kept")]


def test_publisher_confirms(ch):
    q = H.unique("confirmed")
    ch.queue_declare(q)
    ch.confirm_delivery()
    for i in range(20):
        assert ch.basic_publish("", q, f"c{i}".encode()) is None  # returns once the broker acked it
    assert ready_count(ch, q) == 20
    with pytest.raises(UnroutableError) as e:
        ch.basic_publish("amq.direct", "nobody-home", b"unroutable", mandatory=True)
    [returned] = e.value.messages
    assert (returned.method.reply_code, returned.method.reply_text, returned.body) == \
        (H.NO_ROUTE, H.NO_ROUTE_TEXT, b"unroutable")
    ch.basic_publish("amq.direct", "nobody-home", b"not mandatory: acked and dropped")
    assert ready_count(ch, q) == 20


def test_tx_commit_delivers_and_rollback_discards(connect, ch):
    q = H.unique("tx")
    ch.queue_declare(q)
    observer = connect().channel()
    ch.tx_select()
    ch.basic_publish("", q, b"a")
    ch.basic_publish("", q, b"b")
    assert ready_count(observer, q) == 0
    ch.tx_commit()
    assert ready_count(observer, q) == 2
    ch.basic_publish("", q, b"rolled back")
    ch.tx_rollback()
    ch.basic_publish("", q, b"c")
    assert ready_count(observer, q) == 2
    ch.tx_commit()
    assert get_all(observer, q) == [(q, b"a"), (q, b"b"), (q, b"c")]


def test_tx_settlements_and_returns_happen_at_commit(connect, conn, ch):
    q = H.unique("tx")
    ch.queue_declare(q)
    observer = connect().channel()
    for i in range(2):
        ch.basic_publish("", q, f"m{i}".encode())
    returns = []
    ch.add_on_return_callback(lambda _c, m, _p, body: returns.append((m.reply_code, m.routing_key, body)))
    ch.tx_select()
    m0, _, _ = ch.basic_get(q)
    m1, _, _ = ch.basic_get(q)
    ch.basic_ack(m0.delivery_tag)
    ch.basic_reject(m1.delivery_tag, requeue=True)
    ch.basic_publish("amq.direct", "nobody-home", b"returned at commit", mandatory=True)
    ch.tx_rollback()  # discards the ack, the reject and the publish: both messages stay unacked
    conn.process_data_events(0.02)
    assert (ready_count(observer, q), returns) == (0, [])
    ch.basic_ack(m0.delivery_tag)
    ch.basic_reject(m1.delivery_tag, requeue=True)
    ch.basic_publish("amq.direct", "nobody-home", b"returned at commit", mandatory=True)
    conn.process_data_events(0.02)
    assert (ready_count(observer, q), returns) == (0, [])
    ch.tx_commit()
    H.wait_until(lambda: returns, pump(conn), what="basic.return")
    assert returns == [(H.NO_ROUTE, "nobody-home", b"returned at commit")]
    assert [(m.redelivered, b) for m, _, b in get_all(observer, q, with_props=True)] == [(True, b"m1")]


# ---------------------------------------------------------------------------- channel errors
def test_publish_to_missing_exchange_closes_channel(conn, ch):
    ex = H.unique("x")
    ch.basic_publish(ex, "k", b"body")
    with pytest.raises(ChannelClosedByBroker) as e:
        ch.queue_declare("", exclusive=True)
    assert_channel_closed(e, H.NOT_FOUND, H.no_exchange(ex))
    assert ch.is_closed and conn.is_open
    assert conn.channel().queue_declare("", exclusive=True).method.queue.startswith("amq.gen-")


def test_passive_declares_of_missing_exchange_and_queue(conn):
    with pytest.raises(ChannelClosedByBroker) as e:
        conn.channel().exchange_declare("x", passive=True)
    assert_channel_closed(e, H.NOT_FOUND, H.no_exchange("x"))
    with pytest.raises(ChannelClosedByBroker) as e:
        conn.channel().queue_declare("q", passive=True)
    assert_channel_closed(e, H.NOT_FOUND, H.no_queue("q"))


def test_inequivalent_redeclare_is_precondition_failed(conn):
    q, ex = H.unique("q"), H.unique("x")
    ch = conn.channel()
    ch.queue_declare(q)
    ch.exchange_declare(ex, "direct")
    with pytest.raises(ChannelClosedByBroker) as e:
        ch.queue_declare(q, durable=True)
    assert_channel_closed(e, H.PRECONDITION_FAILED, H.inequivalent("queue", q, "durable", "true", "false"))
    ch = conn.channel()
    with pytest.raises(ChannelClosedByBroker) as e:
        ch.exchange_declare(ex, "fanout")
    assert_channel_closed(e, H.PRECONDITION_FAILED, H.inequivalent("exchange", ex, "type", "fanout", "direct"))
    ch = conn.channel()
    assert ch.queue_declare(q).method.queue == q  # an equivalent redeclare is fine


def test_other_connections_exclusive_queue_is_locked(connect, conn):
    owner = conn.channel()
    q = H.unique("exclusive")
    owner.queue_declare(q, exclusive=True)
    other = connect()
    for attempt in (lambda c: c.queue_declare(q, exclusive=True), lambda c: c.queue_declare(q, passive=True),
                    lambda c: c.basic_consume(q, lambda *a: None), lambda c: c.queue_purge(q)):
        with pytest.raises(ChannelClosedByBroker) as e:
            attempt(other.channel())
        assert_channel_closed(e, H.RESOURCE_LOCKED, H.locked(q))
    assert owner.queue_declare(q, passive=True).method.queue == q


def test_ack_of_unknown_delivery_tag(conn, ch):
    q = H.unique("acks")
    ch.queue_declare(q)
    ch.basic_ack(42)
    with pytest.raises(ChannelClosedByBroker) as e:
        ch.queue_declare(q, passive=True)
    assert_channel_closed(e, H.PRECONDITION_FAILED, H.unknown_tag(42))
    ch = conn.channel()
    ch.basic_publish("", q, b"x")
    method, _, _ = ch.basic_get(q)
    ch.basic_ack(method.delivery_tag)
    ch.basic_ack(method.delivery_tag)  # twice
    with pytest.raises(ChannelClosedByBroker) as e:
        ch.queue_declare(q, passive=True)
    assert_channel_closed(e, H.PRECONDITION_FAILED, H.unknown_tag(method.delivery_tag))


# ---------------------------------------------------------------------------- connection errors
def test_unknown_exchange_type_closes_connection(connect, conn, ch):
    bad_type = H.unique("no-such-type")
    with pytest.raises(ConnectionClosedByBroker) as e:
        ch.exchange_declare(H.unique("x"), bad_type)
    assert (e.value.reply_code, e.value.reply_text) == (H.COMMAND_INVALID, H.unknown_exchange_type(bad_type))
    assert conn.is_closed
    assert connect().channel().queue_declare("", exclusive=True).method.queue  # the broker lives on


def test_prefetch_size_is_not_implemented(conn, ch):
    with pytest.raises(ConnectionClosedByBroker) as e:
        ch.basic_qos(prefetch_size=10)
    assert (e.value.reply_code, e.value.reply_text) == (H.NOT_IMPLEMENTED, H.PREFETCH_SIZE_TEXT)
    assert conn.is_closed


def test_unknown_vhost_is_not_allowed(connect):
    with pytest.raises(ProbableAccessDeniedError) as e:
        connect(vhost="no-such-vhost")
    assert e.value.args == (repr(ConnectionClosedByBroker(H.NOT_ALLOWED, H.vhost_not_found("no-such-vhost"))),)


# ---------------------------------------------------------------------------- lifecycles
@pytest.mark.parametrize("queue_kind", ["exclusive", "auto_delete"])
def test_auto_delete_exchange_goes_when_its_consumer_disconnects(connect, conn, ch, queue_kind):
    ex = H.unique("broadcast")
    consumer = connect()
    cch = consumer.channel()
    cch.exchange_declare(ex, "fanout", auto_delete=True)
    q = cch.queue_declare("", **{queue_kind: True}).method.queue
    cch.queue_bind(q, ex)
    got = []
    cch.basic_consume(q, lambda _c, _m, _p, body: got.append(body), auto_ack=True)
    ch.basic_publish(ex, "", b"hello")
    H.wait_until(lambda: got == [b"hello"], pump(consumer), what="delivery")
    consumer.close()

    ch.basic_publish(ex, "", b"anyone?")
    with pytest.raises(ChannelClosedByBroker) as e:
        ch.queue_declare("", exclusive=True)
    assert_channel_closed(e, H.NOT_FOUND, H.no_exchange(ex))
    with pytest.raises(ChannelClosedByBroker) as e:
        conn.channel().queue_declare(q, passive=True)
    assert_channel_closed(e, H.NOT_FOUND, H.no_queue(q))


def test_closing_a_connection_requeues_its_unacked_messages(connect, ch):
    q = H.unique("work")
    ch.queue_declare(q)
    bodies = [f"job{i}".encode() for i in range(3)]
    for body in bodies:
        ch.basic_publish("", q, body)
    first = connect()
    got_first = []
    first.channel().basic_consume(q, lambda _c, m, _p, body: got_first.append((m.redelivered, body)))
    H.wait_until(lambda: len(got_first) == 3, pump(first), what="first consumer's deliveries")
    second = connect()
    got_second = []
    second.channel().basic_consume(q, lambda _c, m, _p, body: got_second.append((m.redelivered, body)),
                                   auto_ack=True)
    second.process_data_events(0.02)
    assert got_second == []  # everything is held, unacked, by the first consumer
    first.close()
    H.wait_until(lambda: len(got_second) >= 3, pump(second), what="redeliveries")
    assert got_first == [(False, b) for b in bodies]
    assert got_second == [(True, b) for b in bodies]


def test_auto_delete_queue_goes_with_its_last_consumer(conn, ch):
    q = H.unique("autodel")
    ch.queue_declare(q, auto_delete=True)
    assert ch.queue_declare(q, passive=True).method.consumer_count == 0  # no consumer yet: it stays
    other = conn.channel()
    t1 = ch.basic_consume(q, lambda *a: None)
    t2 = other.basic_consume(q, lambda *a: None)
    assert ch.queue_declare(q, passive=True).method.consumer_count == 2
    ch.basic_cancel(t1)
    assert ch.queue_declare(q, passive=True).method.consumer_count == 1
    other.basic_cancel(t2)
    with pytest.raises(ChannelClosedByBroker) as e:
        ch.queue_declare(q, passive=True)
    assert_channel_closed(e, H.NOT_FOUND, H.no_queue(q))


def test_exclusive_queue_goes_with_its_connection(connect, ch):
    owner = connect()
    q = H.unique("mine")
    owner.channel().queue_declare(q, exclusive=True)
    ch.basic_publish("", q, b"x")
    with pytest.raises(ChannelClosedByBroker) as e:
        ch.queue_declare(q, passive=True)
    assert_channel_closed(e, H.RESOURCE_LOCKED, H.locked(q))
    owner.close()
    with pytest.raises(ChannelClosedByBroker) as e:
        ch.connection.channel().queue_declare(q, passive=True)
    assert_channel_closed(e, H.NOT_FOUND, H.no_queue(q))


def test_purge_and_delete_counts_and_conditions(conn, ch):
    q = H.unique("counts")
    ch.queue_declare(q)
    for i in range(5):
        ch.basic_publish("", q, b"p")
    assert ch.queue_purge(q).method.message_count == 5
    assert ch.queue_purge(q).method.message_count == 0
    for i in range(3):
        ch.basic_publish("", q, b"d")
    with pytest.raises(ChannelClosedByBroker) as e:
        ch.queue_delete(q, if_empty=True)
    assert_channel_closed(e, H.PRECONDITION_FAILED, H.not_empty(q))
    ch = conn.channel()
    tag = ch.basic_consume(q, lambda *a: None, auto_ack=False)
    with pytest.raises(ChannelClosedByBroker) as e:
        conn.channel().queue_delete(q, if_unused=True)
    assert_channel_closed(e, H.PRECONDITION_FAILED, H.in_use(q))
    ch.basic_cancel(tag)  # the three deliveries stay unacked on ch...
    ch.close()  # ...until it closes and they go back
    ch = conn.channel()
    assert ch.queue_delete(q, if_unused=True).method.message_count == 3
    assert ch.queue_delete(q).method.message_count == 0  # deleting a missing queue succeeds


def test_server_cancels_consumer_when_its_queue_is_deleted(connect, conn, ch):
    q = H.unique("doomed")
    ch.queue_declare(q)
    ch.basic_publish("", q, b"in flight")
    cancelled, got = [], []
    ch.add_on_cancel_callback(lambda frame: cancelled.append(frame.method.consumer_tag))
    ch.basic_qos(prefetch_count=1)  # so the second message stays ready
    tag = ch.basic_consume(q, lambda _c, m, _p, body: got.append((m.delivery_tag, body)))
    H.wait_until(lambda: got, pump(conn), what="delivery")
    deleter = connect().channel()
    deleter.basic_publish("", q, b"ready")
    assert deleter.queue_delete(q).method.message_count == 1  # ready ones only, not the unacked one
    H.wait_until(lambda: cancelled, pump(conn), what="basic.cancel from the broker")
    assert cancelled == [tag] and got == [(1, b"in flight")]
    assert ch.is_open and ch.consumer_tags == []
    ch.basic_ack(1)  # the deleted queue's delivery is still the channel's to settle
    assert ch.queue_declare("", exclusive=True).method.queue.startswith("amq.gen-")
