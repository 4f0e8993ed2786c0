"""pyrabbit2 (the Python client of RabbitMQ's HTTP API), unchanged, against WarrenMQ: what its users do with
it (overview, vhosts, users, permissions, exchanges, queues and their depths, bindings, publish and get,
purge, policies, connections, definitions), each checked over AMQP or in the broker where that is where
the effect shows."""
from __future__ import annotations

import pika
import pytest

from .conftest import importable, mgmt_port, require

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def client(mgmt):
    require("pyrabbit2", importable("pyrabbit2"), "pip install pyrabbit2, or the thirdparty extra")
    from pyrabbit2.api import Client
    return Client(f"127.0.0.1:{mgmt_port(mgmt)}", "guest", "guest")


def test_overview_nodes_whoami_alive(client, mgmt):
    assert client.get_overview()["product_name"] == "RabbitMQ"
    assert client.get_cluster_name() == {"name": client.get_overview()["cluster_name"]}
    assert [n["name"] for n in client.get_nodes()] == [client.get_overview()["node"]]
    assert client.get_whoami()["name"] == "guest"
    assert client.is_alive() is True
    assert client.is_alive("%2F") is True
    from pyrabbit2.api import APIError
    with pytest.raises(APIError):
        client.is_alive("no-such-vhost")


def test_vhosts_users_permissions(client, mgmt):
    client.create_vhost("v1")
    assert client.get_vhost_names() == ["/", "v1"]
    assert client.get_vhost("v1")["name"] == "v1"
    client.create_user("alice", "secret", tags="management")
    assert {u["name"]: u["tags"] for u in client.get_users()}["alice"] in (["management"], "management")
    client.set_vhost_permissions("v1", "alice", "^alice-.*", ".*", ".*")
    perm = client.get_permission("v1", "alice")
    assert (perm["configure"], perm["write"], perm["read"]) == ("^alice-.*", ".*", ".*")
    assert {p["vhost"] for p in client.get_user_permissions("alice")} == {"v1"}
    assert {p["user"] for p in client.get_vhost_permissions("v1")} == {"guest", "alice"}
    # the permission is enforced over AMQP
    conn = pika.BlockingConnection(pika.URLParameters(mgmt.url.rsplit("/", 1)[0].replace("guest:guest",
                                                                                            "alice:secret")
                                                      + "/v1"))
    try:
        ch = conn.channel()
        ch.queue_declare("alice-q")
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            conn.channel().queue_declare("bob-q")
        assert e.value.reply_code == 403
    finally:
        conn.close()
    client.delete_permission("v1", "alice")
    assert client.get_vhost_permissions("v1") == [p for p in client.get_vhost_permissions("v1")
                                                  if p["user"] == "guest"]
    client.delete_user("alice")
    assert [u["name"] for u in client.get_users()] == ["guest"]
    client.delete_vhost("v1")
    assert client.get_vhost_names() == ["/"]


def test_exchanges_queues_bindings_publish_get(client, mgmt):
    client.create_exchange("/", "ex", "topic", durable=True)
    assert client.get_exchange("/", "ex")["type"] == "topic"
    assert "ex" in [x["name"] for x in client.get_exchanges("/")]
    client.create_queue("/", "q1", durable=True)
    client.create_queue("/", "q2", durable=False, auto_delete=False, arguments={"x-max-length": 5})
    assert client.get_queue("/", "q2")["arguments"] == {"x-max-length": 5}
    assert sorted(q["name"] for q in client.get_queues("/")) == ["q1", "q2"]
    assert [q["name"] for q in client.get_queues("/", pattern="1")] == ["q1"]
    assert [q["name"] for q in client.get_queues("/", pattern="^q[2]$", regex=True)] == ["q2"]
    client.create_binding("/", "ex", "q1", "a.#")
    assert [(b["source"], b["routing_key"]) for b in client.get_queue_bindings("/", "q1")] == [
        ("", "q1"), ("ex", "a.#")]
    # (pyrabbit2's get_bindings_from_exchange is a stub that returns None)
    assert [(b["source"], b["destination"]) for b in client.get_bindings() if b["source"]] == [("ex", "q1")]
    assert client.publish("/", "ex", "a.b", "hello") is True
    assert client.publish("/", "ex", "nowhere", "lost") is False
    assert mgmt.queues()["q1"].messages == 1  # the back door: the message is in the queue
    assert client.get_queue_depth("/", "q1") == 1
    msgs = client.get_messages("/", "q1", count=1, requeue=True)
    assert [(m["payload"], m["routing_key"], m["redelivered"]) for m in msgs] == [("hello", "a.b", False)]
    msgs = client.get_messages("/", "q1", count=1, requeue=False)
    assert [(m["payload"], m["redelivered"], m["message_count"]) for m in msgs] == [("hello", True, 0)]
    assert client.get_queue_depth("/", "q1") == 0
    client.delete_binding("/", "ex", "q1", "a.%23")  # pyrabbit2 puts the properties key in the path as given
    assert [b["source"] for b in client.get_queue_bindings("/", "q1")] == [""]
    client.delete_exchange("/", "ex")
    assert "ex" not in [x["name"] for x in client.get_exchanges("/")]


def test_purge_and_delete_queues(client, mgmt):
    client.create_queue("/", "p1")
    client.create_queue("/", "p2")
    for q in ("p1", "p2", "p2"):
        client.publish("/", "amq.default", q, "m")
    assert [client.get_queue_depth("/", q) for q in ("p1", "p2")] == [1, 2]
    client.purge_queue("/", "p1")
    assert client.get_queue_depth("/", "p1") == 0
    client.create_queue("/", "p1")
    assert client.purge_queues([("p1", "/"), ("p2", "/")]) is True
    assert [client.get_queue_depth("/", q) for q in ("p1", "p2")] == [0, 0]
    client.delete_queue("/", "p1")
    client.delete_queue("/", "p2")
    assert client.get_queues("/") == []


def test_policies(client, mgmt):
    client.create_policy("/", "ttl", pattern="^ttl-", definition={"message-ttl": 60000}, priority=1,
                         **{"apply-to": "queues"})
    assert client.get_policy("/", "ttl")["definition"] == {"message-ttl": 60000}
    assert [p["name"] for p in client.get_all_policies()] == ["ttl"]
    client.create_queue("/", "ttl-q")
    assert client.get_queue("/", "ttl-q")["policy"] == "ttl"
    client.delete_policy("/", "ttl")
    assert client.get_all_policies() == []


def test_connections_and_channels(client, mgmt):
    conn = pika.BlockingConnection(pika.URLParameters(mgmt.url))
    try:
        conn.channel()
        conns = client.get_connections()
        assert [(c["user"], c["vhost"], c["channels"]) for c in conns] == [("guest", "/", 1)]
        assert client.get_connection(conns[0]["name"])["name"] == conns[0]["name"]
        chans = client.get_channels()
        assert len(chans) == 1 and client.get_channel(chans[0]["name"])["number"] == 1
        client.delete_connection(conns[0]["name"])
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as e:
            conn.process_data_events(time_limit=2)
        assert e.value.reply_code == 320
    finally:
        if conn.is_open:
            conn.close()
    assert client.get_connections() in (None, [])


def test_definitions(client, mgmt):
    client.create_queue("/", "dq", durable=True)
    d = client.get_definitions()
    assert {"rabbit_version", "users", "vhosts", "permissions", "queues", "exchanges", "bindings",
            "policies"} <= set(d)
    assert [q["name"] for q in d["queues"]] == ["dq"]


def test_errors_raise_http_errors(client, mgmt):
    from pyrabbit2.http import HTTPError
    with pytest.raises(HTTPError) as e:
        client.get_queue("/", "missing")
    assert e.value.status == 404
    from pyrabbit2.api import Client
    from pyrabbit2.api import PermissionError as Refused
    bad = Client(f"127.0.0.1:{mgmt_port(mgmt)}", "guest", "wrong")
    with pytest.raises(Refused, match="401"):  # what pyrabbit2 makes of a 401
        bad.get_overview()
