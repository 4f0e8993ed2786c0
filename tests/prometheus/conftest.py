"""A real WarrenMQ serving its Prometheus endpoints, and a scraper that parses what it says with
prometheus_client's own parser (real HTTP over a real socket; nothing of the broker mocked)."""
import gzip
import urllib.error
import urllib.request

import pytest

pytest.importorskip("aiohttp")
pytest.importorskip("prometheus_client")

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from warrenmq.testing import EmbeddedBroker  # noqa: E402


def fetch(url: str, headers=None):
    """``(status, headers, body bytes)`` of a GET."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


class Scrape:
    """One scrape, parsed: ``families`` by name (counters without ``_total``, as the parser names them) and
    ``value(sample name, **labels)``."""

    def __init__(self, text: str):
        self.text = text
        self.families = {f.name: f for f in text_string_to_metric_families(text)}
        self.samples = [s for f in self.families.values() for s in f.samples]

    def find(self, name: str, **labels) -> list:
        return [s for s in self.samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]

    def value(self, name: str, **labels) -> float:
        found = self.find(name, **labels)
        assert len(found) == 1, (name, labels, found)
        return found[0].value


def scrape(broker, path: str = "/metrics") -> Scrape:
    status, headers, body = fetch(broker.prometheus_url + path)
    assert status == 200, body
    assert headers["Content-Type"] == "text/plain; version=0.0.4"
    return Scrape(body.decode())


def gunzip(body: bytes) -> bytes:
    return gzip.decompress(body)


@pytest.fixture
def pbroker():
    with EmbeddedBroker(prometheus=True, management=True) as b:
        yield b
