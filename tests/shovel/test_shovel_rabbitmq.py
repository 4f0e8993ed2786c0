"""Shovels between WarrenMQ and the reference RabbitMQ 3.10 (``.ci/rabbitmq.sh``, with its rabbitmq_shovel plugin):
a WarrenMQ shovel into RabbitMQ and out of it, and RabbitMQ's own shovel into WarrenMQ and out of it, on-confirm;
the link to RabbitMQ cut mid-transfer.  Without ``WARRENMQ_REFERENCE_URL`` (and rabbitmqctl reaching that node)
these skip, saying why; everything created there is named ``shovelt-<random>`` and removed."""
import json
import os
import shutil
import subprocess
import time
import uuid
from urllib.parse import urlsplit

import pika
import pytest

from support.links import Api, Publisher, collect, connect, drain, publish_confirmed
from support.proxy import TcpProxy
from warrenmq.testing import EmbeddedBroker

REFERENCE_URL = os.environ.get("WARRENMQ_REFERENCE_URL")
pytestmark = pytest.mark.skipif(not REFERENCE_URL, reason="WARRENMQ_REFERENCE_URL is not set: no reference RabbitMQ")


def ctl(*args) -> str:
    r = subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=60)
    if r.returncode:
        raise AssertionError(f"rabbitmqctl {' '.join(args)}: {r.stdout}{r.stderr}")
    return r.stdout


@pytest.fixture
def ref():
    """A unique name prefix on the reference node; its queues and shovels are removed afterwards."""
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("rabbitmqctl is not installed: the reference node cannot run shovels for the test")
    prefix = f"shovelt-{uuid.uuid4().hex[:8]}"
    made = {"queues": [], "shovels": []}
    yield prefix, made
    for name in made["shovels"]:
        subprocess.run(["rabbitmqctl", "-q", "clear_parameter", "shovel", name], capture_output=True, timeout=60)
    c = connect(REFERENCE_URL)
    ch = c.channel()
    for q in made["queues"]:
        ch.queue_delete(q)
    c.close()


def rabbit_shovel_state(name: str) -> dict:
    out = ctl("shovel_status", "--formatter", "json")
    for s in json.loads(out or "[]"):
        if s["name"] == name:
            return s
    return {}


def wait_rabbit_shovel(name: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    st = {}
    while time.monotonic() < deadline:
        st = rabbit_shovel_state(name)
        if st.get("state") == "running":
            return
        time.sleep(0.2)
    raise AssertionError(f"RabbitMQ's shovel {name} is not running: {st}")


def test_warrenmq_shovel_into_rabbitmq(ref):
    prefix, made = ref
    dq = f"{prefix}-dst"
    made["queues"].append(dq)
    with EmbeddedBroker(management=True) as w:
        api = Api(w.management_url)
        assert api.put_shovel("to-rabbit", {"src-uri": "amqp://", "src-queue": "w-src", "dest-uri": REFERENCE_URL,
                                            "dest-queue": dq, "add-forward-headers": True})[0] == 201
        st = api.wait_state("to-rabbit")
        assert st["dest_uri"] == REFERENCE_URL.replace("guest:guest@", "")
        props = pika.BasicProperties(delivery_mode=2, content_type="application/json", correlation_id="c1",
                                     headers={"n": 7, "s": "text", "l": [1, "two"]}, expiration="600000")
        bodies = [f"r{i}".encode() for i in range(1000)]
        publish_confirmed(w.url, "w-src", bodies, declare=False, properties=props)
        got = drain(REFERENCE_URL, dq, len(bodies), idle=0.3)
        assert [m[2] for m in got] == bodies
        p = got[0][1]
        assert (p.delivery_mode, p.content_type, p.correlation_id, p.expiration, p.message_id) == \
            (2, "application/json", "c1", "600000", None)
        assert p.headers["n"] == 7 and p.headers["s"] == "text" and p.headers["l"] == [1, "two"]
        assert p.headers["x-shovelled"][0]["shovel-name"] == "to-rabbit"
        conns = ctl("list_connections", "client_properties", "--formatter", "json")
        assert "Shovel to-rabbit" in conns  # RabbitMQ lists it under the client-provided name


def test_warrenmq_shovel_out_of_rabbitmq(ref):
    prefix, made = ref
    sq = f"{prefix}-src"
    made["queues"].append(sq)
    with EmbeddedBroker(management=True) as w:
        api = Api(w.management_url)
        assert api.put_shovel("from-rabbit", {"src-uri": REFERENCE_URL, "src-queue": sq, "dest-uri": "amqp://",
                                              "dest-queue": "w-dst"})[0] == 201
        api.wait_state("from-rabbit")
        bodies = [f"f{i}".encode() for i in range(1000)]
        publish_confirmed(REFERENCE_URL, sq, bodies, declare=False)
        assert [m[2] for m in drain(w.url, "w-dst", len(bodies), idle=0.3)] == bodies
        time.sleep(0.3)
        c = connect(REFERENCE_URL)
        assert c.channel().queue_declare(sq, passive=True).method.message_count == 0  # acked there
        c.close()


def test_rabbitmq_shovel_into_warrenmq(ref):
    prefix, made = ref
    sq = f"{prefix}-rsrc"
    made["queues"].append(sq)
    name = f"{prefix}-into"
    with EmbeddedBroker() as w:
        publish_confirmed(REFERENCE_URL, sq, [])  # declared durable on RabbitMQ
        ctl("set_parameter", "shovel", name, json.dumps({
            "src-uri": "amqp://", "src-queue": sq, "dest-uri": w.url.replace("localhost", "127.0.0.1"),
            "dest-queue": "from-rabbit", "ack-mode": "on-confirm", "add-forward-headers": True,
            "dest-add-timestamp-header": True}))
        made["shovels"].append(name)
        wait_rabbit_shovel(name)
        bodies = [f"x{i}".encode() for i in range(2000)]
        publish_confirmed(REFERENCE_URL, sq, bodies, declare=False,
                          properties=pika.BasicProperties(delivery_mode=2, headers={"h": "v"}))
        got = drain(w.url, "from-rabbit", len(bodies), idle=0.3)
        assert [m[2] for m in got] == bodies
        h = got[0][1].headers
        assert h["h"] == "v" and h["x-shovelled"][0]["shovel-name"] == name and "x-shovelled-timestamp" in h
        # RabbitMQ's shovel connection, under its client-provided name, as WarrenMQ lists it
        assert any(s.proto.client_properties.get("connection_name") == f"Shovel {name}"
                   for s in w.call(lambda: list(w.broker.sessions)))


def test_rabbitmq_shovel_out_of_warrenmq(ref):
    prefix, made = ref
    dq = f"{prefix}-rdst"
    made["queues"].append(dq)
    name = f"{prefix}-outof"
    with EmbeddedBroker() as w:
        publish_confirmed(w.url, "to-rabbit", [])
        ctl("set_parameter", "shovel", name, json.dumps({
            "src-uri": w.url, "src-queue": "to-rabbit", "dest-uri": "amqp://", "dest-queue": dq,
            "src-prefetch-count": 100}))
        made["shovels"].append(name)
        wait_rabbit_shovel(name)
        bodies = [f"y{i}".encode() for i in range(2000)]
        publish_confirmed(w.url, "to-rabbit", bodies, declare=False)
        assert [m[2] for m in drain(REFERENCE_URL, dq, len(bodies), idle=0.3)] == bodies
        time.sleep(0.3)
        assert w.call(lambda: len(w.broker.vhosts["/"].queues["to-rabbit"].messages)) == 0


def test_link_to_rabbitmq_cut_loses_nothing(ref):
    prefix, made = ref
    dq = f"{prefix}-cut"
    made["queues"].append(dq)
    u = urlsplit(REFERENCE_URL)
    n = 3000
    with EmbeddedBroker(management=True) as w, TcpProxy(u.hostname, u.port or 5672) as proxy:
        api = Api(w.management_url)
        assert api.put_shovel("cut", {"src-uri": "amqp://", "src-queue": "c-src", "dest-uri": proxy.url(),
                                      "dest-queue": dq, "reconnect-delay": 0.2, "src-prefetch-count": 100})[0] == 201
        api.wait_state("cut")
        pub = Publisher(w.url, "c-src", n).start()
        cuts = 0
        while pub.thread.is_alive() and cuts < 5:
            time.sleep(0.2)
            if proxy.connections():
                proxy.cut()
                cuts += 1
        pub.join()
        seen, dups = collect(REFERENCE_URL, dq, n)
        assert seen == {f"m:{i}".encode() for i in range(n)}, f"{n - len(seen)} lost after {cuts} cuts"
        assert cuts >= 1 and dups <= cuts * 100
        print(f"link to RabbitMQ cut {cuts} times: {len(seen)} arrived, {dups} duplicates")
