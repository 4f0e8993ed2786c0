"""One AMQP connection's session: protocol events in, domain calls out.

Theory of operation: the transport creates a :class:`Session` per socket, with the sans-I/O
protocol object (:func:`new_protocol`) it feeds.  ``handle_events`` dispatches each event of a
batch of received frames to a handler named after its AMQP method (``on_basic_publish``), looked
up once per method in a table; the connection and channel classes' handlers are here, the others
in :mod:`.methods`.  Handlers raise :class:`SoftError` (the channel is closed with that code and
text) or :class:`HardError` (the connection is closed); an unexpected exception closes only that
connection with INTERNAL_ERROR and is logged, so one bad connection never takes the broker down.
At the end of a batch the broker's confirm registry sends the batch's coalesced confirms.

Refusals (RabbitMQ's): a failed login of a client without the ``authentication_failure_close``
capability sets ``close_delay`` (the transport leaves the socket unread that long before closing
it, which makes password guessing slow); connection.open checks the vhost's and the user's
``max-connections`` and channel.open the user's ``max-channels`` (:mod:`warrenmq.broker.limits`);
connection.open needs the user to have permissions in the vhost (530 NOT_ALLOWED otherwise), and the
channel methods check the user's permissions (:mod:`.methods`, :mod:`warrenmq.broker.access`).
``force_close`` is the broker closing a connection (320 CONNECTION_FORCED when its user or vhost is
deleted).

Flow: the transport reports a full socket (``set_paused``: the channels' consumers stop
receiving) and the broker reports resource alarms (``set_blocked``: as in RabbitMQ a connection
that publishes while an alarm is on is no longer read and gets ``connection.blocked``).

Reading: one mechanism stops reading a connection, for three reasons kept as bits in
``reading_paused``: a resource alarm (``PAUSE_ALARM``), the transport's fairness yield after a
large read (``PAUSE_YIELD``) and credit flow (``PAUSE_FLOW``: ``set_flow``, called by the queues
this connection publishes into while their consumers are behind, counted in ``flow_count``; see
broker/queues/credit.py).  ``pause``/``resume`` set and clear a bit and call the transport's
``pause_reading``/``resume_reading`` only when the set goes from empty to non-empty and back.
Flow sends nothing to the client (as RabbitMQ, unlike an alarm's ``connection.blocked``); the first
time it throttles a connection the session calls ``on_throttled`` (the transport shrinks the socket's
receive buffer).  ``state`` reports RabbitMQ's connection state: running, flow, blocking, blocked.

Logging (:mod:`.connlog`, RabbitMQ's lines): the session logs its user's login (or why it was refused),
its errors and forced closes, and ``connection_lost`` logs the end of the connection (with the
transport's reason when the client vanished); each connection has an id ``conn_id`` (``<0.N.0>``).
"""
from __future__ import annotations

import logging
import platform
import time

from .. import __version__
from ..broker.broker import RABBITMQ_COMPAT_VERSION
from ..protocol import spec
from ..protocol.connection import CLOSING, ServerConnection
from ..protocol.sasl import parse_credentials
from ..protocol.errors import AMQPError, HardError, SoftError
from ..protocol.spec import ACCESS_REFUSED, COMMAND_INVALID, INTERNAL_ERROR, NOT_ALLOWED, NOT_IMPLEMENTED
from . import connlog
from .channel import AMQPChannel
from .methods import ChannelMethods

log = logging.getLogger("warrenmq.session")

#: why a connection is not being read: the bits of Session.reading_paused
PAUSE_ALARM = 1  # it published while a resource alarm is on
PAUSE_YIELD = 2  # the transport's fairness yield after a large read (for one loop turn)
PAUSE_FLOW = 4  # credit flow: a queue it publishes into is behind its consumers

_CHANNEL_OPEN = spec.ChannelOpen.INDEX

#: only what works is advertised
CAPABILITIES = {
    "publisher_confirms": True,
    "exchange_exchange_bindings": True,
    "basic.nack": True,
    "consumer_cancel_notify": True,
    "connection.blocked": True,
    "consumer_priorities": True,
    "authentication_failure_close": True,
    "per_consumer_qos": True,
    "direct_reply_to": True,
}


def server_properties() -> dict:
    return {
        # Clients switch behaviour on product/version (kombu and Celery choose their prefetch
        # semantics this way), so WarrenMQ presents itself as the RabbitMQ version it emulates
        # and names itself in platform/information. See docs/compatibility.md.
        "product": "RabbitMQ",
        "version": RABBITMQ_COMPAT_VERSION,
        "platform": f"WarrenMQ {__version__} on Python {platform.python_version()}",
        "copyright": "Copyright (c) the WarrenMQ developers",
        "information": f"WarrenMQ {__version__}, an AMQP 0-9-1 broker in Python compatible with RabbitMQ "
                       f"{RABBITMQ_COMPAT_VERSION}. Licensed under the MIT License.",
        "cluster_name": f"warrenmq@{platform.node()}",
        "capabilities": dict(CAPABILITIES),
    }


_SERVER_PROPERTIES: dict = {}


def new_protocol(config, cluster_name: str | None = None) -> ServerConnection:
    """The protocol object of a new connection, with the limits ``config`` offers; ``cluster_name``: the
    name an operator gave the cluster (``Broker.cluster_name``), announced in place of the node's."""
    props = _SERVER_PROPERTIES.get(cluster_name)
    if props is None:  # built once per name: every connection shares it (it is only ever encoded)
        props = server_properties()
        if cluster_name is not None:
            props["cluster_name"] = cluster_name
        if len(_SERVER_PROPERTIES) > 16:  # renamed many times over: forget the old names
            _SERVER_PROPERTIES.clear()
        _SERVER_PROPERTIES[cluster_name] = props
    return ServerConnection(props, "PLAIN AMQPLAIN", config.channel_max, config.frame_max, config.heartbeat,
                            config.max_message_size)


class Session(ChannelMethods):
    """One client connection's broker-side state."""

    def __init__(self, broker, proto, peer=None, local=None):
        self.broker = broker
        self.proto = proto
        self.peer = peer
        self.local = local  # the broker's end of the socket (host, port), for the logs
        self.conn_id = connlog.next_id()
        self.close_logged = False  # why the broker closed it is in the log (or the client closed it)
        self.announced = False  # its "accepting" line is logged (the transport does, at its first bytes)
        self.vhost = None
        self.user = None
        self.channels: dict[int, AMQPChannel] = {}
        self.exclusive_queues: list = []
        self.paused = False
        self.blocked = False  # a resource alarm is on (connection.blocked was sent)
        self.published = False
        self.reader = None  # the transport: pause_reading()/resume_reading() while reading_paused
        self.reading_paused = 0  # PAUSE_* bits: why this connection is not read (0: it is)
        self.flow_count = 0  # the queues throttling this connection (credit flow)
        self.on_throttled = None  # called the first time credit flow throttles this connection
        self.closed = False
        self.close_delay = 0.0  # seconds the transport waits before closing the socket (a refused login)
        self.counted = False  # in the broker's per-vhost/per-user connection counts (limits)
        # what the transport read and wrote (octets, socket reads and writes: broker/stats.py)
        self.recv_oct = self.recv_cnt = self.send_oct = self.send_cnt = 0
        self.connected_at = int(time.time() * 1000)
        self.name = f"{peer[0]}:{peer[1]}" if peer else "embedded"

    # ---------------------------------------------------------------- events
    def handle_events(self, events: list) -> None:
        handlers = HANDLERS
        channels = self.channels
        for ch, method, header, body in events:
            try:
                if ch:
                    channel = channels.get(ch)
                    if channel is None:
                        # channel.open, or leftovers of a channel closed earlier in this batch
                        if method.INDEX == _CHANNEL_OPEN:
                            self.open_channel(ch)
                        continue
                    handler = handlers.get(method.INDEX)
                    if handler is None:
                        raise HardError(COMMAND_INVALID, "unimplemented method")
                    if header is None:
                        handler(self, channel, method)
                    else:
                        handler(self, channel, method, header, body)
                else:
                    handler = CONNECTION_HANDLERS.get(method.INDEX)
                    if handler is not None:
                        handler(self, method)
            except SoftError as e:
                connlog.channel_error(self, ch, e.code, e.reply_text, method.NAME)
                self.channel_error(ch, e, method)
            except HardError as e:
                self.close_logged = True
                connlog.connection_error(self, e.code, e.reply_text, method.NAME, ch)
                self.proto.close(e.code, e.reply_text, e.class_id or method.CLASS_ID,
                                 e.method_id or method.METHOD_ID)
                break
            except Exception:
                self.close_logged = True
                log.exception("internal error on connection %s (%s) handling %s", self.conn_id,
                              connlog.connection_name(self), method.NAME, extra=connlog.fields(self))
                self.proto.close(INTERNAL_ERROR, "INTERNAL_ERROR", method.CLASS_ID, method.METHOD_ID)
                break
        self.broker.confirms.flush()
        if self.proto.state >= CLOSING:
            self.connection_lost()

    def channel_error(self, ch: int, e: AMQPError, method) -> None:
        channel = self.channels.pop(ch, None)
        if channel is not None:
            channel.close()
        self.proto.close_channel(ch, e.code, e.reply_text, e.class_id or method.CLASS_ID,
                                 e.method_id or method.METHOD_ID)

    # ---------------------------------------------------------------- lifecycle
    def connection_lost(self, reason: str | None = None) -> None:
        """The connection is gone (socket closed or close handshake done): release everything.
        ``reason``: why it went without a close handshake (logged as a warning)."""
        if self.closed:
            return
        self.closed = True
        if self.announced:  # a connection that never sent anything is not logged (a port probe)
            close = self.proto.close_reason
            if close is not None and not self.close_logged:  # e.g. a framing error the protocol found
                connlog.connection_error(self, close[0], close[1], None)
            connlog.closed(self, reason)
        for channel in list(self.channels.values()):
            channel.close()
        self.channels.clear()
        vhost = self.vhost
        for q in self.exclusive_queues:
            if not q.deleted:
                vhost.delete_queue(q)
        self.exclusive_queues.clear()
        if self.counted:
            self.counted = False
            self.broker.limits.connection_closed(vhost.name, self.user.name)
        if vhost is not None:
            vhost.stats.fold_connection(self)  # its octets stay in the vhost's totals
        self.broker.session_closed(self)

    def force_close(self, code: int, text: str) -> None:
        """Close this connection from the broker's side (``connection.close`` with ``code`` and RabbitMQ's
        ``NAME - text``), as when its user or vhost is deleted; its resources are released at once."""
        if self.closed or self.proto.state >= CLOSING:
            return
        self.close_logged = True
        connlog.forced(self, code, text)
        self.proto.close(code, HardError(code, text).reply_text)
        self.connection_lost()

    def set_paused(self, paused: bool) -> None:
        """Write back-pressure from the transport: stop or resume deliveries to this connection."""
        if paused == self.paused:
            return
        self.paused = paused
        channels = list(self.channels.values())
        for channel in channels:
            channel.paused = paused
        if not paused:
            for channel in channels:
                channel.dispatch_consumers()

    def set_blocked(self, blocked: bool) -> None:
        """A resource alarm was raised or cleared.

        As in RabbitMQ, a connection is only *blocked* (no longer read, ``connection.blocked`` sent)
        when it publishes while an alarm is on; clearing the alarm resumes it (``connection.unblocked``).
        """
        if blocked == self.blocked or self.closed:
            return
        self.blocked = blocked
        if not blocked and self.reading_paused & PAUSE_ALARM:
            self.resume(PAUSE_ALARM)
            if self.proto.capabilities.get("connection.blocked"):
                self.proto.send_method(0, spec.ConnectionUnblocked())

    def pause_reading(self) -> None:
        """Called on a publish while an alarm is on: stop reading from this connection."""
        if self.reading_paused & PAUSE_ALARM:
            return
        self.pause(PAUSE_ALARM)
        if self.proto.capabilities.get("connection.blocked"):
            self.proto.send_method(0, spec.ConnectionBlocked(self.broker.blocked_reason()))

    def pause(self, reason: int) -> None:
        """Stop reading this connection for ``reason`` (a PAUSE_* bit)."""
        paused = self.reading_paused
        self.reading_paused = paused | reason
        if not paused and self.reader is not None and not self.closed:
            self.reader.pause_reading()

    def resume(self, reason: int) -> None:
        """``reason`` no longer holds; read again if no other reason does."""
        paused = self.reading_paused
        if paused & reason:
            paused = self.reading_paused = paused & ~reason
            if not paused and self.reader is not None and not self.closed:
                self.reader.resume_reading()

    def set_flow(self, on: bool) -> None:
        """Credit flow (broker/queues/credit.py): a queue this connection publishes into is behind its
        consumers (``on``), or no longer is.  Reading stops while any queue throttles it."""
        if on:
            self.flow_count += 1
            if self.flow_count == 1:
                if self.on_throttled is not None:
                    hook, self.on_throttled = self.on_throttled, None  # only the first time
                    hook()
                self.pause(PAUSE_FLOW)
        elif self.flow_count > 0:
            self.flow_count -= 1
            if not self.flow_count:
                self.resume(PAUSE_FLOW)

    @property
    def state(self) -> str:
        """The connection's state as RabbitMQ reports it (``rabbitmqctl list_connections state``)."""
        if self.closed:
            return "closed"
        if self.proto.state >= CLOSING:
            return "closing"
        if self.vhost is None:
            return "starting"
        if self.blocked:
            return "blocked" if self.reading_paused & PAUSE_ALARM else "blocking"
        if self.flow_count:
            return "flow"
        return "running"

    # ---------------------------------------------------------------- connection class
    def on_connection_start_ok(self, m) -> None:
        creds = parse_credentials(m.mechanism, m.response)
        connlog.client_named(self)
        user = self.broker.authenticate(creds, self.peer)
        if user is None:
            self.close_logged = True
            connlog.login_refused(self, m.mechanism, self.broker.login_refusal(creds, self.peer))
            if self.proto.capabilities.get("authentication_failure_close"):
                self.proto.close(ACCESS_REFUSED, f"ACCESS_REFUSED - Login was refused using authentication "
                                 f"mechanism {m.mechanism}. For details see the broker logfile.")
            else:  # RabbitMQ waits before closing (SILENT_CLOSE_DELAY), so password guessing is slow
                self.close_delay = self.broker.config.auth_failure_delay_ms / 1000.0
                self.proto.abort()
            return
        self.user = user
        self.proto.send_tune()

    def on_connection_tune_ok(self, m) -> None:
        pass

    def on_connection_open(self, m) -> None:
        vhost = self.broker.vhosts.get(m.virtual_host)
        if vhost is None:
            raise HardError(NOT_ALLOWED, f"vhost {m.virtual_host} not found")
        if not self.broker.user_can_access(self.user, m.virtual_host):
            raise HardError(NOT_ALLOWED, f"access to vhost '{m.virtual_host}' refused for user '{self.user.name}'")
        limits = self.broker.limits
        limits.check_connection(m.virtual_host, self.user.name)
        limits.connection_opened(m.virtual_host, self.user.name)
        self.counted = True
        self.vhost = vhost
        self.proto.send_open_ok()
        self.broker.session_opened(self)
        connlog.authenticated(self)
        if self.broker.alarms:
            self.set_blocked(True)

    def on_connection_close(self, m) -> None:
        self.close_logged = True  # the client closed it
        self.connection_lost()

    def on_connection_update_secret(self, m) -> None:
        self.proto.send_method(0, spec.ConnectionUpdateSecretOk())

    # ---------------------------------------------------------------- channel class
    def open_channel(self, number: int) -> None:
        max_channels = self.broker.limits.max_channels(self.user.name)
        if max_channels >= 0 and self.broker.user_channel_count(self.user.name) >= max_channels:
            raise self.broker.limits.channel_limit_error(self.user.name, max_channels)
        self.channels[number] = AMQPChannel(self, number)
        self.proto.send_method(number, spec.ChannelOpenOk(b""))

    def on_channel_close(self, channel, m) -> None:
        self.channels.pop(channel.number, None)
        channel.close()

    def on_channel_close_ok(self, channel, m) -> None:
        pass

    def on_channel_flow(self, channel, m) -> None:
        if not m.active:
            raise HardError(NOT_IMPLEMENTED, "active=false")
        self.proto.send_method(channel.number, spec.ChannelFlowOk(True))

    def on_channel_flow_ok(self, channel, m) -> None:
        pass


def _handler_name(cls) -> str:
    return "on_" + cls.NAME.replace(".", "_").replace("-", "_")


def _build_tables():
    handlers, conn = {}, {}
    for index, cls in spec.METHODS.items():
        fn = getattr(Session, _handler_name(cls), None)
        if fn is None:
            continue
        if cls.CLASS_ID == spec.CLASS_CONNECTION:
            conn[index] = fn
        else:
            handlers[index] = fn
    return handlers, conn


HANDLERS, CONNECTION_HANDLERS = _build_tables()
