"""pika's AsyncioConnection (callback API) against a real WarrenMQ over TCP.

The same scenarios as the BlockingConnection suite, through pika's asynchronous
adapter: every broker reply arrives in a callback, which :class:`Pika` turns into
an awaited future so each scenario reads top to bottom.  Expected behaviour comes
from :mod:`.helpers`.
"""
from __future__ import annotations

import asyncio
import functools
import inspect
import time
import uuid

import pika
import pytest
from pika import spec
from pika.adapters.asyncio_connection import AsyncioConnection
from pika.exceptions import (
    ChannelClosedByBroker, ChannelClosedByClient, ConnectionClosedByBroker, ProbableAccessDeniedError,
)

from . import helpers as H

pytestmark = pytest.mark.timeout(30)


class Pika:
    """Opens pika AsyncioConnections and channels and awaits their callbacks."""

    def __init__(self, url: str):
        self.url = url
        self.loop = asyncio.get_running_loop()
        self.conns: list = []
        self._conn_closed: dict = {}  # connection -> future of its close reason
        self._ch_closed: dict = {}  # channel -> future of its close reason

    async def connect(self, vhost=None) -> AsyncioConnection:
        params = pika.URLParameters(self.url)
        params.connection_attempts = 1
        if vhost is not None:
            params.virtual_host = vhost
        opened, closed = self.loop.create_future(), self.loop.create_future()
        conn = AsyncioConnection(
            params,
            on_open_callback=lambda c: opened.set_result(c),
            on_open_error_callback=lambda c, err: opened.set_exception(err),
            on_close_callback=lambda c, reason: closed.done() or closed.set_result(reason),
            custom_ioloop=self.loop)
        self.conns.append(conn)
        self._conn_closed[conn] = closed
        return await asyncio.wait_for(opened, H.TIMEOUT)

    async def channel(self, conn=None):
        conn = conn or await self.connect()
        opened, closed = self.loop.create_future(), self.loop.create_future()
        ch = conn.channel(on_open_callback=opened.set_result)
        ch.add_on_close_callback(lambda c, reason: closed.done() or closed.set_result(reason))
        self._ch_closed[ch] = closed
        return await asyncio.wait_for(opened, H.TIMEOUT)

    async def rpc(self, ch, method, *args, **kw):
        """Call a pika channel method that takes ``callback=``; return the reply frame's method.

        Raises the close reason if the channel is closed instead of answering.
        """
        reply = self.loop.create_future()
        method(*args, callback=lambda *a: reply.done() or reply.set_result(a), **kw)
        got = await self._first(reply, self._ch_closed[ch])
        frame = got[0]
        return frame.method if isinstance(frame, pika.frame.Method) else got

    async def get(self, ch, queue, auto_ack=False):
        """basic.get: (method, properties, body) for get-ok, ``None`` for get-empty."""
        reply = self.loop.create_future()
        ch.add_callback(lambda frame: reply.done() or reply.set_result(None), [spec.Basic.GetEmpty])
        ch.basic_get(queue, lambda _c, m, p, b: reply.done() or reply.set_result((m, p, b)), auto_ack=auto_ack)
        return await self._first(reply, self._ch_closed[ch])

    async def get_all(self, ch, queue, with_props=False):
        out = []
        while (got := await self.get(ch, queue, auto_ack=True)) is not None:
            out.append(got if with_props else (got[0].routing_key, got[2]))
        return out

    async def ready_count(self, ch, queue) -> int:
        return (await self.rpc(ch, ch.queue_declare, queue, passive=True)).message_count

    async def consume(self, ch, queue, on_message, **kw) -> str:
        """basic.consume; returns the consumer tag once consume-ok has arrived."""
        reply = self.loop.create_future()
        tag = ch.basic_consume(queue, on_message, callback=lambda frame: reply.done() or reply.set_result(frame),
                               **kw)
        frame = await self._first(reply, self._ch_closed[ch])
        assert frame.method.consumer_tag == tag
        return tag

    async def channel_closed(self, ch):
        """The reason the channel was closed (waits for it)."""
        return await asyncio.wait_for(asyncio.shield(self._ch_closed[ch]), H.TIMEOUT)

    async def connection_closed(self, conn):
        return await asyncio.wait_for(asyncio.shield(self._conn_closed[conn]), H.TIMEOUT)

    async def close(self, conn) -> None:
        if conn.is_open:
            conn.close()
        await self.connection_closed(conn)

    async def until(self, predicate, what="condition") -> None:
        deadline = time.monotonic() + H.TIMEOUT
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.002)

    async def _first(self, reply, closed):
        done, _ = await asyncio.wait({reply, closed}, timeout=H.TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
        if reply in done:
            return reply.result()
        if closed in done:
            raise closed.result()
        raise AssertionError("no reply from the broker")

    async def close_all(self) -> None:
        for conn in self.conns:
            if conn.is_open:
                conn.close()
        for conn in self.conns:
            if not conn.is_closed:
                await asyncio.wait({self._conn_closed[conn]}, timeout=H.TIMEOUT)


def pika_async(fn):
    """Turn ``async def test_x(pk, *params)`` into a sync test taking ``url`` (and the same params)."""
    sig = inspect.signature(fn)
    params = list(sig.parameters.values())[1:]

    @functools.wraps(fn)
    def test(url, **kw):
        async def main():
            pk = Pika(url)
            try:
                await fn(pk, **kw)
            finally:
                await pk.close_all()
        asyncio.run(main())

    del test.__wrapped__
    test.__signature__ = sig.replace(parameters=[inspect.Parameter("url", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
                                     + params)
    return test


def assert_closed(reason, cls, code, text):
    assert isinstance(reason, cls), reason
    assert (reason.reply_code, reason.reply_text) == (code, text)


async def declare_bound_queues(pk, ch, exchange, bindings):
    names = {}
    for suffix, spec_ in bindings.items():
        q = names[suffix] = (await pk.rpc(ch, ch.queue_declare, H.unique(suffix))).queue
        if isinstance(spec_, dict):
            await pk.rpc(ch, ch.queue_bind, q, exchange, arguments=spec_)
        else:
            for key in spec_:
                await pk.rpc(ch, ch.queue_bind, q, exchange, routing_key=key)
    return names


# ---------------------------------------------------------------------------- routing
@pika_async
async def test_fanout_broadcasts_to_every_consumer(pk):
    ch = await pk.channel()
    ex = H.unique("logs")
    await pk.rpc(ch, ch.exchange_declare, ex, "fanout")
    consumers = []
    for _ in range(3):
        cch = await pk.channel()
        q = (await pk.rpc(cch, cch.queue_declare, "", exclusive=True)).queue
        await pk.rpc(cch, cch.queue_bind, q, ex)
        got = []
        await pk.consume(cch, q, lambda _c, m, _p, body, got=got: got.append((m.exchange, m.routing_key, body)),
                         auto_ack=True)
        consumers.append((q, got))
    names = [q for q, _ in consumers]
    assert all(n.startswith("amq.gen-") for n in names) and len(set(names)) == 3

    bodies = [f"log line {i}".encode() for i in range(5)]
    for body in bodies:
        ch.basic_publish(ex, "any.key", body)
    await pk.until(lambda: all(len(got) >= len(bodies) for _, got in consumers), "fanout deliveries")
    await asyncio.sleep(0.01)
    for _, got in consumers:
        assert got == [(ex, "any.key", b) for b in bodies]


@pika_async
async def test_direct_routing(pk):
    ch = await pk.channel()
    ex = H.unique("direct")
    await pk.rpc(ch, ch.exchange_declare, ex, "direct")
    queues = await declare_bound_queues(pk, ch, ex, H.DIRECT_BINDINGS)
    for key in H.DIRECT_KEYS:
        ch.basic_publish(ex, key, key.encode())
    for suffix, q in queues.items():
        assert await pk.get_all(ch, q) == [(k, k.encode()) for k in H.DIRECT_EXPECTED[suffix]], suffix


@pika_async
async def test_topic_routing_with_star_and_hash(pk):
    ch = await pk.channel()
    ex = H.unique("topic")
    await pk.rpc(ch, ch.exchange_declare, ex, "topic")
    queues = await declare_bound_queues(pk, ch, ex, H.TOPIC_BINDINGS)
    returned = []
    ch.add_on_return_callback(lambda _c, m, _p, body: returned.append(m.routing_key))
    for key in H.TOPIC_KEYS:
        ch.basic_publish(ex, key, key.encode(), mandatory=True)
    for suffix, q in queues.items():
        assert await pk.get_all(ch, q) == [(k, k.encode()) for k in H.TOPIC_EXPECTED[suffix]], suffix
    assert returned == H.TOPIC_UNROUTED  # the keys no pattern matches come back


@pika_async
async def test_headers_exchange_all_and_any(pk):
    ch = await pk.channel()
    ex = H.unique("headers")
    await pk.rpc(ch, ch.exchange_declare, ex, "headers")
    queues = await declare_bound_queues(pk, ch, ex, H.HEADERS_BINDINGS)
    for case, headers in H.HEADERS_CASES:
        ch.basic_publish(ex, "", case.encode(), pika.BasicProperties(headers=headers))
    for suffix, q in queues.items():
        got = await pk.get_all(ch, q, with_props=True)
        assert [body.decode() for _, _, body in got] == H.HEADERS_EXPECTED[suffix], suffix
        assert [p.headers for _, p, _ in got] == [dict(H.HEADERS_CASES)[c] for c in H.HEADERS_EXPECTED[suffix]]


# ---------------------------------------------------------------------------- patterns
@pika_async
async def test_work_queue_prefetch_one_dispatches_fairly(pk):
    fd = H.FairDispatch()
    ch = await pk.channel()
    q = H.unique("tasks")
    await pk.rpc(ch, ch.queue_declare, q)
    for body in fd.bodies:
        ch.basic_publish("", q, body)
    workers = []
    for i in range(fd.n_consumers):
        wch = await pk.channel()
        await pk.rpc(wch, wch.basic_qos, prefetch_count=1)
        await pk.consume(wch, q, lambda _c, m, _p, body, i=i: fd.delivered(i, m.delivery_tag, body, m.redelivered))
        workers.append(wch)
    await pk.until(lambda: fd.ready_to_probe, "first deliveries")
    ok = await pk.rpc(ch, ch.queue_declare, q, passive=True)
    fd.probe(ok.message_count, ok.consumer_count)
    while not fd.done:
        for i, tag in fd.due_acks():
            workers[i].basic_ack(tag)
        await asyncio.sleep(0.002)
    fd.check()
    assert await pk.ready_count(ch, q) == 0


@pika_async
async def test_rpc_with_reply_to_and_correlation_id(pk):
    sch = await pk.channel()
    rpc_q = H.unique("rpc")
    await pk.rpc(sch, sch.queue_declare, rpc_q)
    await pk.rpc(sch, sch.basic_qos, prefetch_count=1)
    seen_reply_to = []

    def on_request(c, method, props, body):
        seen_reply_to.append(props.reply_to)
        c.basic_publish("", props.reply_to, H.rpc_answer(body),
                        pika.BasicProperties(correlation_id=props.correlation_id))
        c.basic_ack(method.delivery_tag)

    await pk.consume(sch, rpc_q, on_request)
    ch = await pk.channel()
    callback_q = (await pk.rpc(ch, ch.queue_declare, "", exclusive=True)).queue
    responses = {}
    await pk.consume(ch, callback_q, lambda _c, _m, props, body: responses.__setitem__(props.correlation_id, body),
                     auto_ack=True)
    requests = {str(uuid.uuid4()): n for n in (3, 7, 12)}
    for cid, n in requests.items():
        ch.basic_publish("", rpc_q, str(n).encode(), pika.BasicProperties(reply_to=callback_q, correlation_id=cid))
    await pk.until(lambda: len(responses) == len(requests), "RPC responses")
    assert responses == {cid: str(n * n).encode() for cid, n in requests.items()}
    assert seen_reply_to == [callback_q] * 3


@pika_async
async def test_basic_get_and_get_empty(pk):
    ch = await pk.channel()
    q = H.unique("get")
    await pk.rpc(ch, ch.queue_declare, q)
    for i in range(3):
        ch.basic_publish("", q, f"m{i}".encode(), pika.BasicProperties(content_type="text/plain",
                                                                        headers={"n": i}, message_id=f"id{i}"))
    tags = []
    for i in range(3):
        method, props, body = await pk.get(ch, q)
        assert (body, method.message_count, method.redelivered, method.exchange, method.routing_key) == \
            (f"m{i}".encode(), 2 - i, False, "", q)
        assert (props.content_type, props.headers, props.message_id) == ("text/plain", {"n": i}, f"id{i}")
        tags.append(method.delivery_tag)
    assert tags == [1, 2, 3]
    assert await pk.get(ch, q) is None
    ch.basic_ack(3, multiple=True)
    ok = await pk.rpc(ch, ch.queue_declare, q, passive=True)
    assert (ok.message_count, ok.consumer_count) == (0, 0)


@pika_async
async def test_reject_and_nack_with_requeue_restore_original_position(pk):
    ch = await pk.channel()
    q = H.unique("requeue")
    await pk.rpc(ch, ch.queue_declare, q)
    for i in range(5):
        ch.basic_publish("", q, f"m{i}".encode())
    got = [await pk.get(ch, q) for _ in range(3)]
    assert [b for _, _, b in got] == [b"m0", b"m1", b"m2"]
    ch.basic_nack(got[1][0].delivery_tag, requeue=True)
    ch.basic_reject(got[0][0].delivery_tag, requeue=True)
    again = [await pk.get(ch, q) for _ in range(4)]
    assert [(m.redelivered, b, m.message_count) for m, _, b in again] == [
        (True, b"m0", 3), (True, b"m1", 2), (False, b"m3", 1), (False, b"m4", 0)]
    ch.basic_nack(again[-1][0].delivery_tag, multiple=True, requeue=True)
    final = await pk.get_all(ch, q, with_props=True)
    assert [(m.redelivered, b) for m, _, b in final] == [(True, f"m{i}".encode()) for i in range(5)]


@pika_async
async def test_reject_and_nack_without_requeue_discard(pk):
    conn = await pk.connect()
    ch = await pk.channel(conn)
    q = H.unique("discard")
    await pk.rpc(ch, ch.queue_declare, q)
    for i in range(4):
        ch.basic_publish("", q, f"m{i}".encode())
    m0, _, _ = await pk.get(ch, q)
    ch.basic_reject(m0.delivery_tag, requeue=False)
    m1, _, _ = await pk.get(ch, q)
    ch.basic_nack(m1.delivery_tag, requeue=False)
    _, _, b2 = await pk.get(ch, q)
    assert b2 == b"m2"
    assert await pk.ready_count(ch, q) == 1
    ch.close()
    assert isinstance(await pk.channel_closed(ch), ChannelClosedByClient)
    ch2 = await pk.channel(conn)
    assert [(m.redelivered, b) for m, _, b in await pk.get_all(ch2, q, with_props=True)] == \
        [(True, b"m2"), (False, b"m3")]


@pika_async
async def test_mandatory_unroutable_message_is_returned(pk):
    ch = await pk.channel()
    ex = H.unique("direct")
    await pk.rpc(ch, ch.exchange_declare, ex, "direct")
    q = (await pk.rpc(ch, ch.queue_declare, H.unique("routed"))).queue
    await pk.rpc(ch, ch.queue_bind, q, ex, routing_key="routed")
    returns = []
    ch.add_on_return_callback(lambda _c, m, p, body: returns.append(
        (m.reply_code, m.reply_text, m.exchange, m.routing_key, p.message_id, body)))
    missing_q = H.unique("no-such-queue")
    ch.basic_publish(ex, "nowhere", b"lost", pika.BasicProperties(message_id="m1"), mandatory=True)
    ch.basic_publish(ex, "routed", b"kept", mandatory=True)
    ch.basic_publish(ex, "nowhere", b"dropped silently")
    ch.basic_publish("", missing_q, b"lost too", mandatory=True)
    await pk.rpc(ch, ch.exchange_declare, ex, passive=True)  # the returns come before this reply
    assert returns == [(H.NO_ROUTE, H.NO_ROUTE_TEXT, ex, "nowhere", "m1", b"lost"),
                       (H.NO_ROUTE, H.NO_ROUTE_TEXT, "", missing_q, None, b"lost too")]
    assert await pk.get_all(ch, q) == [("routed", b"kept")]


@pika_async
async def test_publisher_confirms(pk):
    ch = await pk.channel()
    q = H.unique("confirmed")
    await pk.rpc(ch, ch.queue_declare, q)
    events = []
    await pk.rpc(ch, ch.confirm_delivery, lambda frame: events.append(
        (type(frame.method).__name__, frame.method.delivery_tag, frame.method.multiple)))
    ch.add_on_return_callback(lambda _c, m, _p, body: events.append(("Return", m.reply_code, body)))
    for i in range(20):
        ch.basic_publish("", q, f"c{i}".encode())
    await pk.until(lambda: events and events[-1][1] == 20, "confirms of 20 publishes")
    acked, last = set(), 0
    for name, tag, multiple in events:
        assert name == "Ack" and tag > last
        acked |= set(range(last + 1, tag + 1)) if multiple else {tag}
        last = tag
    assert acked == set(range(1, 21))
    events.clear()
    ch.basic_publish("amq.direct", "nobody-home", b"unroutable", mandatory=True)
    ch.basic_publish("amq.direct", "nobody-home", b"not mandatory: acked and dropped")
    await pk.until(lambda: len(events) >= 3 or (events and events[-1][:2] == ("Ack", 22)), "confirms")
    assert events in ([("Return", H.NO_ROUTE, b"unroutable"), ("Ack", 21, False), ("Ack", 22, False)],
                      [("Return", H.NO_ROUTE, b"unroutable"), ("Ack", 22, True)])
    assert await pk.ready_count(ch, q) == 20


@pika_async
async def test_tx_commit_delivers_and_rollback_discards(pk):
    ch = await pk.channel()
    observer = await pk.channel()
    q = H.unique("tx")
    await pk.rpc(ch, ch.queue_declare, q)
    await pk.rpc(ch, ch.tx_select)
    ch.basic_publish("", q, b"a")
    ch.basic_publish("", q, b"b")
    assert await pk.ready_count(observer, q) == 0
    await pk.rpc(ch, ch.tx_commit)
    assert await pk.ready_count(observer, q) == 2
    ch.basic_publish("", q, b"rolled back")
    await pk.rpc(ch, ch.tx_rollback)
    ch.basic_publish("", q, b"c")
    assert await pk.ready_count(observer, q) == 2
    await pk.rpc(ch, ch.tx_commit)
    assert await pk.get_all(observer, q) == [(q, b"a"), (q, b"b"), (q, b"c")]


@pika_async
async def test_tx_settlements_and_returns_happen_at_commit(pk):
    ch = await pk.channel()
    observer = await pk.channel()
    q = H.unique("tx")
    await pk.rpc(ch, ch.queue_declare, q)
    for i in range(2):
        ch.basic_publish("", q, f"m{i}".encode())
    returns = []
    ch.add_on_return_callback(lambda _c, m, _p, body: returns.append((m.reply_code, m.routing_key, body)))
    await pk.rpc(ch, ch.tx_select)
    m0, _, _ = await pk.get(ch, q)
    m1, _, _ = await pk.get(ch, q)
    ch.basic_ack(m0.delivery_tag)
    ch.basic_reject(m1.delivery_tag, requeue=True)
    ch.basic_publish("amq.direct", "nobody-home", b"returned at commit", mandatory=True)
    await pk.rpc(ch, ch.tx_rollback)  # discards the ack, the reject and the publish: both stay unacked
    assert (await pk.ready_count(observer, q), returns) == (0, [])
    ch.basic_ack(m0.delivery_tag)
    ch.basic_reject(m1.delivery_tag, requeue=True)
    ch.basic_publish("amq.direct", "nobody-home", b"returned at commit", mandatory=True)
    await pk.rpc(ch, ch.exchange_declare, "amq.direct", passive=True)
    assert (await pk.ready_count(observer, q), returns) == (0, [])
    await pk.rpc(ch, ch.tx_commit)  # the return comes before commit-ok
    assert returns == [(H.NO_ROUTE, "nobody-home", b"returned at commit")]
    assert [(m.redelivered, b) for m, _, b in await pk.get_all(observer, q, with_props=True)] == [(True, b"m1")]


# ---------------------------------------------------------------------------- channel errors
@pika_async
async def test_publish_to_missing_exchange_closes_channel(pk):
    conn = await pk.connect()
    ch = await pk.channel(conn)
    ex = H.unique("x")
    ch.basic_publish(ex, "k", b"body")
    assert_closed(await pk.channel_closed(ch), ChannelClosedByBroker, H.NOT_FOUND, H.no_exchange(ex))
    assert conn.is_open
    ch2 = await pk.channel(conn)
    assert (await pk.rpc(ch2, ch2.queue_declare, "", exclusive=True)).queue.startswith("amq.gen-")


@pika_async
async def test_passive_declares_of_missing_exchange_and_queue(pk):
    conn = await pk.connect()
    ch = await pk.channel(conn)
    with pytest.raises(ChannelClosedByBroker) as e:
        await pk.rpc(ch, ch.exchange_declare, "x", passive=True)
    assert_closed(e.value, ChannelClosedByBroker, H.NOT_FOUND, H.no_exchange("x"))
    ch = await pk.channel(conn)
    with pytest.raises(ChannelClosedByBroker) as e:
        await pk.rpc(ch, ch.queue_declare, "q", passive=True)
    assert_closed(e.value, ChannelClosedByBroker, H.NOT_FOUND, H.no_queue("q"))


@pika_async
async def test_inequivalent_redeclare_is_precondition_failed(pk):
    conn = await pk.connect()
    ch = await pk.channel(conn)
    q, ex = H.unique("q"), H.unique("x")
    await pk.rpc(ch, ch.queue_declare, q)
    await pk.rpc(ch, ch.exchange_declare, ex, "direct")
    with pytest.raises(ChannelClosedByBroker) as e:
        await pk.rpc(ch, ch.queue_declare, q, durable=True)
    assert_closed(e.value, ChannelClosedByBroker, H.PRECONDITION_FAILED,
                  H.inequivalent("queue", q, "durable", "true", "false"))
    ch = await pk.channel(conn)
    with pytest.raises(ChannelClosedByBroker) as e:
        await pk.rpc(ch, ch.exchange_declare, ex, "fanout")
    assert_closed(e.value, ChannelClosedByBroker, H.PRECONDITION_FAILED,
                  H.inequivalent("exchange", ex, "type", "fanout", "direct"))
    ch = await pk.channel(conn)
    assert (await pk.rpc(ch, ch.queue_declare, q)).queue == q


@pika_async
async def test_other_connections_exclusive_queue_is_locked(pk):
    owner = await pk.channel()
    q = H.unique("exclusive")
    await pk.rpc(owner, owner.queue_declare, q, exclusive=True)
    other = await pk.connect()
    attempts = [lambda c: pk.rpc(c, c.queue_declare, q, exclusive=True),
                lambda c: pk.rpc(c, c.queue_declare, q, passive=True),
                lambda c: pk.consume(c, q, lambda *a: None),
                lambda c: pk.rpc(c, c.queue_purge, q)]
    for attempt in attempts:
        ch = await pk.channel(other)
        with pytest.raises(ChannelClosedByBroker) as e:
            await attempt(ch)
        assert_closed(e.value, ChannelClosedByBroker, H.RESOURCE_LOCKED, H.locked(q))
    assert (await pk.rpc(owner, owner.queue_declare, q, passive=True)).queue == q


@pika_async
async def test_ack_of_unknown_delivery_tag(pk):
    conn = await pk.connect()
    ch = await pk.channel(conn)
    ch.basic_ack(42)
    assert_closed(await pk.channel_closed(ch), ChannelClosedByBroker, H.PRECONDITION_FAILED, H.unknown_tag(42))
    ch = await pk.channel(conn)
    q = H.unique("acks")
    await pk.rpc(ch, ch.queue_declare, q)
    ch.basic_publish("", q, b"x")
    method, _, _ = await pk.get(ch, q)
    ch.basic_ack(method.delivery_tag)
    ch.basic_ack(method.delivery_tag)  # twice
    assert_closed(await pk.channel_closed(ch), ChannelClosedByBroker, H.PRECONDITION_FAILED,
                  H.unknown_tag(method.delivery_tag))


# ---------------------------------------------------------------------------- connection errors
@pika_async
async def test_unknown_exchange_type_closes_connection(pk):
    conn = await pk.connect()
    ch = await pk.channel(conn)
    bad_type = H.unique("no-such-type")
    with pytest.raises(ConnectionClosedByBroker) as e:
        await pk.rpc(ch, ch.exchange_declare, H.unique("x"), bad_type)
    assert_closed(e.value, ConnectionClosedByBroker, H.COMMAND_INVALID, H.unknown_exchange_type(bad_type))
    assert_closed(await pk.connection_closed(conn), ConnectionClosedByBroker, H.COMMAND_INVALID,
                  H.unknown_exchange_type(bad_type))
    ch = await pk.channel()  # the broker lives on
    assert (await pk.rpc(ch, ch.queue_declare, "", exclusive=True)).queue.startswith("amq.gen-")


@pika_async
async def test_prefetch_size_is_not_implemented(pk):
    conn = await pk.connect()
    ch = await pk.channel(conn)
    ch.basic_qos(prefetch_size=10)
    assert_closed(await pk.connection_closed(conn), ConnectionClosedByBroker, H.NOT_IMPLEMENTED,
                  H.PREFETCH_SIZE_TEXT)


@pika_async
async def test_unknown_vhost_is_not_allowed(pk):
    with pytest.raises(ProbableAccessDeniedError) as e:
        await pk.connect(vhost="no-such-vhost")
    assert e.value.args == (repr(ConnectionClosedByBroker(H.NOT_ALLOWED, H.vhost_not_found("no-such-vhost"))),)


# ---------------------------------------------------------------------------- lifecycles
@pytest.mark.parametrize("queue_kind", ["exclusive", "auto_delete"])
@pika_async
async def test_auto_delete_exchange_goes_when_its_consumer_disconnects(pk, queue_kind):
    ch = await pk.channel()
    ex = H.unique("broadcast")
    consumer = await pk.connect()
    cch = await pk.channel(consumer)
    await pk.rpc(cch, cch.exchange_declare, ex, "fanout", auto_delete=True)
    q = (await pk.rpc(cch, cch.queue_declare, "", **{queue_kind: True})).queue
    await pk.rpc(cch, cch.queue_bind, q, ex)
    got = []
    await pk.consume(cch, q, lambda _c, _m, _p, body: got.append(body), auto_ack=True)
    ch.basic_publish(ex, "", b"hello")
    await pk.until(lambda: got == [b"hello"], "delivery")
    await pk.close(consumer)

    ch.basic_publish(ex, "", b"anyone?")
    assert_closed(await pk.channel_closed(ch), ChannelClosedByBroker, H.NOT_FOUND, H.no_exchange(ex))
    ch = await pk.channel()
    with pytest.raises(ChannelClosedByBroker) as e:
        await pk.rpc(ch, ch.queue_declare, q, passive=True)
    assert_closed(e.value, ChannelClosedByBroker, H.NOT_FOUND, H.no_queue(q))


@pika_async
async def test_closing_a_connection_requeues_its_unacked_messages(pk):
    ch = await pk.channel()
    q = H.unique("work")
    await pk.rpc(ch, ch.queue_declare, q)
    bodies = [f"job{i}".encode() for i in range(3)]
    for body in bodies:
        ch.basic_publish("", q, body)
    first = await pk.connect()
    got_first = []
    await pk.consume(await pk.channel(first), q, lambda _c, m, _p, body: got_first.append((m.redelivered, body)))
    await pk.until(lambda: len(got_first) == 3, "first consumer's deliveries")
    got_second = []
    await pk.consume(await pk.channel(), q, lambda _c, m, _p, body: got_second.append((m.redelivered, body)),
                     auto_ack=True)
    assert await pk.ready_count(ch, q) == 0
    await asyncio.sleep(0.02)
    assert got_second == []  # everything is held, unacked, by the first consumer
    await pk.close(first)
    await pk.until(lambda: len(got_second) >= 3, "redeliveries")
    assert got_first == [(False, b) for b in bodies]
    assert got_second == [(True, b) for b in bodies]


@pika_async
async def test_auto_delete_queue_goes_with_its_last_consumer(pk):
    conn = await pk.connect()
    ch, other = await pk.channel(conn), await pk.channel(conn)
    q = H.unique("autodel")
    await pk.rpc(ch, ch.queue_declare, q, auto_delete=True)
    assert (await pk.rpc(ch, ch.queue_declare, q, passive=True)).consumer_count == 0
    t1 = await pk.consume(ch, q, lambda *a: None)
    t2 = await pk.consume(other, q, lambda *a: None)
    assert (await pk.rpc(ch, ch.queue_declare, q, passive=True)).consumer_count == 2
    assert (await pk.rpc(ch, ch.basic_cancel, t1)).consumer_tag == t1
    assert (await pk.rpc(ch, ch.queue_declare, q, passive=True)).consumer_count == 1
    await pk.rpc(other, other.basic_cancel, t2)
    with pytest.raises(ChannelClosedByBroker) as e:
        await pk.rpc(ch, ch.queue_declare, q, passive=True)
    assert_closed(e.value, ChannelClosedByBroker, H.NOT_FOUND, H.no_queue(q))


@pika_async
async def test_exclusive_queue_goes_with_its_connection(pk):
    conn = await pk.connect()
    owner = await pk.connect()
    och = await pk.channel(owner)
    q = H.unique("mine")
    await pk.rpc(och, och.queue_declare, q, exclusive=True)
    ch = await pk.channel(conn)
    with pytest.raises(ChannelClosedByBroker) as e:
        await pk.rpc(ch, ch.queue_declare, q, passive=True)
    assert_closed(e.value, ChannelClosedByBroker, H.RESOURCE_LOCKED, H.locked(q))
    await pk.close(owner)
    ch = await pk.channel(conn)
    with pytest.raises(ChannelClosedByBroker) as e:
        await pk.rpc(ch, ch.queue_declare, q, passive=True)
    assert_closed(e.value, ChannelClosedByBroker, H.NOT_FOUND, H.no_queue(q))


@pika_async
async def test_purge_and_delete_counts_and_conditions(pk):
    conn = await pk.connect()
    ch = await pk.channel(conn)
    q = H.unique("counts")
    await pk.rpc(ch, ch.queue_declare, q)
    for _ in range(5):
        ch.basic_publish("", q, b"p")
    assert (await pk.rpc(ch, ch.queue_purge, q)).message_count == 5
    assert (await pk.rpc(ch, ch.queue_purge, q)).message_count == 0
    for _ in range(3):
        ch.basic_publish("", q, b"d")
    with pytest.raises(ChannelClosedByBroker) as e:
        await pk.rpc(ch, ch.queue_delete, q, if_empty=True)
    assert_closed(e.value, ChannelClosedByBroker, H.PRECONDITION_FAILED, H.not_empty(q))
    ch = await pk.channel(conn)
    tag = await pk.consume(ch, q, lambda *a: None)
    ch2 = await pk.channel(conn)
    with pytest.raises(ChannelClosedByBroker) as e:
        await pk.rpc(ch2, ch2.queue_delete, q, if_unused=True)
    assert_closed(e.value, ChannelClosedByBroker, H.PRECONDITION_FAILED, H.in_use(q))
    await pk.rpc(ch, ch.basic_cancel, tag)
    ch.close()
    await pk.channel_closed(ch)
    ch = await pk.channel(conn)
    assert (await pk.rpc(ch, ch.queue_delete, q, if_unused=True)).message_count == 3
    assert (await pk.rpc(ch, ch.queue_delete, q)).message_count == 0


@pika_async
async def test_server_cancels_consumer_when_its_queue_is_deleted(pk):
    ch = await pk.channel()
    q = H.unique("doomed")
    await pk.rpc(ch, ch.queue_declare, q)
    ch.basic_publish("", q, b"in flight")
    cancelled, got = [], []
    ch.add_on_cancel_callback(lambda frame: cancelled.append(frame.method.consumer_tag))
    await pk.rpc(ch, ch.basic_qos, prefetch_count=1)  # so the second message stays ready
    tag = await pk.consume(ch, q, lambda _c, m, _p, body: got.append((m.delivery_tag, body)))
    await pk.until(lambda: got, "delivery")
    deleter = await pk.channel()
    deleter.basic_publish("", q, b"ready")
    assert (await pk.rpc(deleter, deleter.queue_delete, q)).message_count == 1  # ready ones only
    await pk.until(lambda: cancelled, "basic.cancel from the broker")
    assert cancelled == [tag] and got == [(1, b"in flight")]
    assert ch.is_open and tag not in ch.consumer_tags
    ch.basic_ack(1)  # the deleted queue's delivery is still the channel's to settle
    assert (await pk.rpc(ch, ch.queue_declare, "", exclusive=True)).queue.startswith("amq.gen-")
