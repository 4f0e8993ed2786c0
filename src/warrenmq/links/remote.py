"""A link to another broker over AMQP 0-9-1: aiormq on the broker's event loop.

Theory of operation: aiormq (the connection layer under aio-pika) opens the connection (TLS with
the URI's options, links/uri.py; heartbeats; the client-provided connection name), and does every
synchronous exchange: declares, binds, qos, consume, confirm.select.  Deliveries come through its
consumer callback (one small task per message, aiormq's design) and are handed on with their
content header re-marshalled by pamqp, which is the AMQP content-header payload the domain keeps.

Publishing and settling do not go through aiormq's ``basic_publish``/``basic_ack``: that path adds a
``message_id`` to any message without one (a shovel must forward messages unchanged) and awaits
each publish's confirm under a lock.  Instead the frames are encoded by our own protocol layer
(``content_frames``, ``method_frame``; the header bytes as they came) into a buffer that a writer
task hands to aiormq's connection writer as one ``aiormq.abc.ChannelFrame`` per loop turn.  Confirms
are numbered by the link (nothing else publishes on its channel) and kept in order with their
callbacks; the channel's ``_on_confirm_frame`` (the method aiormq's frame reader calls for each
``basic.ack``/``basic.nack``) is replaced on that one channel object by the link's, which settles
everything a multiple ack covers in one pass (aiormq's own schedules a callback per tag and scans its
whole table per ack: a third of the shovel's time).  That needs an aiormq whose channel reader looks
the method up per frame (7.2.1 and later); with an older one (Python 3.10 resolves 6.9) the link
registers each publish in the channel's ``confirmations`` table under its ``delivery_tag``, as
aiormq's ``basic_publish`` does.  Each batch carries a drain future, so
the writer waits for the socket to drain before the next (back-pressure: past a megabyte of unwritten
output the link asks its publisher to stop, see ``set_flow_listener``).  Those two names,
``ChannelFrame`` and ``_on_confirm_frame``, are the whole use of aiormq's insides; the shovel tests fail if a release changes
them (pyproject pins the major version).
"""
from __future__ import annotations

import asyncio
import uuid
from collections import OrderedDict
from urllib.parse import quote

import aiormq
from aiormq.abc import ChannelFrame
from pamqp import commands as pamqp_spec

from ..protocol.frames import content_frames, method_frame
from ..protocol.spec import (BasicAck, BasicConsume, BasicNack, BasicPublish, ExchangeBind, ExchangeDeclare,
                             ExchangeDelete, ExchangeUnbind, QueueBind, QueueDeclare, QueueDelete, QueueUnbind)
from .base import Link, LinkClosed

DEFAULT_FRAME_MAX = 131072
def _own_confirms() -> bool:
    """Whether this aiormq's channel reader looks ``_on_confirm_frame`` up per frame (7.2.1 and later), so
    the link's own handler can take its place; older ones (Python 3.10 gets 6.9) bound it when the reader
    started, and the link then uses their confirmation table as their ``basic_publish`` does."""
    try:
        from importlib.metadata import version
        parts = tuple(int(x) for x in version("aiormq").split(".")[:3])
    except Exception:  # noqa: BLE001 - unknown: the table works everywhere
        return False
    return parts >= (7, 2, 1)


#: the link settles confirms itself (see _own_confirms)
OWN_CONFIRMS = _own_confirms()

#: output not yet handed to aiormq's writer above which the link asks its publisher to stop (flow listener)
HIGH_WATER = 1 << 20
LOW_WATER = HIGH_WATER // 4


def _reason(exc) -> str:
    if exc is None:
        return "connection closed"
    if isinstance(exc, aiormq.exceptions.AMQPError) and exc.args:
        frame = exc.args[-1] if len(exc.args) > 1 else exc.args[0]
        code = getattr(frame, "reply_code", None)
        text = getattr(frame, "reply_text", None)
        if code is not None:
            return f"{text}" if text else str(code)
    return str(exc) or type(exc).__name__


def _raw(command_class, ours, **fields):
    """A pamqp ``command_class`` method encoded by our protocol layer from the same method ``ours``.
    pamqp refuses queue and exchange names outside ``[a-zA-Z0-9-_.:@#,/+ ]`` (federation's are
    ``federation: x -> node``; AMQP allows any short string) and narrows every integer in a table to the
    smallest type that holds it (a federation declare must send ``x-max-hops`` as a ``long``).  aiormq
    sends it and matches the reply as for its own method; only ``validate`` and ``marshal`` differ."""
    payload = ours.encode()[4:]  # without the class and method ids, which pamqp's frame writer adds

    class Raw(command_class):
        def validate(self) -> None:
            pass

        def marshal(self) -> bytes:
            return payload
    Raw.__name__ = Raw.__qualname__ = command_class.__name__
    return Raw(**fields)


class RemoteLink(Link):
    """See the module docstring."""

    def __init__(self, uri, conn, channel, confirms: bool):
        self.uri = uri
        self.conn = conn
        self.channel = channel
        self.confirms = confirms
        self.loop = asyncio.get_running_loop()
        self.closed = self.loop.create_future()
        tune = getattr(conn, "connection_tune", None)
        self.frame_max = getattr(tune, "frame_max", 0) or DEFAULT_FRAME_MAX
        self.out: list = []
        self.out_bytes = 0  # bytes in ``out``, published since the writer last took it
        self.flow_listener = None
        self.flow_on = False  # the listener was told to stop
        self.wake = asyncio.Event()
        self.writer = self.loop.create_task(self._write_loop())
        self.on_delivery = None
        self.seq = 0  # the last publish's sequence number
        self.waiting: OrderedDict = OrderedDict()  # sequence number -> on_confirm, in order
        self.own_confirms = confirms and OWN_CONFIRMS
        if self.own_confirms:
            channel._on_confirm_frame = self._on_confirm_frame
        for fut in (conn.closing, channel.closing):
            fut.add_done_callback(self._on_closing)

    @classmethod
    async def open(cls, uri, connection_name: str, confirms: bool, heartbeat: int | None) -> "RemoteLink":
        query = {}
        hb = heartbeat if heartbeat is not None else uri.heartbeat
        if hb is not None:
            query["heartbeat"] = str(hb)
        url = (f"{uri.scheme}://{quote(uri.user, safe='')}:{quote(uri.password, safe='')}@"
               f"{'[' + uri.host + ']' if ':' in uri.host else uri.host}:{uri.port}/{quote(uri.vhost, safe='')}")
        if query:
            url += "?" + "&".join(f"{k}={v}" for k, v in query.items())
        kwargs = {}
        ctx = uri.ssl_context()
        if ctx is not None:
            kwargs["context"] = ctx
        try:
            conn = await asyncio.wait_for(
                aiormq.connect(url, client_properties={"connection_name": connection_name}, **kwargs),
                uri.connection_timeout)
        except asyncio.TimeoutError:
            raise LinkClosed(f"timeout connecting to {uri.host}:{uri.port}") from None
        except (aiormq.exceptions.AMQPError, OSError) as e:
            raise LinkClosed(_reason(e)) from None
        try:
            channel = await conn.channel(publisher_confirms=confirms)
        except BaseException:
            await conn.close()
            raise
        return cls(uri, conn, channel, confirms)

    # ------------------------------------------------------------ failure
    def _on_closing(self, fut: asyncio.Future) -> None:
        if self.closed.done():
            return
        exc = None if fut.cancelled() else fut.exception()
        self.closed.set_result(_reason(exc))
        self.out.clear()
        self.wake.set()
        if not self.conn.is_closed:  # the channel died: the connection goes too (the owner reconnects)
            self.loop.create_task(self._close_conn())

    async def _close_conn(self) -> None:
        try:
            await self.conn.close()
        except Exception:  # noqa: BLE001 - closing a broken connection: nothing more to learn
            pass

    async def _rpc(self, coro):
        if self.closed.done():
            coro.close()
            raise LinkClosed(self.closed.result())
        try:
            return await coro
        except (aiormq.exceptions.AMQPError, aiormq.exceptions.ChannelInvalidStateError, RuntimeError) as e:
            reason = _reason(e)
            if not self.closed.done():
                self.closed.set_result(reason)
                self.loop.create_task(self._close_conn())
            raise LinkClosed(reason) from None

    # ------------------------------------------------------------ topology
    async def declare_queue(self, name: str, *, passive: bool = False, durable: bool = True,
                            exclusive: bool = False, auto_delete: bool = False, arguments=None) -> tuple:
        ok = await self._rpc(self.channel.rpc(_raw(
            pamqp_spec.Queue.Declare,
            QueueDeclare(0, name, passive, durable, exclusive, auto_delete, False, arguments or {}),
            queue=name, passive=passive)))
        return ok.queue, ok.message_count

    async def ensure_queue(self, name: str) -> int:
        probe = await self._rpc(self.conn.channel(publisher_confirms=False))
        try:
            ok = await probe.rpc(_raw(pamqp_spec.Queue.Declare, QueueDeclare(0, name, True), queue=name, passive=True))
            return ok.message_count
        except aiormq.exceptions.ChannelNotFoundEntity:
            pass
        finally:
            if not probe.is_closed:
                await probe.close()
        return (await self.declare_queue(name, durable=True))[1]

    async def declare_exchange(self, name: str, type_: str, *, passive: bool = False, durable: bool = True,
                               auto_delete: bool = False, internal: bool = False, arguments=None) -> None:
        await self._rpc(self.channel.rpc(_raw(
            pamqp_spec.Exchange.Declare,
            ExchangeDeclare(0, name, type_, passive, durable, auto_delete, internal, False, arguments or {}),
            exchange=name, exchange_type=type_, passive=passive)))

    async def bind(self, queue: str, exchange: str, routing_key: str, arguments=None) -> None:
        await self._rpc(self.channel.rpc(_raw(pamqp_spec.Queue.Bind, QueueBind(
            0, queue, exchange, routing_key, False, arguments or {}), queue=queue, exchange=exchange)))

    async def unbind(self, queue: str, exchange: str, routing_key: str, arguments=None) -> None:
        await self._rpc(self.channel.rpc(_raw(pamqp_spec.Queue.Unbind, QueueUnbind(
            0, queue, exchange, routing_key, arguments or {}), queue=queue, exchange=exchange)))

    async def delete_queue(self, name: str) -> None:
        await self._rpc(self.channel.rpc(_raw(pamqp_spec.Queue.Delete, QueueDelete(0, name), queue=name)))

    async def bind_exchange(self, destination: str, source: str, routing_key: str, arguments=None) -> None:
        await self._rpc(self.channel.rpc(_raw(pamqp_spec.Exchange.Bind, ExchangeBind(
            0, destination, source, routing_key, False, arguments or {}), destination=destination, source=source,
            routing_key=routing_key)))

    async def unbind_exchange(self, destination: str, source: str, routing_key: str, arguments=None) -> None:
        await self._rpc(self.channel.rpc(_raw(pamqp_spec.Exchange.Unbind, ExchangeUnbind(
            0, destination, source, routing_key, False, arguments or {}), destination=destination, source=source,
            routing_key=routing_key)))

    async def delete_exchange(self, name: str) -> None:
        await self._rpc(self.channel.rpc(_raw(pamqp_spec.Exchange.Delete, ExchangeDelete(0, name), exchange=name)))

    async def cancel(self, consumer_tag: str) -> None:
        await self._rpc(self.channel.basic_cancel(consumer_tag))

    @property
    def cluster_name(self) -> str | None:
        name = (getattr(self.conn, "server_properties", None) or {}).get("cluster_name")
        if isinstance(name, bytes):
            name = name.decode("utf-8", "replace")
        return name if isinstance(name, str) else None

    # ------------------------------------------------------------ consuming
    async def consume(self, queue: str, on_delivery, *, prefetch: int = 0, no_ack: bool = False,
                      exclusive: bool = False, arguments=None, consumer_tag: str | None = None) -> str:
        self.on_delivery = on_delivery
        if prefetch and not no_ack:
            await self._rpc(self.channel.basic_qos(prefetch_count=prefetch))
        tag = consumer_tag or f"ctag{self.channel.number}.{uuid.uuid4().hex}"
        self.channel.consumers[tag] = self._delivered  # aiormq's consumer table, as its basic_consume fills it
        ok = await self._rpc(self.channel.rpc(_raw(pamqp_spec.Basic.Consume, BasicConsume(
            0, queue, tag, False, no_ack, exclusive, False, arguments or {}), queue=queue, consumer_tag=tag)))
        return ok.consumer_tag

    async def _delivered(self, message) -> None:
        if self.closed.done():
            return
        d = message.delivery
        self.on_delivery(d.delivery_tag, d.exchange, d.routing_key, d.redelivered, message.header.marshal(),
                         message.body)

    def ack(self, tag: int, multiple: bool = False) -> None:
        self._send(method_frame(self.channel.number, BasicAck(tag, multiple)))

    def nack(self, tag: int, multiple: bool = False, requeue: bool = True) -> None:
        self._send(method_frame(self.channel.number, BasicNack(tag, multiple, requeue)))

    # ------------------------------------------------------------ publishing
    def publish(self, exchange: str, routing_key: str, header: bytes, body: bytes, on_confirm=None) -> None:
        if self.closed.done():
            raise LinkClosed(self.closed.result())
        ch = self.channel
        self.out.extend(content_frames(ch.number, BasicPublish(0, exchange, routing_key).encode(), header, body,
                                       self.frame_max))
        n = self.out_bytes = self.out_bytes + len(body) + len(header) + 64
        if n > HIGH_WATER and not self.flow_on and self.flow_listener is not None:
            self.flow_on = True
            self.flow_listener(True)
        if self.own_confirms:
            self.seq += 1
            if on_confirm is not None:
                self.waiting[self.seq] = on_confirm
        elif self.confirms:  # an older aiormq: its confirmation table, as its basic_publish fills it
            ch.delivery_tag += 1
            fut = self.loop.create_future()
            ch.confirmations[ch.delivery_tag] = fut
            if on_confirm is not None:
                fut.add_done_callback(lambda f, cb=on_confirm: self._confirmed_future(f, cb))
        self.wake.set()

    def _confirmed_future(self, fut: asyncio.Future, on_confirm) -> None:
        if self.closed.done() or fut.cancelled() or self.channel.is_closed:
            return  # the link died: never confirmed
        on_confirm(fut.exception() is None and isinstance(fut.result(), pamqp_spec.Basic.Ack))

    async def _on_confirm_frame(self, frame) -> None:
        if self.closed.done():
            return
        ok = isinstance(frame, pamqp_spec.Basic.Ack)
        tag = frame.delivery_tag
        waiting = self.waiting
        if getattr(frame, "multiple", False):
            while waiting:
                seq = next(iter(waiting))
                if seq > tag:
                    break
                waiting.popitem(last=False)[1](ok)
        else:
            cb = waiting.pop(tag, None)
            if cb is not None:
                cb(ok)

    def _send(self, frame: bytes) -> None:
        if self.closed.done():
            return
        self.out.append(frame)
        self.wake.set()

    async def _write_loop(self) -> None:
        wq = self.conn.write_queue
        previous = None  # the drain future of the batch before: one batch may be draining while the next is sent
        while True:
            await self.wake.wait()
            self.wake.clear()
            if self.closed.done():
                return
            while self.out:
                data = b"".join(self.out)
                self.out.clear()
                self.out_bytes = 0
                # aiormq's writer drains the socket only for a frame with a drain future: waiting for it is
                # what makes a slow peer slow this link down (and the flow listener stop its publisher)
                drained = self.loop.create_future()
                await wq.put(ChannelFrame(payload=data, should_close=False, drain_future=drained))
                if previous is not None and not previous.done():
                    await asyncio.wait((previous, self.closed), return_when=asyncio.FIRST_COMPLETED)
                previous = drained
                if self.flow_on and self.out_bytes < LOW_WATER and not self.closed.done():
                    self.flow_on = False
                    self.flow_listener(False)

    def set_flow_listener(self, listener) -> None:
        self.flow_listener = listener

    def pause(self, on: bool) -> None:
        pass  # the consumer's prefetch bounds what is in flight

    async def close(self) -> None:
        if not self.closed.done():
            if self.out:  # acks and publishes not written yet go first
                data = b"".join(self.out)
                self.out.clear()
                try:
                    await asyncio.wait_for(self.conn.write_queue.put(ChannelFrame(payload=data, should_close=False)), 1)
                except asyncio.TimeoutError:
                    pass
            self.closed.set_result("closed by the application")
        self.writer.cancel()
        await self._close_conn()
