"""py-amqp (the ``amqp`` package, kombu's and Celery's transport) against a real WarrenMQ over TCP.

The same scenarios as the pika suites, through py-amqp's API.  py-amqp's
exceptions also carry the class and method id of the failing method
(``method_sig``), so the error tests check those too.  Expected behaviour
comes from :mod:`.helpers`.  Note that py-amqp's ``queue_declare`` and
``exchange_declare`` default to ``auto_delete=True``; the tests say
``auto_delete=False`` wherever they mean the pika suites' plain entities.
"""
from __future__ import annotations

import socket
import time
import urllib.parse
import uuid

import amqp
import pytest
from amqp import exceptions as X

from . import helpers as H

pytestmark = pytest.mark.timeout(30)

# (class id, method id) of the methods the errors answer
EXCHANGE_DECLARE, QUEUE_DECLARE, QUEUE_PURGE, QUEUE_DELETE = (40, 10), (50, 10), (50, 30), (50, 40)
BASIC_QOS, BASIC_CONSUME, BASIC_PUBLISH, BASIC_GET, BASIC_ACK, BASIC_REJECT = \
    (60, 10), (60, 20), (60, 40), (60, 70), (60, 80), (60, 90)
CONNECTION_OPEN = (10, 40)


@pytest.fixture
def connect(url):
    """A factory of connected py-amqp Connections, all closed after the test."""
    u = urllib.parse.urlparse(url)
    conns = []

    def _connect(vhost=None, **kw):
        conn = amqp.Connection(host=f"{u.hostname}:{u.port}", userid=u.username, password=u.password,
                               virtual_host=vhost or urllib.parse.unquote(u.path[1:]) or "/",
                               connect_timeout=H.TIMEOUT, **kw)
        conns.append(conn)
        conn.connect()
        return conn

    yield _connect
    for conn in conns:
        try:
            conn.close()
        except Exception:  # already closed by the broker
            conn.collect()


@pytest.fixture
def conn(connect):
    return connect()


@pytest.fixture
def ch(conn):
    return conn.channel()


def pump(*conns):
    def _pump():
        for c in conns:
            try:
                c.drain_events(timeout=0.005)
            except socket.timeout:
                pass
    return _pump


def get_all(ch, queue, with_msg=False):
    out = []
    while (msg := ch.basic_get(queue, no_ack=True)) is not None:
        out.append(msg if with_msg else (msg.delivery_info["routing_key"], msg.body))
    return out


def ready_count(ch, queue) -> int:
    return ch.queue_declare(queue, passive=True).message_count


def assert_error(exc_info, cls, code, text, method_sig):
    e = exc_info.value
    assert type(e) is cls
    assert (e.reply_code, e.reply_text, e.method_sig) == (code, text, method_sig)


def declare_bound_queues(ch, exchange, bindings):
    names = {}
    for suffix, spec in bindings.items():
        q = names[suffix] = ch.queue_declare(H.unique(suffix), auto_delete=False).queue
        if isinstance(spec, dict):
            ch.queue_bind(q, exchange, arguments=spec)
        else:
            for key in spec:
                ch.queue_bind(q, exchange, routing_key=key)
    return names


# ---------------------------------------------------------------------------- routing
def test_fanout_broadcasts_to_every_consumer(connect, ch):
    ex = H.unique("logs")
    ch.exchange_declare(ex, "fanout", auto_delete=False)
    consumers = []
    for _ in range(3):
        c = connect()
        cch = c.channel()
        q = cch.queue_declare("", exclusive=True).queue
        cch.queue_bind(q, ex)
        got = []
        cch.basic_consume(q, no_ack=True, callback=lambda m, got=got: got.append(
            (m.delivery_info["exchange"], m.delivery_info["routing_key"], m.body)))
        consumers.append((c, q, got))
    names = [q for _, q, _ in consumers]
    assert all(n.startswith("amq.gen-") for n in names) and len(set(names)) == 3

    bodies = [f"log line {i}".encode() for i in range(5)]
    for body in bodies:
        ch.basic_publish(amqp.Message(body), ex, "any.key")
    for c, _, got in consumers:
        H.wait_until(lambda: len(got) >= len(bodies), pump(c), what="fanout deliveries")
        pump(c)()
        assert got == [(ex, "any.key", b) for b in bodies]


def test_direct_routing(ch):
    ex = H.unique("direct")
    ch.exchange_declare(ex, "direct", auto_delete=False)
    queues = declare_bound_queues(ch, ex, H.DIRECT_BINDINGS)
    for key in H.DIRECT_KEYS:
        ch.basic_publish(amqp.Message(key.encode()), ex, key)
    for suffix, q in queues.items():
        assert get_all(ch, q) == [(k, k.encode()) for k in H.DIRECT_EXPECTED[suffix]], suffix


def test_topic_routing_with_star_and_hash(conn, ch):
    ex = H.unique("topic")
    ch.exchange_declare(ex, "topic", auto_delete=False)
    queues = declare_bound_queues(ch, ex, H.TOPIC_BINDINGS)
    returned = []
    ch.events["basic_return"].add(lambda exc, exchange, routing_key, msg: returned.append(routing_key))
    for key in H.TOPIC_KEYS:
        ch.basic_publish(amqp.Message(key.encode()), ex, key, mandatory=True)
    for suffix, q in queues.items():
        assert get_all(ch, q) == [(k, k.encode()) for k in H.TOPIC_EXPECTED[suffix]], suffix
    assert returned == H.TOPIC_UNROUTED  # the keys no pattern matches come back


def test_headers_exchange_all_and_any(ch):
    ex = H.unique("headers")
    ch.exchange_declare(ex, "headers", auto_delete=False)
    queues = declare_bound_queues(ch, ex, H.HEADERS_BINDINGS)
    for case, headers in H.HEADERS_CASES:
        props = {} if headers is None else {"application_headers": headers}
        ch.basic_publish(amqp.Message(case.encode(), **props), ex, "")
    for suffix, q in queues.items():
        got = get_all(ch, q, with_msg=True)
        assert [m.body.decode() for m in got] == H.HEADERS_EXPECTED[suffix], suffix
        assert [m.properties.get("application_headers") for m in got] == \
            [as_pyamqp_decodes(dict(H.HEADERS_CASES)[c]) for c in H.HEADERS_EXPECTED[suffix]]


def as_pyamqp_decodes(headers):
    """py-amqp sends bytes as a longstr (it has no way to send a byte array) and decodes longstrs to str."""
    return {k: v.decode() if isinstance(v, bytes) else v for k, v in headers.items()}


# ---------------------------------------------------------------------------- patterns
def test_work_queue_prefetch_one_dispatches_fairly(connect, ch):
    fd = H.FairDispatch()
    q = H.unique("tasks")
    ch.queue_declare(q, auto_delete=False)
    for body in fd.bodies:
        ch.basic_publish(amqp.Message(body), "", q)
    workers = []
    for i in range(fd.n_consumers):
        c = connect()
        wch = c.channel()
        wch.basic_qos(0, 1, False)
        wch.basic_consume(q, callback=lambda m, i=i: fd.delivered(
            i, m.delivery_tag, m.body, m.delivery_info["redelivered"]))
        workers.append((c, wch))

    def step():
        for c, _ in workers:
            try:
                c.drain_events(timeout=0.001)
            except socket.timeout:
                pass
        if not fd.probed and fd.ready_to_probe:
            ok = ch.queue_declare(q, passive=True)
            fd.probe(ok.message_count, ok.consumer_count)
        for i, tag in fd.due_acks():
            workers[i][1].basic_ack(tag)

    H.wait_until(lambda: fd.done, step, what="all tasks acked")
    fd.check()
    assert ready_count(ch, q) == 0


def test_rpc_with_reply_to_and_correlation_id(connect, conn, ch):
    server = connect()
    sch = server.channel()
    rpc_q = H.unique("rpc")
    sch.queue_declare(rpc_q, auto_delete=False)
    sch.basic_qos(0, 1, False)
    seen_reply_to = []

    def on_request(msg):
        seen_reply_to.append(msg.reply_to)
        sch.basic_publish(amqp.Message(H.rpc_answer(msg.body), correlation_id=msg.correlation_id), "", msg.reply_to)
        sch.basic_ack(msg.delivery_tag)

    sch.basic_consume(rpc_q, callback=on_request)
    callback_q = ch.queue_declare("", exclusive=True).queue
    responses = {}
    ch.basic_consume(callback_q, no_ack=True, callback=lambda m: responses.__setitem__(m.correlation_id, m.body))
    requests = {str(uuid.uuid4()): n for n in (3, 7, 12)}
    for cid, n in requests.items():
        ch.basic_publish(amqp.Message(str(n).encode(), reply_to=callback_q, correlation_id=cid), "", rpc_q)
    H.wait_until(lambda: len(responses) == len(requests), pump(server, conn), what="RPC responses")
    assert responses == {cid: str(n * n).encode() for cid, n in requests.items()}
    assert seen_reply_to == [callback_q] * 3


def test_basic_get_and_get_empty(ch):
    q = H.unique("get")
    ch.queue_declare(q, auto_delete=False)
    for i in range(3):
        ch.basic_publish(amqp.Message(f"m{i}".encode(), content_type="application/octet-stream",
                                      application_headers={"n": i}, message_id=f"id{i}"), "", q)
    tags = []
    for i in range(3):
        msg = ch.basic_get(q)
        info = msg.delivery_info
        assert (msg.body, info["message_count"], info["redelivered"], info["exchange"], info["routing_key"]) == \
            (f"m{i}".encode(), 2 - i, False, "", q)
        assert (msg.content_type, msg.headers, msg.message_id) == ("application/octet-stream", {"n": i}, f"id{i}")
        tags.append(msg.delivery_tag)
    assert tags == [1, 2, 3]
    assert ch.basic_get(q) is None
    ch.basic_ack(3, multiple=True)
    ok = ch.queue_declare(q, passive=True)
    assert (ok.message_count, ok.consumer_count) == (0, 0)


def test_reject_with_requeue_restores_original_position(ch):
    q = H.unique("requeue")
    ch.queue_declare(q, auto_delete=False)
    for i in range(5):
        ch.basic_publish(amqp.Message(f"m{i}".encode()), "", q)
    got = [ch.basic_get(q) for _ in range(3)]
    assert [m.body for m in got] == [b"m0", b"m1", b"m2"]
    ch.basic_reject(got[1].delivery_tag, requeue=True)
    ch.basic_reject(got[0].delivery_tag, requeue=True)
    again = [ch.basic_get(q) for _ in range(4)]
    assert [(m.delivery_info["redelivered"], m.body, m.delivery_info["message_count"]) for m in again] == [
        (True, b"m0", 3), (True, b"m1", 2), (False, b"m3", 1), (False, b"m4", 0)]
    for m in [got[2]] + again:  # newest first would not matter: each goes back to its own place
        ch.basic_reject(m.delivery_tag, requeue=True)
    assert [(m.delivery_info["redelivered"], m.body) for m in get_all(ch, q, with_msg=True)] == \
        [(True, f"m{i}".encode()) for i in range(5)]


def test_reject_without_requeue_discards(conn, ch):
    q = H.unique("discard")
    ch.queue_declare(q, auto_delete=False)
    for i in range(3):
        ch.basic_publish(amqp.Message(f"m{i}".encode()), "", q)
    m0 = ch.basic_get(q)
    ch.basic_reject(m0.delivery_tag, requeue=False)
    m1 = ch.basic_get(q)
    assert m1.body == b"m1"
    assert ready_count(ch, q) == 1
    ch.close()  # m1 was never settled: closing the channel requeues it
    ch2 = conn.channel()
    assert [(m.delivery_info["redelivered"], m.body) for m in get_all(ch2, q, with_msg=True)] == \
        [(True, b"m1"), (False, b"m2")]


def test_mandatory_unroutable_message_is_returned(conn, ch):
    ex = H.unique("direct")
    ch.exchange_declare(ex, "direct", auto_delete=False)
    q = ch.queue_declare(H.unique("routed"), auto_delete=False).queue
    ch.queue_bind(q, ex, routing_key="routed")
    returns = []
    ch.events["basic_return"].add(lambda exc, exchange, routing_key, msg: returns.append(
        (type(exc), exc.reply_code, exc.reply_text, exchange, routing_key, msg.properties.get("message_id"),
         msg.body)))
    missing_q = H.unique("no-such-queue")
    ch.basic_publish(amqp.Message(b"lost", message_id="m1"), ex, "nowhere", mandatory=True)
    ch.basic_publish(amqp.Message(b"kept"), ex, "routed", mandatory=True)
    ch.basic_publish(amqp.Message(b"dropped silently"), ex, "nowhere")
    ch.basic_publish(amqp.Message(b"lost too"), "", missing_q, mandatory=True)
    ch.exchange_declare(ex, "direct", passive=True)  # the returns come before this reply
    assert returns == [(X.ChannelError, H.NO_ROUTE, H.NO_ROUTE_TEXT, ex, "nowhere", "m1", b"lost"),
                       (X.ChannelError, H.NO_ROUTE, H.NO_ROUTE_TEXT, "", missing_q, None, b"lost too")]
    assert get_all(ch, q) == [("routed", b"kept")]


def test_publisher_confirms(connect):
    conn = connect(confirm_publish=True)
    ch = conn.channel()
    acks = []
    ch.events["basic_ack"].add(lambda tag, multiple: acks.append((tag, multiple)))
    q = H.unique("confirmed")
    ch.queue_declare(q, auto_delete=False)
    for i in range(10):
        ch.basic_publish(amqp.Message(f"c{i}".encode()), "", q)  # waits for the broker's basic.ack
        assert acks == [(n, False) for n in range(1, i + 2)]
    assert ready_count(ch, q) == 10
    returned = []
    ch.events["basic_return"].add(lambda exc, exchange, routing_key, msg: returned.append((exc.reply_code, msg.body)))
    ch.basic_publish(amqp.Message(b"unroutable"), "amq.direct", "nobody-home", mandatory=True)
    assert (returned, acks[-1]) == ([(H.NO_ROUTE, b"unroutable")], (11, False))  # the return comes first
    ch.basic_publish(amqp.Message(b"not mandatory: acked and dropped"), "amq.direct", "nobody-home")
    assert acks[-1] == (12, False)
    assert ready_count(ch, q) == 10


def test_tx_commit_delivers_and_rollback_discards(connect, ch):
    q = H.unique("tx")
    ch.queue_declare(q, auto_delete=False)
    observer = connect().channel()
    ch.tx_select()
    ch.basic_publish(amqp.Message(b"a"), "", q)
    ch.basic_publish(amqp.Message(b"b"), "", q)
    assert ready_count(observer, q) == 0
    ch.tx_commit()
    assert ready_count(observer, q) == 2
    ch.basic_publish(amqp.Message(b"rolled back"), "", q)
    ch.tx_rollback()
    ch.basic_publish(amqp.Message(b"c"), "", q)
    assert ready_count(observer, q) == 2
    ch.tx_commit()
    assert get_all(observer, q) == [(q, b"a"), (q, b"b"), (q, b"c")]


def test_tx_settlements_and_returns_happen_at_commit(connect, conn, ch):
    q = H.unique("tx")
    ch.queue_declare(q, auto_delete=False)
    observer = connect().channel()
    for i in range(2):
        ch.basic_publish(amqp.Message(f"m{i}".encode()), "", q)
    returns = []
    ch.events["basic_return"].add(lambda exc, exchange, routing_key, msg: returns.append(
        (exc.reply_code, routing_key, msg.body)))
    ch.tx_select()
    m0, m1 = ch.basic_get(q), ch.basic_get(q)
    ch.basic_ack(m0.delivery_tag)
    ch.basic_reject(m1.delivery_tag, requeue=True)
    ch.basic_publish(amqp.Message(b"returned at commit"), "amq.direct", "nobody-home", mandatory=True)
    ch.tx_rollback()  # discards the ack, the reject and the publish: both messages stay unacked
    assert (ready_count(observer, q), returns) == (0, [])
    ch.basic_ack(m0.delivery_tag)
    ch.basic_reject(m1.delivery_tag, requeue=True)
    ch.basic_publish(amqp.Message(b"returned at commit"), "amq.direct", "nobody-home", mandatory=True)
    ch.exchange_declare("amq.direct", "direct", passive=True)
    assert (ready_count(observer, q), returns) == (0, [])
    ch.tx_commit()  # the return comes before commit-ok
    assert returns == [(H.NO_ROUTE, "nobody-home", b"returned at commit")]
    assert [(m.delivery_info["redelivered"], m.body) for m in get_all(observer, q, with_msg=True)] == \
        [(True, b"m1")]


# ---------------------------------------------------------------------------- channel errors
def test_publish_to_missing_exchange_closes_channel(conn, ch):
    ex = H.unique("x")
    ch.basic_publish(amqp.Message(b"body"), ex, "k")
    with pytest.raises(X.NotFound) as e:
        ch.queue_declare("", exclusive=True)
    assert_error(e, X.NotFound, H.NOT_FOUND, H.no_exchange(ex), BASIC_PUBLISH)
    assert conn.connected
    assert ch.queue_declare("", exclusive=True).queue.startswith("amq.gen-")  # py-amqp reopened the channel


def test_passive_declares_of_missing_exchange_and_queue(ch):
    with pytest.raises(X.NotFound) as e:
        ch.exchange_declare("x", "direct", passive=True)
    assert_error(e, X.NotFound, H.NOT_FOUND, H.no_exchange("x"), EXCHANGE_DECLARE)
    with pytest.raises(X.NotFound) as e:
        ch.queue_declare("q", passive=True)
    assert_error(e, X.NotFound, H.NOT_FOUND, H.no_queue("q"), QUEUE_DECLARE)


def test_inequivalent_redeclare_is_precondition_failed(ch):
    q, ex = H.unique("q"), H.unique("x")
    ch.queue_declare(q, auto_delete=False)
    ch.exchange_declare(ex, "direct", auto_delete=False)
    with pytest.raises(X.PreconditionFailed) as e:
        ch.queue_declare(q, durable=True, auto_delete=False)
    assert_error(e, X.PreconditionFailed, H.PRECONDITION_FAILED,
                 H.inequivalent("queue", q, "durable", "true", "false"), QUEUE_DECLARE)
    with pytest.raises(X.PreconditionFailed) as e:
        ch.exchange_declare(ex, "fanout", auto_delete=False)
    assert_error(e, X.PreconditionFailed, H.PRECONDITION_FAILED,
                 H.inequivalent("exchange", ex, "type", "fanout", "direct"), EXCHANGE_DECLARE)
    assert ch.queue_declare(q, auto_delete=False).queue == q


def test_other_connections_exclusive_queue_is_locked(connect, ch):
    q = H.unique("exclusive")
    ch.queue_declare(q, exclusive=True, auto_delete=False)
    other = connect().channel()
    attempts = [(lambda: other.queue_declare(q, exclusive=True, auto_delete=False), QUEUE_DECLARE),
                (lambda: other.queue_declare(q, passive=True), QUEUE_DECLARE),
                (lambda: other.basic_consume(q, callback=lambda m: None), BASIC_CONSUME),
                (lambda: other.basic_get(q), BASIC_GET),
                (lambda: other.queue_purge(q), QUEUE_PURGE),
                (lambda: other.queue_delete(q), QUEUE_DELETE)]
    for attempt, method_sig in attempts:
        with pytest.raises(X.ResourceLocked) as e:
            attempt()
        assert_error(e, X.ResourceLocked, H.RESOURCE_LOCKED, H.locked(q), method_sig)
    assert ch.queue_declare(q, passive=True).queue == q


def test_ack_and_reject_of_unknown_delivery_tags(ch):
    q = H.unique("acks")
    ch.queue_declare(q, auto_delete=False)
    ch.basic_ack(42)
    with pytest.raises(X.PreconditionFailed) as e:
        ch.queue_declare(q, passive=True)
    assert_error(e, X.PreconditionFailed, H.PRECONDITION_FAILED, H.unknown_tag(42), BASIC_ACK)
    ch.basic_publish(amqp.Message(b"x"), "", q)
    msg = ch.basic_get(q)
    assert msg.delivery_tag == 1  # the reopened channel counts from 1 again
    ch.basic_ack(msg.delivery_tag)
    ch.basic_reject(msg.delivery_tag, requeue=True)  # already acked
    with pytest.raises(X.PreconditionFailed) as e:
        ch.queue_declare(q, passive=True)
    assert_error(e, X.PreconditionFailed, H.PRECONDITION_FAILED, H.unknown_tag(1), BASIC_REJECT)
    assert ready_count(ch, q) == 0


# ---------------------------------------------------------------------------- connection errors
def test_reusing_a_consumer_tag_closes_connection(connect, conn, ch):
    q = H.unique("q")
    ch.queue_declare(q, auto_delete=False)
    assert ch.basic_consume(q, consumer_tag="c1", callback=lambda m: None) == "c1"
    assert conn.channel().basic_consume(q, consumer_tag="c1", callback=lambda m: None) == "c1"  # other channel
    with pytest.raises(X.NotAllowed) as e:
        ch.basic_consume(q, consumer_tag="c1", callback=lambda m: None)
    assert_error(e, X.NotAllowed, H.NOT_ALLOWED, H.reuse_tag("c1"), BASIC_CONSUME)
    assert not conn.connected
    assert connect().channel().queue_declare(q, passive=True).consumer_count == 0  # its consumers went with it


def test_unknown_exchange_type_closes_connection(connect, conn, ch):
    bad_type = H.unique("no-such-type")
    with pytest.raises(X.InvalidCommand) as e:
        ch.exchange_declare(H.unique("x"), bad_type, auto_delete=False)
    assert_error(e, X.InvalidCommand, H.COMMAND_INVALID, H.unknown_exchange_type(bad_type), EXCHANGE_DECLARE)
    assert not conn.connected
    assert connect().channel().queue_declare("", exclusive=True).queue.startswith("amq.gen-")


def test_prefetch_size_is_not_implemented(conn, ch):
    with pytest.raises(X.AMQPNotImplementedError) as e:
        ch.basic_qos(10, 0, False)
    assert_error(e, X.AMQPNotImplementedError, H.NOT_IMPLEMENTED, H.PREFETCH_SIZE_TEXT, BASIC_QOS)
    assert not conn.connected


def test_unknown_vhost_is_not_allowed(connect):
    with pytest.raises(X.NotAllowed) as e:
        connect(vhost="no-such-vhost")
    assert_error(e, X.NotAllowed, H.NOT_ALLOWED, H.vhost_not_found("no-such-vhost"), CONNECTION_OPEN)


# ---------------------------------------------------------------------------- lifecycles
@pytest.mark.parametrize("queue_kind", ["exclusive", "auto_delete"])
def test_auto_delete_exchange_goes_when_its_consumer_disconnects(connect, ch, queue_kind):
    ex = H.unique("broadcast")
    consumer = connect()
    cch = consumer.channel()
    cch.exchange_declare(ex, "fanout", auto_delete=True)
    q = cch.queue_declare("", exclusive=queue_kind == "exclusive", auto_delete=queue_kind == "auto_delete").queue
    cch.queue_bind(q, ex)
    got = []
    cch.basic_consume(q, no_ack=True, callback=lambda m: got.append(m.body))
    ch.basic_publish(amqp.Message(b"hello"), ex, "")
    H.wait_until(lambda: got == [b"hello"], pump(consumer), what="delivery")
    consumer.close()

    ch.basic_publish(amqp.Message(b"anyone?"), ex, "")
    with pytest.raises(X.NotFound) as e:
        ch.queue_declare("", exclusive=True)
    assert_error(e, X.NotFound, H.NOT_FOUND, H.no_exchange(ex), BASIC_PUBLISH)
    with pytest.raises(X.NotFound) as e:
        ch.queue_declare(q, passive=True)
    assert_error(e, X.NotFound, H.NOT_FOUND, H.no_queue(q), QUEUE_DECLARE)


def test_closing_a_connection_requeues_its_unacked_messages(connect, ch):
    q = H.unique("work")
    ch.queue_declare(q, auto_delete=False)
    bodies = [f"job{i}".encode() for i in range(3)]
    for body in bodies:
        ch.basic_publish(amqp.Message(body), "", q)
    first = connect()
    got_first = []
    first.channel().basic_consume(q, callback=lambda m: got_first.append((m.delivery_info["redelivered"], m.body)))
    H.wait_until(lambda: len(got_first) == 3, pump(first), what="first consumer's deliveries")
    second = connect()
    got_second = []
    second.channel().basic_consume(q, no_ack=True, callback=lambda m: got_second.append(
        (m.delivery_info["redelivered"], m.body)))
    deadline = time.monotonic() + 0.02
    while time.monotonic() < deadline:
        pump(second)()
    assert got_second == []  # everything is held, unacked, by the first consumer
    first.close()
    H.wait_until(lambda: len(got_second) >= 3, pump(second), what="redeliveries")
    assert got_first == [(False, b) for b in bodies]
    assert got_second == [(True, b) for b in bodies]


def test_auto_delete_queue_goes_with_its_last_consumer(conn, ch):
    q = H.unique("autodel")
    ch.queue_declare(q, auto_delete=True)
    assert ch.queue_declare(q, passive=True).consumer_count == 0
    other = conn.channel()
    t1 = ch.basic_consume(q, callback=lambda m: None)
    t2 = other.basic_consume(q, callback=lambda m: None)
    assert ch.queue_declare(q, passive=True).consumer_count == 2
    assert ch.basic_cancel(t1) == t1
    assert ch.queue_declare(q, passive=True).consumer_count == 1
    other.basic_cancel(t2)
    with pytest.raises(X.NotFound) as e:
        ch.queue_declare(q, passive=True)
    assert_error(e, X.NotFound, H.NOT_FOUND, H.no_queue(q), QUEUE_DECLARE)


def test_exclusive_queue_goes_with_its_connection(connect, ch):
    owner = connect()
    q = H.unique("mine")
    owner.channel().queue_declare(q, exclusive=True, auto_delete=False)
    with pytest.raises(X.ResourceLocked) as e:
        ch.queue_declare(q, passive=True)
    assert_error(e, X.ResourceLocked, H.RESOURCE_LOCKED, H.locked(q), QUEUE_DECLARE)
    owner.close()
    with pytest.raises(X.NotFound) as e:
        ch.queue_declare(q, passive=True)
    assert_error(e, X.NotFound, H.NOT_FOUND, H.no_queue(q), QUEUE_DECLARE)


def test_purge_and_delete_counts_and_conditions(conn, ch):
    q = H.unique("counts")
    ch.queue_declare(q, auto_delete=False)
    for _ in range(5):
        ch.basic_publish(amqp.Message(b"p"), "", q)
    assert ch.queue_purge(q) == 5
    assert ch.queue_purge(q) == 0
    for _ in range(3):
        ch.basic_publish(amqp.Message(b"d"), "", q)
    with pytest.raises(X.PreconditionFailed) as e:
        ch.queue_delete(q, if_empty=True)
    assert_error(e, X.PreconditionFailed, H.PRECONDITION_FAILED, H.not_empty(q), QUEUE_DELETE)
    consumer = conn.channel()
    tag = consumer.basic_consume(q, callback=lambda m: None)
    with pytest.raises(X.PreconditionFailed) as e:
        ch.queue_delete(q, if_unused=True)
    assert_error(e, X.PreconditionFailed, H.PRECONDITION_FAILED, H.in_use(q), QUEUE_DELETE)
    consumer.basic_cancel(tag)
    consumer.close()  # the deliveries it never acked go back
    assert ch.queue_delete(q, if_unused=True) == 3
    assert ch.queue_delete(q) == 0  # deleting a missing queue succeeds


def test_server_cancels_consumer_when_its_queue_is_deleted(connect, conn, ch):
    q = H.unique("doomed")
    ch.queue_declare(q, auto_delete=False)
    ch.basic_publish(amqp.Message(b"in flight"), "", q)
    cancelled, got = [], []
    ch.basic_qos(0, 1, False)  # so the second message stays ready
    tag = ch.basic_consume(q, callback=lambda m: got.append((m.delivery_tag, m.body)), on_cancel=cancelled.append)
    H.wait_until(lambda: got, pump(conn), what="delivery")
    deleter = connect().channel()
    deleter.basic_publish(amqp.Message(b"ready"), "", q)
    assert deleter.queue_delete(q) == 1  # ready ones only, not the unacked one
    H.wait_until(lambda: cancelled, pump(conn), what="basic.cancel from the broker")
    assert cancelled == [tag] and got == [(1, b"in flight")]
    assert ch.is_open and tag not in ch.callbacks
    ch.basic_ack(1)  # the deleted queue's delivery is still the channel's to settle
    assert ch.queue_declare("", exclusive=True).queue.startswith("amq.gen-")
