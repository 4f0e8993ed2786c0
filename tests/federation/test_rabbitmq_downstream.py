"""RabbitMQ federating from WarrenMQ: the reference RabbitMQ is the downstream, WarrenMQ the upstream.

RabbitMQ's federation plugin declares on its upstream an internal ``x-federation-upstream`` exchange
(falling back to ``fanout`` only when that is refused), binds it from the federated exchange with the
downstream's bindings (each carrying ``x-bound-from``), and consumes a queue bound to it; a federated
queue is consumed directly.  What it declares on WarrenMQ was compared with what it declares on a
RabbitMQ 3.10.8 upstream (the same names, types, flags and arguments); the tests pin that shape.
"""
from __future__ import annotations

import time

import pika
import pytest

from warrenmq.testing import EmbeddedBroker

from .conftest import unique

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def upstream():
    with EmbeddedBroker() as b:
        yield b


def amqp_uri(b) -> str:
    return f"amqp://guest:guest@127.0.0.1:{b.port}"


def wait(predicate, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = predicate()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def exchange_shape(b, name):
    def read():
        ex = b.broker.vhosts["/"].exchanges.get(name)
        if ex is None:
            return None
        return {"type": ex.type, "durable": ex.durable, "auto_delete": ex.auto_delete, "internal": ex.internal,
                "arguments": dict(ex.arguments),
                "bindings": sorted((d.name, k) for d, k, _ in ex.bindings)}
    return b.call(read)


def queue_shape(b, name):
    def read():
        q = b.broker.vhosts["/"].queues.get(name)
        if q is None:
            return None
        return {"durable": q.durable, "arguments": dict(q.arguments), "consumers": len(q.consumers)}
    return b.call(read)


def drain(ch, queue, n, timeout=10.0):
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        m, p, body = ch.basic_get(queue, auto_ack=True)
        if m is None:
            time.sleep(0.05)
        else:
            got.append((m.routing_key, body, p.headers))
    return got


def test_a_federated_exchange_receives_what_is_published_on_warrenmq(reference, upstream):
    x, dq, up, pol = unique("x"), unique("dq"), unique("up"), unique("pol")
    reference.set_upstream(up, {"uri": amqp_uri(upstream), "max-hops": 2, "expires": 600000,
                                "message-ttl": 60000})
    reference.set_policy(pol, f"^{x}$", {"federation-upstream": up}, "exchanges")
    ch = reference.ch
    ch.exchange_declare(x, "topic")
    ch.queue_declare(dq, arguments={"x-expires": 60000})
    ch.queue_bind(dq, x, "a.*")
    reference.wait_running(x)
    cluster = reference.cluster_name()
    link_q = f"federation: {x} -> {cluster}"
    # the internal exchange is bound from the federated one with the downstream's binding
    internal = wait(lambda: next((n for n, t in upstream.exchanges().items()
                                  if n.startswith(link_q + " ") and t == "x-federation-upstream"), None),
                    what="the internal exchange")
    wait(lambda: (exchange_shape(upstream, x) or {}).get("bindings") == [(internal, "a.*")], what="binding")
    shape = exchange_shape(upstream, internal)
    assert shape == {"type": "x-federation-upstream", "durable": True, "auto_delete": True, "internal": True,
                     "arguments": {"x-max-hops": 2, "x-downstream-name": cluster, "x-downstream-vhost": "/",
                                   "x-internal-purpose": "federation"},
                     "bindings": [(link_q, "")]}
    qs = wait(lambda: (queue_shape(upstream, link_q) or {}).get("consumers") and queue_shape(upstream, link_q),
              what="the link's consumer")
    assert qs["durable"] is True
    assert qs["arguments"] == {"x-expires": 600000, "x-message-ttl": 60000, "x-internal-purpose": "federation"}
    # the federated exchange was declared on WarrenMQ as the downstream has it
    assert exchange_shape(upstream, x)["type"] == "topic"

    w = pika.BlockingConnection(pika.URLParameters(upstream.url))
    wch = w.channel()
    wch.confirm_delivery()
    for i in range(20):
        wch.basic_publish(x, "a.b", f"m{i}".encode())
    wch.basic_publish(x, "c.d", b"not bound downstream")
    got = drain(ch, dq, 20)
    assert [b for _, b, _ in got] == [f"m{i}".encode() for i in range(20)]
    hdr = got[0][2]["x-received-from"]
    assert len(hdr) == 1 and hdr[0]["exchange"] == x and hdr[0]["redelivered"] is False
    time.sleep(0.3)
    assert ch.queue_declare(dq, passive=True).method.message_count == 0  # c.d stayed upstream

    # a new downstream binding reaches the upstream
    ch.queue_bind(dq, x, "c.*")
    wait(lambda: (internal, "c.*") in exchange_shape(upstream, x)["bindings"], what="the new binding")
    wch.basic_publish(x, "c.e", b"now bound")
    assert [b for _, b, _ in drain(ch, dq, 1)] == [b"now bound"]
    ch.queue_unbind(dq, x, "c.*")
    wait(lambda: (internal, "c.*") not in exchange_shape(upstream, x)["bindings"], what="the unbind")
    w.close()
    ch.queue_delete(dq)
    ch.exchange_delete(x)


def test_a_message_that_crossed_max_hops_is_not_forwarded(reference, upstream):
    x, dq, up, pol = unique("x"), unique("dq"), unique("up"), unique("pol")
    reference.set_upstream(up, {"uri": amqp_uri(upstream), "max-hops": 1})
    reference.set_policy(pol, f"^{x}$", {"federation-upstream": up}, "exchanges")
    ch = reference.ch
    ch.exchange_declare(x, "fanout")
    ch.queue_declare(dq, arguments={"x-expires": 60000})
    ch.queue_bind(dq, x)
    reference.wait_running(x)
    wait(lambda: any(n.startswith(f"federation: {x} -> ") and len(exchange_shape(upstream, n)["bindings"])
                     for n in upstream.exchanges()), what="the link")
    wait(lambda: exchange_shape(upstream, x) and exchange_shape(upstream, x)["bindings"], what="binding")
    w = pika.BlockingConnection(pika.URLParameters(upstream.url))
    wch = w.channel()
    wch.confirm_delivery()
    hop = {"uri": "amqp://elsewhere", "exchange": x, "redelivered": False, "cluster-name": "elsewhere",
           "vhost": "/"}
    wch.basic_publish(x, "", b"crossed one hop", pika.BasicProperties(headers={"x-received-from": [hop]}))
    wch.basic_publish(x, "", b"fresh")
    assert [b for _, b, _ in drain(ch, dq, 1)] == [b"fresh"]
    time.sleep(0.3)
    assert ch.queue_declare(dq, passive=True).method.message_count == 0
    w.close()
    ch.queue_delete(dq)
    ch.exchange_delete(x)


def test_a_federated_queue_consumes_from_warrenmq(reference, upstream):
    q, up, pol = unique("q"), unique("up"), unique("pol")
    reference.set_upstream(up, {"uri": amqp_uri(upstream)})
    reference.set_policy(pol, f"^{q}$", {"federation-upstream": up}, "queues")
    w = pika.BlockingConnection(pika.URLParameters(upstream.url))
    wch = w.channel()
    wch.confirm_delivery()
    wch.queue_declare(q)
    for i in range(10):
        wch.basic_publish("", q, f"q{i}".encode())
    w.close()
    ch = reference.ch
    ch.queue_declare(q, arguments={"x-expires": 60000})
    reference.wait_running(q)
    got = []
    ch.basic_consume(q, lambda c, m, p, body: (got.append(body), c.basic_ack(m.delivery_tag)))
    deadline = time.monotonic() + 20
    while len(got) < 10 and time.monotonic() < deadline:
        reference.conn.process_data_events(0.1)
    assert got == [f"q{i}".encode() for i in range(10)]
    wait(lambda: queue_shape(upstream, q)["consumers"] == 1, what="the link's consumer")
    assert upstream.queue(q).messages == 0
    ch.queue_delete(q)
