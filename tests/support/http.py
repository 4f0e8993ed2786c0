"""A small HTTP client for the management API in tests: urllib, real requests over a real socket."""
from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request

DEFAULT_AUTH = ("guest", "guest")


def http(base: str, method: str, p: str, body=None, auth=DEFAULT_AUTH, headers=None, raw: bytes | None = None):
    """``(status, headers, decoded body)``: JSON, else text, else None. ``body`` is sent as JSON, ``raw``
    (bytes) as it is; ``auth`` a (user, password) pair for Basic authentication, or None for none."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(base + p, data=data, method=method)
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status, hdrs, payload = r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        status, hdrs, payload = e.code, e.headers, e.read()
    if not payload:
        return status, hdrs, None
    try:
        return status, hdrs, json.loads(payload)
    except ValueError:
        return status, hdrs, payload.decode("utf-8", "replace")
