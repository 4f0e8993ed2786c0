"""Web STOMP: the STOMP session over WebSocket (aiohttp), as RabbitMQ's rabbitmq_web_stomp serves it.

Theory of operation: :class:`WebStompServer` serves ``ws://host:15674/ws`` with aiohttp's WebSocket
implementation, offering the subprotocols ``v12.stomp``, ``v11.stomp`` and ``v10.stomp`` (a client that
asks for none, or for others, is served too, as by RabbitMQ).  Each connection is a
:class:`~warrenmq.stomp.session.StompSession`, the same state machine the TCP listener feeds: every
WebSocket message received (text or binary) is handed to ``receive_data`` (a message may hold part of a
frame, or several).  Output goes one STOMP frame per WebSocket message, as RabbitMQ sends them: a text
message when the frame is UTF-8, a binary one otherwise (RabbitMQ's default text mode would send a
binary body as invalid text).  A writer task sends what the session produced, then closes the
WebSocket once the session is ``closing`` (an ERROR, or the RECEIPT of a DISCONNECT).  Heart-beats as
negotiated in CONNECT: an EOL message when nothing was sent for the agreed interval, and a client silent
for twice its interval is dropped.  With the broker's TLS certificate configured the same app is also
served over TLS (``wss://host:15673/ws``, RabbitMQ's ``web_stomp.ssl`` listener; :class:`~.http.HTTPListener`).
"""
from __future__ import annotations

import asyncio
import logging

from aiohttp import WSMsgType, web

from ..stomp.session import StompSession
from .http import HTTPListener

log = logging.getLogger("warrenmq.stomp")

SUBPROTOCOLS = ("v12.stomp", "v11.stomp", "v10.stomp")


class _Reader:
    """What the session calls to stop and resume reading (flow control, alarms) and what the management
    API asks the transport (its addresses)."""
    __slots__ = ("transport", "paused")

    def __init__(self, transport):
        self.transport = transport
        self.paused = False

    def pause_reading(self) -> None:
        self.paused = True
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        self.paused = False
        if self.transport is not None:
            self.transport.resume_reading()

    def get_extra_info(self, name, default=None):
        return self.transport.get_extra_info(name, default) if self.transport is not None else default


class WebStompServer(HTTPListener):
    """Serves Web STOMP for the app's broker (set when the app opened storage)."""

    option = "--web-stomp-port (or --no-web-stomp)"
    tls_option = "--web-stomps-port (or --no-web-stomp)"

    def __init__(self, app, host: str = "", port: int = 15674, path: str = "/ws", tls=None,
                 tls_port: int | None = None):
        super().__init__(host, port, tls=tls, tls_port=tls_port,
                         tls_handshake_timeout=app.config.tls_handshake_timeout_ms / 1000)
        self.app = app
        self.path = path
        self.connections: set = set()

    def web_app(self) -> web.Application:
        webapp = web.Application()
        webapp.router.add_get(self.path, self.handle)
        return webapp

    async def stop(self) -> None:
        for ws, session in list(self.connections):
            session.force_close(320, "broker shutting down")
        await super().stop()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(protocols=SUBPROTOCOLS, autoping=True,
                                   max_msg_size=self.app.broker.config.max_message_size + 65536)
        await ws.prepare(request)
        transport = request.transport
        peer = transport.get_extra_info("peername") if transport is not None else None
        local = transport.get_extra_info("sockname") if transport is not None else None
        session = StompSession(self.app.broker, peer[:2] if peer else None,
                               local[:2] if isinstance(local, tuple) else None, "Web STOMP")
        session.reader = _Reader(transport)
        wake = asyncio.Event()
        session.on_output = wake.set
        loop = asyncio.get_running_loop()
        last_recv = [loop.time()]
        writer = asyncio.ensure_future(self._write(ws, session, wake, last_recv))
        entry = (ws, session)
        self.connections.add(entry)
        try:
            async for msg in ws:
                last_recv[0] = loop.time()
                if msg.type == WSMsgType.TEXT:
                    data = msg.data.encode()
                elif msg.type == WSMsgType.BINARY:
                    data = msg.data
                else:
                    break
                session.recv_oct += len(data)
                session.recv_cnt += 1
                session.receive_data(data)
                if session.closing:
                    break
        finally:
            self.connections.discard(entry)
            wake.set()
            try:
                await asyncio.wait_for(writer, 5)
            except (asyncio.TimeoutError, Exception):  # the peer went away while we wrote
                writer.cancel()
            session.connection_lost()
            if not ws.closed:
                await ws.close()
        return ws

    @staticmethod
    async def _write(ws, session, wake: asyncio.Event, last_recv: list) -> None:
        loop = asyncio.get_running_loop()
        last_sent = loop.time()
        while True:
            timeout = None
            if session.heartbeat_out or session.heartbeat_in:
                ms = min(x for x in (session.heartbeat_out, session.heartbeat_in) if x)
                timeout = max(ms / 2000.0, 0.05)
            try:
                await asyncio.wait_for(wake.wait(), timeout)
            except asyncio.TimeoutError:
                now = loop.time()
                if session.heartbeat_in and now - last_recv[0] > 2 * session.heartbeat_in / 1000.0:
                    log.warning("Web STOMP connection %s missed heart-beats from client, closing it", session.name)
                    await ws.close()
                    return
                if session.heartbeat_out and now - last_sent >= session.heartbeat_out / 1000.0:
                    await ws.send_str("\n")
                    last_sent = now
                continue
            wake.clear()
            frames = session.out[:]
            session.out.clear()
            for f in frames:
                try:
                    text = f.decode("utf-8")
                except UnicodeDecodeError:
                    await ws.send_bytes(f)
                else:
                    await ws.send_str(text)
                session.send_oct += len(f)
                session.send_cnt += 1
            if frames:
                last_sent = loop.time()
            if session.closing or session.closed and not session.out:
                if not ws.closed:
                    await ws.close()
                return
