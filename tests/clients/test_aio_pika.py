"""aio-pika (on aiormq) against a real WarrenMQ over TCP: what its users rely on, as RabbitMQ 3.x does it.

pytest-asyncio is not used: each test is an ``async def`` turned into a plain test by
:func:`aio_test`, which runs it with :func:`asyncio.run` under a deadline.  Names are
unique per test (``uniq``) so the same file can be pointed at a real RabbitMQ
(override the ``amqp_url`` fixture) to check that the expectations are RabbitMQ's.
"""
import asyncio
import functools
import uuid

import aio_pika
import aiormq
import pytest
from aio_pika import ExchangeType, Message
from aio_pika.exceptions import QueueEmpty

DEADLINE = 10.0  # seconds for one test body; a hang becomes a failure, not a stuck run

pytestmark = pytest.mark.timeout(30)


def aio_test(fn):
    """Turn ``async def test_x(amqp_url)`` into a sync test running it with asyncio.run under DEADLINE."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        asyncio.run(asyncio.wait_for(fn(*args, **kwargs), DEADLINE))
    return wrapper


def uniq(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def take(box: asyncio.Queue, n: int, timeout: float = 3.0) -> list:
    """The next ``n`` items of ``box``, failing if they do not all arrive in time."""
    return [await asyncio.wait_for(box.get(), timeout) for _ in range(n)]


def collector(box: asyncio.Queue, ack: bool = True):
    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        if ack:
            await message.ack()
        await box.put(message)
    return on_message


async def ready_count(connection, queue_name: str) -> int:
    """Ready (not unacked) messages in a queue, from a passive declare on a fresh channel."""
    ch = await connection.channel()
    q = await ch.declare_queue(queue_name, passive=True)
    n = q.declaration_result.message_count
    await ch.close()
    return n


# --------------------------------------------------------------------------- routing

@aio_test
async def test_fanout_broadcasts_to_every_consumer(amqp_url):
    name = uniq("logs")
    conns = [await aio_pika.connect(amqp_url) for _ in range(3)]
    try:
        boxes = []
        for conn in conns:
            ch = await conn.channel()
            ex = await ch.declare_exchange(name, ExchangeType.FANOUT, auto_delete=True)
            q = await ch.declare_queue(exclusive=True)
            assert q.name.startswith("amq.gen-")
            await q.bind(ex, routing_key="ignored")
            box = asyncio.Queue()
            await q.consume(collector(box))
            boxes.append(box)
        pub = await conns[0].channel()
        ex = await pub.get_exchange(name)
        for i in range(3):
            await ex.publish(Message(f"m{i}".encode()), routing_key=f"key{i}")
        for box in boxes:
            got = await take(box, 3)
            assert [m.body for m in got] == [b"m0", b"m1", b"m2"]
            assert [m.routing_key for m in got] == ["key0", "key1", "key2"]
            assert {m.exchange for m in got} == {name}
            assert not any(m.redelivered for m in got)
            assert box.empty()
    finally:
        for conn in conns:
            await conn.close()


@aio_test
async def test_direct_routing(amqp_url):
    async with await aio_pika.connect(amqp_url) as conn:
        ch = await conn.channel()
        ex = await ch.declare_exchange(uniq("direct"), ExchangeType.DIRECT, auto_delete=True)
        q_info = await ch.declare_queue(exclusive=True)
        q_bad = await ch.declare_queue(exclusive=True)
        await q_info.bind(ex, "info")
        await q_bad.bind(ex, "warning")
        await q_bad.bind(ex, "error")
        for key in ("info", "error", "debug", "warning", "info"):
            await ex.publish(Message(key.encode()), routing_key=key)

        async def drain(q):
            out = []
            while (m := await q.get(no_ack=True, fail=False)) is not None:
                out.append((m.routing_key, m.body))
            return out

        assert await drain(q_info) == [("info", b"info"), ("info", b"info")]
        assert await drain(q_bad) == [("error", b"error"), ("warning", b"warning")]


@aio_test
async def test_topic_routing_star_and_hash(amqp_url):
    async with await aio_pika.connect(amqp_url) as conn:
        ch = await conn.channel()
        ex = await ch.declare_exchange(uniq("topic"), ExchangeType.TOPIC, auto_delete=True)
        q1, q2, q3 = [await ch.declare_queue(exclusive=True) for _ in range(3)]
        await q1.bind(ex, "*.orange.*")
        await q2.bind(ex, "*.*.rabbit")
        await q2.bind(ex, "lazy.#")
        await q3.bind(ex, "#")
        keys = ["quick.orange.rabbit", "lazy.orange.elephant", "quick.orange.fox", "lazy.brown.fox",
                "lazy.pink.rabbit", "quick.brown.fox", "orange", "quick.orange.male.rabbit",
                "lazy.orange.male.rabbit", "lazy", "", "a..b"]
        for k in keys:
            await ex.publish(Message(k.encode()), routing_key=k)

        async def drain(q):
            out = []
            while (m := await q.get(no_ack=True, fail=False)) is not None:
                out.append(m.routing_key)
            return out

        assert await drain(q1) == ["quick.orange.rabbit", "lazy.orange.elephant", "quick.orange.fox"]
        # lazy.pink.rabbit matches both of q2's bindings and still arrives once; '#' matches zero words
        assert await drain(q2) == ["quick.orange.rabbit", "lazy.orange.elephant", "lazy.brown.fox",
                                   "lazy.pink.rabbit", "lazy.orange.male.rabbit", "lazy"]
        assert await drain(q3) == keys


@aio_test
async def test_headers_exchange_all_and_any(amqp_url):
    async with await aio_pika.connect(amqp_url) as conn:
        ch = await conn.channel()
        ex = await ch.declare_exchange(uniq("hdr"), ExchangeType.HEADERS, auto_delete=True)
        q_all = await ch.declare_queue(exclusive=True)
        q_any = await ch.declare_queue(exclusive=True)
        # binding arguments starting with "x-" take no part in matching (x-match all, not all-with-x)
        await q_all.bind(ex, arguments={"x-match": "all", "format": "pdf", "type": "report", "x-note": "ignored"})
        await q_any.bind(ex, arguments={"x-match": "any", "format": "zip", "size": 1})
        cases = [
            ("pdf-report", {"format": "pdf", "type": "report"}),
            ("pdf-report-extra", {"format": "pdf", "type": "report", "lang": "en"}),
            ("pdf-only", {"format": "pdf"}),
            ("zip", {"format": "zip"}),
            ("size1", {"size": 1}),
            ("size2", {"size": 2}),
            ("size-true", {"size": True}),  # a bool is not the number 1 (Erlang ==)
            ("size-1.0", {"size": 1.0}),  # but a float is compared as a number
            ("size-str", {"size": "1"}),
            ("none", {}),
        ]
        for body, headers in cases:
            await ex.publish(Message(body.encode(), headers=headers), routing_key="")

        async def drain(q):
            out = []
            while (m := await q.get(no_ack=True, fail=False)) is not None:
                out.append(m.body.decode())
            return out

        assert await drain(q_all) == ["pdf-report", "pdf-report-extra"]
        assert await drain(q_any) == ["zip", "size1", "size-1.0"]


# ------------------------------------------------------------------------ work queues

@aio_test
async def test_work_queue_prefetch_one_dispatches_fairly(amqp_url):
    """RabbitMQ tutorial 2: with prefetch 1 a busy worker gets nothing more; the free one gets the rest."""
    qname = uniq("tasks")
    conn = await aio_pika.connect(amqp_url)
    try:
        setup = await conn.channel()
        await setup.declare_queue(qname, auto_delete=True)
        boxes = {}
        for worker in ("fast", "busy1", "busy2"):
            ch = await conn.channel()
            await ch.set_qos(prefetch_count=1)
            q = await ch.get_queue(qname)
            boxes[worker] = asyncio.Queue()
            await q.consume(collector(boxes[worker], ack=(worker == "fast")))
        pub = await conn.channel()
        for i in range(9):
            await pub.default_exchange.publish(Message(str(i).encode()), routing_key=qname)
        fast = await take(boxes["fast"], 7)
        busy1 = await take(boxes["busy1"], 1)
        busy2 = await take(boxes["busy2"], 1)
        bodies = sorted(int(m.body) for m in fast + busy1 + busy2)
        assert bodies == list(range(9))
        # every one of the 9 is accounted for, so nothing else can be in flight
        assert boxes["busy1"].empty() and boxes["busy2"].empty()
        assert await ready_count(conn, qname) == 0
        # the busy workers' messages are still unacked: acking releases the next one
        await pub.default_exchange.publish(Message(b"9"), routing_key=qname)
        (m,) = await take(boxes["fast"], 1)
        assert m.body == b"9"
    finally:
        await conn.close()


@aio_test
async def test_rpc_reply_to_and_correlation_id(amqp_url):
    rpc_queue = uniq("rpc")
    server_conn = await aio_pika.connect(amqp_url)
    client_conn = await aio_pika.connect(amqp_url)
    try:
        sch = await server_conn.channel()
        await sch.set_qos(prefetch_count=1)
        squeue = await sch.declare_queue(rpc_queue, exclusive=True)

        async def serve(request: aio_pika.abc.AbstractIncomingMessage) -> None:
            async with request.process():
                n = int(request.body)
                await sch.default_exchange.publish(
                    Message(str(n * n).encode(), correlation_id=request.correlation_id),
                    routing_key=request.reply_to)

        await squeue.consume(serve)

        cch = await client_conn.channel()
        callback = await cch.declare_queue(exclusive=True)
        pending: dict = {}
        routes = []

        async def on_reply(reply: aio_pika.abc.AbstractIncomingMessage) -> None:
            routes.append((reply.exchange, reply.routing_key))
            pending.pop(reply.correlation_id).set_result(int(reply.body))

        await callback.consume(on_reply, no_ack=True)
        loop = asyncio.get_running_loop()
        futures = {}
        for n in range(1, 6):
            cid = str(uuid.uuid4())
            futures[n] = pending[cid] = loop.create_future()
            await cch.default_exchange.publish(
                Message(str(n).encode(), reply_to=callback.name, correlation_id=cid), routing_key=rpc_queue)
        results = {n: await asyncio.wait_for(f, 3) for n, f in futures.items()}
        assert results == {1: 1, 2: 4, 3: 9, 4: 16, 5: 25}
        assert pending == {}
        assert routes == [("", callback.name)] * 5
    finally:
        await client_conn.close()
        await server_conn.close()


# ----------------------------------------------------------------- get, reject, nack

@aio_test
async def test_basic_get(amqp_url):
    async with await aio_pika.connect(amqp_url) as conn:
        ch = await conn.channel()
        q = await ch.declare_queue(exclusive=True)
        for body in (b"one", b"two", b"three"):
            await ch.default_exchange.publish(Message(body, content_type="text/plain"), routing_key=q.name)
        m1 = await q.get()
        assert (m1.body, m1.message_count, m1.redelivered, m1.delivery_tag) == (b"one", 2, False, 1)
        assert m1.content_type == "text/plain" and m1.routing_key == q.name and m1.exchange == ""
        m2 = await q.get(no_ack=True)
        assert (m2.body, m2.message_count, m2.delivery_tag) == (b"two", 1, 2)
        await m1.ack()
        m3 = await q.get()
        assert (m3.body, m3.message_count, m3.delivery_tag) == (b"three", 0, 3)
        assert await q.get(fail=False) is None
        with pytest.raises(QueueEmpty):
            await q.get()
        # m3 is unacked: closing the channel puts it back, marked redelivered; m2 (no_ack) is gone
        await ch.close()
        ch2 = await conn.channel()
        q2 = await ch2.get_queue(q.name)
        again = await q2.get(no_ack=True)
        assert (again.body, again.redelivered, again.message_count) == (b"three", True, 0)
        assert await q2.get(fail=False) is None


@aio_test
async def test_reject_and_nack_with_and_without_requeue(amqp_url):
    async with await aio_pika.connect(amqp_url) as conn:
        ch = await conn.channel()
        q = await ch.declare_queue(exclusive=True)
        for body in (b"a", b"b", b"c"):
            await ch.default_exchange.publish(Message(body), routing_key=q.name)

        m = await q.get()
        assert (m.body, m.redelivered) == (b"a", False)
        await m.reject(requeue=True)
        m = await q.get()  # back at the head, marked redelivered
        assert (m.body, m.redelivered, m.message_count) == (b"a", True, 2)
        await m.reject(requeue=False)
        m = await q.get()
        assert (m.body, m.redelivered) == (b"b", False)
        await m.nack(requeue=True)
        m = await q.get()
        assert (m.body, m.redelivered) == (b"b", True)
        await m.nack(requeue=False)
        m = await q.get()
        assert (m.body, m.redelivered, m.message_count) == (b"c", False, 0)
        await m.nack(requeue=False)
        assert await q.get(fail=False) is None
        assert await ready_count(conn, q.name) == 0


@aio_test
async def test_nack_multiple_requeues_in_original_order(amqp_url):
    async with await aio_pika.connect(amqp_url) as conn:
        ch = await conn.channel()
        q = await ch.declare_queue(exclusive=True)
        for i in range(4):
            await ch.default_exchange.publish(Message(str(i).encode()), routing_key=q.name)
        box = asyncio.Queue()
        tag = await q.consume(collector(box, ack=False))
        first = await take(box, 4)
        assert [(m.body, m.redelivered) for m in first] == [(b"0", False), (b"1", False), (b"2", False),
                                                             (b"3", False)]
        await q.cancel(tag)
        # nack 0..2 at once (multiple), requeue; 3 stays unacked
        await first[2].nack(multiple=True, requeue=True)
        got = [await q.get(no_ack=True) for _ in range(3)]
        assert [(m.body, m.redelivered) for m in got] == [(b"0", True), (b"1", True), (b"2", True)]
        assert await q.get(fail=False) is None
        await first[3].ack()


# ------------------------------------------------------------- returns, confirms, tx

@aio_test
async def test_mandatory_unroutable_raises_publish_error(amqp_url):
    async with await aio_pika.connect(amqp_url) as conn:
        ch = await conn.channel(publisher_confirms=True, on_return_raises=True)
        ex = await ch.declare_exchange(uniq("ret"), ExchangeType.DIRECT, auto_delete=True)
        q = await ch.declare_queue(exclusive=True)
        await q.bind(ex, "routed")
        with pytest.raises(aio_pika.exceptions.DeliveryError) as info:
            await ex.publish(Message(b"lost", message_id="m-1"), routing_key="nowhere", mandatory=True)
        err = info.value
        assert isinstance(err, aio_pika.exceptions.PublishError)
        ret = err.message.delivery
        assert (ret.reply_code, ret.reply_text, ret.exchange, ret.routing_key) == (312, "NO_ROUTE", ex.name,
                                                                                 "nowhere")
        assert err.message.body == b"lost"
        # the channel is still usable and routable mandatory publishes are confirmed with basic.ack
        ok = await ex.publish(Message(b"found"), routing_key="routed", mandatory=True)
        assert isinstance(ok, aiormq.spec.Basic.Ack)
        # an unroutable non-mandatory message is silently dropped and still acked
        ok = await ex.publish(Message(b"dropped"), routing_key="nowhere", mandatory=False)
        assert isinstance(ok, aiormq.spec.Basic.Ack)
        assert (await q.get(no_ack=True)).body == b"found"
        assert await q.get(fail=False) is None


@aio_test
async def test_mandatory_return_callback(amqp_url):
    async with await aio_pika.connect(amqp_url) as conn:
        ch = await conn.channel(publisher_confirms=True, on_return_raises=False)
        returned = []
        ch.return_callbacks.add(lambda sender, message: returned.append(message))
        result = await ch.default_exchange.publish(
            Message(b"bounce", headers={"k": "v"}), routing_key=uniq("no-such-queue"), mandatory=True)
        assert len(returned) == 1
        msg = returned[0]
        assert (msg.body, msg.headers, msg.exchange) == (b"bounce", {"k": "v"}, "")
        # the publish future resolves to the returned message, not an ack
        assert not isinstance(result, aiormq.spec.Basic.Ack)
        assert result.delivery.reply_code == 312 and result.delivery.reply_text == "NO_ROUTE"


@aio_test
async def test_publisher_confirms(amqp_url):
    async with await aio_pika.connect(amqp_url) as conn:
        ch = await conn.channel(publisher_confirms=True)
        q = await ch.declare_queue(exclusive=True)
        results = await asyncio.gather(*(ch.default_exchange.publish(Message(str(i).encode()), routing_key=q.name)
                                         for i in range(50)))
        assert len(results) == 50 and all(isinstance(r, aiormq.spec.Basic.Ack) for r in results)
        assert await ready_count(conn, q.name) == 50
        # a publish to a missing exchange on a confirm channel fails with the channel error
        missing = uniq("missing")
        with pytest.raises(aiormq.exceptions.ChannelNotFoundEntity) as info:
            await aio_pika.Exchange(ch, missing, ExchangeType.DIRECT).publish(Message(b"x"), routing_key="k")
        assert info.value.args == (f"NOT_FOUND - no exchange '{missing}' in vhost '/'",)
        assert ch.is_closed


@aio_test
async def test_transactions_commit_and_rollback(amqp_url):
    async with await aio_pika.connect(amqp_url) as conn:
        ch = await conn.channel(publisher_confirms=False)
        q = await ch.declare_queue(exclusive=True)
        tx = ch.transaction()
        await tx.select()
        await ch.default_exchange.publish(Message(b"rolled-back"), routing_key=q.name)
        assert await ready_count(conn, q.name) == 0
        await tx.rollback()
        assert await ready_count(conn, q.name) == 0
        await ch.default_exchange.publish(Message(b"committed-1"), routing_key=q.name)
        await ch.default_exchange.publish(Message(b"committed-2"), routing_key=q.name)
        assert await ready_count(conn, q.name) == 0
        await tx.commit()
        assert await ready_count(conn, q.name) == 2

        # acks are transactional too: a rolled-back ack leaves the message unacked
        m = await q.get()
        assert m.body == b"committed-1"
        await m.ack()
        await tx.rollback()
        await ch.close()  # the still-unacked message goes back to the queue
        ch2 = await conn.channel(publisher_confirms=False)
        q2 = await ch2.get_queue(q.name)
        m = await q2.get()
        assert (m.body, m.redelivered) == (b"committed-1", True)
        async with ch2.transaction():
            await m.ack()
            await ch2.default_exchange.publish(Message(b"committed-3"), routing_key=q.name)
        rest = [(await q2.get(no_ack=True)).body for _ in range(2)]
        assert rest == [b"committed-2", b"committed-3"]
        assert await q2.get(fail=False) is None


@aio_test
async def test_transaction_refused_on_confirm_channel(amqp_url):
    async with await aio_pika.connect(amqp_url) as conn:
        ch = await conn.channel(publisher_confirms=True)
        with pytest.raises(RuntimeError):  # aio-pika refuses client side
            ch.transaction()
        raw = await ch.get_underlay_channel()
        with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed) as info:
            await raw.tx_select()
        assert info.value.args == ("PRECONDITION_FAILED - cannot switch from confirm to tx mode",)


# ------------------------------------------------------------------------- errors

@aio_test
async def test_channel_error_not_found_texts(amqp_url):
    async with await aio_pika.connect(amqp_url) as conn:
        ch = await conn.channel()
        x = uniq("nox")
        with pytest.raises(aiormq.exceptions.ChannelNotFoundEntity) as info:
            await ch.get_exchange(x)  # passive declare
        assert info.value.args == (f"NOT_FOUND - no exchange '{x}' in vhost '/'",)
        assert ch.is_closed

        ch = await conn.channel()
        qn = uniq("noq")
        with pytest.raises(aiormq.exceptions.ChannelNotFoundEntity) as info:
            await ch.get_queue(qn)
        assert info.value.args == (f"NOT_FOUND - no queue '{qn}' in vhost '/'",)

        # without confirms the publish error surfaces on the next synchronous call of the channel
        ch = await conn.channel(publisher_confirms=False)
        assert await aio_pika.Exchange(ch, x, ExchangeType.FANOUT).publish(Message(b"x"), routing_key="") is None
        with pytest.raises(aiormq.exceptions.ChannelNotFoundEntity) as info:
            await ch.declare_queue(exclusive=True)
        assert info.value.args == (f"NOT_FOUND - no exchange '{x}' in vhost '/'",)

        # the connection survives channel errors
        ch = await conn.channel()
        q = await ch.declare_queue(exclusive=True)
        assert q.declaration_result.message_count == 0


@aio_test
async def test_channel_error_inequivalent_args(amqp_url):
    async with await aio_pika.connect(amqp_url) as conn:
        ch = await conn.channel()
        x = uniq("ineq")
        await ch.declare_exchange(x, ExchangeType.DIRECT, auto_delete=True)
        with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed) as info:
            await ch.declare_exchange(x, ExchangeType.FANOUT, auto_delete=True)
        assert info.value.args == (f"PRECONDITION_FAILED - inequivalent arg 'type' for exchange '{x}' in vhost "
                                   f"'/': received 'fanout' but current is 'direct'",)
        ch = await conn.channel()
        with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed) as info:
            await ch.declare_exchange(x, ExchangeType.DIRECT, auto_delete=True, durable=True)
        assert info.value.args == (f"PRECONDITION_FAILED - inequivalent arg 'durable' for exchange '{x}' in "
                                   f"vhost '/': received 'true' but current is 'false'",)
        ch = await conn.channel()
        await ch.exchange_delete(x)

        qn = uniq("ineq-q")
        # 100000 is one pamqp encodes as a 32-bit 'I' (signedint); see the test below for narrower ints
        await ch.declare_queue(qn, auto_delete=True, arguments={"x-message-ttl": 100000})
        with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed) as info:
            await ch.declare_queue(qn, auto_delete=False, arguments={"x-message-ttl": 100000})
        assert info.value.args == (f"PRECONDITION_FAILED - inequivalent arg 'auto_delete' for queue '{qn}' in "
                                   f"vhost '/': received 'false' but current is 'true'",)
        ch = await conn.channel()
        with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed) as info:
            await ch.declare_queue(qn, auto_delete=True, arguments={"x-message-ttl": 200000})
        assert info.value.args == (f"PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue '{qn}' in "
                                   f"vhost '/': received '200000' but current is '100000'",)
        ch = await conn.channel()
        with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed) as info:
            await ch.declare_queue(qn, auto_delete=True)
        assert info.value.args == (f"PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue '{qn}' in "
                                   f"vhost '/': received none but current is the value '100000' of type "
                                   f"'signedint'",)
        ch = await conn.channel()
        # an identical redeclare is fine, so is one adding arguments RabbitMQ does not compare, and a
        # passive one whatever its flags
        await ch.declare_queue(qn, auto_delete=True, arguments={"x-message-ttl": 100000})
        await ch.declare_queue(qn, auto_delete=True, arguments={"x-message-ttl": 100000, "x-custom": "anything",
                                                               "x-queue-type": "classic"})
        await ch.declare_queue(qn, passive=True)
        await ch.queue_delete(qn)


@aio_test
async def test_inequivalent_arg_text_names_the_wire_type(amqp_url):
    async with await aio_pika.connect(amqp_url) as conn:
        ch = await conn.channel()
        q = await ch.declare_queue(uniq("wiretype"), exclusive=True, arguments={"x-max-length": 10})
        with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed) as info:
            await ch.declare_queue(q.name, exclusive=True)
        assert info.value.args == (f"PRECONDITION_FAILED - inequivalent arg 'x-max-length' for queue '{q.name}' "
                                   f"in vhost '/': received none but current is the value '10' of type 'byte'",)


@aio_test
async def test_channel_error_resource_locked_and_exclusive_consumer(amqp_url):
    owner = await aio_pika.connect(amqp_url)
    other = await aio_pika.connect(amqp_url)
    try:
        och = await owner.channel()
        exq = await och.declare_queue(uniq("excl"), exclusive=True)
        locked = (f"RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{exq.name}' in vhost '/'. "
                  "It could be originally declared on another connection or the exclusive property value does "
                  "not match that of the original declaration.")
        ch = await other.channel()
        with pytest.raises(aiormq.exceptions.ChannelLockedResource) as info:
            await ch.declare_queue(exq.name, exclusive=True)
        assert info.value.args == (locked,)
        ch = await other.channel()
        with pytest.raises(aiormq.exceptions.ChannelLockedResource) as info:
            await ch.get_queue(exq.name)  # passive
        assert info.value.args == (locked,)

        # an exclusive consumer locks a shared queue against other consumers
        shared = await och.declare_queue(uniq("shared"), auto_delete=True)
        await shared.consume(collector(asyncio.Queue()), exclusive=True)
        ch = await other.channel()
        q = await ch.get_queue(shared.name)
        with pytest.raises(aiormq.exceptions.ChannelAccessRefused) as info:
            await q.consume(collector(asyncio.Queue()))
        assert info.value.args == (f"ACCESS_REFUSED - queue '{shared.name}' in vhost '/' in exclusive use",)
    finally:
        await other.close()
        await owner.close()


@aio_test
async def test_channel_error_unknown_delivery_tag(amqp_url):
    async with await aio_pika.connect(amqp_url) as conn:
        ch = await conn.channel()
        raw = await ch.get_underlay_channel()
        await raw.basic_ack(99)
        with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed) as info:
            await ch.declare_queue(exclusive=True)
        assert info.value.args == ("PRECONDITION_FAILED - unknown delivery tag 99",)


@aio_test
async def test_connection_error_unknown_exchange_type(amqp_url):
    conn = await aio_pika.connect(amqp_url)
    try:
        ch = await conn.channel()
        with pytest.raises(aiormq.exceptions.ConnectionCommandInvalid) as info:
            await ch.declare_exchange(uniq("x"), "x-no-such-type")
        assert info.value.args == ("COMMAND_INVALID - unknown exchange type 'x-no-such-type'",)
        # the whole connection is gone, not just the channel
        with pytest.raises((aiormq.exceptions.AMQPConnectionError, aiormq.exceptions.ChannelInvalidStateError,
                            RuntimeError)):
            await conn.channel()
    finally:
        await conn.close()


@aio_test
async def test_publish_to_auto_deleted_fanout_exchange_is_not_found(amqp_url):
    name = uniq("gone")
    consumer = await aio_pika.connect(amqp_url)
    ch = await consumer.channel()
    ex = await ch.declare_exchange(name, ExchangeType.FANOUT, auto_delete=True)
    q = await ch.declare_queue(exclusive=True)
    await q.bind(ex)
    box = asyncio.Queue()
    await q.consume(collector(box))
    async with await aio_pika.connect(amqp_url) as publisher:
        pch = await publisher.channel(publisher_confirms=True)
        pex = await pch.get_exchange(name)
        await pex.publish(Message(b"while-alive"), routing_key="")
        assert (await take(box, 1))[0].body == b"while-alive"
        # the consumer goes away: its exclusive queue, the binding and then the exchange with them
        await consumer.close()
        with pytest.raises(aiormq.exceptions.ChannelNotFoundEntity) as info:
            await pex.publish(Message(b"after"), routing_key="")
        assert info.value.args == (f"NOT_FOUND - no exchange '{name}' in vhost '/'",)


@aio_test
async def test_closing_connection_requeues_unacked(amqp_url):
    qname = uniq("requeue")
    keeper = await aio_pika.connect(amqp_url)
    try:
        kch = await keeper.channel()
        await kch.declare_queue(qname, auto_delete=False)
        for i in range(5):
            await kch.default_exchange.publish(Message(str(i).encode()), routing_key=qname)

        worker = await aio_pika.connect(amqp_url)
        wch = await worker.channel()
        wq = await wch.get_queue(qname)
        box = asyncio.Queue()
        await wq.consume(collector(box, ack=False))
        got = await take(box, 5)
        assert [(m.body, m.redelivered) for m in got] == [(str(i).encode(), False) for i in range(5)]
        await got[1].ack()
        assert await ready_count(keeper, qname) == 0
        await worker.close()
        # 0, 2, 3 and 4 come back, in their original order, marked redelivered
        assert await ready_count(keeper, qname) == 4
        again = [await (await kch.get_queue(qname)).get(no_ack=True) for _ in range(4)]
        assert [(m.body, m.redelivered) for m in again] == [(b"0", True), (b"2", True), (b"3", True),
                                                           (b"4", True)]
    finally:
        await kch.queue_delete(qname)
        await keeper.close()
