"""The life cycle every aiohttp listener shares: management, Prometheus, Web STOMP and Web MQTT.

Theory of operation: like the AMQP listener (:class:`~.server.Server`), an :class:`HTTPListener` takes
its port in :meth:`~HTTPListener.bind` before storage is opened, so a taken port fails first, as one
:class:`~.server.ListenError` naming the listener's ``option``; :meth:`~HTTPListener.start` serves
the socket with the subclass's :meth:`~HTTPListener.web_app` through an aiohttp ``AppRunner`` and
``SockSite`` once the broker exists (HTTPS when ``ssl`` is set), on the broker's event loop;
:meth:`~HTTPListener.stop` ends the site and closes the socket. No access log: the broker's logging is
its own.

A second, TLS port: given ``tls`` (an :class:`ssl.SSLContext`) and ``tls_port``, the listener also binds
``tls_port`` (a taken one names ``tls_option``) and serves the same aiohttp app there over TLS, a second
site of the one runner (Web STOMP and Web MQTT over TLS, RabbitMQ's ``web_stomp.ssl``/``web_mqtt.ssl``
listeners beside their plain ones).  Its handshakes are bounded by ``tls_handshake_timeout`` seconds, as
the AMQPS listener's are (aiohttp's own site would wait asyncio's default, a minute).
"""
from __future__ import annotations

import asyncio
import socket

from aiohttp import web

from .server import listen_socket


class _TLSSite(web.SockSite):
    """aiohttp's ``SockSite`` with a bound on the TLS handshake."""

    __slots__ = ("_handshake_timeout",)

    def __init__(self, runner, sock, ssl_context, handshake_timeout: float):
        super().__init__(runner, sock, ssl_context=ssl_context)
        self._handshake_timeout = handshake_timeout

    async def start(self) -> None:
        await web.BaseSite.start(self)  # (registers the site with its runner; SockSite.start would create the server)
        self._server = await asyncio.get_running_loop().create_server(
            self._runner.server, sock=self._sock, ssl=self._ssl_context, backlog=self._backlog,
            ssl_handshake_timeout=self._handshake_timeout)


class HTTPListener:
    """Subclasses set ``option`` (the command-line option that chooses another port, for the error)
    and define :meth:`web_app`; ``ssl`` is an :class:`ssl.SSLContext` for HTTPS, or ``None``; ``tls``
    and ``tls_port`` a second port served over TLS (``tls_option`` names it), or ``None``."""

    option = "--port"
    tls_option = "--port"

    def __init__(self, host: str, port: int, ssl=None, tls=None, tls_port: int | None = None,
                 tls_handshake_timeout: float = 5.0):
        self.host = host
        self.port = port
        self.ssl = ssl
        self.tls = tls if tls_port is not None else None
        self.tls_port = tls_port if tls is not None else None
        self.tls_handshake_timeout = tls_handshake_timeout
        self._sock: socket.socket | None = None
        self._tls_sock: socket.socket | None = None
        self._runner: web.AppRunner | None = None

    def bind(self) -> None:
        """Bind and listen (nothing is served until :meth:`start`); the bound port(s) once done."""
        self._sock = listen_socket(self.host, self.port, self.option)
        self.port = self._sock.getsockname()[1]
        if self.tls is not None:
            try:
                self._tls_sock = listen_socket(self.host, self.tls_port, self.tls_option, tls=True)
            except OSError:
                self._sock.close()
                self._sock = None
                raise
            self.tls_port = self._tls_sock.getsockname()[1]

    def web_app(self) -> web.Application:
        raise NotImplementedError

    async def start(self) -> None:
        if self._sock is None:
            self.bind()
        self._runner = web.AppRunner(self.web_app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.SockSite(self._runner, self._sock, ssl_context=self.ssl).start()
        if self._tls_sock is not None:
            await _TLSSite(self._runner, self._tls_sock, self.tls, self.tls_handshake_timeout).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        for sock in (self._sock, self._tls_sock):
            if sock is not None:
                sock.close()
        self._sock = self._tls_sock = None
