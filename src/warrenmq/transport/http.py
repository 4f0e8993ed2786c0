"""The life cycle every aiohttp listener shares: management, Prometheus, Web STOMP and Web MQTT.

Theory of operation: like the AMQP listener (:class:`~.server.Server`), an :class:`HTTPListener` takes
its port in :meth:`~HTTPListener.bind` before storage is opened, so a taken port fails first, as one
:class:`~.server.ListenError` naming the listener's ``option``; :meth:`~HTTPListener.start` serves
the socket with the subclass's :meth:`~HTTPListener.web_app` through an aiohttp ``AppRunner`` and
``SockSite`` once the broker exists (HTTPS when ``ssl`` is set), on the broker's event loop;
:meth:`~HTTPListener.stop` ends the site and closes the socket. No access log: the broker's logging is
its own.
"""
from __future__ import annotations

import socket

from aiohttp import web

from .server import listen_socket


class HTTPListener:
    """Subclasses set ``option`` (the command-line option that chooses another port, for the error)
    and define :meth:`web_app`; ``ssl`` is an :class:`ssl.SSLContext` for HTTPS, or ``None``."""

    option = "--port"

    def __init__(self, host: str, port: int, ssl=None):
        self.host = host
        self.port = port
        self.ssl = ssl
        self._sock: socket.socket | None = None
        self._runner: web.AppRunner | None = None

    def bind(self) -> None:
        """Bind and listen (nothing is served until :meth:`start`); the bound port once done."""
        self._sock = listen_socket(self.host, self.port, self.option)
        self.port = self._sock.getsockname()[1]

    def web_app(self) -> web.Application:
        raise NotImplementedError

    async def start(self) -> None:
        if self._sock is None:
            self.bind()
        self._runner = web.AppRunner(self.web_app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.SockSite(self._runner, self._sock, ssl_context=self.ssl).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
