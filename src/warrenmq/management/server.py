"""The management listener: an aiohttp application on the broker's event loop.

Theory of operation: :class:`ManagementServer` is an
:class:`~warrenmq.transport.http.HTTPListener`: :meth:`bind` takes the port
before storage is opened (a taken port fails with
:class:`~warrenmq.transport.server.ListenError`), :meth:`start` serves it
once the broker exists, :meth:`stop` closes it.  Requests are handled on the broker's
loop, between AMQP events: a handler reads and changes the domain with no
lock.  One aiohttp handler takes every ``/api/...`` path and dispatches it
with :func:`.dispatch.match` on the raw, still percent-encoded path (see
:mod:`.routes`); the error middleware turns :class:`~.errors.ApiError` and
aiohttp's own 404/405 into RabbitMQ's JSON errors.  :meth:`start` also starts
the statistics sampler (:class:`.stats.Stats`) on the same loop.  No access log: the broker's
logging is its own.

The web UI (docs/ui.md) is static files in the package's ``www/`` directory:
``GET /`` answers ``www/index.html`` and ``/static/...`` serves ``www/static``
(aiohttp's static route, which refuses paths leaving that directory).  The
files are ES modules that call ``/api/...`` like any other client; nothing is
rendered here.  Vendored libraries (``static/vendor/``, pinned versions) may
be cached for a day; the UI's own files are revalidated on every load.
"""
from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from urllib.parse import unquote

from aiohttp import web

from ..protocol.errors import AMQPError
from ..protocol.spec import CONNECTION_FORCED
from ..transport.http import HTTPListener
from . import dispatch, routes, views
from .auth import authenticate
from .errors import ApiError, not_found
from .stats import Stats

log = logging.getLogger("warrenmq.management")

#: the web UI's files (package data, see pyproject.toml)
WWW = Path(__file__).with_name("www")
#: scripts only from the UI's own files; no inline scripts, no plugins, no framing
_UI_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
           "object-src 'none'; base-uri 'self'; frame-ancestors 'none'")


class ManagementServer(HTTPListener):
    """``ManagementServer(app, host, port)``; ``app`` is the :class:`~warrenmq.app.BrokerApp` (its broker,
    its AMQP listeners for the overview and for closing connections); ``ssl``: an :class:`ssl.SSLContext` to
    serve HTTPS."""

    option = "--management-port (or --no-management)"

    def __init__(self, app, host: str, port: int, ssl=None):
        super().__init__(host, port, ssl)  # ssl: HTTPS (management_tls_certfile/keyfile)
        self.app = app
        self.node = views.node_name()
        self.stats: Stats | None = None  # the statistics (stats.py), made at start, when the broker is

    @property
    def broker(self):
        return self.app.broker

    @property
    def scheme(self) -> str:
        return "https" if self.ssl is not None else "http"

    def web_app(self) -> web.Application:
        webapp = web.Application(middlewares=[_errors], client_max_size=16 << 20)
        webapp.router.add_route("*", "/api/{tail:.*}", self.handle)
        webapp.router.add_route("*", "/api", self.handle)
        webapp.router.add_get("/", _index)
        webapp.router.add_static("/static", WWW / "static")
        webapp.on_response_prepare.append(_ui_headers)
        return webapp

    async def start(self) -> None:
        if self._sock is None:
            self.bind()
        cfg = self.broker.config
        self.stats = Stats(self.broker, cfg.statistics_enabled, cfg.statistics_interval_ms)
        self.stats.start(asyncio.get_running_loop())
        await super().start()
        log.info("management API listening on %s:%s (%s)", self.host, self.port, self.scheme)

    async def stop(self) -> None:
        if self.stats is not None:
            self.stats.stop()
        await super().stop()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.raw_path.split("?", 1)[0]
        segments = [unquote(s) for s in path.split("/")[2:]]  # "", "api", ...
        found = dispatch.match(segments)
        if found is None:
            raise not_found()
        methods, params = found
        handler = methods.get(request.method)
        if handler is None:
            if request.method == "HEAD" and "GET" in methods:
                handler = methods["GET"]
            else:
                return web.Response(status=405, headers={"Allow": ", ".join(sorted(methods))})
        if self.broker is None:  # bound, not yet recovered: start() serves only once it has
            raise ApiError(503, "service_unavailable", "the broker is starting")
        peer = request.transport.get_extra_info("peername") if request.transport is not None else None
        if getattr(handler, "public", False):  # answered without credentials (RabbitMQ's /api/auth)
            user = None
        else:
            header = request.headers.get("Authorization")
            if header is None and segments[0] == "definitions" and "auth" in request.query:
                header = "Basic " + request.query["auth"]  # the UI's download link (RabbitMQ: definitions only)
            user = authenticate(self.broker, header, peer)
        return await handler(routes.Ctx(self, user, request), *params)

    def listeners(self) -> list:
        """The overview's listeners with RabbitMQ's protocol names: AMQP, AMQPS when on, the plugins' that
        are on (MQTT, STOMP, their TLS and WebSocket forms, Prometheus), and this HTTP one."""
        out = []
        app = self.app

        def add(host, port, protocol, http=False):
            out.append({"ip_address": _ip(host), "node": self.node, "port": port, "protocol": protocol,
                        "socket_opts": {"port": port} if http else {}})

        for server, protocol in ((app.server, "amqp"), (app.tls_server, "amqp/ssl")):
            if server is not None:
                add(app.config.host, server.port, protocol)
        for server, plain, tls in ((app.mqtt, "mqtt", "mqtt/ssl"), (app.stomp, "stomp", "stomp/ssl")):
            if server is not None:
                add(server.host, server.port, plain)
                if server.tls is not None:
                    add(server.host, server.tls_port, tls)
        for server, name in ((app.web_mqtt, "web-mqtt"), (app.web_stomp, "web-stomp")):
            if server is not None:
                add(server.host, server.port, "http/" + name, http=True)
                if server.tls_port is not None:
                    add(server.host, server.tls_port, "https/" + name, http=True)
        if app.prometheus is not None:
            add(app.prometheus.host, app.prometheus.port, "http/prometheus", http=True)
        add(self.host, self.port, self.scheme, http=True)
        return out

    def close_session(self, session, text: str) -> None:
        """Close ``session``'s connection with CONNECTION_FORCED and ``text`` (the transport waits for the
        client's close-ok, then drops the socket)."""
        for server in (self.app.server, self.app.tls_server):
            if server is None:
                continue
            for c in list(server.connections):
                if c.session is session:
                    c.force_close(text)
                    return
        if getattr(session, "protocol", None) is not None:  # another protocol's session (STOMP): it closes itself
            session.force_close(CONNECTION_FORCED, text.removeprefix("CONNECTION_FORCED - "))


async def _index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(WWW / "index.html")


async def _ui_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Cache and security headers of the UI's files (the API's responses are left as they are)."""
    path = request.path
    if path == "/" or path.startswith("/static/"):
        if path.startswith("/static/vendor/") and response.status == 200:
            response.headers["Cache-Control"] = "public, max-age=86400"
        else:
            response.headers["Cache-Control"] = "no-cache"
        response.headers["Content-Security-Policy"] = _UI_CSP
        response.headers["X-Content-Type-Options"] = "nosniff"


def _ip(host: str) -> str:
    return host or "::"


@web.middleware
async def _errors(request, handler):
    try:
        return await handler(request)
    except ApiError as e:
        return e.response()
    except AMQPError as e:  # the domain refused it: RabbitMQ's management answer (routes.amqp_error)
        return routes.amqp_error(e).response()
    except web.HTTPNotFound:
        return not_found().response()
