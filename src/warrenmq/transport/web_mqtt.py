"""Web MQTT: the MQTT session over WebSocket (aiohttp), as RabbitMQ's rabbitmq_web_mqtt serves it.

Theory of operation: :class:`WebMQTTServer` serves ``ws://host:15675/ws`` with aiohttp's WebSocket
implementation and the subprotocol ``mqtt`` (MQTT over WebSocket, MQTT 3.1.1 section 6 and 5.0
section 6: binary messages, each holding any part of the byte stream).  Each connection is an
:class:`~warrenmq.mqtt.session.MQTTSession` of the TCP listener's :class:`~.mqtt.MQTTServer`, so
client-id takeover and retained messages are shared between the two transports.  :class:`_WSIO` is
the session's ``io``: what the session writes is queued and a writer task sends it as binary
messages; ``close`` ends the WebSocket once the queue is sent.  The keepalive and connect timers are
the MQTT server's.  With the broker's TLS certificate configured the same app is also served over
TLS (``wss://host:15676/ws``, RabbitMQ's ``web_mqtt.ssl`` listener; :class:`~.http.HTTPListener`).
"""
from __future__ import annotations

import asyncio
import logging

from aiohttp import WSMsgType, web

from ..mqtt.session import MQTTSession
from .http import HTTPListener

log = logging.getLogger("warrenmq.mqtt")


class _WSIO:
    """The session's transport: ``write``, ``close``, ``call_soon``, ``pause_reading``, ``peer``,
    ``transport`` (addresses for the management API) and ``last_data`` (the keepalive timer's)."""
    __slots__ = ("loop", "transport", "peer", "out", "wake", "closing", "last_data", "session", "reading_paused")

    def __init__(self, loop, transport):
        self.loop = loop
        self.transport = transport
        peer = transport.get_extra_info("peername") if transport is not None else None
        self.peer = peer[:2] if peer else None
        self.out: list = []
        self.wake = asyncio.Event()
        self.closing = False
        self.last_data = loop.time()
        self.session = None
        self.reading_paused = False

    def write(self, data: bytes) -> None:
        self.out.append(data)
        self.wake.set()

    def close(self) -> None:
        self.closing = True
        self.wake.set()

    def call_soon(self, fn) -> None:
        self.loop.call_soon(fn)

    def pause_reading(self, paused: bool) -> None:
        t = self.transport
        if paused != self.reading_paused and t is not None and not t.is_closing():
            self.reading_paused = paused
            t.pause_reading() if paused else t.resume_reading()


class WebMQTTServer(HTTPListener):
    """Serves Web MQTT for the app's MQTT listener (``mqtt``: the :class:`~.mqtt.MQTTServer`)."""

    option = "--web-mqtt-port (or --no-web-mqtt)"
    tls_option = "--web-mqtts-port (or --no-web-mqtt)"

    def __init__(self, app, mqtt, host: str = "", port: int = 15675, path: str = "/ws", tls=None,
                 tls_port: int | None = None):
        super().__init__(host, port, tls=tls, tls_port=tls_port,
                         tls_handshake_timeout=app.config.tls_handshake_timeout_ms / 1000)
        self.app = app
        self.mqtt = mqtt
        self.path = path
        self.connections: set = set()

    def web_app(self) -> web.Application:
        webapp = web.Application()
        webapp.router.add_get(self.path, self.handle)
        return webapp

    async def stop(self) -> None:
        for io in list(self.connections):
            if io.session is not None:
                io.session.close(publish_will=False)
        await super().stop()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(protocols=("mqtt",), autoping=True,
                                   max_msg_size=self.app.config.mqtt_max_packet_size + 8)
        await ws.prepare(request)
        loop = asyncio.get_running_loop()
        io = _WSIO(loop, request.transport)
        session = io.session = MQTTSession(self.mqtt, io)
        self.mqtt.schedule_connect_timeout(io)
        writer = asyncio.ensure_future(self._write(ws, io))
        self.connections.add(io)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.BINARY:
                    data = msg.data
                elif msg.type == WSMsgType.TEXT:  # not MQTT over WebSocket: closed as RabbitMQ does
                    break
                else:
                    break
                io.last_data = loop.time()
                session.data_received(data)
                if io.closing:
                    break
        finally:
            self.connections.discard(io)
            io.close()
            try:
                await asyncio.wait_for(writer, 5)
            except (asyncio.TimeoutError, Exception):  # the peer went away while we wrote
                writer.cancel()
            session.connection_lost()
            if not ws.closed:
                await ws.close()
        return ws

    @staticmethod
    async def _write(ws, io: _WSIO) -> None:
        while True:
            await io.wake.wait()
            io.wake.clear()
            out, io.out = io.out, []
            if out:
                await ws.send_bytes(b"".join(out))
            if io.closing:
                if not ws.closed:
                    await ws.close()
                return
