"""The statistics fields RabbitMQ's UI and tools read beyond message_stats: a queue's message_bytes* and
messages_{ram,persistent,paged_out} (counted when asked, matched against what RabbitMQ 3.10.8 answered
for the same traffic), idle_since on queues, channels and connections, and the overview's churn_rates and
sample_retention_policies.  The sampler is driven by hand here (a 10-minute interval, then
``stats.sample()`` on the broker's loop), so what is idle and what is not is decided by the test, not by
timing."""
import re
import time

import pika
import pytest

from warrenmq.testing import EmbeddedBroker

from .conftest import Api, q as seg

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$")  # RabbitMQ 3.10's idle_since
BYTES_KEYS = ("message_bytes", "message_bytes_ready", "message_bytes_unacknowledged", "message_bytes_ram",
              "message_bytes_persistent", "message_bytes_paged_out", "messages_ram", "messages_ready_ram",
              "messages_unacknowledged_ram", "messages_persistent", "messages_paged_out")


@pytest.fixture(scope="module")
def hb(tmp_path_factory):
    d = tmp_path_factory.mktemp("fields")
    with EmbeddedBroker(management=True, statistics_interval_ms=600_000, data_dir=str(d),
                        queue_max_in_memory=10) as b:
        yield b


@pytest.fixture(scope="module")
def api(hb):
    return Api(hb.management_url)


def sample(b):
    b.call(lambda: b.app.management.stats.sample())


def by_bytes(d):
    return {k: d[k] for k in BYTES_KEYS}


def test_message_bytes_as_rabbitmq_counts_them(api, hb):
    conn = pika.BlockingConnection(pika.URLParameters(hb.url))
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare("mb-durable", durable=True)
    ch.basic_publish("", "mb-durable", b"hello", pika.BasicProperties(delivery_mode=2))
    ch.basic_publish("", "mb-durable", b"hello2")
    method, _, body = ch.basic_get("mb-durable", auto_ack=False)
    assert body == b"hello"
    # what RabbitMQ 3.10.8 answered for this traffic (the probe node): the persistent 5 bytes are held
    # unacknowledged, the transient 6 ready, everything in memory
    expected = {"message_bytes": 11, "message_bytes_ready": 6, "message_bytes_unacknowledged": 5,
                "message_bytes_ram": 11, "message_bytes_persistent": 5, "message_bytes_paged_out": 0,
                "messages_ram": 2, "messages_ready_ram": 1, "messages_unacknowledged_ram": 1,
                "messages_persistent": 1, "messages_paged_out": 0}
    assert by_bytes(api.get("/api/queues/%2F/mb-durable")[2]) == expected
    listed = [q for q in api.get("/api/queues")[2] if q["name"] == "mb-durable"]
    assert by_bytes(listed[0]) == expected
    ch.basic_ack(method.delivery_tag)
    conn.process_data_events(0.1)
    d = api.get("/api/queues/%2F/mb-durable")[2]
    assert (d["message_bytes"], d["message_bytes_unacknowledged"], d["messages_persistent"]) == (6, 0, 0)
    # a transient queue persists nothing, whatever the delivery mode
    ch.queue_declare("mb-transient")
    ch.basic_publish("", "mb-transient", b"abc", pika.BasicProperties(delivery_mode=2))
    d = api.get("/api/queues/%2F/mb-transient")[2]
    assert (d["message_bytes"], d["message_bytes_persistent"], d["messages_persistent"]) == (3, 0, 0)
    conn.close()


def test_a_lazy_tail_counts_as_paged_out(api, hb):
    conn = pika.BlockingConnection(pika.URLParameters(hb.url))
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare("mb-lazy", durable=True)
    for i in range(50):
        ch.basic_publish("", "mb-lazy", b"%04d" % i, pika.BasicProperties(delivery_mode=2))
    d = api.get("/api/queues/%2F/mb-lazy")[2]
    assert d["messages"] == 50 and d["messages_persistent"] == 50
    # beyond queue_max_in_memory (10) the bodies wait on disk: not in RAM
    assert d["messages_ram"] <= 11 and d["messages_paged_out"] == 50 - d["messages_ram"]
    assert d["message_bytes_ram"] == 4 * d["messages_ram"]
    conn.close()


def test_idle_since_on_queues_channels_and_connections(api, hb):
    params = pika.URLParameters(hb.url)
    params.client_properties = {"connection_name": "idle-conn"}
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    ch.queue_declare("idle-q")
    sample(hb)  # first seen: idle since now
    before = time.time()
    q = api.get("/api/queues/%2F/idle-q")[2]
    assert ISO_MS.match(q["idle_since"]), q["idle_since"]
    cname = next(c["name"] for c in api.get("/api/connections")[2] if c.get("user_provided_name") == "idle-conn")
    chan = api.get("/api/channels/" + seg(f"{cname} (1)"))[2]
    assert ISO_MS.match(chan["idle_since"])
    ch.basic_publish("", "idle-q", b"x")
    conn.process_data_events(0.1)
    sample(hb)  # the queue and the channel counted something since the last sample: active
    assert "idle_since" not in api.get("/api/queues/%2F/idle-q")[2]
    assert "idle_since" not in api.get("/api/channels/" + seg(f"{cname} (1)"))[2]
    assert "idle_since" not in api.get("/api/connections/" + seg(cname))[2]
    time.sleep(0.05)
    sample(hb)  # nothing since: idle since the sample that last saw them active
    q = api.get("/api/queues/%2F/idle-q")[2]
    assert ISO_MS.match(q["idle_since"])
    listed = next(x for x in api.get("/api/queues")[2] if x["name"] == "idle-q")
    assert listed["idle_since"] == q["idle_since"]
    since = time.mktime(time.strptime(q["idle_since"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    assert before - 1 <= since <= time.time()
    assert "idle_since" in api.get("/api/channels/" + seg(f"{cname} (1)"))[2]
    conn.close()


def test_churn_rates_and_sample_retention_policies_in_the_overview(api, hb):
    def churn():
        return api.get("/api/overview")[2]["churn_rates"]
    start = churn()
    assert set(start) == {k + s for k in ("connection_created", "connection_closed", "channel_created",
                                          "channel_closed", "queue_declared", "queue_created", "queue_deleted")
                          for s in ("", "_details")}
    conn = pika.BlockingConnection(pika.URLParameters(hb.url))
    ch = conn.channel()
    ch.queue_declare("churn-q")
    ch.queue_declare("churn-q")
    ch.queue_declare("churn-q", passive=True)  # RabbitMQ counts no passive declare
    ch.queue_delete("churn-q")
    conn.channel().close()
    now = churn()
    diff = {k: now[k] - start[k] for k in start if not k.endswith("_details")}
    assert diff == {"connection_created": 1, "connection_closed": 0, "channel_created": 2, "channel_closed": 1,
                    "queue_declared": 2, "queue_created": 1, "queue_deleted": 1}
    conn.close()
    time.sleep(0.1)
    now = churn()
    assert (now["connection_closed"] - start["connection_closed"], now["channel_closed"] - start["channel_closed"]) \
        == (1, 2)
    sample(hb)
    assert churn()["connection_closed_details"]["rate"] >= 0
    assert api.get("/api/overview")[2]["sample_retention_policies"] == {"global": [], "basic": [], "detailed": []}


def test_queue_and_exchange_details_have_rabbitmqs_empty_breakdowns(api):
    assert api.put("/api/queues/%2F/bd-q", {})[0] == 201
    q = api.get("/api/queues/%2F/bd-q")[2]
    assert (q["incoming"], q["deliveries"]) == ([], [])
    x = api.get("/api/exchanges/%2F/amq.direct")[2]
    assert (x["incoming"], x["outgoing"]) == ([], [])
    api.delete("/api/queues/%2F/bd-q")
