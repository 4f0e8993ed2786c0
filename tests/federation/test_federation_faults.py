"""Federation under failure, ack-mode on-confirm: the link between downstream and upstream is cut again and
again by a TCP proxy while messages flow; every message confirmed to the upstream arrives downstream.  A
duplicate is a message the downstream had republished when its link was cut before the ack reached the
upstream (at most one prefetch window per cut); they are counted."""
from __future__ import annotations

import threading
import time

import pika
import pytest
from support.http import http
from support.links import collect, connect
from support.proxy import TcpProxy

from warrenmq.testing import EmbeddedBroker

pytestmark = pytest.mark.timeout(180)
N = 2000
PREFETCH = 100


def federate(down, name, uri, pattern, apply_to, **upstream):
    base = down.management_url
    assert http(base, "PUT", f"/api/parameters/federation-upstream/%2F/{name}",
                {"value": {"uri": uri, **upstream}})[0] == 201
    assert http(base, "PUT", f"/api/policies/%2F/{name}",
                {"pattern": pattern, "definition": {"federation-upstream": name}, "apply-to": apply_to})[0] == 201


def wait(predicate, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def cut_while(alive, proxy, at_least=3, at_most=6) -> int:
    cuts = 0
    while alive() or cuts < at_least:
        time.sleep(0.15)
        if proxy.connections():
            proxy.cut()
            cuts += 1
        if cuts >= at_most:
            break
    return cuts


def expected(n=N) -> set:
    return {f"m:{i}".encode() for i in range(n)}


def brokers():
    down = EmbeddedBroker(management=True).start()
    up = EmbeddedBroker().start()
    up.call(lambda: up.broker.set_global_parameter("cluster_name", "fault-up"))
    down.call(lambda: down.broker.set_global_parameter("cluster_name", "fault-down"))
    return down, up


def test_exchange_link_cut_loses_nothing():
    down, up = brokers()
    try:
        with TcpProxy("127.0.0.1", up.port) as proxy:
            federate(down, "fx", proxy.url(), "^fx$", "exchanges", **{"reconnect-delay": 0.2,
                                                                     "prefetch-count": PREFETCH})
            dc = connect(down.url)
            dch = dc.channel()
            dch.exchange_declare("fx", "fanout", durable=True)
            dch.queue_declare("fx-q", durable=True)
            dch.queue_bind("fx-q", "fx")
            uc = connect(up.url)
            uch = uc.channel()
            uch.confirm_delivery()

            def bound():
                if "fx" not in up.exchanges():
                    return False
                try:
                    uch.basic_publish("fx", "", b"probe", mandatory=True)
                    return True
                except pika.exceptions.UnroutableError:
                    return False
            wait(bound, what="the link's binding upstream")
            sent = []

            def publish():
                c = connect(up.url)
                ch = c.channel()
                ch.confirm_delivery()
                for i in range(N):
                    ch.basic_publish("fx", "", f"m:{i}".encode(), pika.BasicProperties(delivery_mode=2))
                    sent.append(i)
                c.close()
            t = threading.Thread(target=publish, daemon=True)
            t.start()
            cuts = cut_while(t.is_alive, proxy)
            t.join(60)
            assert len(sent) == N
            seen, dups = collect(down.url, "fx-q", N + 1)
            seen.discard(b"probe")
            assert seen == expected(), f"{N - len(seen)} lost after {cuts} cuts"
            assert cuts >= 3
            assert dups <= cuts * PREFETCH
            print(f"exchange link cut {cuts} times: {len(seen)} arrived, {dups} duplicates")
            uc.close()
            dc.close()
    finally:
        down.stop()
        up.stop()


def test_queue_link_cut_loses_nothing():
    down, up = brokers()
    try:
        with TcpProxy("127.0.0.1", up.port) as proxy:
            federate(down, "fq", proxy.url(), "^fq$", "queues", **{"reconnect-delay": 0.2,
                                                                  "prefetch-count": PREFETCH})
            uc = connect(up.url)
            uch = uc.channel()
            uch.queue_declare("fq", durable=True)
            uch.confirm_delivery()
            for i in range(N):
                uch.basic_publish("", "fq", f"m:{i}".encode(), pika.BasicProperties(delivery_mode=2))
            uc.close()
            seen, dups = set(), 0
            lock = threading.Lock()
            done = threading.Event()

            def consume():
                nonlocal dups
                c = connect(down.url)
                ch = c.channel()
                ch.queue_declare("fq", durable=True)
                ch.basic_qos(prefetch_count=50)

                def on(c_, m, p, body):
                    nonlocal dups
                    with lock:
                        if body in seen:
                            dups += 1
                        seen.add(body)
                    c_.basic_ack(m.delivery_tag)
                ch.basic_consume("fq", on)
                deadline = time.monotonic() + 90
                while time.monotonic() < deadline and not done.is_set():
                    c.process_data_events(0.05)
                c.close()
            t = threading.Thread(target=consume, daemon=True)
            t.start()
            cuts = cut_while(lambda: len(seen) < N // 2, proxy)
            wait(lambda: len(seen) >= N, timeout=60, what="every message downstream")
            done.set()
            t.join(10)
            assert seen == expected(), f"{N - len(seen)} lost after {cuts} cuts"
            assert cuts >= 3
            assert dups <= cuts * PREFETCH
            print(f"queue link cut {cuts} times: {len(seen)} arrived, {dups} duplicates")
    finally:
        down.stop()
        up.stop()


def test_upstream_killed_and_restarted_loses_nothing(tmp_path):
    """The upstream (a warrenmq process) is killed with SIGKILL while a federated queue drains it, and
    started again on its port: the link comes back and every message it held arrives downstream."""
    from support.process import BrokerProcess
    up = BrokerProcess(str(tmp_path / "up"))
    up.start()
    down = EmbeddedBroker(management=True).start()
    try:
        uc = connect(up.url)
        uch = uc.channel()
        uch.queue_declare("kq", durable=True)
        uch.confirm_delivery()
        for i in range(N):
            uch.basic_publish("", "kq", f"m:{i}".encode(), pika.BasicProperties(delivery_mode=2))
        uc.close()
        federate(down, "kq", f"amqp://guest:guest@127.0.0.1:{up.port}", "^kq$", "queues",
                 **{"reconnect-delay": 0.3, "prefetch-count": PREFETCH})
        seen, dups = set(), 0
        dc = connect(down.url)
        dch = dc.channel()
        dch.queue_declare("kq", durable=True)
        dch.basic_qos(prefetch_count=1)

        def on(c_, m, p, body):
            nonlocal dups
            if body in seen:
                dups += 1
            seen.add(body)
            time.sleep(0.001)  # a slow consumer: the upstream still holds most of the queue when killed
            c_.basic_ack(m.delivery_tag)
        dch.basic_consume("kq", on)
        deadline = time.monotonic() + 20
        while len(seen) < N // 10 and time.monotonic() < deadline:
            dc.process_data_events(0.05)
        assert 0 < len(seen) < N
        up.kill()
        up = BrokerProcess(str(tmp_path / "up"), port=up.port)
        up.start()
        deadline = time.monotonic() + 90
        while len(seen) < N and time.monotonic() < deadline:
            dc.process_data_events(0.05)
        assert seen == expected(), f"{N - len(seen)} lost"
        print(f"upstream killed: {len(seen)} arrived, {dups} duplicates")
        dc.close()
    finally:
        down.stop()
        up.kill()
