"""Bindings, publish/get and health checks over the management HTTP API, with pika on the AMQP side.

Expected answers are RabbitMQ 3.10.8's, probed on a reference with the management plugin (status codes,
bodies, Location headers); the properties keys of bindings with arguments are WarrenMQ's own hash
(docs/management.md), so those tests check the shape and the round trip, not RabbitMQ's value."""
import re

import pika
import pytest

from warrenmq.management.messaging import relativise, tokenise
from warrenmq.management.views import properties_key, quote_plus, unquote_plus

from .conftest import q as seg


@pytest.fixture
def conn(mbroker):
    c = pika.BlockingConnection(pika.URLParameters(mbroker.url))
    yield c
    if c.is_open:
        c.close()


def post(api, path, body, **kw):
    return api.request("POST", path, body, **kw)


# ------------------------------------------------------------------- properties keys
def test_properties_keys_are_quoted_as_rabbitmq_quotes_them():
    # values printed by RabbitMQ 3.10.8 for the same routing keys
    assert properties_key("", {}) == "~"
    assert properties_key("a b~c/d.é", {}) == "a+b%7Ec%2Fd.%C3%A9"
    assert properties_key("r", {}) == "r"
    key = properties_key("k", {"x": 1, "y": "s"})
    assert re.fullmatch(r"k~[A-Za-z0-9_-]{6}", key)
    assert properties_key("k", {"y": "s", "x": 1}) == key  # order of the arguments does not matter
    assert properties_key("k", {"x": 2, "y": "s"}) != key
    assert unquote_plus("a+b%7Ec%2Fd.%C3%A9") == "a b~c/d.é"
    assert quote_plus("/") == "%2F"
    assert tokenise("~") == [""] and tokenise("k~") == ["k"] and tokenise("a~b~c") == ["a", "b", "c"]


def test_relativise_as_rabbitmq():
    frm = "/api/bindings/%2F/e/x/q/q1"
    assert relativise(frm, frm + "/k") == "q1/k"
    assert relativise("/api/bindings/%2f/e/x/q/q1", frm + "/k") == "../../../../%2F/e/x/q/q1/k"
    assert relativise("/api/bindings/%2F/e/x/q/my%20q", "/api/bindings/%2F/e/x/q/my+q/k") == "my+q/k"


# ------------------------------------------------------------------- bindings
def test_binding_create_list_get_delete_round_trip(api, conn):
    ch = conn.channel()
    ch.queue_declare("b-q")
    ch.exchange_declare("b-x", "topic")
    try:
        base = "/api/bindings/%2F/e/b-x/q/b-q"
        status, headers, body = post(api, base, {"routing_key": "a b~c/d.é", "arguments": {}})
        assert (status, body) == (201, None)
        assert headers["Location"] == "b-q/a%2Bb%257Ec%252Fd.%25C3%25A9"  # RabbitMQ's, byte for byte
        status, headers, _ = post(api, base, {})
        assert status == 201 and headers["Location"] == "b-q/~"
        status, headers, _ = post(api, base, {"routing_key": "k", "arguments": {"x": 1, "y": "s"}})
        assert status == 201 and re.fullmatch(r"b-q/k~[A-Za-z0-9_-]{6}", headers["Location"])

        status, _, listed = api.get(base)
        assert status == 200
        assert sorted(b["routing_key"] for b in listed) == ["", "a b~c/d.é", "k"]
        for b in listed:
            assert set(b) == {"source", "vhost", "destination", "destination_type", "routing_key",
                              "arguments", "properties_key"}
            status, _, one = api.get(base + "/" + seg(b["properties_key"]))
            assert status == 200 and one == b
        with_args = next(b for b in listed if b["arguments"])
        assert with_args["arguments"] == {"x": 1, "y": "s"}
        assert "b-q/" + with_args["properties_key"] == headers["Location"]

        # the binding routes what pika publishes
        ch.basic_publish("b-x", "k", b"routed")
        assert api.get("/api/queues/%2F/b-q")  # (the queue exists)
        for _ in range(50):
            method, _, body = ch.basic_get("b-q", auto_ack=True)
            if method:
                break
            conn.sleep(0.02)
        assert body == b"routed"

        assert api.get(base + "/nope")[0] == 404
        assert api.get(base + "/k")[0] == 404  # k is bound only with arguments
        assert api.get(base + "/k~AAAAAA")[2] == {"error": "Object Not Found", "reason": "Not Found"}
        assert api.get(base + "/a~b~c")[0] == 404

        assert api.delete(base + "/" + seg(with_args["properties_key"]))[0] == 204
        assert api.delete(base + "/" + seg(with_args["properties_key"]))[0] == 404
        ch.basic_publish("b-x", "k", b"dropped")
        conn.sleep(0.1)
        assert ch.basic_get("b-q", auto_ack=True)[0] is None
        assert sorted(b["routing_key"] for b in api.get(base)[2]) == ["", "a b~c/d.é"]
    finally:
        ch.queue_delete("b-q")
        ch.exchange_delete("b-x")


def test_exchange_to_exchange_bindings(api, conn):
    ch = conn.channel()
    ch.exchange_declare("b-src", "direct")
    ch.exchange_declare("b-dst", "fanout")
    ch.queue_declare("b-eq")
    ch.queue_bind("b-eq", "b-dst")
    try:
        base = "/api/bindings/%2F/e/b-src/e/b-dst"
        status, headers, _ = post(api, base, {"routing_key": "r"})
        assert status == 201 and headers["Location"] == "b-dst/r"
        _, _, listed = api.get(base)
        assert listed == [{"arguments": {}, "destination": "b-dst", "destination_type": "exchange",
                           "properties_key": "r", "routing_key": "r", "source": "b-src", "vhost": "/"}]
        assert api.get(base + "/r")[2] == listed[0]
        ch.basic_publish("b-src", "r", b"via e2e")
        for _ in range(50):
            method, _, body = ch.basic_get("b-eq", auto_ack=True)
            if method:
                break
            conn.sleep(0.02)
        assert body == b"via e2e"
        assert api.delete(base + "/r")[0] == 204
        assert api.get(base)[2] == []
    finally:
        ch.queue_delete("b-eq")
        ch.exchange_delete("b-src")
        ch.exchange_delete("b-dst")


def test_binding_errors_as_rabbitmq(api, conn):
    ch = conn.channel()
    ch.queue_declare("b-q2")
    ch.exchange_declare("b-x2", "direct")
    try:
        assert post(api, "/api/bindings/%2F/e/b-x2/q/b-none", {})[:3:2] == (
            404, {"error": "not_found", "reason": "no queue 'b-none' in vhost '/'"})
        assert post(api, "/api/bindings/%2F/e/b-xnone/q/b-q2", {})[:3:2] == (
            404, {"error": "not_found", "reason": "no exchange 'b-xnone' in vhost '/'"})
        assert post(api, "/api/bindings/%2F/e/amq.default/q/b-q2", {})[:3:2] == (
            401, {"error": "not_authorised", "reason": "Access refused."})
        assert post(api, "/api/bindings/no-vhost/e/b-x2/q/b-q2", {})[:3:2] == (
            404, {"error": "not_found", "reason": "vhost_not_found"})
        assert api.get("/api/bindings/no-vhost/e/b-x2/q/b-q2")[:3:2] == (200, [])
        assert api.get("/api/bindings/%2F/e/b-x2/q/b-none")[:3:2] == (200, [])
        # the default exchange's implicit binding is listed and found, and cannot be deleted
        default = "/api/bindings/%2F/e/amq.default/q/b-q2"
        assert api.get(default)[2] == [{"arguments": {}, "destination": "b-q2", "destination_type": "queue",
                                        "properties_key": "b-q2", "routing_key": "b-q2", "source": "",
                                        "vhost": "/"}]
        assert api.get(default + "/b-q2")[0] == 200
        assert api.delete(default + "/b-q2")[:3:2] == (401, {"error": "not_authorised", "reason": "Access refused."})
        assert api.request("PUT", "/api/bindings/%2F/e/b-x2/q/b-q2", {})[0] == 405
    finally:
        ch.queue_delete("b-q2")
        ch.exchange_delete("b-x2")


def test_bindings_need_write_on_the_destination_and_read_on_the_source(api, mbroker, conn):
    b = mbroker
    b.call(lambda: b.broker.add_user("binder", "binderpw", ["management"]))
    ch = conn.channel()
    ch.queue_declare("bp-q")
    ch.exchange_declare("bp-x", "direct")
    ch.queue_bind("bp-q", "bp-x", "existing")
    auth = ("binder", "binderpw")
    base = "/api/bindings/%2F/e/bp-x/q/bp-q"
    refused = (401, {"error": "not_authorised", "reason": "Access refused."})
    try:
        b.call(lambda: b.broker.set_permissions("binder", "/", ".*", "^$", ".*"))  # no write on the queue
        assert post(api, base, {"routing_key": "k"}, auth=auth)[:3:2] == refused
        assert api.delete(base + "/existing", auth=auth)[:3:2] == refused
        b.call(lambda: b.broker.set_permissions("binder", "/", ".*", ".*", "^$"))  # no read on the exchange
        assert post(api, base, {"routing_key": "k"}, auth=auth)[:3:2] == refused
        b.call(lambda: b.broker.set_permissions("binder", "/", "^$", "^bp-q$", "^bp-x$"))  # just enough
        assert post(api, base, {"routing_key": "k"}, auth=auth)[0] == 201
        assert api.get(base + "/existing", auth=auth)[0] == 200
        assert api.delete(base + "/existing", auth=auth)[0] == 204
        assert sorted(x["routing_key"] for x in api.get(base)[2]) == ["k"]
    finally:
        b.call(lambda: b.broker.delete_user("binder"))
        ch.queue_delete("bp-q")
        ch.exchange_delete("bp-x")
