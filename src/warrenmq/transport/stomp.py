"""The asyncio adapter of STOMP: one :class:`StompProtocol` per socket over a sans-I/O session.

Theory of operation: ``data_received`` hands the bytes to the
:class:`~warrenmq.stomp.session.StompSession`; output is written once per loop turn (the session calls
``_schedule_flush`` when its first output of a turn appears, as the AMQP transport does).  When the
session is ``closing`` (it sent an ERROR, or the RECEIPT of a DISCONNECT), the socket is closed after
that write.  Back-pressure: ``pause_writing``/``resume_writing`` pause the session's deliveries.
Heart-beats, as negotiated at CONNECT: a timer sends an EOL when nothing was sent for the agreed
interval and drops a client that sent nothing for twice the interval it promised.  A client must send
its CONNECT within ``handshake_timeout_ms``.  With a TLS context the server also listens on ``tls_port``
(STOMP over TLS, RabbitMQ's stomp.listeners.ssl, 61614): the same protocol and sessions behind asyncio's
TLS transport, the handshake bounded by ``tls_handshake_timeout_ms``, as for MQTT over TLS.
"""
from __future__ import annotations

import asyncio
import logging
import socket

from ..stomp.session import StompSession
from .server import ListenError

log = logging.getLogger("warrenmq.stomp")


class StompProtocol(asyncio.Protocol):
    def __init__(self, server: "StompServer"):
        self.server = server
        self.loop = server.loop
        self.session = None
        self.transport = None
        self._flush_scheduled = False
        self._hb_handle = None
        self._handshake_handle = None
        self.last_recv = self.last_sent = 0.0

    def connection_made(self, transport) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        cfg = self.server.broker.config
        transport.set_write_buffer_limits(high=cfg.write_buffer_high, low=cfg.write_buffer_low)
        peer = transport.get_extra_info("peername")
        local = transport.get_extra_info("sockname")
        s = self.session = StompSession(self.server.broker, peer[:2] if peer else None,
                                        local[:2] if isinstance(local, tuple) else None)
        s.reader = transport
        s.on_output = self._schedule_flush
        self.server.connections.add(self)
        self.last_recv = self.last_sent = self.loop.time()
        self._handshake_handle = self.loop.call_later(self.server.handshake_timeout, self._handshake_timeout)

    def data_received(self, data: bytes) -> None:
        self.last_recv = self.loop.time()
        s = self.session
        s.recv_oct += len(data)
        s.recv_cnt += 1
        was_connected = s.vhost is not None
        s.receive_data(data)
        if not was_connected and s.vhost is not None:
            self._connected()
        if s.closing and not self._flush_scheduled:
            self._flush()

    def _connected(self) -> None:
        if self._handshake_handle is not None:
            self._handshake_handle.cancel()
            self._handshake_handle = None
        s = self.session
        if s.heartbeat_out or s.heartbeat_in:
            ms = min(x for x in (s.heartbeat_out, s.heartbeat_in) if x)
            self._hb_interval = max(ms / 2000.0, 0.05)
            self._hb_handle = self.loop.call_later(self._hb_interval, self._heartbeat_tick)

    def _heartbeat_tick(self) -> None:
        s = self.session
        now = self.loop.time()
        if s.heartbeat_in and now - self.last_recv > 2 * s.heartbeat_in / 1000.0:
            log.warning("STOMP connection %s missed heart-beats from client, closing it", s.name)
            self._abort()
            return
        if s.heartbeat_out and now - self.last_sent >= s.heartbeat_out / 1000.0 and self.transport is not None:
            self.transport.write(b"\n")
            self.last_sent = now
        self._hb_handle = self.loop.call_later(self._hb_interval, self._heartbeat_tick)

    def _handshake_timeout(self) -> None:
        self._handshake_handle = None
        if self.session.vhost is None:
            self._abort()

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        t = self.transport
        s = self.session
        if t is None:
            return
        data = s.take_output()
        if data:
            t.write(data)
            s.send_oct += len(data)
            s.send_cnt += 1
            self.last_sent = self.loop.time()
        if s.closing:
            self._close_socket()

    def _close_socket(self) -> None:
        t = self.transport
        if t is not None and not t.is_closing():
            t.close()

    def _abort(self) -> None:
        t = self.transport
        if t is not None:
            t.abort()

    def pause_writing(self) -> None:
        self.session.set_paused(True)

    def resume_writing(self) -> None:
        self.session.set_paused(False)

    def connection_lost(self, exc) -> None:
        for h in (self._hb_handle, self._handshake_handle):
            if h is not None:
                h.cancel()
        self._hb_handle = self._handshake_handle = None
        self.server.connections.discard(self)
        self.session.connection_lost()
        self.transport = None


class StompServer:
    """Listens for STOMP connections for one broker."""

    def __init__(self, broker, host: str = "0.0.0.0", port: int = 61613, config=None, tls=None,
                 tls_port: int = 61614):
        self.broker = broker  # (None until the app opened storage: it sets it before start)
        self.host = host
        self.port = port
        self.tls = tls  # an ssl.SSLContext: also listen for STOMP over TLS on tls_port
        self.tls_port = tls_port
        cfg = config if config is not None else broker.config
        self.handshake_timeout = getattr(cfg, "handshake_timeout_ms", 10_000) / 1000.0
        self.tls_handshake_timeout = getattr(cfg, "tls_handshake_timeout_ms", 5_000) / 1000.0
        self.loop = None
        self.connections: set = set()
        self._server = None
        self._tls_server = None

    async def bind(self) -> None:
        if self._server is not None:
            return
        self.loop = asyncio.get_running_loop()
        try:
            self._server = await self.loop.create_server(lambda: StompProtocol(self), self.host, self.port,
                                                         reuse_address=True, backlog=1024, start_serving=False)
        except OSError as e:
            raise ListenError(self.host, self.port, False, e, "--stomp-port (or --no-stomp)") from e
        self.port = self._server.sockets[0].getsockname()[1]
        if self.tls is not None:
            try:
                self._tls_server = await self.loop.create_server(
                    lambda: StompProtocol(self), self.host, self.tls_port, reuse_address=True, backlog=1024,
                    ssl=self.tls, ssl_handshake_timeout=self.tls_handshake_timeout, start_serving=False)
            except OSError as e:
                self._server.close()
                self._server = None
                raise ListenError(self.host, self.tls_port, True, e, "--stomps-port (or --no-stomp)") from e
            self.tls_port = self._tls_server.sockets[0].getsockname()[1]

    async def start(self) -> None:
        await self.bind()
        await self._server.start_serving()
        if self._tls_server is not None:
            await self._tls_server.start_serving()

    async def stop(self, timeout: float = 0) -> None:
        servers = [s for s in (self._server, self._tls_server) if s is not None]
        for server in servers:
            server.close()
        for p in list(self.connections):
            p.session.force_close(320, "broker shutting down")
            p._flush()
            p._abort()
        for server in servers:
            await server.wait_closed()
        self._server = self._tls_server = None
