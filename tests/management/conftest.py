"""An embedded broker serving the management API, and a small HTTP client for it (urllib: real requests
over a real socket, nothing of the broker mocked)."""
import urllib.parse

import pytest

pytest.importorskip("aiohttp")

from support.http import http  # noqa: E402
from warrenmq.testing import EmbeddedBroker  # noqa: E402


class Api:
    def __init__(self, base: str):
        self.base = base

    def request(self, method: str, path: str, body=None, auth=("guest", "guest"), headers=None, raw_body=None):
        """``(status, headers, json or text or None)``; ``raw_body``: bytes sent as they are."""
        return http(self.base, method, path, body, auth, headers, raw_body)

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
