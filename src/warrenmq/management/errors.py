"""JSON responses and RabbitMQ's error bodies.

Theory of operation: RabbitMQ's management plugin answers every error with a
JSON object ``{"error": ..., "reason": ...}`` (``rabbit_mgmt_util:halt_response``
and ``not_found``); a handler here raises :class:`ApiError` (or one of the
helpers) and the error middleware of :mod:`.server` turns it, and aiohttp's own
404/405, into that shape.
"""
from __future__ import annotations

import json

from aiohttp import web

#: RabbitMQ's realm, sent with every 401 for missing or wrong credentials
AUTH_REALM = 'Basic realm="RabbitMQ Management"'


def dumps(data) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=_default)


def _default(v):
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).decode("utf-8", "replace")
    if isinstance(v, (set, frozenset, tuple)):
        return list(v)
    return str(v)


def json_response(data, status: int = 200) -> web.Response:
    return web.Response(text=dumps(data), status=status, content_type="application/json")


class ApiError(Exception):
    """An error answer: ``status`` with ``{"error": error, "reason": reason}``."""

    def __init__(self, status: int, error: str, reason: str, headers: dict | None = None, body: bool = True):
        super().__init__(reason)
        self.status, self.error, self.reason, self.headers, self.body = status, error, reason, headers, body

    def response(self) -> web.Response:
        if not self.body:  # RabbitMQ answers a request without credentials with an empty 401
            r = web.Response(status=self.status)
        else:
            r = json_response({"error": self.error, "reason": self.reason}, self.status)
        if self.headers:
            r.headers.update(self.headers)
        return r


def not_found() -> ApiError:
    """RabbitMQ's 404 for an object (vhost, queue, exchange, connection) or a path that does not exist."""
    return ApiError(404, "Object Not Found", "Not Found")


def bad_request(reason: str, error: str = "bad_request") -> ApiError:
    return ApiError(400, error, reason)


def not_authorised(reason: str, challenge: bool = False, body: bool = True) -> ApiError:
    """401 (RabbitMQ answers a refused, authenticated user with 401 too).  ``challenge``: missing or wrong
    credentials, with ``WWW-Authenticate`` and error ``not_authorized`` (RabbitMQ's not_authenticated);
    otherwise an authenticated user refused (a tag level, a vhost, an object), error ``not_authorised``,
    as RabbitMQ 3.10 spells the two (rabbit_mgmt_util, and probed)."""
    if challenge:
        return ApiError(401, "not_authorized", reason, {"WWW-Authenticate": AUTH_REALM}, body)
    return ApiError(401, "not_authorised", reason, None, body)


def access_refused() -> ApiError:
    """A user without the permission an operation needs: RabbitMQ 3.10 answers 401 with this body (and
    this spelling, unlike the login failures'), probed on the reference with a management user."""
    return ApiError(401, "not_authorised", "Access refused.")
