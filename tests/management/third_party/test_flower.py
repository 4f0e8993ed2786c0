"""Celery Flower's broker view, unchanged, against WarrenMQ: Flower's ``Broker`` (what its Broker page and
``/api/queues/length`` call) with ``broker_api`` pointed at WarrenMQ's management URL shows the queues'
lengths, as ``flower --broker_api=...`` does against RabbitMQ."""
from __future__ import annotations

import asyncio

import pika
import pytest

from .conftest import importable, mgmt_port, require

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def flower_broker():
    require("flower", importable("flower"), "pip install flower, or the thirdparty extra")
    from flower.utils.broker import Broker
    return Broker


def test_queue_lengths_appear(mgmt, flower_broker):
    mgmt.call(lambda: mgmt.broker.add_vhost("celery"))
    mgmt.call(lambda: mgmt.broker.set_permissions("guest", "celery", ".*", ".*", ".*"))
    broker_url = f"amqp://guest:guest@127.0.0.1:{mgmt.port}/celery"
    conn = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        ch = conn.channel()
        for name, n in (("celery", 3), ("default", 0), ("other", 2)):
            ch.queue_declare(name, durable=True)
            for i in range(n):
                ch.basic_publish("", name, b"task %d" % i)
        ch.basic_consume("other", lambda *a: None)  # a worker on one queue
        conn.process_data_events(time_limit=0.2)
        broker = flower_broker(broker_url, http_api=f"http://guest:guest@127.0.0.1:{mgmt_port(mgmt)}/api/")
        assert type(broker).__name__ == "RabbitMQ"
        queues = asyncio.run(broker.queues(["celery", "default", "other", "missing"]))
        got = {q["name"]: (q["messages"], q["consumers"]) for q in queues}
        # 'other': its two messages are with the consumer (unacknowledged), still counted in messages
        assert got == {"celery": (3, 0), "default": (0, 0), "other": (2, 1)}
        assert {q["name"]: q["messages_ready"] for q in queues} == {"celery": 3, "default": 0, "other": 0}
    finally:
        conn.close()


def test_credentials_from_the_broker_url(mgmt, flower_broker):
    """Without credentials in broker_api, Flower uses the broker URL's."""
    mgmt.call(lambda: mgmt.broker.add_user("flo", "pw", ["monitoring"], {"/"}))
    mgmt.call(lambda: mgmt.broker.add_vhost("v"))
    mgmt.call(lambda: mgmt.broker.set_permissions("flo", "v", ".*", ".*", ".*"))
    broker_url = f"amqp://flo:pw@127.0.0.1:{mgmt.port}/v"
    conn = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        conn.channel().queue_declare("jobs")
        conn.channel().basic_publish("", "jobs", b"x")
        broker = flower_broker(broker_url, http_api=f"http://127.0.0.1:{mgmt_port(mgmt)}/api/")
        assert [(q["name"], q["messages"]) for q in asyncio.run(broker.queues(["jobs"]))] == [("jobs", 1)]
        # wrong credentials: Flower logs the failed call and shows no queues, as with RabbitMQ
        broker = flower_broker(broker_url, http_api=f"http://flo:wrong@127.0.0.1:{mgmt_port(mgmt)}/api/")
        assert asyncio.run(broker.queues(["jobs"])) == []
    finally:
        conn.close()


def test_default_vhost_url_as_with_rabbitmq(mgmt, flower_broker):
    """For the default vhost Flower asks for ``/api/queues//``, which RabbitMQ 3.10 answers 404 (so Flower
    shows no queues there); WarrenMQ answers the same."""
    broker = flower_broker(f"amqp://guest:guest@127.0.0.1:{mgmt.port}//",
                           http_api=f"http://guest:guest@127.0.0.1:{mgmt_port(mgmt)}/api/")
    assert asyncio.run(broker.queues(["celery"])) == []
    import urllib.error
    import urllib.request
    req = urllib.request.Request(mgmt.management_url + "/api/queues//")
    req.add_header("Authorization", "Basic Z3Vlc3Q6Z3Vlc3Q=")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 404
