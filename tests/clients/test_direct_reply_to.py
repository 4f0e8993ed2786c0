"""Direct reply-to (``amq.rabbitmq.reply-to``) through pika and aio-pika.

Every expectation here was recorded against RabbitMQ 3.10.8 (run the suite with
``WARRENMQ_CLIENT_TESTS_URL`` to check it against another broker), including the
quirks clients can see: replies carry the requesting channel's *next* delivery
tag without using it up, a ``mandatory`` reply comes back ``NO_ROUTE`` although it
was delivered, and a reply published inside a transaction is delivered before
the commit.

A reply that must *not* arrive is checked without sleeping: the same replier
channel then publishes a reply that must arrive, and deliveries from one channel
keep their order, so once the second is in, the first would have been too.
"""
from __future__ import annotations

import asyncio
import uuid

import aio_pika
import amqp
import pika
import pytest
from pika.exceptions import ChannelClosedByBroker

from . import helpers as H

pytestmark = pytest.mark.timeout(30)

REPLY_TO = "amq.rabbitmq.reply-to"


@pytest.fixture
def connect(url):
    conns = []

    def _connect():
        params = pika.URLParameters(url)
        params.connection_attempts = 1
        conn = pika.BlockingConnection(params)
        conns.append(conn)
        return conn

    yield _connect
    for conn in conns:
        if conn.is_open:
            conn.close()


class Requester:
    """A channel with a reply consumer on the pseudo-queue, collecting what it gets."""

    def __init__(self, conn, auto_ack=True):
        self.conn = conn
        self.ch = conn.channel()
        self.replies = []  # (method, properties, body)
        self.tag = self.ch.basic_consume(REPLY_TO, lambda c, m, p, b: self.replies.append((m, p, b)),
                                         auto_ack=auto_ack)

    def address(self) -> str:
        """The rewritten reply_to of a message published with reply_to=amq.rabbitmq.reply-to."""
        q = self.ch.queue_declare("", exclusive=True).method.queue
        self.ch.basic_publish("", q, b"probe", pika.BasicProperties(reply_to=REPLY_TO))
        _, props, _ = self.ch.basic_get(q, auto_ack=True)
        return props.reply_to

    def wait(self, n: int, *others) -> list:
        def pump():
            self.conn.process_data_events(time_limit=0.005)
            for c in others:
                c.process_data_events(time_limit=0)
        H.wait_until(lambda: len(self.replies) >= n, pump, what=f"{n} replies")
        return self.replies


def closed_with(exc_info, code, text):
    assert (exc_info.value.reply_code, exc_info.value.reply_text) == (code, text)


def test_capability_is_advertised(connect):
    conn = connect()
    assert conn._impl.server_properties["capabilities"]["direct_reply_to"] is True


def test_rpc_round_trip(connect):
    requester = Requester(connect())
    server_conn = connect()
    server = server_conn.channel()
    rpc_queue = server.queue_declare(H.unique("rpc"), exclusive=True).method.queue
    seen = []

    def on_request(ch, method, props, body):
        seen.append(props.reply_to)
        ch.basic_publish("", props.reply_to, H.rpc_answer(body),
                         pika.BasicProperties(correlation_id=props.correlation_id))
        ch.basic_ack(method.delivery_tag)

    server.basic_consume(rpc_queue, on_request)
    corr = str(uuid.uuid4())
    requester.ch.basic_publish("", rpc_queue, b"7", pika.BasicProperties(reply_to=REPLY_TO, correlation_id=corr))
    [(method, props, body)] = requester.wait(1, server_conn)
    assert body == b"49" and props.correlation_id == corr
    assert seen[0].startswith(REPLY_TO + ".") and len(seen[0]) > len(REPLY_TO) + 1
    # delivered from the default exchange with the full reply address as the routing key
    assert (method.consumer_tag, method.exchange, method.routing_key, method.redelivered) == (
        requester.tag, "", seen[0], False)


def test_only_reply_to_is_rewritten(connect):
    requester = Requester(connect())
    q = requester.ch.queue_declare("", exclusive=True).method.queue
    props = pika.BasicProperties(content_type="text/plain", headers={"a": 1, "b": "x"}, delivery_mode=2, priority=3,
                                 correlation_id="c1", reply_to=REPLY_TO, expiration="60000", message_id="m1",
                                 app_id="tests")
    requester.ch.basic_publish("", q, b"body", props)
    _, got, body = requester.ch.basic_get(q, auto_ack=True)
    assert body == b"body" and got.reply_to.startswith(REPLY_TO + ".")
    for name in ("content_type", "headers", "delivery_mode", "priority", "correlation_id", "expiration",
                 "message_id", "app_id"):
        assert getattr(got, name) == getattr(props, name), name
    # any other reply_to, including another address, is left alone
    other = got.reply_to + "x"
    requester.ch.basic_publish("", q, b"", pika.BasicProperties(reply_to=other))
    assert requester.ch.basic_get(q, auto_ack=True)[1].reply_to == other


def test_replies_use_the_next_delivery_tag_without_consuming_it(connect):
    requester = Requester(connect())
    address = requester.address()  # its basic.get took delivery tag 1
    replier = connect().channel()
    replier.basic_publish("", address, b"r1")
    replier.basic_publish("", address, b"r2")
    replies = requester.wait(2)
    assert [(m.delivery_tag, b) for m, _, b in replies] == [(2, b"r1"), (2, b"r2")]


def test_consuming_with_acks_is_refused(connect):
    ch = connect().channel()
    with pytest.raises(ChannelClosedByBroker) as e:
        ch.basic_consume(REPLY_TO, lambda *a: None, auto_ack=False)
    closed_with(e, H.PRECONDITION_FAILED, "PRECONDITION_FAILED - reply consumer cannot acknowledge")


def test_second_reply_consumer_on_a_channel_is_refused(connect):
    requester = Requester(connect())
    with pytest.raises(ChannelClosedByBroker) as e:
        requester.ch.basic_consume(REPLY_TO, lambda *a: None, auto_ack=True)
    closed_with(e, H.PRECONDITION_FAILED, "PRECONDITION_FAILED - reply consumer already set")


def test_publishing_with_the_pseudo_reply_to_needs_a_reply_consumer_on_that_channel(connect):
    conn = connect()
    Requester(conn)  # a reply consumer on *another* channel does not count
    ch = conn.channel()
    ch.confirm_delivery()  # so the publish waits for the broker's answer
    with pytest.raises(ChannelClosedByBroker) as e:
        ch.basic_publish("", "anywhere", b"", pika.BasicProperties(reply_to=REPLY_TO))
    closed_with(e, H.PRECONDITION_FAILED, "PRECONDITION_FAILED - fast reply consumer does not exist")


def test_declaring_the_pseudo_queue_and_addresses(connect):
    conn = connect()
    requester = Requester(conn)
    address = requester.address()
    ch = connect().channel()
    for name, kw in ((REPLY_TO, {"passive": True}), (REPLY_TO, {"exclusive": True, "durable": True}),
                     (address, {"passive": True}), (address, {})):
        ok = ch.queue_declare(name, **kw).method
        assert (ok.queue, ok.message_count, ok.consumer_count) == (name, 0, 1)
    for name in (REPLY_TO + ".nonsense", REPLY_TO + "x"):
        ch = connect().channel()
        with pytest.raises(ChannelClosedByBroker) as e:
            ch.queue_declare(name, passive=True)
        closed_with(e, H.NOT_FOUND, H.no_queue(name))
    # the pseudo-queue is no real queue
    ch = connect().channel()
    with pytest.raises(ChannelClosedByBroker) as e:
        ch.basic_get(REPLY_TO)
    closed_with(e, H.NOT_FOUND, H.no_queue(REPLY_TO))


def test_cancel_drops_later_replies_and_a_new_consumer_gets_a_new_address(connect):
    requester = Requester(connect())
    old = requester.address()
    requester.ch.basic_cancel(requester.tag)
    with pytest.raises(ChannelClosedByBroker) as e:
        connect().channel().queue_declare(old, passive=True)
    closed_with(e, H.NOT_FOUND, H.no_queue(old))
    requester.ch.basic_consume(REPLY_TO, lambda c, m, p, b: requester.replies.append((m, p, b)), auto_ack=True)
    new = requester.address()
    assert new != old
    replier = connect().channel()
    replier.basic_publish("", old, b"lost")
    replier.basic_publish("", new, b"kept")
    assert [b for _, _, b in requester.wait(1)] == [b"kept"]


def test_reply_to_a_closed_channel_is_dropped_and_mandatory_replies_come_back(connect):
    gone = Requester(connect())
    gone_address = gone.address()
    gone.ch.close()
    requester = Requester(connect())
    address = requester.address()
    replier_conn = connect()
    replier = replier_conn.channel()
    returned = []
    replier.add_on_return_callback(lambda ch, m, p, b: returned.append((m.reply_code, m.reply_text, b)))
    replier.basic_publish("", gone_address, b"lost", mandatory=True)
    replier.basic_publish("", address, b"delivered", mandatory=True)
    assert [b for _, _, b in requester.wait(1)] == [b"delivered"]
    H.wait_until(lambda: len(returned) == 2, lambda: replier_conn.process_data_events(time_limit=0.005),
                 what="returns")
    # RabbitMQ routes a reply to no queue, so mandatory returns it even when it was delivered
    assert returned == [(312, "NO_ROUTE", b"lost"), (312, "NO_ROUTE", b"delivered")]


def test_reply_inside_a_transaction_is_delivered_before_commit(connect):
    requester = Requester(connect())
    address = requester.address()
    replier = connect().channel()
    replier.tx_select()
    replier.basic_publish("", address, b"in tx")
    assert [b for _, _, b in requester.wait(1)] == [b"in tx"]
    replier.tx_rollback()


def test_server_named_reply_consumer_tag_with_py_amqp(url):
    params = pika.URLParameters(url)
    with amqp.Connection(f"{params.host}:{params.port}", userid=params.credentials.username,
                         password=params.credentials.password, virtual_host=params.virtual_host) as conn:
        ch = conn.channel()
        tag = ch.basic_consume(REPLY_TO, consumer_tag="", no_ack=True, callback=lambda m: None)
        assert tag.startswith("amq.ctag-") and len(tag) == len("amq.ctag-") + 22


def test_aio_pika_rpc_with_direct_reply_to(url):
    async def main():
        async with await aio_pika.connect(url) as conn:
            server_ch = await conn.channel()
            rpc_queue = await server_ch.declare_queue(H.unique("rpc"), exclusive=True)

            async def on_request(message: aio_pika.abc.AbstractIncomingMessage):
                async with message.process():
                    await server_ch.default_exchange.publish(
                        aio_pika.Message(H.rpc_answer(message.body), correlation_id=message.correlation_id),
                        routing_key=message.reply_to)

            await rpc_queue.consume(on_request)

            ch = await conn.channel()
            replies = await ch.get_queue(REPLY_TO, ensure=False)
            answers: dict[str, asyncio.Future] = {}

            async def on_reply(message: aio_pika.abc.AbstractIncomingMessage):
                answers[message.correlation_id].set_result(message.body)

            await replies.consume(on_reply, no_ack=True)
            loop = asyncio.get_running_loop()
            for n in range(1, 6):
                answers[str(n)] = loop.create_future()
                await ch.default_exchange.publish(
                    aio_pika.Message(str(n).encode(), correlation_id=str(n), reply_to=REPLY_TO),
                    routing_key=rpc_queue.name)
            return {k: await asyncio.wait_for(f, H.TIMEOUT) for k, f in answers.items()}

    assert asyncio.run(main()) == {str(n): str(n * n).encode() for n in range(1, 6)}
