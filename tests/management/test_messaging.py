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


# ------------------------------------------------------------------- publish
def publish(api, vhost, exchange, body, **kw):
    return post(api, f"/api/exchanges/{seg(vhost)}/{seg(exchange)}/publish", body, **kw)


def msg(routing_key, payload="hello", encoding="string", properties=None):
    return {"routing_key": routing_key, "payload": payload, "payload_encoding": encoding,
            "properties": properties if properties is not None else {}}


def test_a_message_published_over_http_reaches_a_pika_consumer(api, conn):
    ch = conn.channel()
    ch.queue_declare("p-q")
    got = []
    ch.basic_consume("p-q", lambda c, m, p, b: got.append((m, p, b)), auto_ack=True)
    try:
        props = {"delivery_mode": 2, "content_type": "text/plain", "priority": 3, "correlation_id": "c",
                 "message_id": "m", "timestamp": 1700000000, "type": "t", "user_id": "guest", "app_id": "a",
                 "headers": {"h": "v", "n": 5, "f": 1.5, "b": True, "l": [1, "a"], "t": {"x": 1}}}
        assert publish(api, "/", "amq.default", msg("p-q", "héllo", properties=props))[:3:2] == (
            200, {"routed": True})
        assert publish(api, "/", "amq.default", msg("p-q", "/w==", "base64"))[2] == {"routed": True}
        assert publish(api, "/", "amq.default", msg("p-nowhere"))[2] == {"routed": False}
        for _ in range(100):
            if len(got) == 2:
                break
            conn.process_data_events(0.02)
        assert [b for _, _, b in got] == ["héllo".encode(), b"\xff"]
        m, p, _ = got[0]
        assert (m.exchange, m.routing_key, m.redelivered) == ("", "p-q", False)
        assert (p.delivery_mode, p.content_type, p.priority, p.correlation_id, p.message_id, p.timestamp,
                p.type, p.user_id, p.app_id) == (2, "text/plain", 3, "c", "m", 1700000000, "t", "guest", "a")
        headers = dict(p.headers)
        headers.pop("f")  # (pika decodes a double as an integer; the get tests check it over HTTP)
        assert headers == {"h": "v", "n": 5, "b": True, "l": [1, "a"], "t": {"x": 1}}
    finally:
        ch.queue_delete("p-q")


def test_publish_to_a_topic_exchange_routes_by_key(api, conn):
    ch = conn.channel()
    ch.exchange_declare("p-topic", "topic")
    ch.queue_declare("p-tq")
    ch.queue_bind("p-tq", "p-topic", "a.*")
    try:
        assert publish(api, "/", "p-topic", msg("a.b"))[2] == {"routed": True}
        assert publish(api, "/", "p-topic", msg("b.b"))[2] == {"routed": False}
        assert api.get("/api/queues/%2F/p-tq")[2]["messages"] == 1
    finally:
        ch.queue_delete("p-tq")
        ch.exchange_delete("p-topic")


def test_publish_errors_as_rabbitmq(api, mbroker, conn):
    ch = conn.channel()
    ch.exchange_declare("p-internal", "direct", internal=True)
    ch.queue_declare("p-full", arguments={"x-max-length": 0, "x-overflow": "reject-publish"})
    try:
        assert publish(api, "/", "amq.default", {"routing_key": "x"})[:3:2] == (400, {
            "error": "bad_request",
            "reason": "[{key_missing,properties},\n {key_missing,payload},\n {key_missing,payload_encoding}]"})
        assert publish(api, "/", "amq.default", msg("x", encoding="hex"))[2]["reason"] == ["unsupported_encoding", "hex"]
        assert publish(api, "/", "amq.default", msg("x", "!!!", "base64"))[2]["reason"] == ["not_base64", "!!!"]
        assert publish(api, "/", "amq.default", msg("x", 5))[2]["reason"] == "payload_not_string"
        assert publish(api, "/", "amq.default", msg("x", properties={"delivery_mode": "x"}))[2]["reason"] == [
            "not_int", "delivery_mode"]
        assert publish(api, "/", "amq.default", msg("x", properties={"headers": {"n": None}}))[2]["reason"] == (
            "null_not_allowed")
        assert publish(api, "/", "no-such-x", msg("x"))[:3:2] == (400, {
            "error": "bad_request", "reason": "404 NOT_FOUND - no exchange 'no-such-x' in vhost '/'"})
        assert publish(api, "no-vhost", "amq.direct", msg("x"))[:3:2] == (401, {
            "error": "not_authorised", "reason": "Access refused."})
        assert publish(api, "/", "amq.default", msg("x", properties={"user_id": "other"}))[2]["reason"] == (
            "406 PRECONDITION_FAILED - user_id property set to 'other' but authenticated user was 'guest'")
        assert publish(api, "/", "amq.default", msg("x", properties={"expiration": "abc"}))[0] == 400
        assert publish(api, "/", "p-internal", msg("x"))[2]["reason"] == (
            "403 ACCESS_REFUSED - cannot publish to internal exchange 'p-internal' in vhost '/'")
        assert publish(api, "/", "amq.default", msg("p-full"))[:3:2] == (400, {
            "error": "bad_request", "reason": "rejected Unable to publish message. Check queue limits."})
        status, _, body = api.request("POST", "/api/exchanges/%2F/amq.default/publish", None)
        assert status == 400 and body["reason"].startswith("[{key_missing,routing_key},")
        assert api.get("/api/exchanges/%2F/amq.default/publish")[0] == 405
    finally:
        ch.exchange_delete("p-internal")
        ch.queue_delete("p-full")


# ------------------------------------------------------------------- get
def get(api, queue, ackmode="ack_requeue_false", count=10, encoding="auto", auth=("guest", "guest"), **extra):
    return post(api, f"/api/queues/%2F/{seg(queue)}/get",
                {"ackmode": ackmode, "count": count, "encoding": encoding, **extra}, auth=auth)


def _fill(ch, queue, payloads, **props):
    for p in payloads:
        ch.basic_publish("", queue, p, pika.BasicProperties(**props) if props else None)


def _depth(api, queue):
    return api.get(f"/api/queues/%2F/{seg(queue)}")[2]["messages"]


def _wait_depth(api, queue, n):
    import time
    deadline = time.monotonic() + 5
    while _depth(api, queue) != n and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _depth(api, queue) == n


def test_get_each_ackmode(api, conn):
    ch = conn.channel()
    ch.queue_declare("g-q")
    try:
        _fill(ch, "g-q", [b"one", b"two"])
        _wait_depth(api, "g-q", 2)
        status, _, got = get(api, "g-q", "ack_requeue_true", 1)
        assert status == 200
        assert got == [{"payload_bytes": 3, "redelivered": False, "exchange": "", "routing_key": "g-q",
                        "message_count": 1, "properties": [], "payload": "one", "payload_encoding": "string"}]
        _wait_depth(api, "g-q", 2)  # requeued when the request's channel closed
        _, _, got = get(api, "g-q", "reject_requeue_true", 5)
        assert [(m["payload"], m["redelivered"]) for m in got] == [("one", True), ("two", False)]
        assert [m["message_count"] for m in got] == [1, 0]
        _wait_depth(api, "g-q", 2)
        _, _, got = get(api, "g-q", "ack_requeue_false", "1")  # count as a string, as RabbitMQ allows
        assert [m["payload"] for m in got] == ["one"]
        _wait_depth(api, "g-q", 1)
        _, _, got = get(api, "g-q", "reject_requeue_false", 1)
        assert [m["payload"] for m in got] == ["two"]
        _wait_depth(api, "g-q", 0)
        assert get(api, "g-q")[:3:2] == (200, [])
    finally:
        ch.queue_delete("g-q")


def test_get_reject_requeue_false_dead_letters(api, conn):
    ch = conn.channel()
    ch.queue_declare("g-dlq")
    ch.queue_declare("g-src", arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "g-dlq"})
    try:
        _fill(ch, "g-src", [b"dead"])
        _wait_depth(api, "g-src", 1)
        assert [m["payload"] for m in get(api, "g-src", "reject_requeue_false")[2]] == ["dead"]
        _wait_depth(api, "g-dlq", 1)
        (m,) = get(api, "g-dlq")[2]
        assert m["payload"] == "dead" and m["properties"]["headers"]["x-death"][0]["reason"] == "rejected"
    finally:
        ch.queue_delete("g-src")
        ch.queue_delete("g-dlq")


def test_get_encodings_truncate_and_properties(api, conn):
    ch = conn.channel()
    ch.queue_declare("g-enc")
    try:
        ch.basic_publish("", "g-enc", "héllo".encode(), pika.BasicProperties(
            content_type="text/plain", delivery_mode=2, headers={"h": "v", "n": 5, "l": [1, "a"], "t": {"x": True}},
            timestamp=1700000000))
        ch.basic_publish("", "g-enc", b"\xff\x00")
        _wait_depth(api, "g-enc", 2)
        _, _, got = get(api, "g-enc", "ack_requeue_true", 2, "auto")
        assert got[0]["payload"] == "héllo" and got[0]["payload_encoding"] == "string"
        assert got[0]["properties"] == {"timestamp": 1700000000, "delivery_mode": 2, "content_type": "text/plain",
                                        "headers": {"h": "v", "n": 5, "l": [1, "a"], "t": {"x": True}}}
        assert list(got[0]["properties"]) == ["timestamp", "delivery_mode", "headers", "content_type"]
        assert (got[1]["payload"], got[1]["payload_encoding"]) == ("/wA=", "base64")
        _, _, got = get(api, "g-enc", "ack_requeue_true", 1, "base64", truncate="2")
        assert (got[0]["payload"], got[0]["payload_bytes"], got[0]["redelivered"]) == ("aMM=", 6, True)
        _, _, got = get(api, "g-enc", "ack_requeue_true", 1, "auto", truncate=50000)
        assert got[0]["payload"] == "héllo"
    finally:
        ch.queue_delete("g-enc")


def test_a_message_published_over_http_is_got_over_http(api, conn):
    ch = conn.channel()
    ch.queue_declare("g-rt", durable=True)
    try:
        headers = {"k": "v", "f": 1.5, "n": -7, "l": [True, {"t": "u"}]}
        body = msg("g-rt", "round trip", properties={"delivery_mode": 2, "headers": headers})
        assert publish(api, "/", "amq.default", body)[2] == {"routed": True}
        (m,) = get(api, "g-rt", "ack_requeue_false")[2]
        assert (m["payload"], m["properties"]) == ("round trip", {"delivery_mode": 2, "headers": headers})
    finally:
        ch.queue_delete("g-rt")


def test_get_errors_as_rabbitmq(api, conn):
    ch = conn.channel()
    ch.queue_declare("g-err")
    try:
        path = "/api/queues/%2F/g-err/get"
        assert post(api, path, {"count": 1})[:3:2] == (400, {
            "error": "bad_request", "reason": "[{key_missing,ackmode},{key_missing,encoding}]"})
        assert get(api, "g-err", encoding="hex")[2]["reason"] == "Unsupported encoding. Please use auto or base64."
        assert get(api, "g-err", count="x")[2]["reason"] == ["not_integer", "x"]
        assert get(api, "g-err", ackmode="nope")[0] == 400
        assert get(api, "g-none")[:3:2] == (404, {"error": "not_found",
                                                   "reason": "NOT_FOUND - no queue 'g-none' in vhost '/'"})
        assert post(api, "/api/queues/no-vhost/g-err/get",
                    {"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"})[:3:2] == (
            401, {"error": "not_authorised", "reason": "Access refused."})
        assert api.get(path)[0] == 405
    finally:
        ch.queue_delete("g-err")


def test_publish_needs_write_and_get_needs_read(api, mbroker, conn):
    b = mbroker
    b.call(lambda: b.broker.add_user("pg", "pgpw", ["management"]))
    b.call(lambda: b.broker.add_user("pg-none", "pgpw", ["management"]))
    b.call(lambda: b.broker.add_user("pg-plain", "pgpw", []))
    ch = conn.channel()
    ch.queue_declare("pg-q")
    auth = ("pg", "pgpw")
    try:
        b.call(lambda: b.broker.set_permissions("pg", "/", "", "^$", "^$"))
        assert publish(api, "/", "amq.default", msg("pg-q"), auth=auth)[:3:2] == (400, {
            "error": "bad_request",
            "reason": "403 ACCESS_REFUSED - access to exchange 'amq.default' in vhost '/' refused for user 'pg'"})
        assert get(api, "pg-q", auth=auth)[:3:2] == (401, {
            "error": "not_authorised",
            "reason": "ACCESS_REFUSED - access to queue 'pg-q' in vhost '/' refused for user 'pg'"})
        b.call(lambda: b.broker.set_permissions("pg", "/", "", "^amq\\.default$", "^pg-q$"))
        assert publish(api, "/", "amq.default", msg("pg-q"), auth=auth)[2] == {"routed": True}
        assert [m["payload"] for m in get(api, "pg-q", auth=auth)[2]] == ["hello"]
        # no access to the vhost, no management tag
        assert publish(api, "/", "amq.default", msg("pg-q"), auth=("pg-none", "pgpw"))[:3:2] == (401, {
            "error": "not_authorised", "reason": "User not authorised to access virtual host"})
        assert get(api, "pg-q", auth=("pg-plain", "pgpw"))[0] == 401
    finally:
        for u in ("pg", "pg-none", "pg-plain"):
            b.call(lambda u=u: b.broker.delete_user(u))
        ch.queue_delete("pg-q")


def test_a_persistent_publish_waits_for_the_store_and_survives_a_restart(tmp_path):
    """On a broker with a disk store, ``routed`` is answered once the store confirmed the message (the
    confirm waits for its batch), and the message is there after a restart."""
    from warrenmq.testing import EmbeddedBroker

    from .conftest import Api
    with EmbeddedBroker(management=True, data_dir=str(tmp_path)) as b:
        api = Api(b.management_url)
        assert api.put("/api/queues/%2F/dur-q", {"durable": True})[0] == 201
        body = msg("dur-q", "kept", properties={"delivery_mode": 2})
        assert publish(api, "/", "amq.default", body)[2] == {"routed": True}
    with EmbeddedBroker(management=True, data_dir=str(tmp_path)) as b:
        api = Api(b.management_url)
        (m,) = get(api, "dur-q", "ack_requeue_false")[2]
        assert (m["payload"], m["properties"]) == ("kept", {"delivery_mode": 2})


def test_http_publishes_and_gets_are_counted_like_amqp_ones():
    """The request's channel folds its counts into the vhost's when it closes: publish, confirm and
    return_unroutable for a publish, get/get_no_ack/get_empty/redeliver for a get, as RabbitMQ counts its
    internal channel's."""
    import time

    from warrenmq.testing import EmbeddedBroker

    from .conftest import Api
    with EmbeddedBroker(management=True, default_vhost="st", statistics_interval_ms=50) as b:
        api = Api(b.management_url)
        path = "/api/queues/st/st-q"
        assert api.put(path, {"durable": False})[0] == 201
        for key in ("st-q", "st-q", "nowhere"):
            assert publish(api, "st", "amq.default", msg(key))[0] == 200
        body = {"count": 1, "encoding": "auto"}
        assert len(post(api, path + "/get", {**body, "ackmode": "ack_requeue_true"})[2]) == 1
        assert len(post(api, path + "/get", {**body, "ackmode": "ack_requeue_false"})[2]) == 1  # redelivered
        assert len(post(api, path + "/get", {**body, "ackmode": "reject_requeue_false", "count": 5})[2]) == 1
        want = {"publish": 3, "confirm": 3, "return_unroutable": 1, "get": 2, "get_no_ack": 1, "get_empty": 1,
                "redeliver": 1}
        deadline = time.monotonic() + 5
        while True:
            stats = api.get("/api/vhosts/st")[2].get("message_stats", {})
            if all(stats.get(k) == v for k, v in want.items()) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert {k: stats.get(k) for k in want} == want
