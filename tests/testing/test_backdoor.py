"""The embedded brokers' back door: inspection, injection, waiting, recording and reset, without AMQP.

Each behaviour is checked against what a real client sees (pika for the threaded
broker, aio-pika for the one on the running loop).
"""
from __future__ import annotations

import asyncio
import threading
import time

import aio_pika
import pika
import pytest
from pika.exceptions import AMQPConnectionError, ConnectionClosedByBroker, StreamLostError

from warrenmq.testing import AsyncEmbeddedBroker, EmbeddedBroker, MessageInfo, QueueInfo

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def eb():
    with EmbeddedBroker() as b:
        yield b


@pytest.fixture
def ch(eb):
    conn = pika.BlockingConnection(pika.URLParameters(eb.url))
    yield conn.channel()
    if conn.is_open:
        try:
            conn.close()
        except (ConnectionClosedByBroker, StreamLostError):  # closed by a reset() in the test
            pass


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


# ------------------------------------------------------------------ inspection
def test_queues_and_messages_show_what_clients_published(eb, ch):
    ch.exchange_declare("orders", "topic")
    ch.queue_declare("eu", durable=True, arguments={"x-max-priority": 5})
    ch.queue_bind("eu", "orders", "eu.*")
    ch.queue_declare("empty")
    ch.basic_publish("orders", "eu.fr", b'{"id": 1}',
                     pika.BasicProperties(content_type="application/json", headers={"tenant": "acme", "n": 3},
                                          delivery_mode=2, priority=4, correlation_id="c-1"))
    ch.basic_publish("orders", "us.ny", b"unroutable")
    eb.wait_for_messages("eu", 1)

    queues = eb.queues()
    assert list(queues) == ["eu", "empty"]
    eu = queues["eu"]
    assert isinstance(eu, QueueInfo)
    assert (eu.messages_ready, eu.messages_unacknowledged, eu.messages, eu.consumers) == (1, 0, 1, 0)
    assert eu.durable and not eu.exclusive and not eu.auto_delete
    assert eu.arguments == {"x-max-priority": 5}
    assert eu.bindings == (("orders", "eu.*"),)
    assert queues["empty"].messages == 0

    [m] = eb.messages("eu")
    assert isinstance(m, MessageInfo)
    assert (m.body, m.exchange, m.routing_key, m.redelivered, m.unacked) == (b'{"id": 1}', "orders", "eu.fr",
                                                                            False, False)
    assert m.json() == {"id": 1} and m.text == '{"id": 1}'
    assert m.headers == {"tenant": "acme", "n": 3}
    p = m.properties
    assert (p.content_type, p.delivery_mode, p.priority, p.correlation_id) == ("application/json", 2, 4, "c-1")
    assert eb.exchanges()["orders"] == "topic"
    assert eb.queue("eu") == eu
    with pytest.raises(LookupError, match="no queue 'nope' in vhost '/'"):
        eb.queue("nope")
    with pytest.raises(LookupError, match="no queue 'nope'"):
        eb.messages("nope")
    with pytest.raises(LookupError, match="no vhost 'other'"):
        eb.queues(vhost="other")


def test_messages_are_in_delivery_order_and_unacked_ones_on_request(eb, ch):
    ch.queue_declare("q")
    for i in range(4):
        ch.basic_publish("", "q", str(i).encode())
    method, _, body = ch.basic_get("q")  # "0" is now unacked
    assert body == b"0"
    eb.wait_for_messages("q", 3)
    assert [m.body for m in eb.messages("q")] == [b"1", b"2", b"3"]
    everything = eb.messages("q", include_unacked=True)
    assert [(m.body, m.unacked) for m in everything] == [(b"0", True), (b"1", False), (b"2", False),
                                                         (b"3", False)]
    info = eb.queue("q")
    assert (info.messages_ready, info.messages_unacknowledged, info.messages) == (3, 1, 4)
    ch.basic_nack(method.delivery_tag, requeue=True)
    ch.connection.process_data_events(0)
    eb.wait_for_messages("q", 4)
    first = eb.messages("q")[0]
    assert (first.body, first.redelivered) == (b"0", True)


def test_snapshots_do_not_change_with_the_broker(eb, ch):
    ch.queue_declare("q", arguments={"x-message-ttl": 60000})
    ch.basic_publish("", "q", b"a", pika.BasicProperties(headers={"k": [1, 2]}))
    [m] = eb.wait_for_messages("q", 1)
    info = eb.queue("q")
    m.headers["k"].append(3)
    info.arguments["x-message-ttl"] = 1
    assert eb.messages("q")[0].headers == {"k": [1, 2]}
    assert eb.queue("q").arguments == {"x-message-ttl": 60000}


# ------------------------------------------------------------------- injection
def test_publish_routes_like_a_client_publish(eb, ch):
    ch.exchange_declare("logs", "topic")
    for name, key in (("all", "#"), ("errors", "*.error"), ("web", "web.*")):
        ch.queue_declare(name)
        ch.queue_bind(name, "logs", key)
    assert eb.publish("logs", "web.error", "boom", content_type="text/plain", headers={"level": 3}) == 3
    assert eb.publish("logs", "db.info", b"ok") == 1
    assert {n: q.messages_ready for n, q in eb.queues().items()} == {"all": 2, "errors": 1, "web": 1}
    method, props, body = ch.basic_get("errors", auto_ack=True)
    assert (body, method.exchange, method.routing_key) == (b"boom", "logs", "web.error")
    assert props.content_type == "text/plain" and props.headers == {"level": 3}


def test_publish_to_an_unbound_exchange_reaches_nobody(eb, ch):
    ch.exchange_declare("void", "fanout")
    assert eb.publish("void", "", b"x") == 0
    with pytest.raises(LookupError, match="no exchange 'missing' in vhost '/'"):
        eb.publish("missing", "", b"x")


def test_enqueue_delivers_to_a_waiting_consumer(eb, ch):
    ch.queue_declare("jobs")
    got = []

    def on_message(channel, method, props, body):
        got.append((body, props.delivery_mode, props.headers, props.message_id))
        channel.basic_ack(method.delivery_tag)

    ch.basic_consume("jobs", on_message)
    eb.enqueue("jobs", b"job-1", pika.BasicProperties(delivery_mode=2, headers={"try": 1}), message_id="m-1")
    deadline = time.monotonic() + 5
    while not got and time.monotonic() < deadline:
        ch.connection.process_data_events(0.05)
    assert got == [(b"job-1", 2, {"try": 1}, "m-1")]
    assert eb.wait_until_acked("jobs", 1).acked == 1
    with pytest.raises(LookupError, match="no queue 'missing'"):
        eb.enqueue("missing", b"x")


def test_enqueue_bypasses_routing_and_properties_are_validated(eb, ch):
    ch.queue_declare("q")
    ch.exchange_declare("fan", "fanout")  # q is not bound to it
    eb.enqueue("q", "text body", {"content_type": "text/plain", "expiration": 60000})
    [m] = eb.messages("q")
    assert (m.body, m.exchange, m.routing_key) == (b"text body", "", "q")
    assert (m.properties.content_type, m.properties.expiration) == ("text/plain", "60000")
    with pytest.raises(TypeError, match="unknown message properties: colour"):
        eb.enqueue("q", b"x", colour="red")
    with pytest.raises(ValueError, match="invalid expiration 'soon'"):
        eb.enqueue("q", b"x", expiration="soon")
    with pytest.raises(TypeError, match="body must be bytes or str"):
        eb.enqueue("q", {"a": 1})
    assert eb.queue("q").messages_ready == 1


def test_injected_message_expires_with_its_ttl(eb, ch):
    ch.queue_declare("q")
    eb.enqueue("q", b"short-lived", expiration="50")
    assert eb.queue("q").messages_ready == 1
    deadline = time.monotonic() + 5
    while eb.queue("q").messages_ready and time.monotonic() < deadline:
        time.sleep(0.01)
    assert eb.queue("q").messages_ready == 0  # dropped by the broker's timer, no client involved


# --------------------------------------------------------------------- waiting
def test_wait_for_messages_waits_for_a_publisher_on_another_thread(eb):
    def later():
        time.sleep(0.2)
        conn = pika.BlockingConnection(pika.URLParameters(eb.url))
        c = conn.channel()
        c.queue_declare("late")  # the queue does not exist yet when the wait starts
        for i in range(3):
            c.basic_publish("", "late", str(i).encode())
        conn.close()

    t = threading.Thread(target=later)
    start = time.monotonic()
    t.start()
    msgs = eb.wait_for_messages("late", 3, timeout=10)
    t.join()
    assert time.monotonic() - start >= 0.2
    assert [m.body for m in msgs] == [b"0", b"1", b"2"]


def test_wait_for_messages_times_out_with_the_queue_state(eb, ch):
    ch.queue_declare("q")
    ch.basic_publish("", "q", b"only one")
    start = time.monotonic()
    with pytest.raises(TimeoutError, match=r"waited 0.2s for 2 ready messages: queue 'q' in vhost '/' has 1 ready"):
        eb.wait_for_messages("q", 2, timeout=0.2)
    assert 0.2 <= time.monotonic() - start < 2
    with pytest.raises(TimeoutError, match="queue 'nope' does not exist"):
        eb.wait_for_messages("nope", timeout=0.05)


def test_wait_until_acked_counts_acks_not_deliveries(eb, ch):
    ch.queue_declare("q")
    for i in range(3):
        eb.enqueue("q", str(i))
    tags = [ch.basic_get("q")[0].delivery_tag for _ in range(3)]
    with pytest.raises(TimeoutError, match="waited 0.1s for 1 acks: .* 0 ready, 3 unacknowledged, 0 acked"):
        eb.wait_until_acked("q", 1, timeout=0.1)
    with pytest.raises(TimeoutError, match="nothing unacknowledged"):
        eb.wait_until_acked("q", timeout=0.1)
    ch.basic_ack(tags[0])
    assert eb.wait_until_acked("q", 1).acked == 1
    ch.basic_reject(tags[1], requeue=False)  # a rejected message is not an acked one
    ch.basic_ack(tags[2])
    info = eb.wait_until_acked("q", 2)
    assert (info.acked, info.messages) == (2, 0)
    assert eb.wait_until_acked("q").messages == 0


def test_wait_until_acked_without_count_waits_for_the_queue_to_drain(eb, ch):
    ch.queue_declare("q")
    ch.basic_qos(prefetch_count=1)
    eb.enqueue("q", "a")
    eb.enqueue("q", "b")
    seen = []

    def on_message(channel, method, props, body):
        seen.append(body)
        channel.basic_ack(method.delivery_tag)

    ch.basic_consume("q", on_message)

    def pump():
        for _ in range(100):
            if len(seen) == 2:
                return
            ch.connection.process_data_events(0.02)

    t = threading.Thread(target=pump)
    t.start()
    info = eb.wait_until_acked("q", timeout=10)
    t.join()
    assert seen == [b"a", b"b"] and info.acked == 2 and info.messages == 0


# ------------------------------------------------------------------- recording
def test_record_captures_publishes_to_one_exchange_only_while_active(eb, ch):
    ch.exchange_declare("events", "fanout")
    ch.exchange_declare("other", "fanout")
    ch.basic_publish("events", "", b"before")
    ch.exchange_declare("events", passive=True)  # a round trip: the broker has handled "before"
    with eb.record("events") as rec:
        ch.basic_publish("events", "created", b"1", pika.BasicProperties(headers={"v": 1}))
        ch.basic_publish("other", "", b"elsewhere")
        ch.basic_publish("events", "deleted", b"2")  # nobody is bound: still a publish to the exchange
        msgs = rec.wait(2)
    ch.basic_publish("events", "", b"after")
    ch.exchange_declare("events", passive=True)  # ... and "after"
    assert [(m.body, m.routing_key, m.exchange) for m in msgs] == [(b"1", "created", "events"),
                                                                    (b"2", "deleted", "events")]
    assert msgs[0].headers == {"v": 1}
    assert rec.bodies == [b"1", b"2"] and len(rec) == 2 and not rec.active
    assert eb.call(lambda: eb.broker.vhosts["/"].recorder) is None  # nothing left on the publish path


def test_record_every_exchange_and_nested_recordings(eb, ch):
    ch.queue_declare("q")
    ch.exchange_declare("x", "direct")
    with eb.record() as everything:
        with eb.record("") as default_only:
            ch.basic_publish("", "q", b"to-default")
            ch.basic_publish("x", "k", b"to-x")
            everything.wait(2)
        ch.basic_publish("x", "k", b"after-inner")
        everything.wait(3)
    assert [m.exchange for m in everything.messages] == ["", "x", "x"]
    assert default_only.bodies == [b"to-default"]


def test_record_sees_transactional_publishes_at_commit_only(eb, ch):
    ch.exchange_declare("x", "fanout")
    ch.tx_select()
    with eb.record("x") as rec:
        ch.basic_publish("x", "", b"rolled-back")
        ch.tx_rollback()
        ch.basic_publish("x", "", b"committed")
        ch.exchange_declare("x", passive=True)  # a round trip: the publish has reached the broker
        assert rec.bodies == []
        ch.tx_commit()
        rec.wait(1)
    assert rec.bodies == [b"committed"]


def test_record_includes_back_door_publishes_and_wait_times_out(eb, ch):
    with eb.record("amq.topic") as rec:
        eb.publish("amq.topic", "a.b", b"injected")
        assert rec.bodies == [b"injected"]
        with pytest.raises(TimeoutError, match="2 messages published to exchange 'amq.topic' .* recorded 1"):
            rec.wait(2, timeout=0.1)


# ----------------------------------------------------------------------- reset
def test_reset_restores_a_fresh_broker_and_closes_connections(eb):
    conn = pika.BlockingConnection(pika.URLParameters(eb.url))
    c = conn.channel()
    c.exchange_declare("x", "topic", durable=True)
    c.queue_declare("q", durable=True)
    c.queue_bind("q", "x", "#")
    c.basic_publish("x", "k", b"m")
    eb.wait_for_messages("q", 1)

    def tamper(broker):
        broker.add_vhost("other")
        broker.add_user("alice", "secret", vhosts={"/"})
        broker.add_user("guest", "changed", vhosts={"/"})
    eb._run(tamper)
    port = eb.port

    eb.reset()

    with pytest.raises((ConnectionClosedByBroker, StreamLostError)) as e:
        conn.process_data_events(1)
        c.queue_declare("q", passive=True)
    if isinstance(e.value, ConnectionClosedByBroker):
        assert e.value.reply_code == 320
    assert eb.queues() == {}
    assert set(eb.exchanges()) == {"", "amq.direct", "amq.fanout", "amq.topic", "amq.headers", "amq.match",
                                 "amq.rabbitmq.trace"}
    assert eb.call(lambda: (sorted(eb.broker.vhosts), sorted(eb.broker.users))) == (["/"], ["guest"])
    assert eb.port == port
    conn2 = pika.BlockingConnection(pika.URLParameters(eb.url))  # guest/guest works again
    c2 = conn2.channel()
    c2.queue_declare("q")  # declarable afresh, non-durable this time (no inequivalence error)
    c2.basic_publish("", "q", b"new")
    assert [m.body for m in eb.wait_for_messages("q", 1)] == [b"new"]
    conn2.close()
    alice = pika.URLParameters(eb.url.replace("guest:guest", "alice:secret"))
    with pytest.raises(AMQPConnectionError):
        pika.BlockingConnection(alice)


def test_reset_drops_active_recordings_and_unacked_messages(eb, ch):
    ch.queue_declare("q")
    eb.enqueue("q", b"x")
    assert ch.basic_get("q")[2] == b"x"  # unacked when the reset comes
    rec = eb.record()
    assert rec.active
    eb.reset()
    assert not rec.active
    rec.stop()  # harmless now
    assert eb.queues() == {}
    assert eb.call(lambda: eb.broker.vhosts["/"].recorder) is None
    assert eb.call(lambda: eb.broker.memory.used) == 0


def test_reset_during_a_ttl_leaves_no_timer_behind(eb, ch, caplog):
    ch.queue_declare("q", arguments={"x-message-ttl": 50})
    eb.enqueue("q", b"x")  # its expiry timer is armed on the old broker
    eb.reset()
    time.sleep(0.2)
    assert eb.queues() == {}
    # (the reset closing the client's connection is logged as RabbitMQ does: not a fault)
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL") and r.name != "warrenmq.connection"]


def test_reset_refuses_to_wipe_a_data_directory_it_does_not_own(tmp_path):
    from warrenmq.config import BrokerConfig
    config = BrokerConfig(host="127.0.0.1", port=0, data_dir=str(tmp_path / "mine"), fsync=False)
    with EmbeddedBroker(config) as b:
        conn = pika.BlockingConnection(pika.URLParameters(b.url))
        conn.channel().queue_declare("precious", durable=True)
        conn.close()
        with pytest.raises(RuntimeError, match="did not create"):
            b.reset()
        assert "precious" in b.queues()
    assert (tmp_path / "mine").exists()


def test_back_door_needs_a_running_broker():
    b = EmbeddedBroker()
    with pytest.raises(RuntimeError, match="not running"):
        b.queues()
    with pytest.raises(RuntimeError, match="not running"):
        b.reset()


# ------------------------------------------------------- AsyncEmbeddedBroker
def test_async_broker_back_door_with_aio_pika():
    async def main():
        async with AsyncEmbeddedBroker() as b:
            conn = await aio_pika.connect(b.url)
            closed = asyncio.get_running_loop().create_future()
            conn.close_callbacks.add(lambda _conn, exc: closed.done() or closed.set_result(exc))
            ch = await conn.channel()
            x = await ch.declare_exchange("jobs", aio_pika.ExchangeType.DIRECT)
            q = await ch.declare_queue("work")
            await q.bind(x, "run")
            with b.record("jobs") as rec:
                await x.publish(aio_pika.Message(b"from-client", headers={"a": 1}), routing_key="run")
                [published] = await rec.wait(1)
            assert (published.body, published.headers) == (b"from-client", {"a": 1})
            [queued] = await b.wait_for_messages("work", 1)
            assert queued.body == b"from-client"
            assert b.publish("jobs", "run", b"injected", priority=1) == 1
            b.enqueue("work", b"direct")
            assert b.queue("work").messages_ready == 3
            assert [m.body for m in b.messages("work")] == [b"from-client", b"injected", b"direct"]
            assert b.exchanges()["jobs"] == "direct"
            assert list(b.queues()) == ["work"]
            for _ in range(3):
                msg = await q.get(timeout=5)
                await msg.ack()
            info = await b.wait_until_acked("work", 3)
            assert info.acked == 3 and info.messages == 0
            with pytest.raises(TimeoutError, match="4 acks"):
                await b.wait_until_acked("work", 4, timeout=0.05)
            with pytest.raises(TimeoutError, match="1 ready messages"):
                await b.wait_for_messages("work", 1, timeout=0.05)
            await b.reset()
            assert b.queues() == {}
            exc = await asyncio.wait_for(closed, 5)  # the client was told why
            assert "320" in str(exc) and "reset" in str(exc)
    run(main())
