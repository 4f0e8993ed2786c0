"""Shovels under failure, ack-mode on-confirm: every message published with confirms to the source arrives at
the destination whatever breaks in between (the link cut by a TCP proxy, either broker killed with SIGKILL and
restarted); duplicates are allowed where the destination had a message whose confirm never came back, and are
counted."""
import json
import time

import pytest

from support.links import Api, Publisher, collect, connect
from support.process import BrokerProcess, free_port
from support.proxy import TcpProxy
from warrenmq.testing import EmbeddedBroker

N = 3000


def expected(prefix: str, n: int = N) -> set:
    return {f"{prefix}:{i}".encode() for i in range(n)}


@pytest.mark.parametrize("side", ["destination", "source"])
def test_link_cut_loses_nothing(side):
    with EmbeddedBroker(management=True) as a, EmbeddedBroker() as b, TcpProxy("127.0.0.1", b.port) as proxy:
        api = Api(a.management_url)
        if side == "destination":  # A's queue -> (proxy) -> B's queue
            value = {"src-uri": "amqp://", "src-queue": "cut-src", "dest-uri": proxy.url(), "dest-queue": "cut-dst"}
            src_url, dst_url = a.url, b.url
        else:  # B's queue -> (proxy) -> A's queue
            value = {"src-uri": proxy.url(), "src-queue": "cut-src", "dest-uri": "amqp://", "dest-queue": "cut-dst"}
            src_url, dst_url = b.url, a.url
        assert api.put_shovel("cut", {**value, "reconnect-delay": 0.2, "src-prefetch-count": 100})[0] == 201
        api.wait_state("cut")
        pub = Publisher(src_url, "cut-src", N).start()
        cuts = 0
        while pub.thread.is_alive() or cuts < 3:
            time.sleep(0.15)
            if proxy.connections():
                proxy.cut()
                cuts += 1
            if cuts >= 6:
                break
        pub.join()
        seen, dups = collect(dst_url, "cut-dst", N)
        assert seen == expected("m"), f"{N - len(seen)} lost after {cuts} cuts"
        assert cuts >= 3
        # a duplicate is a message the destination had when its link was cut before the ack reached the source:
        # at most one prefetch window per cut
        assert dups <= cuts * 100
        print(f"{side} link cut {cuts} times: {len(seen)} arrived, {dups} duplicates")


def test_destination_killed_and_restarted(tmp_path):
    dest = BrokerProcess(str(tmp_path / "dest"))
    dest.start()
    try:
        with EmbeddedBroker(management=True) as a:
            api = Api(a.management_url)
            assert api.put_shovel("k", {"src-uri": "amqp://", "src-queue": "k-src", "dest-uri": dest.url,
                                        "dest-queue": "k-dst", "reconnect-delay": 0.2})[0] == 201
            api.wait_state("k")
            pub = Publisher(a.url, "k-src", N).start()
            time.sleep(0.3)
            dest.kill()
            time.sleep(0.3)
            dest = BrokerProcess(str(tmp_path / "dest"), port=dest.port)
            dest.start()
            pub.join()
            api.wait_state("k")
            seen, dups = collect(dest.url, "k-dst", N)
            assert seen == expected("m"), f"{N - len(seen)} lost"
            print(f"destination killed: {len(seen)} arrived, {dups} duplicates")
    finally:
        dest.kill()


def test_source_broker_running_the_shovel_killed_and_restarted(tmp_path):
    """The shovel runs in the source broker, which is killed mid-transfer: at restart its stored parameter starts
    the shovel again and the source queue still holds what was not confirmed by the destination."""
    with EmbeddedBroker() as b:
        defs = tmp_path / "defs.json"
        defs.write_text(json.dumps({"parameters": [{"component": "shovel", "vhost": "/", "name": "crash", "value": {
            "src-uri": "amqp://", "src-queue": "c-src", "dest-uri": b.url, "dest-queue": "c-dst",
            "reconnect-delay": 0.2, "src-prefetch-count": 200}}],
            "queues": [{"name": "c-src", "vhost": "/", "durable": True, "auto_delete": False, "arguments": {}}],
            # a definitions file at boot replaces the default user and vhost, as in RabbitMQ
            "vhosts": [{"name": "/"}], "users": [{"name": "guest", "password": "guest", "tags": "administrator"}],
            "permissions": [{"user": "guest", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}]}))
        src = BrokerProcess(str(tmp_path / "src"), "--definitions", str(defs))
        src.start()
        try:
            pub = Publisher(src.url, "c-src", N).start()
            deadline = time.monotonic() + 20
            c = connect(b.url)
            ch = c.channel()
            n = 0
            while time.monotonic() < deadline and n < 300:  # kill it mid-transfer: some moved, not all
                try:
                    n = ch.queue_declare("c-dst", passive=True).method.message_count
                except Exception:  # noqa: BLE001 - not declared yet
                    c = connect(b.url)
                    ch = c.channel()
                time.sleep(0.005)
            c.close()
            src.kill()
            pub.join(broken=True)
            confirmed = pub.sent
            assert 300 <= confirmed < N
            src = BrokerProcess(str(tmp_path / "src"), "--definitions", str(defs), port=src.port)
            src.start()
            seen, dups = collect(b.url, "c-dst", confirmed)
            # every confirmed message arrived; the one in flight at the kill may have too
            assert expected("m", confirmed) <= seen <= expected("m", confirmed + 1), f"{confirmed - len(seen)} lost"
            print(f"source killed after {n} moved, {confirmed} confirmed: {len(seen)} arrived, {dups} duplicates")
        finally:
            src.kill()


@pytest.mark.parametrize("ack_mode", ["no-ack", "on-publish"])
def test_a_stalled_destination_stops_the_source_instead_of_filling_memory(ack_mode):
    """With no-ack or on-publish nothing bounds what the source hands the shovel but the destination's pace:
    when the link to it stalls, the source's deliveries stop (the messages stay ready in the source queue)
    and resume when it flows again; every message arrives."""
    n, size = 3000, 8192
    with EmbeddedBroker(management=True) as a, EmbeddedBroker() as b, TcpProxy("127.0.0.1", b.port) as proxy:
        api = Api(a.management_url)
        assert api.put_shovel("slow", {"src-uri": "amqp://", "src-queue": "s-src", "dest-uri": proxy.url(),
                                       "dest-queue": "s-dst", "ack-mode": ack_mode})[0] == 201
        api.wait_state("slow")
        proxy.stall()
        c = connect(a.url)
        ch = c.channel()
        for i in range(n):
            ch.basic_publish("", "s-src", f"{i}:".encode().ljust(size, b"."))
        time.sleep(1.0)
        ready = ch.queue_declare("s-src", passive=True).method.message_count
        c.close()
        # a few megabytes may be in flight (the link's output, aiormq's queue, the socket buffers); the rest waits
        assert ready >= n // 2, f"only {ready} of {n} still in the source: the shovel took them into memory"
        print(f"{ack_mode}: {ready} of {n} still in the source while the link stalled")
        proxy.resume()
        seen, dups = collect(b.url, "s-dst", n)
        assert {m.split(b":")[0] for m in seen} == {str(i).encode() for i in range(n)} and dups == 0


def test_confirms_through_aiormqs_table_as_with_an_older_aiormq(monkeypatch):
    """The path an aiormq older than 7.2.1 takes (its confirmation table instead of the link's own handler)
    moves every message too, the link cut once on the way."""
    from warrenmq.links import remote
    monkeypatch.setattr(remote, "OWN_CONFIRMS", False)
    with EmbeddedBroker(management=True) as a, EmbeddedBroker() as b, TcpProxy("127.0.0.1", b.port) as proxy:
        api = Api(a.management_url)
        assert api.put_shovel("old", {"src-uri": "amqp://", "src-queue": "o-src", "dest-uri": proxy.url(),
                                      "dest-queue": "o-dst", "reconnect-delay": 0.2})[0] == 201
        api.wait_state("old")
        pub = Publisher(a.url, "o-src", 1000).start()
        time.sleep(0.3)
        proxy.cut()
        pub.join()
        seen, _ = collect(b.url, "o-dst", 1000)
        assert seen == expected("m", 1000)
        deadline = time.monotonic() + 10  # and the source acked every one of them (none left unacked)
        while api.request("GET", "/queues/%2F/o-src")[1]["messages"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert api.request("GET", "/queues/%2F/o-src")[1]["messages"] == 0
