"""Dynamic shovels through the management API, WarrenMQ to WarrenMQ: the parameter's validation as RabbitMQ
3.10.8 words it (recorded from a RabbitMQ with rabbitmq_shovel_management), the status JSON, messages moved
over local (``amqp://``) and remote URIs, forward headers, delete-after, restart, definitions."""
import re
import time
import uuid

import pika
import pytest

from support.links import Api, connect, delete_queues, drain, publish_confirmed
from warrenmq.testing import EmbeddedBroker

BASE = {"src-uri": "amqp://", "src-queue": "x", "dest-uri": "amqp://"}

# (value, RabbitMQ 3.10.8's reason after "Validation failed\n\n"), recorded from the probe node
INVALID = [
    ({"src-queue": "x", "dest-uri": "amqp://", "dest-queue": "y"}, 'Key "src-uri" not found in s\n'),
    ({"src-queue": "x"}, 'Key "dest-uri" not found in s\nKey "src-uri" not found in s\n'),
    ({"src-uri": "amqp://", "dest-uri": "amqp://", "dest-queue": "y"}, "Must specify 'src-exchange' or 'src-queue'\n"),
    ({**BASE, "src-exchange": "amq.topic"}, "Cannot specify 'src-exchange' and 'src-queue'\n"),
    ({**BASE, "dest-queue": "y", "dest-exchange": "amq.direct"}, "Cannot specify 'dest-exchange' and 'dest-queue'\n"),
    ({**BASE, "ack-mode": "bogus"}, 'ack-mode should be one of [&lt;&lt;"no-ack"&gt;&gt;,&lt;&lt;"on-publish"&gt;&gt;,'
     '&lt;&lt;"on-confirm"&gt;&gt;], actually was &lt;&lt;"bogus"&gt;&gt;\n'),
    ({**BASE, "ack-mode": 1}, "ack-mode should be binary, actually was 1\n"),
    ({**BASE, "src-delete-after": "bogus"}, 'src-delete-after should be a number greater than or equal to 0, "never" '
     'or "queue-length", actually was &lt;&lt;"bogus"&gt;&gt;\n'),
    ({**BASE, "src-delete-after": -1}, 'src-delete-after should be a number greater than or equal to 0, "never" '
     'or "queue-length", actually was -1\n'),
    ({**BASE, "src-uri": "foo://"}, '"foo://" not a valid URI: {{unexpected_uri_scheme,"foo"},"foo://"}\n'),
    ({**BASE, "src-uri": ["amqp://", "bad"]}, '"bad" not a valid URI: {{unable_to_parse_uri,no_scheme},"bad"}\n'),
    ({**BASE, "src-uri": 5}, "src-uri should be list, actually was 5\n"),
    ({**BASE, "src-queue": 5}, "src-queue should be binary, actually was 5\n"),
    ({**BASE, "src-prefetch-count": "a"}, 'src-prefetch-count should be a number, actually was &lt;&lt;"a"&gt;&gt;\n'),
    ({**BASE, "reconnect-delay": "x"}, 'reconnect-delay should be a number, actually was &lt;&lt;"x"&gt;&gt;\n'),
    ({**BASE, "add-forward-headers": "yes"}, 'add-forward-headers should be boolean, actually was &lt;&lt;"yes"&gt;&gt;\n'),
    ({**BASE, "bogus": 1}, 'Unrecognised terms [{&lt;&lt;"bogus"&gt;&gt;,1}] in s\n'),
    ({**BASE, "src-uri": "amqp:///nosuchvhost"}, 'user "guest" may not connect to vhost "nosuchvhost"\n'),
]


@pytest.mark.parametrize("value,reason", INVALID)
def test_invalid_definitions_are_refused_as_rabbitmq_refuses_them(mbroker, value, reason):
    status, body = mbroker.api.put_shovel("s", value)
    assert status == 400
    assert body == {"error": "bad_request", "reason": "Validation failed\n\n" + reason}
    assert mbroker.api.shovels() == []


def test_accepted_forms(mbroker):
    """What RabbitMQ 3.10.8 accepts besides the plain form: old key names, a negative reconnect delay, an
    empty URI list (starting for ever), a source key with a queue (ignored), a fractional prefetch."""
    for i, extra in enumerate([{"reconnect-delay": -1}, {"src-exchange-key": "k"}, {"prefetch-count": 5},
                               {"delete-after": "never"}, {"add-timestamp-header": True},
                               {"dest-add-forward-headers": True}, {"src-prefetch-count": 1.5},
                               {"src-protocol": "amqp091", "dest-protocol": "amqp091"}]):
        status, body = mbroker.api.put_shovel(f"ok{i}", {**BASE, **extra})
        assert status == 201, (extra, body)
    assert mbroker.api.put_shovel("empty", {**BASE, "src-uri": []})[0] == 201
    time.sleep(0.3)
    [empty] = [s for s in mbroker.api.shovels() if s["name"] == "empty"]
    assert empty["state"] == "starting" and set(empty) == {"node", "timestamp", "name", "vhost", "type", "state"}


def test_local_to_local_on_confirm_moves_every_message_in_order(mbroker):
    api = mbroker.api
    assert api.put_shovel("s1", {"src-uri": "amqp://", "src-queue": "src1", "dest-uri": "amqp:///%2f",
                                 "dest-queue": "dst1"}) == (201, None)
    status = api.wait_state("s1")
    assert set(status) == {"node", "timestamp", "name", "vhost", "type", "state", "src_uri", "src_protocol",
                           "dest_protocol", "dest_uri", "src_queue", "dest_queue"}
    assert (status["name"], status["vhost"], status["type"], status["src_uri"], status["dest_uri"], status["src_queue"],
            status["dest_queue"], status["src_protocol"]) == ("s1", "/", "dynamic", "amqp://", "amqp:///%2f", "src1",
                                                              "dst1", "amqp091")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d [12]?\d:\d\d:\d\d", status["timestamp"])  # the hour unpadded, as RabbitMQ
    bodies = [f"m{i}".encode() for i in range(500)]
    props = pika.BasicProperties(delivery_mode=2, content_type="text/plain", headers={"k": "v"}, priority=3)
    publish_confirmed(mbroker.url, "src1", bodies, declare=False, properties=props)
    got = drain(mbroker.url, "dst1", len(bodies), idle=0.3)
    assert [m[2] for m in got] == bodies  # all of them, once, in order
    p = got[0][1]
    assert (p.delivery_mode, p.content_type, p.headers, p.priority, p.message_id) == (2, "text/plain", {"k": "v"}, 3,
                                                                                      None)
    assert api.request("GET", "/queues/%2F/src1")[1]["messages"] == 0


def test_remote_uri_between_two_warrenmq_brokers(mbroker):
    with EmbeddedBroker() as other:
        api = mbroker.api
        assert api.put_shovel("s2", {"src-uri": "amqp://", "src-queue": "src2", "dest-uri": other.url,
                                     "dest-queue": "dst2", "src-prefetch-count": 50})[0] == 201
        st = api.wait_state("s2")
        assert "guest" not in st["dest_uri"]  # credentials are not shown
        bodies = [uuid.uuid4().bytes for _ in range(1000)]
        publish_confirmed(mbroker.url, "src2", bodies, declare=False)
        got = drain(other.url, "dst2", len(bodies), idle=0.3)
        assert [m[2] for m in got] == bodies
        # the other way round: a remote source, the local destination
        assert api.put_shovel("s3", {"src-uri": [other.url], "src-queue": "src3", "dest-uri": "amqp://",
                                     "dest-queue": "dst3", "ack-mode": "on-publish"})[0] == 201
        api.wait_state("s3")
        publish_confirmed(other.url, "src3", bodies[:100])
        assert [m[2] for m in drain(mbroker.url, "dst3", 100, idle=0.3)] == bodies[:100]
        conns = api.request("GET", "/connections")[1]
        assert sorted(c.get("user_provided_name") for c in conns if c["type"] == "direct") == ["Shovel s2", "Shovel s3"]
        direct = [c for c in conns if c["type"] == "direct"][0]
        assert (direct["protocol"], direct["user"]) == ("Direct 0-9-1", "none")


def test_exchange_source_and_destination_exchange_key(mbroker):
    api = mbroker.api
    c = connect(mbroker.url)
    ch = c.channel()
    ch.exchange_declare("dx", "direct")
    ch.queue_declare("dq")
    ch.queue_bind("dq", "dx", "routed")
    assert api.put_shovel("s4", {"src-uri": "amqp://", "src-exchange": "amq.topic", "src-exchange-key": "a.#",
                                 "dest-uri": "amqp://", "dest-exchange": "dx", "dest-exchange-key": "routed",
                                 "ack-mode": "no-ack"})[0] == 201
    st = api.wait_state("s4")
    assert (st["src_exchange"], st["src_exchange_key"], st["dest_exchange"], st["dest_exchange_key"]) == \
        ("amq.topic", "a.#", "dx", "routed")
    for key in ("a.b", "b.a", "a.c"):
        ch.basic_publish("amq.topic", key, key.encode())
    c.close()
    assert [m[2] for m in drain(mbroker.url, "dq", 2, idle=0.3)] == [b"a.b", b"a.c"]
    # its source is an exclusive queue of the shovel's connection: gone with the shovel
    [src] = [q["name"] for q in api.request("GET", "/queues")[1] if q["name"].startswith("amq.gen-")]
    assert api.delete_shovel("s4") == (204, None)
    deadline = time.monotonic() + 5
    while any(q["name"] == src for q in api.request("GET", "/queues")[1]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(q["name"] == src for q in api.request("GET", "/queues")[1])


def test_forward_and_timestamp_headers(mbroker):
    api = mbroker.api
    assert api.put_shovel("fh", {"src-uri": "amqp://", "src-queue": "fq1", "dest-uri": "amqp://",
                                 "dest-queue": "fq2", "add-forward-headers": True,
                                 "dest-add-timestamp-header": True})[0] == 201
    api.wait_state("fh")
    before = int(time.time())
    publish_confirmed(mbroker.url, "fq1", [b"x"], declare=False, properties=pika.BasicProperties(headers={"h": 1}))
    [(_, props, body)] = drain(mbroker.url, "fq2", 1)
    h = props.headers
    assert h["h"] == 1 and before <= h["x-shovelled-timestamp"] <= time.time() + 1
    [table] = h["x-shovelled"]
    assert table == {"dest-queue": "fq2", "dest-uri": "amqp://", "shovel-name": "fh", "shovel-type": "dynamic",
                     "shovel-vhost": "/", "shovelled-by": table["shovelled-by"], "src-queue": "fq1",
                     "src-uri": "amqp://"}
    assert "@" in table["shovelled-by"]


def test_delete_after_queue_length_moves_the_backlog_then_deletes_itself(mbroker):
    publish_confirmed(mbroker.url, "backlog", [str(i).encode() for i in range(300)])
    api = mbroker.api
    assert api.put_shovel("once", {"src-uri": "amqp://", "src-queue": "backlog", "dest-uri": "amqp://",
                                   "dest-queue": "moved", "src-delete-after": "queue-length",
                                   "src-prefetch-count": 7})[0] == 201
    got = drain(mbroker.url, "moved", 300, idle=0.2)
    assert len(got) == 300
    deadline = time.monotonic() + 10
    while api.shovels() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert api.shovels() == []
    assert api.request("GET", "/parameters/shovel")[1] == []
    # published after it finished: stays in the source
    publish_confirmed(mbroker.url, "backlog", [b"late"], declare=False)
    time.sleep(0.2)
    assert api.request("GET", "/queues/%2F/backlog")[1]["messages"] == 1


def test_delete_after_a_count(mbroker):
    publish_confirmed(mbroker.url, "cq", [str(i).encode() for i in range(20)])
    assert mbroker.api.put_shovel("five", {"src-uri": "amqp://", "src-queue": "cq", "dest-uri": "amqp://",
                                           "dest-queue": "cq2", "src-delete-after": 5})[0] == 201
    got = drain(mbroker.url, "cq2", 5, idle=0.5)
    assert [m[2] for m in got] == [str(i).encode() for i in range(5)]
    time.sleep(0.2)
    assert mbroker.api.request("GET", "/queues/%2F/cq")[1]["messages"] == 15


def test_restart_and_status_per_vhost(mbroker):
    api = mbroker.api
    assert api.put_shovel("r", {**BASE, "dest-queue": "y"})[0] == 201
    first = api.wait_state("r")
    assert api.request("DELETE", "/shovels/vhost/%2F/r/restart") == (204, None)
    assert api.request("DELETE", "/shovels/vhost/%2F/nope/restart") == (404, {"error": "Object Not Found",
                                                                               "reason": "Not Found"})
    api.wait_state("r")
    assert [s["name"] for s in api.shovels("/")] == ["r"]
    assert api.request("GET", "/shovels/nosuchvhost")[0] == 404
    assert first["vhost"] == "/"
    assert api.delete_shovel("r") == (204, None)
    assert api.shovels() == []


def test_unreachable_destination_is_starting_then_runs_when_it_appears(mbroker):
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    api = mbroker.api
    assert api.put_shovel("u", {**BASE, "dest-uri": f"amqp://guest:guest@127.0.0.1:{port}", "dest-queue": "y",
                                "reconnect-delay": 0.2})[0] == 201
    time.sleep(0.5)
    [st] = api.shovels()
    assert st["state"] == "starting"
    with EmbeddedBroker(port=port) as late:
        api.wait_state("u")
        publish_confirmed(mbroker.url, "x", [b"late"], declare=False)
        assert [m[2] for m in drain(late.url, "y", 1)] == [b"late"]


def test_definitions_carry_shovels_and_an_import_starts_them(mbroker):
    api = mbroker.api
    value = {"src-uri": "amqp://", "src-queue": "dq1", "dest-uri": "amqp://", "dest-queue": "dq2"}
    assert api.put_shovel("d", value)[0] == 201
    defs = api.request("GET", "/definitions")[1]
    assert {"value": value, "vhost": "/", "component": "shovel", "name": "d"} in defs["parameters"]
    with EmbeddedBroker(management=True) as other:
        oapi = Api(other.management_url)
        assert oapi.request("POST", "/definitions", defs)[0] in (201, 204)
        oapi.wait_state("d")
        publish_confirmed(other.url, "dq1", [b"after import"], declare=False)
        assert [m[2] for m in drain(other.url, "dq2", 1)] == [b"after import"]


def test_shovels_restart_with_the_broker(tmp_path):
    with EmbeddedBroker(management=True, durable=True) as b:
        api = Api(b.management_url)
        assert api.put_shovel("dur", {"src-uri": "amqp://", "src-queue": "p1", "dest-uri": "amqp://",
                                      "dest-queue": "p2"})[0] == 201
        api.wait_state("dur")
        b.restart()
        api = Api(b.management_url)
        api.wait_state("dur")
        publish_confirmed(b.url, "p1", [b"after restart"], declare=False)
        assert [m[2] for m in drain(b.url, "p2", 1)] == [b"after restart"]


def test_an_operator_closing_the_shovel_connection_restarts_it(mbroker):
    import urllib.parse
    api = mbroker.api
    assert api.put_shovel("op", {**BASE, "dest-queue": "y", "reconnect-delay": 0.3})[0] == 201
    api.wait_state("op")
    conns = [c for c in api.request("GET", "/connections")[1] if c.get("user_provided_name") == "Shovel op"]
    assert len(conns) == 2  # its source and its destination, both direct here
    conn = conns[0]
    assert api.request("DELETE", "/connections/" + urllib.parse.quote(conn["name"], safe=""))[0] == 204
    st = api.wait_state("op", "terminated", timeout=5)
    assert st["reason"] in ('"source connection closed: CONNECTION_FORCED - Closed via management plugin"',
                            '"destination connection closed: CONNECTION_FORCED - Closed via management plugin"')
    api.wait_state("op")
    publish_confirmed(mbroker.url, "x", [b"after close"], declare=False)
    assert [m[2] for m in drain(mbroker.url, "y", 1)] == [b"after close"]


def test_a_local_uri_needs_a_vhost_the_setter_may_open(mbroker):
    api = mbroker.api
    assert api.request("PUT", "/vhosts/closed")[0] == 201
    assert api.request("PUT", "/users/pm", {"password": "pm", "tags": "policymaker"})[0] == 201
    assert api.request("PUT", "/permissions/%2F/pm", {"configure": ".*", "write": ".*", "read": ".*"})[0] == 201
    pm = Api(mbroker.management_url, auth=("pm", "pm"))
    status, body = pm.put_shovel("s", {**BASE, "dest-uri": "amqp:///closed", "dest-queue": "y"})
    assert (status, body["reason"]) == (400, 'Validation failed\n\nuser "pm" may not connect to vhost "closed"\n')
    assert api.put_shovel("s", {**BASE, "dest-uri": "amqp:///closed", "dest-queue": "y"})[0] == 201  # guest may


def test_uri_lists_fail_over_to_a_reachable_broker(mbroker):
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = s.getsockname()[1]
    s.close()
    with EmbeddedBroker() as other:
        api = mbroker.api
        uris = [f"amqp://guest:guest@127.0.0.1:{dead}", other.url, f"amqp://guest:guest@127.0.0.1:{dead}/%2F"]
        assert api.put_shovel("fo", {**BASE, "dest-uri": uris, "dest-queue": "fo-dst", "reconnect-delay": 0.1})[0] == 201
        st = api.wait_state("fo", timeout=10)
        assert st["dest_uri"] == other.url.replace("guest:guest@", "")
        publish_confirmed(mbroker.url, "x", [b"failed over"], declare=False)
        assert [m[2] for m in drain(other.url, "fo-dst", 1)] == [b"failed over"]


def test_a_shovels_direct_connections_count_in_the_churn_counters(mbroker):
    api = mbroker.api
    assert api.put_shovel("ch", {**BASE, "dest-queue": "y"})[0] == 201
    api.wait_state("ch")
    before = api.request("GET", "/overview")[1]["churn_rates"]
    assert api.delete_shovel("ch") == (204, None)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        after = api.request("GET", "/overview")[1]["churn_rates"]
        if after["connection_closed"] >= before["connection_closed"] + 2:
            break
        time.sleep(0.05)
    assert after["connection_closed"] == before["connection_closed"] + 2  # its source and destination
    assert after["connection_created"] == before["connection_created"]  # never goes down


def test_shovel_status_needs_the_monitoring_tag(mbroker):
    api = mbroker.api
    for user, tags in (("mg", "management"), ("mon", "monitoring")):
        assert api.request("PUT", f"/users/{user}", {"password": "pw", "tags": tags})[0] == 201
        assert api.request("PUT", f"/permissions/%2F/{user}", {"configure": ".*", "write": ".*", "read": ".*"})[0] == 201
    assert api.put_shovel("m", {**BASE, "dest-queue": "y"})[0] == 201
    mg, mon = Api(mbroker.management_url, auth=("mg", "pw")), Api(mbroker.management_url, auth=("mon", "pw"))
    refused = (401, {"error": "not_authorised", "reason": "Not monitor user"})
    assert mg.request("GET", "/shovels") == refused
    assert mg.request("GET", "/shovels/%2F") == refused
    assert mg.request("DELETE", "/shovels/vhost/%2F/m/restart") == refused
    assert [s["name"] for s in mon.request("GET", "/shovels")[1]] == ["m"]
    assert mon.request("DELETE", "/shovels/vhost/%2F/nope/restart")[0] == 404
