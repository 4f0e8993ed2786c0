"""A link to this broker itself (``amqp://``, ``amqp:///vhost``): the domain API, no socket.

Theory of operation: RabbitMQ opens a *direct* connection for a shovel's local URI; WarrenMQ does the
same with a :class:`LocalConnection`, a session object like a STOMP or MQTT session (listed by
``/api/connections`` as type ``direct``, protocol ``Direct 0-9-1``, user ``none``, with the
client-provided name, and closable from there) holding one domain channel, :class:`LinkChannel`.
Publishing is :meth:`Channel.publish`, the one publish path; consuming is :meth:`Channel.consume`
and acking :meth:`Channel.ack`, so prefetch credit, unacked bookkeeping, requeue on close and
statistics are the broker's own.

Two things differ from a socket session.  A queue hands a consumer its messages synchronously,
from inside whatever call made them available (another connection's publish, an ack); the
link must not publish elsewhere from inside that call, so deliveries are kept in order and handed
to ``on_delivery`` on the next loop turn, all of that turn's together.  And confirms are coalesced
by the broker's confirm registry, which the AMQP adapter flushes at the end of each read; the link
schedules one flush per loop turn in which it published.  The direct connection's user is RabbitMQ's
``none``: not subject to permissions (the parameter's author needed them to set it), and allowed to
forward a ``user_id`` it did not set (RabbitMQ's shovel forwards them too).
"""
from __future__ import annotations

import asyncio
import time

from ..broker.channel import Channel
from ..protocol.errors import AMQPError
from ..protocol.spec import REPLY_NAMES
from .base import Link, LinkClosed


class _DirectUser:
    """The user of a direct connection: RabbitMQ shows ``none``."""
    name = "none"
    tags = ("impersonator",)  # forwards messages whose user_id is someone else's
    permissions: dict = {}
    topic_permissions: dict = {}


DIRECT_USER = _DirectUser()
_serial = 0


class _Props:
    """What the management API reads of a connection's protocol object."""
    __slots__ = ("client_properties",)
    channel_max = 1
    frame_max = 0
    heartbeat = 0

    def __init__(self, client_properties):
        self.client_properties = client_properties


class LinkChannel(Channel):
    __slots__ = ("link",)

    def __init__(self, link: "LocalLink", conn: "LocalConnection"):
        Channel.__init__(self, link.broker, conn.vhost, conn, 1, False)
        self.link = link

    def send_deliver(self, consumer, tag: int, entry) -> None:
        self.link._delivered(tag, entry)

    def send_return(self, msg, code: int, text: str) -> None:
        pass  # links publish without mandatory

    def send_confirm(self, seq: int, multiple: bool, nack: bool) -> None:
        self.link._confirmed(seq, multiple, nack)

    def send_reply(self, msg, tag: int) -> None:
        pass

    def send_cancel(self, consumer) -> None:
        self.link._die(f"consumer {consumer.tag} cancelled by the broker (queue '{consumer.queue.name}' deleted)")

    def timed_out(self, timeout_ms: int) -> None:
        self.link._die(f"PRECONDITION_FAILED - delivery acknowledgement timed out after {timeout_ms} ms")


class LocalConnection:
    """The session object of a local link, as the broker and the management API see sessions."""
    connection_type = "direct"
    protocol = "Direct 0-9-1"

    def __init__(self, link: "LocalLink", vhost, connection_name: str):
        self.link = link
        self.broker = link.broker
        self.vhost = vhost
        self.user = DIRECT_USER
        self.peer = None
        self.local = None
        self.reader = None
        global _serial
        _serial += 1
        self.name = f"<direct.{_serial}>"  # as RabbitMQ names a direct connection: by its process, not its peer
        self.proto = _Props({"connection_name": connection_name, "product": "WarrenMQ link",
                             "capabilities": {"publisher_confirms": True, "consumer_cancel_notify": True}})
        self.connected_at = int(time.time() * 1000)
        self.channels: dict = {}
        self.recv_oct = self.recv_cnt = self.send_oct = self.send_cnt = 0
        self.closed = False
        self.flow_count = 0

    @property
    def state(self) -> str:
        if self.closed:
            return "closed"
        return "flow" if self.flow_count else "running"

    def set_paused(self, paused: bool) -> None:
        pass

    def set_blocked(self, blocked: bool) -> None:
        pass  # a direct connection is not a socket to stop reading

    def set_flow(self, on: bool) -> None:
        if on:
            self.flow_count += 1
            if self.flow_count == 1:
                self.link._flow(True)
        elif self.flow_count > 0:
            self.flow_count -= 1
            if not self.flow_count:
                self.link._flow(False)

    def force_close(self, code: int, text: str) -> None:
        self.link._die(f"{REPLY_NAMES.get(code, 'ERROR')} - {text}")


class LocalLink(Link):
    """See the module docstring."""

    def __init__(self, broker, uri, connection_name: str):
        self.broker = broker
        self.uri = uri
        self.loop = asyncio.get_running_loop()
        self.closed = self.loop.create_future()
        vhost = broker.vhosts.get(uri.vhost)
        if vhost is None:
            raise LinkClosed(f"vhost '{uri.vhost}' not found")
        self.conn = LocalConnection(self, vhost, connection_name)
        self.channel = LinkChannel(self, self.conn)
        self.conn.channels[1] = self.channel
        self.vhost = vhost
        self.on_delivery = None
        self.pending: list = []  # deliveries not yet handed to on_delivery
        self.drain_scheduled = False
        self.flush_scheduled = False
        self.confirm_waiters: dict = {}  # publish sequence number -> on_confirm
        self.flow_listener = None
        self.exclusive_queues: list = []
        broker.session_opened(self.conn)

    @classmethod
    def open(cls, broker, uri, connection_name: str, confirms: bool) -> "LocalLink":
        link = cls(broker, uri, connection_name)
        if confirms:
            link.channel.select_confirm()
        return link

    # ------------------------------------------------------------ failure
    def _die(self, reason: str) -> None:
        if self.closed.done():
            return
        self.closed.set_result(reason)
        self._release()

    def _release(self) -> None:
        self.pending.clear()
        self.confirm_waiters.clear()
        self.conn.closed = True
        self.channel.close()  # unacked messages go back to their queues
        for q in self.exclusive_queues:
            if not q.deleted:
                self.vhost.delete_queue(q)
        self.exclusive_queues.clear()
        self.vhost.stats.fold_connection(self.conn)  # the churn counters count it closed (they never go down)
        self.broker.session_closed(self.conn)

    def _check(self) -> None:
        if self.closed.done():
            raise LinkClosed(self.closed.result())

    def _call(self, fn, *args):
        """A domain call; an AMQP error closes the link (as it would close an AMQP channel)."""
        self._check()
        try:
            return fn(*args)
        except AMQPError as e:
            self._die(e.reply_text)
            raise LinkClosed(e.reply_text) from None

    # ------------------------------------------------------------ topology
    async def declare_queue(self, name: str, *, passive: bool = False, durable: bool = True,
                            exclusive: bool = False, auto_delete: bool = False, arguments=None) -> tuple:
        q, created = self._call(self.vhost.declare_queue, name, self.conn, passive, durable, exclusive, auto_delete,
                                arguments)
        if created and exclusive:  # deleted when the link closes, as a connection's exclusive queues are
            self.exclusive_queues.append(q)
        return q.name, len(q.messages)

    async def ensure_queue(self, name: str) -> int:
        q = self.vhost.queues.get(name)
        if q is None:
            q, _ = self._call(self.vhost.declare_queue, name, self.conn, False, True, False, False, None)
        return len(q.messages)

    async def declare_exchange(self, name: str, type_: str, *, passive: bool = False, durable: bool = True,
                               auto_delete: bool = False, internal: bool = False, arguments=None) -> None:
        self._call(self.vhost.declare_exchange, name, type_, passive, durable, auto_delete, internal, arguments)

    async def bind(self, queue: str, exchange: str, routing_key: str, arguments=None) -> None:
        q = self._call(self.vhost.get_queue, queue, self.conn)
        self._call(self.vhost.bind_queue, q, exchange, routing_key, arguments or {})

    async def unbind(self, queue: str, exchange: str, routing_key: str, arguments=None) -> None:
        self._call(self.vhost.unbind_queue, queue, self.conn, exchange, routing_key, arguments or {})

    async def delete_queue(self, name: str) -> None:
        q = self.vhost.queues.get(name)
        if q is not None:
            self._call(self.vhost.delete_queue, q)

    async def bind_exchange(self, destination: str, source: str, routing_key: str, arguments=None) -> None:
        self._call(self.vhost.bind_exchange, destination, source, routing_key, arguments or {})

    async def unbind_exchange(self, destination: str, source: str, routing_key: str, arguments=None) -> None:
        self._call(self.vhost.unbind_exchange, destination, source, routing_key, arguments or {})

    async def delete_exchange(self, name: str) -> None:
        if name in self.vhost.exchanges:
            self._call(self.vhost.delete_exchange, name)

    async def cancel(self, consumer_tag: str) -> None:
        self._call(self.channel.cancel, consumer_tag)

    @property
    def cluster_name(self) -> str | None:
        from ..broker.broker import NODE
        return self.broker.cluster_name or NODE

    # ------------------------------------------------------------ consuming
    async def consume(self, queue: str, on_delivery, *, prefetch: int = 0, no_ack: bool = False,
                      exclusive: bool = False, arguments=None, consumer_tag: str | None = None) -> str:
        q = self._call(self.vhost.get_queue, queue, self.conn)
        self.on_delivery = on_delivery
        ch = self.channel
        ch.prefetch_count = prefetch
        tag = consumer_tag or f"amq.ctag-link-{len(ch.consumers) + 1}"
        c = self._call(ch.consume, q, tag, no_ack, exclusive, arguments)
        ch.start(c)
        return tag

    def _delivered(self, tag: int, entry) -> None:
        self.pending.append((tag, entry))
        if not self.drain_scheduled:
            self.drain_scheduled = True
            self.loop.call_soon(self._drain)

    def _drain(self) -> None:
        self.drain_scheduled = False
        pending, self.pending = self.pending, []
        on_delivery = self.on_delivery
        for tag, entry in pending:
            if self.closed.done():
                return
            m = entry.message
            on_delivery(tag, m.exchange, m.routing_key, entry.redelivered, m.header, m.body)

    def ack(self, tag: int, multiple: bool = False) -> None:
        if not self.closed.done():
            self._call(self.channel.ack, tag, multiple)

    def nack(self, tag: int, multiple: bool = False, requeue: bool = True) -> None:
        if not self.closed.done():
            self._call(self.channel.reject, tag, multiple, requeue)

    # ------------------------------------------------------------ publishing
    def publish(self, exchange: str, routing_key: str, header: bytes, body: bytes, on_confirm=None) -> None:
        ch = self.channel
        confirms = ch.confirms
        if confirms is not None and on_confirm is not None:
            self.confirm_waiters[confirms.seq + 1] = on_confirm
        self._call(ch.publish, exchange, routing_key, header, body, False)
        if confirms is not None and not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self.flush_scheduled = False
        self.broker.confirms.flush()

    def _confirmed(self, seq: int, multiple: bool, nack: bool) -> None:
        waiters = self.confirm_waiters
        if not multiple:
            cb = waiters.pop(seq, None)
            if cb is not None:
                cb(not nack)
            return
        for s in [s for s in waiters if s <= seq]:
            waiters.pop(s)(not nack)

    def set_flow_listener(self, listener) -> None:
        self.flow_listener = listener

    def pause(self, on: bool) -> None:
        """Stop or resume the consumers' dispatch: a paused channel gets no deliveries (its queues skip
        it, as they skip a connection whose socket is full) and the messages stay ready."""
        ch = self.channel
        if self.closed.done() or ch.paused == on:
            return
        ch.paused = on
        if not on:
            ch.dispatch_consumers()

    def _flow(self, on: bool) -> None:
        if self.flow_listener is not None:
            self.flow_listener(on)

    async def close(self) -> None:
        if not self.closed.done():
            self.closed.set_result("closed by the application")
            self._release()
