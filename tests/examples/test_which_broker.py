"""examples/which_broker.py names the broker a connection reached, for each client library the examples use.

WarrenMQ reports ``product`` "RabbitMQ" and the RabbitMQ version it is
compatible with, and both listen on 5672 by default; the line must still tell
them apart.  Each client (pika, aio-pika, kombu) is connected for real to an
embedded WarrenMQ and to the reference RabbitMQ (``WARRENMQ_REFERENCE_URL``, as
for tests/differential; skipped without it).
"""
from __future__ import annotations

import asyncio
import importlib.util
import os
import platform
import re
from pathlib import Path
from urllib.parse import urlsplit

import aio_pika
import pika
import pytest
from kombu import Connection

from warrenmq import __version__
from warrenmq.testing import EmbeddedBroker

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
REFERENCE_ENV = "WARRENMQ_REFERENCE_URL"


def _load():
    spec = importlib.util.spec_from_file_location("which_broker", EXAMPLES / "which_broker.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


which_broker = _load()


@pytest.fixture(params=["warrenmq", "rabbitmq"])
def target(request):
    """(AMQP URL, the line expected for it)."""
    if request.param == "warrenmq":
        with EmbeddedBroker() as broker:
            yield broker.url, re.escape(f"connected to WarrenMQ {__version__} on Python {platform.python_version()} "
                                        f"at 127.0.0.1:{broker.port}")
        return
    url = os.environ.get(REFERENCE_ENV)
    if not url:
        pytest.skip(f"{REFERENCE_ENV} is not set: no reference RabbitMQ to connect to")
    u = urlsplit(url)
    yield url, rf"connected to RabbitMQ 3\.\d+\.\d+ \(Erlang/OTP [\d.]+\) at {re.escape(u.hostname)}:{u.port or 5672}"


def test_pika_blocking_connection(target):
    url, expected = target
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        assert re.fullmatch(expected, which_broker.connected_to(conn))
    finally:
        conn.close()


def test_aio_pika(target):
    url, expected = target

    async def line():
        async with await aio_pika.connect(url) as conn:
            return which_broker.connected_to(conn)

    assert re.fullmatch(expected, asyncio.run(line()))


def test_kombu(target):
    url, expected = target
    u = urlsplit(url)
    with Connection(f"amqp://{u.username}:{u.password}@{u.hostname}:{u.port}//") as conn:  # "//": vhost "/"
        assert re.fullmatch(expected, which_broker.connected_to(conn))


def test_aio_pika_url_without_a_port_names_5672():
    # yarl knows no default port for amqp://: the line must not say "localhost:None"
    url = os.environ.get(REFERENCE_ENV)
    if not url or (urlsplit(url).port or 5672) != 5672:
        pytest.skip(f"{REFERENCE_ENV} does not name a RabbitMQ on port 5672 (WarrenMQ tests never bind 5672)")
    u = urlsplit(url)

    async def line():
        async with await aio_pika.connect(f"amqp://{u.username}:{u.password}@{u.hostname}/") as conn:
            return which_broker.connected_to(conn)

    assert re.fullmatch(rf"connected to RabbitMQ .+ at {re.escape(u.hostname)}:5672", asyncio.run(line()))


def test_other_brokers_and_bytes_values():
    assert which_broker.describe({"product": b"Acme MQ", "version": b"2.0"}, "h", 1) == "connected to Acme MQ 2.0 at h:1"
    assert which_broker.describe({}, "h", 1) == "connected to an unnamed broker at h:1"


def test_not_a_connection():
    with pytest.raises(TypeError, match="not a pika, aio-pika or kombu connection"):
        which_broker.connected_to(object())


def test_announce_prints_once_per_process(capsys):
    module = _load()  # a fresh copy: announce() remembers that it printed
    with EmbeddedBroker() as broker:
        conns = [pika.BlockingConnection(pika.URLParameters(broker.url)) for _ in range(2)]
        for conn in conns:
            module.announce(conn)
            conn.close()
    assert capsys.readouterr().out.splitlines() == [which_broker.describe(
        {"platform": f"WarrenMQ {__version__} on Python {platform.python_version()}"}, "127.0.0.1", broker.port)]

