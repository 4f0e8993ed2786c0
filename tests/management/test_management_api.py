"""The management HTTP API over real HTTP against an embedded broker, state made with pika.

Shapes and status codes as RabbitMQ 3.10's management plugin answers them (docs/management.md)."""
import time
import urllib.parse

import pika
import pytest

from warrenmq.broker.alarms import Alarm
from warrenmq.testing import EmbeddedBroker


def seg(name: str) -> str:
    return urllib.parse.quote(name, safe="")


@pytest.fixture
def conn(mbroker):
    c = pika.BlockingConnection(pika.URLParameters(mbroker.url))
    yield c
    if c.is_open:
        c.close()


# ------------------------------------------------------------------- auth
def test_missing_credentials_are_401_with_the_realm(api):
    status, headers, body = api.get("/api/overview", auth=None)
    assert status == 401
    assert headers["WWW-Authenticate"] == 'Basic realm="RabbitMQ Management"'
    assert body is None  # RabbitMQ 3.10: an empty body


def test_a_wrong_password_is_401_with_the_realm(api):
    status, headers, body = api.get("/api/overview", auth=("guest", "nope"))
    assert status == 401
    assert headers["WWW-Authenticate"] == 'Basic realm="RabbitMQ Management"'
    assert body == {"error": "not_authorized", "reason": "Login failed"}


def test_a_user_without_a_management_tag_is_refused(api):
    status, _, body = api.get("/api/overview", auth=("plain", "plainpw"))
    assert status == 401
    assert body == {"error": "not_authorised", "reason": "Not management user"}  # British, as RabbitMQ 3.10


def test_the_management_tag_is_enough_for_the_overview_but_not_for_nodes(api):
    assert api.get("/api/overview", auth=("mgmt", "mgmtpw"))[0] == 200
    status, _, body = api.get("/api/nodes", auth=("mgmt", "mgmtpw"))
    assert status == 401 and body["reason"] == "Not monitor user"
    assert api.get("/api/nodes", auth=("mon", "monpw"))[0] == 200


def test_an_unknown_path_is_a_json_404(api):
    status, _, body = api.get("/api/no-such-thing")
    assert status == 404
    assert body == {"error": "Object Not Found", "reason": "Not Found"}


def test_a_method_a_path_does_not_serve_is_405(api):
    assert api.request("POST", "/api/overview")[0] == 405


# ------------------------------------------------------------------- overview, whoami, nodes, vhosts
def test_overview(api, mbroker, conn):
    ch = conn.channel()
    ch.queue_declare("ov-q")
    ch.basic_publish("", "ov-q", b"x")
    mbroker.wait_for_messages("ov-q", 1)
    try:
        status, _, o = api.get("/api/overview")
        assert status == 200
        assert o["product_name"] == "RabbitMQ"
        assert o["rabbitmq_version"] == o["management_version"] == "3.10.8"
        assert o["node"] == o["cluster_name"]
        assert o["object_totals"]["queues"] >= 1 and o["object_totals"]["connections"] >= 1
        assert o["object_totals"]["channels"] >= 1
        assert o["queue_totals"]["messages_ready"] >= 1
        protocols = {(x["protocol"], x["port"]) for x in o["listeners"]}
        assert ("amqp", mbroker.port) in protocols
        assert ("http", mbroker.app.management_port) in protocols
        assert {"direct", "fanout", "topic", "headers"} <= {t["name"] for t in o["exchange_types"]}
    finally:
        ch.queue_delete("ov-q")


def test_whoami(api):
    assert api.get("/api/whoami")[2] == {"name": "guest", "tags": ["administrator"]}
    assert api.get("/api/whoami", auth=("mgmt", "mgmtpw"))[2] == {"name": "mgmt", "tags": ["management"]}


def test_nodes(api):
    status, _, nodes = api.get("/api/nodes")
    assert status == 200 and len(nodes) == 1
    node = nodes[0]
    assert node["running"] is True and node["type"] == "disc" and node["mem_used"] > 0
    assert api.get(f"/api/nodes/{seg(node['name'])}")[2]["name"] == node["name"]
    assert api.get("/api/nodes/rabbit@elsewhere")[0] == 404


def test_vhosts(api):
    status, _, vhosts = api.get("/api/vhosts")
    assert status == 200
    assert [v["name"] for v in vhosts] == ["/"]
    status, _, vh = api.get("/api/vhosts/%2F")
    assert status == 200 and vh["name"] == "/" and "messages" in vh
    assert api.get("/api/vhosts/nope")[0] == 404


# ------------------------------------------------------------------- queues
def test_queue_put_get_delete(api, mbroker):
    path = "/api/queues/%2F/" + seg("mq/one")  # a name with a slash, encoded in the path
    status, _, _ = api.put(path, {"durable": True, "arguments": {"x-max-length": 10}})
    assert status == 201
    assert api.put(path, {"durable": True, "arguments": {"x-max-length": 10}})[0] == 204
    status, _, body = api.put(path, {"durable": False})
    assert status == 400 and body["error"] == "bad_request"
    assert body["reason"] == ("inequivalent arg 'durable' for queue 'mq/one' in vhost '/': received 'false' but "
                              "current is 'true'")  # RabbitMQ 3.10's answer, word for word
    status, _, info = api.get(path)
    assert status == 200
    assert info["name"] == "mq/one" and info["vhost"] == "/" and info["durable"] is True
    assert info["arguments"] == {"x-max-length": 10}
    assert info["messages"] == info["messages_ready"] == info["messages_unacknowledged"] == 0
    assert info["consumers"] == 0 and info["type"] == "classic" and info["consumer_details"] == []
    assert mbroker.queues()["mq/one"].durable  # the domain's queue, declared through its API
    assert api.delete(path)[0] == 204
    assert api.get(path)[0] == 404
    assert api.delete(path)[0] == 404
    assert api.get("/api/queues/nope/x")[0] == 404


def test_queue_counts_purge_and_if_empty(api, mbroker, conn):
    ch = conn.channel()
    ch.queue_declare("mq-counts")
    for i in range(3):
        ch.basic_publish("", "mq-counts", b"m%d" % i)
    mbroker.wait_for_messages("mq-counts", 3)
    ch.basic_qos(prefetch_count=1)
    ch.basic_consume("mq-counts", lambda *a: None)
    conn.process_data_events(time_limit=0.2)
    _, _, info = api.get("/api/queues/%2F/mq-counts")
    assert (info["messages"], info["messages_ready"], info["messages_unacknowledged"], info["consumers"]) == (3, 2, 1, 1)
    assert info["consumer_details"][0]["prefetch_count"] == 1
    listed = {x["name"]: x for x in api.get("/api/queues/%2F")[2]}
    assert listed["mq-counts"]["messages"] == 3
    status, _, body = api.delete("/api/queues/%2F/mq-counts?if-unused=true")
    assert status == 400 and "in use" in body["reason"]
    status, _, body = api.delete("/api/queues/%2F/mq-counts?if-empty=true")
    assert status == 400 and "not empty" in body["reason"]
    assert api.delete("/api/queues/%2F/mq-counts/contents")[0] == 204
    assert api.get("/api/queues/%2F/mq-counts")[2]["messages_ready"] == 0
    assert api.delete("/api/queues/%2F/nope/contents")[0] == 404
    ch.close()  # its unacknowledged message goes back to the queue
    assert _wait_for(lambda: api.get("/api/queues/%2F/mq-counts")[2]["messages_ready"] == 1)
    assert api.delete("/api/queues/%2F/mq-counts/contents")[0] == 204
    assert api.delete("/api/queues/%2F/mq-counts?if-empty=true&if-unused=true")[0] == 204
    assert "mq-counts" not in mbroker.queues()


def test_a_reserved_queue_name_is_refused(api):
    status, _, body = api.put("/api/queues/%2F/amq.mine", {})
    # RabbitMQ 3.10 does not pass the AMQP text on (tests/differential/test_management_api.py)
    assert (status, body) == (401, {"error": "not_authorised", "reason": "Access refused."})


# ------------------------------------------------------------------- exchanges and bindings
def test_exchanges(api, conn):
    status, _, exchanges = api.get("/api/exchanges/%2F")
    assert status == 200
    names = {x["name"]: x for x in exchanges}
    assert "" in names and names[""]["type"] == "direct" and "amq.topic" in names
    assert api.get("/api/exchanges/%2F/amq.default")[2]["name"] == ""
    path = "/api/exchanges/%2F/mx"
    assert api.put(path, {"type": "topic", "durable": False})[0] == 201
    assert api.put(path, {"type": "topic", "durable": False})[0] == 204
    status, _, body = api.put(path, {"type": "fanout", "durable": False})
    assert status == 400 and "inequivalent arg 'type'" in body["reason"]
    assert api.put("/api/exchanges/%2F/mx2", {})[0] == 201  # as RabbitMQ 3.10: a direct, transient exchange
    assert [api.get("/api/exchanges/%2F/mx2")[2][k] for k in ("type", "durable")] == ["direct", False]
    x = api.get(path)[2]
    assert (x["type"], x["durable"], x["auto_delete"], x["internal"], x["vhost"]) == ("topic", False, False, False, "/")
    ch = conn.channel()
    ch.queue_declare("mx-q")
    ch.queue_bind("mx-q", "mx", "a.#")
    status, _, body = api.delete(path + "?if-unused=true")
    assert status == 400 and "in use" in body["reason"]
    bindings = api.get("/api/bindings/%2F")[2]
    assert {"source": "mx", "destination": "mx-q", "destination_type": "queue", "routing_key": "a.#",
            "arguments": {}, "vhost": "/"}.items() <= next(b for b in bindings if b["source"] == "mx").items()
    assert any(b["source"] == "" and b["destination"] == "mx-q" and b["routing_key"] == "mx-q" for b in bindings)
    assert [b["destination"] for b in api.get(path + "/bindings/source")[2]] == ["mx-q"]
    assert [b["source"] for b in api.get("/api/queues/%2F/mx-q/bindings")[2]] == ["", "mx"]
    assert api.get("/api/bindings")[0] == 200
    assert api.delete(path)[0] == 204
    assert api.get(path)[0] == 404
    assert api.delete(path)[0] == 404
    assert api.delete("/api/exchanges/%2F/amq.direct")[0] in (401, 403)
    assert api.get("/api/exchanges/%2F/amq.direct")[0] == 200
    ch.queue_delete("mx-q")


# ------------------------------------------------------------------- connections
def _wait_for(fn, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(0.05)


def test_connections_list_get_and_delete_closes_with_320(api, mbroker):
    params = pika.URLParameters(mbroker.url)
    params.client_properties = {"connection_name": "mgmt-test"}
    c = pika.BlockingConnection(params)
    c.channel()
    try:
        found = _wait_for(lambda: [x for x in api.get("/api/connections")[2]
                                   if x["client_properties"].get("connection_name") == "mgmt-test"])
        assert len(found) == 1
        info = found[0]
        assert info["user"] == "guest" and info["vhost"] == "/" and info["channels"] == 1
        assert info["state"] == "running" and info["protocol"] == "AMQP 0-9-1"
        assert info["name"] == f"{info['peer_host']}:{info['peer_port']} -> 127.0.0.1:{mbroker.port}"
        path = "/api/connections/" + seg(info["name"])
        assert api.get(path)[2]["name"] == info["name"]
        assert api.get(path, auth=("mgmt", "mgmtpw"))[0] == 404  # someone else's connection
        assert api.delete(path)[0] == 204
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as e:
            c.process_data_events(time_limit=2)
            c.channel()
        assert e.value.reply_code == 320
        assert e.value.reply_text == "CONNECTION_FORCED - Closed via management plugin"
        assert _wait_for(lambda: api.get(path)[0] == 404)
    finally:
        if c.is_open:
            c.close()


def test_a_management_user_sees_only_its_own_connections(api, mbroker, conn):
    mine = pika.BlockingConnection(pika.URLParameters(mbroker.url.replace("guest:guest", "mgmt:mgmtpw")))
    try:
        users = {x["user"] for x in api.get("/api/connections", auth=("mgmt", "mgmtpw"))[2]}
        assert users == {"mgmt"}
        assert {"guest", "mgmt"} <= {x["user"] for x in api.get("/api/connections", auth=("mon", "monpw"))[2]}
        assert {"guest", "mgmt"} <= {x["user"] for x in api.get("/api/vhosts/%2F/connections")[2]}
    finally:
        mine.close()


def test_delete_connection_with_a_reason(api, mbroker):
    params = pika.URLParameters(mbroker.url)
    params.client_properties = {"connection_name": "mgmt-reason"}
    c = pika.BlockingConnection(params)
    try:
        name = _wait_for(lambda: [x["name"] for x in api.get("/api/connections")[2]
                                  if x["client_properties"].get("connection_name") == "mgmt-reason"])[0]
        assert api.delete("/api/connections/" + seg(name), headers={"X-Reason": "maintenance"})[0] == 204
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as e:
            c.process_data_events(time_limit=2)
            c.channel()
        assert (e.value.reply_code, e.value.reply_text) == (320, "CONNECTION_FORCED - maintenance")
    finally:
        if c.is_open:
            c.close()


# ------------------------------------------------------------------- health
def test_aliveness_test(api, mbroker):
    status, _, body = api.get("/api/aliveness-test/%2F")
    assert (status, body) == (200, {"status": "ok"})
    assert mbroker.queues()["aliveness-test"].messages_ready == 0  # the message was taken back
    assert api.get("/api/aliveness-test/nope")[0] == 404


def test_alarm_health_checks(api, mbroker):
    for check in ("alarms", "local-alarms"):
        status, _, body = api.get(f"/api/health/checks/{check}")
        assert (status, body) == (200, {"status": "ok"})
    mbroker.call(mbroker.broker.set_alarm, Alarm.MEMORY, True)
    try:
        for check in ("alarms", "local-alarms"):
            status, _, body = api.get(f"/api/health/checks/{check}")
            assert status == 503 and body["status"] == "failed"
            assert body["alarms"] == [{"node": api.get("/api/overview")[2]["node"], "resource": "memory"}]
    finally:
        mbroker.call(mbroker.broker.set_alarm, Alarm.MEMORY, False)
    assert api.get("/api/health/checks/alarms")[0] == 200


# ------------------------------------------------------------------- the embedded broker
def test_the_embedded_broker_serves_no_management_unless_asked():
    with EmbeddedBroker() as b:
        assert b.app.management is None
        with pytest.raises(RuntimeError):
            b.management_url


def test_declares_deletes_and_purges_need_the_amqp_permission(api, mbroker):
    """As RabbitMQ 3.10 answers a management user without the permission (probed on the reference):
    401 not_authorised "Access refused.", and nothing changes."""
    b = mbroker
    b.call(lambda: b.broker.add_user("narrow", "narrowpw", ["management"]))
    b.call(lambda: b.broker.set_permissions("narrow", "/", "^mine", "^$", "^mine"))
    me = ("narrow", "narrowpw")
    refused = {"error": "not_authorised", "reason": "Access refused."}
    try:
        assert api.put("/api/queues/%2F/mine-q", {"durable": False}, auth=me)[0] == 201
        assert api.put("/api/queues/%2F/theirs", {"durable": False})[0] == 201  # by guest
        for status, _, body in (api.put("/api/queues/%2F/other-q", {"durable": False}, auth=me),
                                api.delete("/api/queues/%2F/theirs", auth=me),
                                api.delete("/api/queues/%2F/theirs/contents", auth=me),
                                api.put("/api/exchanges/%2F/other-x", {"type": "direct"}, auth=me),
                                api.delete("/api/exchanges/%2F/amq.direct", auth=me)):
            assert (status, body) == (401, refused)
        assert "other-q" not in b.queues() and "theirs" in b.queues()
        assert api.delete("/api/queues/%2F/mine-q/contents", auth=me)[0] == 204
        assert api.put("/api/exchanges/%2F/mine-x", {"type": "fanout"}, auth=me)[0] == 201
        assert api.delete("/api/exchanges/%2F/mine-x", auth=me)[0] == 204
        assert api.delete("/api/queues/%2F/mine-q", auth=me)[0] == 204
    finally:
        api.delete("/api/queues/%2F/theirs")
        b.call(lambda: b.broker.delete_user("narrow"))
