"""Routes of RabbitMQ 3.10's dispatcher beyond the core: a user's connections, the node's memory
breakdown, feature flags and /all-configuration, over real sockets (pika on the AMQP side).  What
RabbitMQ answers the same is compared in tests/differential (test_connections_by_user_...); here what
WarrenMQ decides itself: non-monitoring users and their own connections (RabbitMQ 3.10: a 500), which
memory WarrenMQ attributes, the flags' states."""
import pika
import pytest

from warrenmq.testing import EmbeddedBroker

from .conftest import Api, q as seg


@pytest.fixture(scope="module")
def xb():
    with EmbeddedBroker(management=True) as b:
        b.call(lambda: b.broker.add_user("cu", "pw", [], {"/"}))
        b.call(lambda: b.broker.add_user("mg", "pw", ["management"], {"/"}))
        b.call(lambda: b.broker.add_user("mon", "pw", ["monitoring"], {"/"}))
        yield b


@pytest.fixture(scope="module")
def api(xb):
    return Api(xb.management_url)


def connect(b, user, pw="pw"):
    return pika.BlockingConnection(pika.URLParameters(b.url.replace("guest:guest", f"{user}:{pw}")))


def test_a_users_connections_are_listed_and_closed(api, xb):
    conns = [connect(xb, "cu"), connect(xb, "cu")]
    own = connect(xb, "mg")
    try:
        items = api.get("/api/connections/username/cu")[2]
        assert sorted(items[0]) == ["name", "node", "user", "vhost"]
        assert [(i["user"], i["vhost"]) for i in items] == [("cu", "/"), ("cu", "/")]
        names = {c["name"] for c in api.get("/api/connections")[2] if c["user"] == "cu"}
        assert {i["name"] for i in items} == names
        assert api.get("/api/connections/username/cu", auth=("mon", "pw"))[2] == items
        # a user without monitoring sees and closes its own, not someone else's
        assert [i["user"] for i in api.get("/api/connections/username/mg", auth=("mg", "pw"))[2]] == ["mg"]
        refused = {"error": "not_authorised", "reason": "User not authorised to access object"}
        assert api.get("/api/connections/username/cu", auth=("mg", "pw"))[::2] == (401, refused)
        assert api.delete("/api/connections/username/cu", auth=("mg", "pw"))[0] == 401
        assert api.delete("/api/connections/username/cu", auth=("mon", "pw"))[0] == 401  # closing: administrator
        assert all(c.is_open for c in conns)
        assert api.delete("/api/connections/username/cu", headers={"X-Reason": "maintenance"})[0] == 204
        for c in conns:
            with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as info:
                c.process_data_events(5)
            assert (info.value.reply_code, info.value.reply_text) == (320, "CONNECTION_FORCED - maintenance")
        assert api.get("/api/connections/username/cu")[2] == []
        assert api.delete("/api/connections/username/mg", auth=("mg", "pw"))[0] == 204
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as info:
            own.process_data_events(5)
        assert info.value.reply_text == "CONNECTION_FORCED - Closed via management plugin"
        assert api.delete("/api/connections/username/nobody")[0] == 204
    finally:
        for c in conns + [own]:
            if c.is_open:
                c.close()


def test_the_memory_breakdown_attributes_queued_bodies_and_queues(api, xb):
    node = api.get("/api/overview")[2]["node"]
    path = f"/api/nodes/{seg(node)}/memory"
    before = api.get(path)[2]["memory"]
    assert before["strategy"] == "rss" and before["total"]["rss"] > 0
    api.put("/api/queues/%2F/mem-q", {})
    body = "x" * 100_000
    for _ in range(10):
        assert api.request("POST", "/api/exchanges/%2F/amq.default/publish",
                           {"routing_key": "mem-q", "properties": {}, "payload": body,
                            "payload_encoding": "string"})[0] == 200
    after = api.get(path)[2]["memory"]
    assert after["binary"] - before["binary"] == 1_000_000  # the queued bodies, exactly
    assert after["queue_procs"] > before["queue_procs"]
    parts = sum(v for k, v in after.items() if k not in ("strategy", "total"))
    assert parts == after["total"]["rss"]  # what is not attributed is other_system
    assert after["connection_readers"] == after["mnesia"] == after["code"] == 0  # nothing WarrenMQ has
    rel = api.get(path + "/relative")[2]["memory"]
    assert rel["total"] == 100 and rel["binary"] >= 1 and 90 <= sum(v for k, v in rel.items() if k != "total") <= 110
    assert api.get(path, auth=("mg", "pw"))[::2] == (401, {"error": "not_authorised", "reason": "Not monitor user"})
    assert api.get(path, auth=("mon", "pw"))[0] == 200
    assert api.get("/api/nodes/other@host/memory")[0] == 404
    api.delete("/api/queues/%2F/mem-q")


def test_feature_flags_say_what_a_one_node_warrenmq_has(api):
    flags = {f["name"]: f["state"] for f in api.get("/api/feature-flags")[2]}
    assert flags["quorum_queue"] == "enabled" and flags["user_limits"] == "enabled"
    assert flags["stream_queue"] == "disabled"  # no stream queues
    assert api.put("/api/feature-flags/quorum_queue/enable")[0] == 204
    unsupported = {"error": "bad_request", "reason": "unsupported"}
    assert api.put("/api/feature-flags/stream_queue/enable")[::2] == (400, unsupported)
    assert api.put("/api/feature-flags/no_such_flag/enable")[::2] == (400, unsupported)
    assert api.get("/api/feature-flags", auth=("mon", "pw"))[0] == 401


def test_all_configuration_is_the_definitions(api):
    assert api.get("/api/all-configuration")[2] == api.get("/api/definitions")[2]
    doc = {"queues": [{"name": "allconf-q", "vhost": "/", "durable": True, "auto_delete": False, "arguments": {}}]}
    assert api.request("POST", "/api/all-configuration", doc)[0] == 204
    assert api.get("/api/queues/%2F/allconf-q")[0] == 200
    api.delete("/api/queues/%2F/allconf-q")
