"""The Prometheus listener: an aiohttp application on the broker's event loop (port 15692).

Theory of operation: :class:`PrometheusServer` is an
:class:`~warrenmq.transport.http.HTTPListener`, like the management listener:
:meth:`bind` takes the port before storage is opened (a taken port is a
:class:`~warrenmq.transport.server.ListenError` naming ``--prometheus-port``),
:meth:`start` serves it once the broker exists, :meth:`stop` closes it.  Each request renders a fresh
:class:`~.collector.Collector` with prometheus_client's text exposition
(``text/plain; version=0.0.4``) on the loop; gzip when the request's
``Accept-Encoding`` allows it (RabbitMQ answers ``content-encoding: identity``
otherwise).  No authentication, as RabbitMQ's plugin by default.  Paths as
RabbitMQ's: ``/metrics``, ``/metrics/per-object``, ``/metrics/detailed``
(``family=`` repeated, ``vhost=`` repeated); another ``/metrics/NAME`` is a
404 ``Unknown Registry``, anything else RabbitMQ's JSON 404.
"""
from __future__ import annotations

import gzip
import json
import logging

from aiohttp import web
from prometheus_client.exposition import generate_latest

from ..transport.http import HTTPListener
from .collector import Collector

log = logging.getLogger("warrenmq.prometheus")

CONTENT_TYPE = "text/plain; version=0.0.4"
_NOT_FOUND = json.dumps({"error": "Object Not Found", "reason": "Not Found"}, separators=(",", ":"))


class PrometheusServer(HTTPListener):
    """``PrometheusServer(app, host, port)``; ``app`` is the :class:`~warrenmq.app.BrokerApp`."""

    option = "--prometheus-port (or --no-prometheus)"

    def __init__(self, app, host: str, port: int):
        super().__init__(host, port)
        self.app = app

    def web_app(self) -> web.Application:
        webapp = web.Application()
        webapp.router.add_get("/metrics", self.aggregated)
        webapp.router.add_get("/metrics/per-object", self.per_object)
        webapp.router.add_get("/metrics/detailed", self.detailed)
        webapp.router.add_get("/metrics/{registry}", self.unknown_registry)
        webapp.router.add_route("*", "/{tail:.*}", self.not_found)
        return webapp

    async def start(self) -> None:
        await super().start()
        log.info("Prometheus metrics on http://%s:%s/metrics", self.host or "0.0.0.0", self.port)

    # ------------------------------------------------------------------------------------ handlers
    async def aggregated(self, request: web.Request) -> web.StreamResponse:
        return self._render(request, Collector(self.app, "aggregated"))

    async def per_object(self, request: web.Request) -> web.StreamResponse:
        return self._render(request, Collector(self.app, "per-object"))

    async def detailed(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        vhosts = q.getall("vhost", None)
        return self._render(request, Collector(self.app, "detailed", families=q.getall("family", []),
                                               vhosts=set(vhosts) if vhosts else None))

    async def unknown_registry(self, request: web.Request) -> web.StreamResponse:
        return web.Response(status=404, text="Unknown Registry", content_type="text/plain")

    async def not_found(self, request: web.Request) -> web.StreamResponse:
        return web.Response(status=404, text=_NOT_FOUND, content_type="application/json")

    def _render(self, request: web.Request, collector: Collector) -> web.Response:
        if self.app.broker is None:  # bound, still recovering
            return web.Response(status=503, text="the broker is starting", content_type="text/plain")
        body = generate_latest(collector)
        headers = {"Content-Type": CONTENT_TYPE}
        if _accepts_gzip(request.headers.get("Accept-Encoding", "")):
            body = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        else:
            headers["Content-Encoding"] = "identity"
        return web.Response(body=body, headers=headers)


def _accepts_gzip(header: str) -> bool:
    for part in header.split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() in ("gzip", "*"):
            q = params.strip()
            return not (q.startswith("q=") and _float(q[2:]) == 0)
    return False


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return 1.0
