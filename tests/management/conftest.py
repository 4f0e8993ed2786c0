"""An embedded broker serving the management API, and a small HTTP client for it (urllib: real requests
over a real socket, nothing of the broker mocked)."""
import base64
import json
import urllib.error
import urllib.parse
import urllib.request

import pytest

pytest.importorskip("aiohttp")

from warrenmq.testing import EmbeddedBroker  # noqa: E402


class Api:
    def __init__(self, base: str):
        self.base = base

    def request(self, method: str, path: str, body=None, auth=("guest", "guest"), headers=None, raw_body=None):
        """``(status, headers, json or text or None)``; ``raw_body``: bytes sent as they are."""
        data = raw_body if raw_body is not None else None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if auth is not None:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            req.add_header("Authorization", f"Basic {token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                status, hdrs, raw = r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            status, hdrs, raw = e.code, e.headers, e.read()
        if not raw:
            return status, hdrs, None
        try:
            return status, hdrs, json.loads(raw)
        except ValueError:
            return status, hdrs, raw.decode()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def put(self, path, body=None, **kw):
        return self.request("PUT", path, body if body is not None else {}, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)


def q(name: str) -> str:
    """A path segment, percent-encoded as RabbitMQ's paths want (``/`` is ``%2F``)."""
    return urllib.parse.quote(name, safe="")


@pytest.fixture(scope="module")
def mbroker():
    with EmbeddedBroker(management=True) as b:
        b.call(lambda: b.broker.add_user("plain", "plainpw", [], {"/"}))
        b.call(lambda: b.broker.add_user("mgmt", "mgmtpw", ["management"], {"/"}))
        b.call(lambda: b.broker.add_user("mon", "monpw", ["monitoring"], {"/"}))
        yield b


@pytest.fixture(scope="module")
def api(mbroker):
    return Api(mbroker.management_url)
