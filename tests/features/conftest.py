"""Fixtures for the feature suites: a fresh broker per test, pika connections to it.

Set ``WARRENMQ_FEATURE_TESTS_URL`` (e.g. ``amqp://guest:guest@127.0.0.1:5672/%2F``)
to run them against another broker, such as the RabbitMQ 3.10 whose behaviour
they encode; tests marked ``warrenmq_only`` (or using ``embedded``) are skipped then.
"""
import os

import pytest

from support.features import connect

from .helpers import Consumers, Publisher

EXTERNAL = os.environ.get("WARRENMQ_FEATURE_TESTS_URL")

#: for tests that check WarrenMQ-only behaviour (a deliberate difference, or a look inside the broker)
warrenmq_only = pytest.mark.skipif(bool(EXTERNAL), reason="checks WarrenMQ itself")


@pytest.fixture
def url(request):
    if EXTERNAL:
        return EXTERNAL
    return request.getfixturevalue("amqp_url")


@pytest.fixture
def publisher(url):
    p = Publisher(url)
    yield p
    p.close()


@pytest.fixture
def consumers(url):
    c = Consumers(url)
    yield c
    c.close()


@pytest.fixture
def embedded(request):
    """The embedded broker (tests that need it are skipped against an external broker)."""
    if EXTERNAL:
        pytest.skip("needs the embedded WarrenMQ")
    return request.getfixturevalue("broker")


@pytest.fixture
def conn(url):
    c = connect(url)
    yield c
    if c.is_open:
        c.close()


@pytest.fixture
def ch(conn):
    return conn.channel()


@pytest.fixture
def new_channel(url):
    """Channels on fresh connections, for tests that expect a channel or connection to be closed."""
    conns = []

    def make():
        c = connect(url)
        conns.append(c)
        return c, c.channel()
    yield make
    for c in conns:
        if c.is_open:
            c.close()


@pytest.fixture
def cleanup(url):
    """Lists to append queue and exchange names to, deleted after the test (matters on a shared broker)."""
    queues, exchanges = [], []
    yield queues, exchanges
    if not EXTERNAL:
        return
    c = connect(url)
    for q in queues:
        c.channel().queue_delete(q)
    for x in exchanges:
        c.channel().exchange_delete(x)
    c.close()
