"""Message statistics over real sockets: pika publishes, consumes and acks; the management API answers.

The keys and when they appear are RabbitMQ 3.10.8's (probed on a reference with the management plugin:
a queue nothing happened to has no ``message_stats``; a channel shows its publishing keys once it
published and its delivery keys once it received).  The brokers here sample every 100 ms, so rates
appear quickly."""
import time

import pika
import pytest

from warrenmq.testing import EmbeddedBroker

from .conftest import Api, q as seg

INTERVAL_MS = 100


@pytest.fixture(scope="module")
def sbroker():
    with EmbeddedBroker(management=True, statistics_interval_ms=INTERVAL_MS) as b:
        yield b


@pytest.fixture(scope="module")
def sapi(sbroker):
    return Api(sbroker.management_url)


@pytest.fixture
def conn(sbroker):
    c = pika.BlockingConnection(pika.URLParameters(sbroker.url))
    yield c
    if c.is_open:
        c.close()


def get(api, path):
    status, _, body = api.get(path)
    assert status == 200, (path, status, body)
    return body


def wait_for(fn, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(0.02)


DELIVER_KEYS = {"ack", "deliver", "deliver_get", "deliver_no_ack", "get", "get_empty", "get_no_ack", "redeliver"}


def keys_with_details(keys):
    return set(keys) | {k + "_details" for k in keys}


def test_counts_on_the_queue_exchange_vhost_and_overview(sapi, conn):
    before_vh = get(sapi, "/api/vhosts/%2F").get("message_stats", {})
    before_ov = get(sapi, "/api/overview")["message_stats"]
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare("st-q")
    ch.queue_declare("st-idle")
    ch.exchange_declare("st-x", "fanout")
    ch.queue_bind("st-q", "st-x")
    for _ in range(5):
        ch.basic_publish("", "st-q", b"hello")
    for _ in range(3):
        ch.basic_publish("st-x", "", b"hello")
    ch.basic_publish("", "st-nowhere", b"x")  # dropped
    with pytest.raises(pika.exceptions.UnroutableError):
        ch.basic_publish("", "st-nowhere", b"x", mandatory=True)  # returned
    ch2 = conn.channel()
    ch2.basic_qos(prefetch_count=7)
    m = ch2.basic_get("st-q")
    ch2.basic_ack(m[0].delivery_tag)
    ch2.basic_get("st-q", auto_ack=True)
    m = ch2.basic_get("st-q")
    ch2.basic_nack(m[0].delivery_tag, requeue=True)  # back at the head, redelivered
    got = []
    ch2.basic_consume("st-q", lambda c, meth, p, b: got.append(meth))
    wait_for(lambda: (conn.process_data_events(0.05), len(got) == 6)[1])
    for meth in got[:2]:
        ch2.basic_ack(meth.delivery_tag)
    conn.process_data_events(0.1)

    queue = get(sapi, "/api/queues/%2F/st-q")
    ms = queue["message_stats"]
    assert set(ms) == keys_with_details({"publish"} | DELIVER_KEYS)
    assert {k: ms[k] for k in ("publish", "deliver", "deliver_no_ack", "get", "get_no_ack", "ack", "redeliver",
                               "deliver_get", "get_empty")} == {
        "publish": 8, "deliver": 6, "deliver_no_ack": 0, "get": 2, "get_no_ack": 1, "ack": 3, "redeliver": 1,
        "deliver_get": 9, "get_empty": 0}
    assert ms["publish_details"] == {"rate": ms["publish_details"]["rate"]}
    assert (queue["messages"], queue["messages_ready"], queue["messages_unacknowledged"]) == (4, 0, 4)
    for k in ("messages_details", "messages_ready_details", "messages_unacknowledged_details"):
        assert set(queue[k]) == {"rate"}
    assert queue["consumers"] == 1
    assert 0 <= queue["consumer_utilisation"] <= 1
    assert queue["memory"] > 0
    # the listing carries the same statistics
    listed = {x["name"]: x for x in get(sapi, "/api/queues/%2F")}
    assert listed["st-q"]["message_stats"]["publish"] == 8
    # nothing happened to this queue: no message_stats at all, as RabbitMQ
    idle = get(sapi, "/api/queues/%2F/st-idle")
    assert "message_stats" not in idle and idle["messages_details"] == {"rate": 0.0}

    x = get(sapi, "/api/exchanges/%2F/st-x")["message_stats"]
    assert (x["publish_in"], x["publish_out"]) == (3, 3)
    assert set(x) == keys_with_details({"publish_in", "publish_out"})
    assert "message_stats" not in get(sapi, "/api/exchanges/%2F/amq.fanout")

    vh = get(sapi, "/api/vhosts/%2F")
    ov = get(sapi, "/api/overview")
    for total, before in ((vh["message_stats"], before_vh), (ov["message_stats"], before_ov)):
        def delta(k):
            return total[k] - before.get(k, 0)
        assert (delta("publish"), delta("confirm"), delta("drop_unroutable"), delta("return_unroutable")) == \
            (10, 10, 1, 1)
        assert (delta("deliver"), delta("get"), delta("get_no_ack"), delta("ack"), delta("redeliver")) == \
            (6, 2, 1, 3, 1)
    assert vh["recv_oct"] > 0 and vh["send_oct"] > 0 and "recv_oct_details" in vh
    assert ov["queue_totals"]["messages_unacknowledged"] >= 4
    assert "messages_details" in ov["queue_totals"]
    assert ov["rates_mode"] == "basic" and ov["disable_stats"] is False
    ch.queue_delete("st-q")
    ch.queue_delete("st-idle")
    ch.exchange_delete("st-x")


def test_rates_appear_after_a_sampling_interval_and_fall_back_to_zero(sapi, conn):
    ch = conn.channel()
    ch.queue_declare("st-rate")

    def publish_rate():
        return get(sapi, "/api/queues/%2F/st-rate").get("message_stats", {}).get("publish_details", {}).get("rate")

    for _ in range(200):
        ch.basic_publish("", "st-rate", b"r")
    conn.process_data_events(0)
    assert wait_for(lambda: (publish_rate() or 0) > 0), "no publish rate within 5 s"
    depth_rate = get(sapi, "/api/queues/%2F/st-rate")["messages_ready_details"]["rate"]
    assert depth_rate >= 0
    assert wait_for(lambda: publish_rate() == 0.0), "the rate did not fall back to 0 once publishing stopped"
    ch.queue_delete("st-rate")


def test_closed_channels_and_connections_stay_in_the_vhost_totals(sapi, sbroker):
    before = get(sapi, "/api/vhosts/%2F")
    c = pika.BlockingConnection(pika.URLParameters(sbroker.url))
    ch = c.channel()
    ch.queue_declare("st-closed")
    for _ in range(4):
        ch.basic_publish("", "st-closed", b"x" * 1000)
    c.close()
    after = get(sapi, "/api/vhosts/%2F")
    assert after["message_stats"]["publish"] - before.get("message_stats", {}).get("publish", 0) == 4
    assert after["recv_oct"] - before["recv_oct"] > 4000
    assert get(sapi, "/api/queues/%2F/st-closed")["message_stats"]["publish"] == 4
    Api(sbroker.management_url).delete("/api/queues/%2F/st-closed")


def test_connection_octets_and_rates(sapi, conn, sbroker):
    ch = conn.channel()
    ch.queue_declare("st-oct")
    port = conn._impl._transport._sock.getsockname()[1]

    def mine():
        for c in get(sapi, "/api/connections"):
            if c["peer_port"] == port:
                return c
        return None

    before = mine()["recv_oct"]
    for _ in range(10):
        ch.basic_publish("", "st-oct", b"y" * 10_000)
    conn.process_data_events(0)
    assert wait_for(lambda: mine()["recv_oct"] - before >= 100_000)
    c = mine()
    assert c["recv_cnt"] > 0 and c["send_oct"] > 0 and c["send_cnt"] > 0
    assert set(c["recv_oct_details"]) == {"rate"}
    assert get(sapi, "/api/connections/" + seg(c["name"]))["recv_oct"] >= c["recv_oct"]
    ch.queue_delete("st-oct")


def test_statistics_switched_off_still_answer_depths_without_rates():
    with EmbeddedBroker(management=True, statistics_enabled=False) as b:
        api = Api(b.management_url)
        c = pika.BlockingConnection(pika.URLParameters(b.url))
        ch = c.channel()
        ch.queue_declare("off-q")
        for _ in range(3):
            ch.basic_publish("", "off-q", b"z")
        ch.basic_get("off-q", auto_ack=True)
        time.sleep(0.3)
        queue = get(api, "/api/queues/%2F/off-q")
        assert (queue["messages"], queue["messages_ready"]) == (2, 2)
        assert "message_stats" not in queue
        assert not [k for k in queue if k.endswith("_details") and k != "consumer_details"]
        assert [x["name"] for x in get(api, "/api/queues") if x["name"] == "off-q"] == ["off-q"]
        ov = get(api, "/api/overview")
        assert ov["rates_mode"] == "none" and ov["disable_stats"] is True
        assert "message_stats" not in ov
        assert ov["queue_totals"]["messages"] == 2
        assert not [k for k in ov["queue_totals"] if k.endswith("_details")]
        vh = get(api, "/api/vhosts/%2F")
        assert "message_stats" not in vh and vh["messages"] == 2
        conn_json = get(api, "/api/connections")[0]
        assert conn_json["recv_oct"] > 0 and "recv_oct_details" not in conn_json
        assert "message_stats" not in get(api, "/api/exchanges/%2F/amq.default")
        c.close()


def test_the_warrenmq_command_takes_no_statistics(tmp_path):
    import os
    import socket
    import subprocess
    import sys

    def free_port():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    port, mport = free_port(), free_port()
    env = dict(os.environ, WARRENMQ_STATISTICS_INTERVAL_MS="250")
    proc = subprocess.Popen([sys.executable, "-m", "warrenmq", "--no-prometheus", "--no-stomp", "--no-mqtt", "--host", "127.0.0.1", "--port", str(port),
                             "--management-port", str(mport), "--data-dir", str(tmp_path), "--no-statistics",
                             "--log-level", "warning"], env=env)
    try:
        api = Api(f"http://127.0.0.1:{mport}")

        def overview():
            try:
                status, _, body = api.get("/api/overview")
            except OSError:
                return None
            return body if status == 200 else None
        ov = wait_for(overview, timeout=30)
        assert ov is not None, "the broker did not answer"
        assert (ov["disable_stats"], ov["rates_mode"], ov["statistics_interval"]) == (True, "none", 250)
    finally:
        proc.terminate()
        proc.wait(30)


def test_the_sampling_interval_is_checked():
    from warrenmq.config import BrokerConfig
    with pytest.raises(ValueError, match="statistics_interval_ms"):
        BrokerConfig(statistics_interval_ms=0)
    assert BrokerConfig().statistics_interval_ms == 1000 and BrokerConfig().statistics_enabled is True


def test_exchange_publish_out_counts_each_queue_and_not_unroutable_messages(sapi, conn):
    ch = conn.channel()
    ch.exchange_declare("st-fan", "fanout")
    ch.exchange_declare("st-empty-fan", "fanout")
    for name in ("st-fan-1", "st-fan-2", "st-fan-3"):
        ch.queue_declare(name)
        ch.queue_bind(name, "st-fan")
    for _ in range(2):
        ch.basic_publish("st-fan", "", b"f")
        ch.basic_publish("st-empty-fan", "", b"f")
    conn.process_data_events(0.1)
    x = get(sapi, "/api/exchanges/%2F/st-fan")["message_stats"]
    assert (x["publish_in"], x["publish_out"]) == (2, 6)
    x = get(sapi, "/api/exchanges/%2F/st-empty-fan")["message_stats"]
    assert (x["publish_in"], x["publish_out"]) == (2, 0)
    for name in ("st-fan-1", "st-fan-2", "st-fan-3"):
        ch.queue_delete(name)
    ch.exchange_delete("st-fan")
    ch.exchange_delete("st-empty-fan")


def test_the_aliveness_test_counts_as_a_get(sapi):
    status, _, body = sapi.get("/api/aliveness-test/%2F")
    assert (status, body) == (200, {"status": "ok"})
    ms = get(sapi, "/api/queues/%2F/aliveness-test")["message_stats"]
    assert ms["get_no_ack"] >= 1 and ms["deliver"] == 0 and ms["ack"] == 0
