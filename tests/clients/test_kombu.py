"""kombu (on py-amqp) against a real WarrenMQ over TCP: what its users rely on, as RabbitMQ 3.x does it.

Everything is single-threaded: deliveries are pumped with ``Connection.drain_events`` under a
deadline (:func:`drain_until`).  Names are unique per test (``uniq``) so the same file can be
pointed at a real RabbitMQ (override the ``amqp_url`` fixture) to check that the expectations
are RabbitMQ's.
"""
import socket
import time
import uuid

import amqp
import kombu
import pytest
from kombu import Consumer, Exchange, Producer, Queue, binding

pytestmark = pytest.mark.timeout(30)

ACCEPT = ["json"]


def uniq(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def connect(amqp_url):
    """``connect(confirm=False, **kwargs)`` opens a kombu Connection; all are released after the test.

    ``confirm=True`` makes every publish wait for its basic.ack, so the message is queued before the test
    looks at the queue (on RabbitMQ an unconfirmed publish is not ordered before a later passive declare
    or basic.get on the same channel).
    """
    opened = []

    def _connect(confirm=False, **kwargs):
        if confirm:
            kwargs["transport_options"] = {"confirm_publish": True}
        conn = kombu.Connection(amqp_url, **kwargs)
        conn.connect()
        opened.append(conn)
        return conn

    yield _connect
    for conn in opened:
        try:
            conn.release()
        except (OSError, amqp.exceptions.AMQPError):
            pass  # a connection the test had the broker close


def drain_until(conn, done, timeout: float = 3.0) -> None:
    """Pump ``conn``'s events until ``done()`` holds; fail if that takes longer than ``timeout``."""
    deadline = time.monotonic() + timeout
    while not done():
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("timed out waiting for deliveries")
        try:
            conn.drain_events(timeout=left)
        except socket.timeout:
            pass


def ready_count(conn, name: str) -> int:
    """Ready (not unacked) messages in a queue, from a passive declare on a fresh channel."""
    ch = conn.channel()
    try:
        return ch.queue_declare(name, passive=True).message_count
    finally:
        ch.close()


def collect(into: list, ack: bool = True):
    def on_message(body, message):
        if ack:
            message.ack()
        into.append((body, message))
    return on_message


def basic_nack(channel, delivery_tag: int, multiple: bool, requeue: bool) -> None:
    """basic.nack (RabbitMQ's extension): py-amqp receives it but has no method to send it."""
    channel.send_method(amqp.spec.Basic.Nack, "Lbb", (delivery_tag, multiple, requeue))


def get_all(conn, queue: Queue) -> list:
    """Every ready message of ``queue`` via basic.get (no_ack), as (body, routing_key)."""
    bound = queue(conn.default_channel)
    out = []
    while (m := bound.get(no_ack=True, accept=ACCEPT)) is not None:
        out.append((m.payload, m.delivery_info["routing_key"]))
    return out


# --------------------------------------------------------------------------- routing

def test_fanout_broadcasts_to_every_consumer(connect):
    conn = connect()
    logs = Exchange(uniq("logs"), type="fanout", durable=False, auto_delete=True)
    boxes = []
    for _ in range(3):
        q = Queue(uniq("sub"), exchange=logs, routing_key="ignored", exclusive=True)
        box = []
        Consumer(conn.channel(), queues=[q], callbacks=[collect(box)], accept=ACCEPT).consume()
        boxes.append(box)
    producer = Producer(conn.channel(), exchange=logs, serializer="json")
    for i in range(3):
        producer.publish({"n": i}, routing_key=f"key{i}")
    drain_until(conn, lambda: all(len(b) == 3 for b in boxes))
    for box in boxes:
        assert [body for body, _ in box] == [{"n": 0}, {"n": 1}, {"n": 2}]
        assert [m.delivery_info["routing_key"] for _, m in box] == ["key0", "key1", "key2"]
        assert {m.delivery_info["exchange"] for _, m in box} == {logs.name}
        assert not any(m.delivery_info["redelivered"] for _, m in box)


def test_direct_routing(connect):
    conn = connect(confirm=True)
    ex = Exchange(uniq("direct"), type="direct", durable=False, auto_delete=True)
    q_info = Queue(uniq("info"), exchange=ex, routing_key="info", exclusive=True)
    q_bad = Queue(uniq("bad"), exclusive=True, bindings=[binding(ex, routing_key="warning"),
                                                          binding(ex, routing_key="error")])
    ch = conn.default_channel
    for q in (q_info, q_bad):
        q(ch).declare()
    producer = Producer(ch, exchange=ex, serializer="json")
    for key in ("info", "error", "debug", "warning", "info"):
        producer.publish(key, routing_key=key)
    assert get_all(conn, q_info) == [("info", "info"), ("info", "info")]
    assert get_all(conn, q_bad) == [("error", "error"), ("warning", "warning")]


def test_topic_routing_star_and_hash(connect):
    conn = connect(confirm=True)
    ex = Exchange(uniq("topic"), type="topic", durable=False, auto_delete=True)
    q1 = Queue(uniq("q1"), exchange=ex, routing_key="*.orange.*", exclusive=True)
    q2 = Queue(uniq("q2"), exclusive=True, bindings=[binding(ex, routing_key="*.*.rabbit"),
                                                      binding(ex, routing_key="lazy.#")])
    q3 = Queue(uniq("q3"), exchange=ex, routing_key="#", exclusive=True)
    ch = conn.default_channel
    for q in (q1, q2, q3):
        q(ch).declare()
    keys = ["quick.orange.rabbit", "lazy.orange.elephant", "quick.orange.fox", "lazy.brown.fox",
            "lazy.pink.rabbit", "quick.brown.fox", "orange", "quick.orange.male.rabbit",
            "lazy.orange.male.rabbit", "lazy", "", "a..b"]
    producer = Producer(ch, exchange=ex, serializer="json")
    for k in keys:
        producer.publish(k, routing_key=k)
    assert [k for k, _ in get_all(conn, q1)] == ["quick.orange.rabbit", "lazy.orange.elephant", "quick.orange.fox"]
    assert [k for k, _ in get_all(conn, q2)] == ["quick.orange.rabbit", "lazy.orange.elephant", "lazy.brown.fox",
                                                 "lazy.pink.rabbit", "lazy.orange.male.rabbit", "lazy"]
    assert [k for k, _ in get_all(conn, q3)] == keys


def test_headers_exchange(connect):
    conn = connect(confirm=True)
    ex = Exchange(uniq("hdr"), type="headers", durable=False, auto_delete=True)
    q_all = Queue(uniq("all"), exchange=ex, exclusive=True,
                  binding_arguments={"x-match": "all", "format": "pdf", "type": "report"})
    q_any = Queue(uniq("any"), exchange=ex, exclusive=True,
                  binding_arguments={"x-match": "any", "format": "zip", "flag": 1})
    ch = conn.default_channel
    for q in (q_all, q_any):
        q(ch).declare()
    producer = Producer(ch, exchange=ex, serializer="json")
    cases = [
        ("pdf-report", {"format": "pdf", "type": "report"}),
        ("pdf-report-extra", {"type": "report", "format": "pdf", "lang": "en"}),
        ("pdf", {"format": "pdf"}),
        ("zip", {"format": "zip"}),
        ("flag1", {"flag": 1}),
        ("flag-true", {"flag": True}),  # RabbitMQ: a bool never equals the number 1
        ("flag-big", {"flag": 2 ** 40 - 2 ** 40 + 1}),
        ("flag0", {"flag": 0}),
        ("nothing", {}),
    ]
    for body, headers in cases:
        producer.publish(body, routing_key="", headers=headers)
    assert [b for b, _ in get_all(conn, q_all)] == ["pdf-report", "pdf-report-extra"]
    assert [b for b, _ in get_all(conn, q_any)] == ["zip", "flag1", "flag-big"]


# ------------------------------------------------------------------------ work queues

def test_work_queue_prefetch_one_dispatches_fairly(connect):
    """RabbitMQ tutorial 2: with prefetch 1 a busy worker gets nothing more; the free one gets the rest."""
    conn = connect()
    publisher = connect(confirm=True)
    tasks = Queue(uniq("tasks"), durable=False, auto_delete=True)
    tasks(conn.default_channel).declare()
    fast, busy1, busy2 = [], [], []
    for box, ack in ((fast, True), (busy1, False), (busy2, False)):
        Consumer(conn.channel(), queues=[tasks], callbacks=[collect(box, ack)], accept=ACCEPT,
                 prefetch_count=1).consume()
    producer = Producer(publisher.default_channel, serializer="json")
    for i in range(9):
        producer.publish(i, routing_key=tasks.name)
    drain_until(conn, lambda: len(fast) == 7 and len(busy1) == 1 and len(busy2) == 1)
    assert sorted(b for b, _ in fast + busy1 + busy2) == list(range(9))
    assert ready_count(conn, tasks.name) == 0  # all nine accounted for: nothing else in flight
    assert (len(busy1), len(busy2)) == (1, 1)
    # busy2 is still at its limit, so the next task goes to fast or (its message acked) busy1
    busy1[0][1].ack()
    producer.publish(9, routing_key=tasks.name)
    drain_until(conn, lambda: len(fast) + len(busy1) == 9)
    assert sorted(b for b, _ in fast[7:] + busy1[1:]) == [9]
    assert len(busy2) == 1 and ready_count(conn, tasks.name) == 0


def test_rpc_reply_to_and_correlation_id(connect):
    conn = connect()
    rpc_queue = Queue(uniq("rpc"), exclusive=True)
    server_channel = conn.channel()
    replier = Producer(server_channel, serializer="json")

    def serve(body, message):
        replier.publish({"result": body["n"] ** 2}, exchange="", routing_key=message.properties["reply_to"],
                        correlation_id=message.properties["correlation_id"])
        message.ack()

    server = Consumer(server_channel, queues=[rpc_queue], callbacks=[serve], accept=ACCEPT, prefetch_count=1)
    server.consume()

    client_channel = conn.channel()
    callback_queue = Queue(uniq("reply"), exclusive=True)
    replies = {}

    def on_reply(body, message):
        assert message.delivery_info["exchange"] == ""
        assert message.delivery_info["routing_key"] == callback_queue.name
        replies[message.properties["correlation_id"]] = body["result"]
        message.ack()

    Consumer(client_channel, queues=[callback_queue], callbacks=[on_reply], accept=ACCEPT).consume()
    requester = Producer(client_channel, serializer="json")
    ids = {}
    for n in range(1, 6):
        cid = str(uuid.uuid4())
        ids[cid] = n
        requester.publish({"n": n}, routing_key=rpc_queue.name, reply_to=callback_queue.name, correlation_id=cid)
    drain_until(conn, lambda: len(replies) == 5)
    assert {ids[cid]: result for cid, result in replies.items()} == {1: 1, 2: 4, 3: 9, 4: 16, 5: 25}


# ----------------------------------------------------------------- get, reject, nack

def test_basic_get(connect):
    conn = connect(confirm=True)
    q = Queue(uniq("get"), exclusive=True)
    bound = q(conn.default_channel)
    bound.declare()
    producer = Producer(conn.default_channel, serializer="json")
    for body in ("one", "two", "three"):
        producer.publish(body, routing_key=q.name)
    m1 = bound.get(accept=ACCEPT)
    assert (m1.payload, m1.delivery_info["message_count"], m1.delivery_info["redelivered"],
            m1.delivery_tag) == ("one", 2, False, 1)
    assert m1.content_type == "application/json"
    m2 = bound.get(no_ack=True, accept=ACCEPT)
    assert (m2.payload, m2.delivery_info["message_count"]) == ("two", 1)
    m1.ack()
    m3 = bound.get(accept=ACCEPT)
    assert (m3.payload, m3.delivery_info["message_count"]) == ("three", 0)
    assert bound.get() is None
    m3.requeue()
    again = bound.get(no_ack=True, accept=ACCEPT)
    assert (again.payload, again.delivery_info["redelivered"]) == ("three", True)
    assert bound.get() is None


def test_simple_queue(connect):
    conn = connect(confirm=True)
    name = uniq("simple")
    sq = conn.SimpleQueue(name, queue_opts={"durable": False, "auto_delete": False},
                          exchange_opts={"durable": False, "auto_delete": True})
    try:
        with pytest.raises(sq.Empty):
            sq.get_nowait()
        for i in range(3):
            sq.put({"i": i})
        assert sq.qsize() == 3
        first = sq.get_nowait()  # basic.get
        assert first.payload == {"i": 0}
        first.ack()
        second = sq.get(timeout=2)  # basic.consume + drain_events
        assert (second.payload, second.delivery_info["redelivered"]) == ({"i": 1}, False)
        second.requeue()
        # the SimpleQueue consumer has no prefetch limit: {"i": 2} may be in its buffer before the requeued one
        got = sorted([sq.get(timeout=2), sq.get(timeout=2)], key=lambda m: m.payload["i"])
        assert [(m.payload, m.delivery_info["redelivered"]) for m in got] == [({"i": 1}, True), ({"i": 2}, False)]
        for m in got:
            m.ack()
        with pytest.raises(sq.Empty):
            sq.get(timeout=0.1)
    finally:
        sq.close()
        ch = conn.channel()
        ch.queue_delete(name)
        ch.close()


def test_reject_and_nack_with_and_without_requeue(connect):
    conn = connect(confirm=True)
    q = Queue(uniq("rej"), exclusive=True)
    bound = q(conn.default_channel)
    bound.declare()
    producer = Producer(conn.default_channel, serializer="json")
    for body in ("a", "b", "c"):
        producer.publish(body, routing_key=q.name)

    m = bound.get(accept=ACCEPT)
    assert (m.payload, m.delivery_info["redelivered"]) == ("a", False)
    m.reject(requeue=True)
    m = bound.get(accept=ACCEPT)  # back at the head, marked redelivered
    assert (m.payload, m.delivery_info["redelivered"], m.delivery_info["message_count"]) == ("a", True, 2)
    m.reject(requeue=False)
    m = bound.get(accept=ACCEPT)
    assert (m.payload, m.delivery_info["redelivered"]) == ("b", False)
    basic_nack(conn.default_channel, m.delivery_tag, multiple=False, requeue=True)
    m = bound.get(accept=ACCEPT)
    assert (m.payload, m.delivery_info["redelivered"]) == ("b", True)
    basic_nack(conn.default_channel, m.delivery_tag, multiple=False, requeue=False)
    m = bound.get(accept=ACCEPT)
    assert (m.payload, m.delivery_info["message_count"]) == ("c", 0)
    m.reject()
    assert bound.get() is None
    assert ready_count(conn, q.name) == 0


def test_nack_multiple_requeues_in_original_order(connect):
    conn = connect()
    q = Queue(uniq("nackm"), exclusive=True)
    got = []
    Consumer(conn.default_channel, queues=[q], callbacks=[collect(got, ack=False)], accept=ACCEPT).consume()
    producer = Producer(conn.channel(), serializer="json")
    for i in range(4):
        producer.publish(i, routing_key=q.name)
    drain_until(conn, lambda: len(got) == 4)
    assert [(b, m.delivery_info["redelivered"]) for b, m in got] == [(0, False), (1, False), (2, False),
                                                                      (3, False)]
    # nack 0..2 at once (multiple), requeue: they come back to the consumer in order; 3 stays unacked
    basic_nack(conn.default_channel, got[2][1].delivery_tag, multiple=True, requeue=True)
    drain_until(conn, lambda: len(got) == 7)
    assert [(b, m.delivery_info["redelivered"]) for b, m in got[4:]] == [(0, True), (1, True), (2, True)]
    assert [m.delivery_tag for _, m in got] == [1, 2, 3, 4, 5, 6, 7]
    for _, m in got[3:]:
        m.ack()
    assert ready_count(conn, q.name) == 0


# ------------------------------------------------------------- returns, confirms, tx

def test_producer_on_return(connect):
    conn = connect()
    ex = Exchange(uniq("ret"), type="direct", durable=False, auto_delete=True)
    q = Queue(uniq("routed"), exchange=ex, routing_key="routed", exclusive=True)
    got = []
    Consumer(conn.channel(), queues=[q], callbacks=[collect(got)], accept=ACCEPT).consume()
    returned = []
    producer = Producer(conn.channel(), exchange=ex, serializer="json",
                        on_return=lambda exc, exchange, routing_key, message:
                        returned.append((exc, exchange, routing_key, message)))
    producer.publish({"lost": True}, routing_key="nowhere", mandatory=True)
    producer.publish({"dropped": True}, routing_key="nowhere")  # not mandatory: silently dropped
    producer.publish({"found": True}, routing_key="routed", mandatory=True)
    producer.publish({"marker": True}, routing_key="nowhere-2", mandatory=True)
    # returns of one channel keep their order: had the non-mandatory one come back, it would precede the marker
    drain_until(conn, lambda: len(returned) == 2 and len(got) == 1)
    exc, exchange, routing_key, message = returned[0]
    assert (exc.reply_code, exc.reply_text, exchange, routing_key) == (312, "NO_ROUTE", ex.name, "nowhere")
    assert message.body == '{"lost": true}'
    assert message.properties["content_type"] == "application/json"
    assert [r[2] for r in returned] == ["nowhere", "nowhere-2"]
    assert [(b, m.delivery_info["routing_key"]) for b, m in got] == [({"found": True}, "routed")]


def test_publisher_confirms(connect):
    conn = connect(confirm=True)
    q = Queue(uniq("confirm"), exclusive=True)
    q(conn.default_channel).declare()
    returned = []
    producer = Producer(conn.default_channel, serializer="json",
                        on_return=lambda exc, exchange, routing_key, message: returned.append(routing_key))
    for i in range(20):
        producer.publish(i, routing_key=q.name)  # each publish waits for its basic.ack
    assert ready_count(conn, q.name) == 20
    # a mandatory unroutable message comes back (basic.return) before its confirm: no draining needed
    nowhere = uniq("nowhere")
    producer.publish("x", routing_key=nowhere, mandatory=True)
    assert returned == [nowhere]
    missing = uniq("missing")
    with pytest.raises(amqp.exceptions.NotFound) as info:
        producer.publish("x", exchange=missing, routing_key="k")
    assert (info.value.reply_code, info.value.reply_text, info.value.method_sig) == (
        404, f"NOT_FOUND - no exchange '{missing}' in vhost '/'", (60, 40))


def test_transactions_commit_and_rollback(connect):
    conn = connect()
    q = Queue(uniq("tx"), exclusive=True)
    q(conn.default_channel).declare()
    ch = conn.channel()
    ch.tx_select()
    producer = Producer(ch, serializer="json")
    producer.publish("rolled-back", routing_key=q.name)
    assert ready_count(conn, q.name) == 0
    ch.tx_rollback()
    assert ready_count(conn, q.name) == 0
    producer.publish("committed-1", routing_key=q.name)
    producer.publish("committed-2", routing_key=q.name)
    assert ready_count(conn, q.name) == 0
    ch.tx_commit()
    assert ready_count(conn, q.name) == 2
    # acks are transactional too
    m = q(ch).get(accept=ACCEPT)
    assert m.payload == "committed-1"
    m.ack()
    ch.tx_rollback()
    ch.close()  # the ack was rolled back, so closing the channel requeues the message
    m = q(conn.default_channel).get(no_ack=True, accept=ACCEPT)
    assert (m.payload, m.delivery_info["redelivered"]) == ("committed-1", True)
    # and confirm mode cannot be entered from tx mode
    ch = conn.channel()
    ch.tx_select()
    with pytest.raises(amqp.exceptions.PreconditionFailed) as info:
        ch.confirm_select()
    assert (info.value.reply_code, info.value.reply_text, info.value.method_sig) == (
        406, "PRECONDITION_FAILED - cannot switch from tx to confirm mode", (85, 10))


# --------------------------------------------------------------------------- QoS

def _two_queues_with_five_each(connect, conn):
    publisher = connect(confirm=True)
    q1, q2 = Queue(uniq("qos1"), exclusive=True), Queue(uniq("qos2"), exclusive=True)
    for q in (q1, q2):
        q(conn.default_channel).declare()
    producer = Producer(publisher.default_channel, serializer="json")
    for q in (q1, q2):
        for i in range(5):
            producer.publish(i, routing_key=q.name)  # confirmed: all ten are queued before consuming
    return q1, q2


def test_consumer_prefetch_count_is_per_consumer(connect):
    """Consumer(prefetch_count=N) sends basic.qos(global=False): on RabbitMQ 3.x a limit for each new consumer."""
    conn = connect()
    q1, q2 = _two_queues_with_five_each(connect, conn)
    ch = conn.channel()
    got1, got2 = [], []
    Consumer(ch, queues=[q1], callbacks=[collect(got1, ack=False)], accept=ACCEPT, prefetch_count=2).consume()
    Consumer(ch, queues=[q2], callbacks=[collect(got2, ack=False)], accept=ACCEPT, prefetch_count=2).consume()
    drain_until(conn, lambda: len(got1) == 2 and len(got2) == 2)
    assert (ready_count(conn, q1.name), ready_count(conn, q2.name)) == (3, 3)
    assert (len(got1), len(got2)) == (2, 2)
    got1[0][1].ack()
    drain_until(conn, lambda: len(got1) == 3)
    assert (ready_count(conn, q1.name), ready_count(conn, q2.name)) == (2, 3)
    assert [b for b, _ in got1] == [0, 1, 2]


def test_basic_qos_global_is_per_channel(connect):
    """basic.qos(global=True) on the channel: on RabbitMQ 3.x one limit shared by all its consumers."""
    conn = connect()
    q1, q2 = _two_queues_with_five_each(connect, conn)
    ch = conn.default_channel
    ch.basic_qos(prefetch_size=0, prefetch_count=3, a_global=True)
    got = []
    Consumer(ch, queues=[q1], callbacks=[collect(got, ack=False)], accept=ACCEPT).consume()
    Consumer(ch, queues=[q2], callbacks=[collect(got, ack=False)], accept=ACCEPT).consume()
    drain_until(conn, lambda: len(got) == 3)
    assert ready_count(conn, q1.name) + ready_count(conn, q2.name) == 7
    assert len(got) == 3
    got[0][1].ack()
    drain_until(conn, lambda: len(got) == 4)
    assert ready_count(conn, q1.name) + ready_count(conn, q2.name) == 6


def test_qos_global_and_per_consumer_limits_both_apply(connect):
    """Per-consumer limits set first, then global=True: each consumer has its own limit and the channel one too."""
    conn = connect()
    q1, q2 = _two_queues_with_five_each(connect, conn)
    ch = conn.channel()
    got1, got2 = [], []
    Consumer(ch, queues=[q1], callbacks=[collect(got1, ack=False)], accept=ACCEPT, prefetch_count=1).consume()
    second = Consumer(ch, queues=[q2], callbacks=[collect(got2, ack=False)], accept=ACCEPT, prefetch_count=5)
    ch.basic_qos(prefetch_size=0, prefetch_count=3, a_global=True)
    second.consume()
    drain_until(conn, lambda: len(got1) == 1 and len(got2) == 2)
    assert (ready_count(conn, q1.name), ready_count(conn, q2.name)) == (4, 3)


def test_per_consumer_qos_lifts_the_channel_limit(connect):
    """RabbitMQ 3.x: basic.qos(global=False) after global=True removes the channel-wide limit (unlimit_prefetch),
    so kombu's Consumer(prefetch_count=..) on a channel with a global limit leaves only per-consumer limits."""
    conn = connect()
    q1, q2 = _two_queues_with_five_each(connect, conn)
    ch = conn.channel()
    ch.basic_qos(prefetch_size=0, prefetch_count=3, a_global=True)
    got1, got2 = [], []
    Consumer(ch, queues=[q1], callbacks=[collect(got1, ack=False)], accept=ACCEPT, prefetch_count=1).consume()
    Consumer(ch, queues=[q2], callbacks=[collect(got2, ack=False)], accept=ACCEPT, prefetch_count=5).consume()
    drain_until(conn, lambda: len(got1) == 1 and len(got2) == 5)
    assert (ready_count(conn, q1.name), ready_count(conn, q2.name)) == (4, 0)
    assert len(got1) == 1


def test_kombu_decides_rabbitmq_3x_qos_semantics(connect):
    """kombu's pyamqp transport picks its QoS semantics from server_properties (``qos_semantics_matches_spec``):
    product 'RabbitMQ' with a version in [3.3, 4.0) means global=False is per consumer, as on RabbitMQ 3.x.
    Against any other product kombu assumes the spec's semantics, and Celery would then send global=False
    where on RabbitMQ 3.x it sends global=True (see the next test)."""
    conn = connect()
    props = conn.connection.server_properties
    assert props["product"] == "RabbitMQ"
    assert (3, 3) <= tuple(int(x) for x in props["version"].split(".")[:2]) < (4, 0)
    assert conn.qos_semantics_matches_spec is False


def test_celery_style_prefetch_is_per_channel_as_on_rabbitmq_3x(connect):
    """Celery: ``apply_global = not qos_semantics_matches_spec``; on RabbitMQ 3.x its limit spans the channel."""
    conn = connect()
    q1, q2 = _two_queues_with_five_each(connect, conn)
    ch = conn.channel()
    got = []
    consumer = Consumer(ch, queues=[q1, q2], callbacks=[collect(got, ack=False)], accept=ACCEPT)
    consumer.qos(prefetch_count=2, apply_global=not conn.qos_semantics_matches_spec)
    consumer.consume()
    drain_until(conn, lambda: len(got) >= 2)
    assert ready_count(conn, q1.name) + ready_count(conn, q2.name) == 8


# ------------------------------------------------------------------------- errors

def test_channel_error_not_found(connect):
    conn = connect()
    ch = conn.channel()
    qn = uniq("noq")
    with pytest.raises(amqp.exceptions.NotFound) as info:
        ch.queue_declare(qn, passive=True)
    assert (info.value.reply_code, info.value.reply_text, info.value.method_sig) == (
        404, f"NOT_FOUND - no queue '{qn}' in vhost '/'", (50, 10))

    x = uniq("nox")
    with pytest.raises(amqp.exceptions.NotFound) as info:
        Exchange(x, type="direct")(conn.channel()).declare(passive=True)
    assert (info.value.reply_code, info.value.reply_text, info.value.method_sig) == (
        404, f"NOT_FOUND - no exchange '{x}' in vhost '/'", (40, 10))

    # without confirms the publish error surfaces on the channel's next synchronous call
    ch = conn.channel()
    Producer(ch, exchange=Exchange(x, type="fanout"), auto_declare=False, serializer="json").publish(
        "x", routing_key="k")
    with pytest.raises(amqp.exceptions.NotFound) as info:
        ch.queue_declare("", exclusive=True)
    assert (info.value.reply_code, info.value.reply_text, info.value.method_sig) == (
        404, f"NOT_FOUND - no exchange '{x}' in vhost '/'", (60, 40))
    # the connection survives channel errors
    assert conn.channel().queue_declare("", exclusive=True).message_count == 0


def test_channel_error_inequivalent_args(connect):
    conn = connect()
    x = uniq("ineq")
    Exchange(x, type="direct", durable=False, auto_delete=True)(conn.channel()).declare()
    with pytest.raises(amqp.exceptions.PreconditionFailed) as info:
        Exchange(x, type="topic", durable=False, auto_delete=True)(conn.channel()).declare()
    assert (info.value.reply_code, info.value.reply_text, info.value.method_sig) == (
        406, f"PRECONDITION_FAILED - inequivalent arg 'type' for exchange '{x}' in vhost '/': received 'topic' "
             f"but current is 'direct'", (40, 10))
    with pytest.raises(amqp.exceptions.PreconditionFailed) as info:
        Exchange(x, type="direct", durable=True, auto_delete=True)(conn.channel()).declare()  # kombu's default
    assert info.value.reply_text == (f"PRECONDITION_FAILED - inequivalent arg 'durable' for exchange '{x}' in "
                                     f"vhost '/': received 'true' but current is 'false'")
    conn.channel().exchange_delete(x)

    qn = uniq("ineq-q")
    Queue(qn, durable=False, queue_arguments={"x-message-ttl": 1000})(conn.channel()).declare()
    try:
        with pytest.raises(amqp.exceptions.PreconditionFailed) as info:
            Queue(qn, durable=False, queue_arguments={"x-message-ttl": 2000})(conn.channel()).declare()
        assert info.value.reply_text == (f"PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue "
                                         f"'{qn}' in vhost '/': received '2000' but current is '1000'")
        with pytest.raises(amqp.exceptions.PreconditionFailed) as info:
            Queue(qn, durable=False)(conn.channel()).declare()
        assert info.value.reply_text == (f"PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue "
                                         f"'{qn}' in vhost '/': received none but current is the value '1000' of "
                                         f"type 'signedint'")
        with pytest.raises(amqp.exceptions.PreconditionFailed) as info:
            Queue(qn, durable=True, queue_arguments={"x-message-ttl": 1000})(conn.channel()).declare()
        assert info.value.reply_text == (f"PRECONDITION_FAILED - inequivalent arg 'durable' for queue '{qn}' in "
                                         f"vhost '/': received 'true' but current is 'false'")
        # arguments RabbitMQ does not compare (old Celery configs still send x-ha-policy) are accepted
        Queue(qn, durable=False, queue_arguments={"x-message-ttl": 1000, "x-ha-policy": "all"})(
            conn.channel()).declare()
    finally:
        conn.channel().queue_delete(qn)


def test_queue_declared_by_aio_pika_redeclares_from_kombu(connect, amqp_url):
    """pamqp sends 10 as a 'byte', py-amqp as a 'signedint': RabbitMQ compares integer arguments by value
    across widths (one type class), but a float is never equivalent to an integer."""
    import asyncio

    import aio_pika

    name = uniq("cross")

    async def declare_with_aio_pika():
        async with await aio_pika.connect(amqp_url) as c:
            ch = await c.channel()
            await ch.declare_queue(name, durable=False, auto_delete=False, arguments={"x-max-length": 10})

    asyncio.run(asyncio.wait_for(declare_with_aio_pika(), 10))
    conn = connect()
    try:
        Queue(name, durable=False, queue_arguments={"x-max-length": 10})(conn.channel()).declare()
        with pytest.raises(amqp.exceptions.PreconditionFailed) as info:
            Queue(name, durable=False, queue_arguments={"x-max-length": 10.0})(conn.channel()).declare()
        assert info.value.reply_text == (f"PRECONDITION_FAILED - inequivalent arg 'x-max-length' for queue "
                                         f"'{name}' in vhost '/': received '10.0' but current is '10'")
    finally:
        conn.channel().queue_delete(name)


def test_channel_error_resource_locked_and_exclusive_consumer(connect):
    owner, other = connect(), connect()
    exq = Queue(uniq("excl"), exclusive=True)
    exq(owner.default_channel).declare()
    locked = (f"RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{exq.name}' in vhost '/'. It "
              "could be originally declared on another connection or the exclusive property value does not match "
              "that of the original declaration.")
    with pytest.raises(amqp.exceptions.ResourceLocked) as info:
        exq(other.channel()).declare()
    assert (info.value.reply_code, info.value.reply_text, info.value.method_sig) == (405, locked, (50, 10))
    with pytest.raises(amqp.exceptions.ResourceLocked) as info:
        other.channel().basic_get(exq.name)
    assert (info.value.reply_text, info.value.method_sig) == (locked, (60, 70))

    shared = Queue(uniq("shared"), durable=False, auto_delete=True)
    shared(owner.default_channel).declare()
    owner.default_channel.basic_consume(shared.name, exclusive=True, callback=lambda m: None)
    with pytest.raises(amqp.exceptions.AccessRefused) as info:
        other.channel().basic_consume(shared.name, callback=lambda m: None)
    assert (info.value.reply_code, info.value.reply_text, info.value.method_sig) == (
        403, f"ACCESS_REFUSED - queue '{shared.name}' in vhost '/' in exclusive use", (60, 20))


def test_connection_error_vhost_not_found(amqp_url):
    conn = kombu.Connection(amqp_url.rsplit("/", 1)[0] + "/no-such-vhost")
    try:
        with pytest.raises(amqp.exceptions.NotAllowed) as info:
            conn.connect()
        assert (info.value.reply_code, info.value.reply_text, info.value.method_sig) == (
            530, "NOT_ALLOWED - vhost no-such-vhost not found", (10, 40))
    finally:
        conn.release()


def test_connection_error_reused_consumer_tag(connect):
    conn = connect()
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).queue
    ch.basic_consume(q, consumer_tag="tag-1", callback=lambda m: None)
    ch.basic_consume(q, consumer_tag="tag-1", callback=lambda m: None, nowait=True)
    with pytest.raises(amqp.exceptions.NotAllowed) as info:
        drain_until(conn, lambda: False, timeout=2)
    assert (info.value.reply_code, info.value.reply_text, info.value.method_sig) == (
        530, "NOT_ALLOWED - attempt to reuse consumer tag 'tag-1'", (60, 20))
    assert not conn.connected


def test_connection_error_unknown_exchange_type(connect):
    conn = connect()
    with pytest.raises(amqp.exceptions.InvalidCommand) as info:
        conn.channel().exchange_declare(uniq("x"), "x-no-such-type")
    assert (info.value.reply_code, info.value.reply_text, info.value.method_sig) == (
        503, "COMMAND_INVALID - unknown exchange type 'x-no-such-type'", (40, 10))
    assert not conn.connected


# --------------------------------------------------------------------- lifecycles

def test_publish_to_auto_deleted_fanout_exchange_is_not_found(connect):
    name = uniq("gone")
    exchange = Exchange(name, type="fanout", durable=False, auto_delete=True)
    consumer_conn = connect()
    got = []
    Consumer(consumer_conn.channel(), queues=[Queue(uniq("sub"), exchange=exchange, exclusive=True)],
             callbacks=[collect(got)], accept=ACCEPT).consume()
    publisher = connect(confirm=True)
    # auto_declare=False: kombu would otherwise redeclare the exchange on publish
    producer = Producer(publisher.default_channel, exchange=exchange, auto_declare=False, serializer="json")
    producer.publish("while-alive")
    drain_until(consumer_conn, lambda: len(got) == 1)
    assert got[0][0] == "while-alive"
    consumer_conn.release()  # its exclusive queue goes, then the binding, then the auto-delete exchange
    with pytest.raises(amqp.exceptions.NotFound) as info:
        producer.publish("after")
    assert (info.value.reply_code, info.value.reply_text, info.value.method_sig) == (
        404, f"NOT_FOUND - no exchange '{name}' in vhost '/'", (60, 40))


def test_closing_connection_requeues_unacked(connect):
    keeper = connect(confirm=True)
    q = Queue(uniq("requeue"), durable=False, auto_delete=False)
    q(keeper.default_channel).declare()
    try:
        producer = Producer(keeper.default_channel, serializer="json")
        for i in range(5):
            producer.publish(i, routing_key=q.name)
        worker = connect()
        got = []
        Consumer(worker.channel(), queues=[q], callbacks=[collect(got, ack=False)], accept=ACCEPT).consume()
        drain_until(worker, lambda: len(got) == 5)
        assert [(b, m.delivery_info["redelivered"]) for b, m in got] == [(i, False) for i in range(5)]
        got[1][1].ack()
        assert ready_count(keeper, q.name) == 0
        worker.release()
        assert ready_count(keeper, q.name) == 4
        again = [q(keeper.default_channel).get(no_ack=True, accept=ACCEPT) for _ in range(4)]
        assert [(m.payload, m.delivery_info["redelivered"]) for m in again] == [(0, True), (2, True), (3, True),
                                                                                (4, True)]
    finally:
        keeper.default_channel.queue_delete(q.name)
