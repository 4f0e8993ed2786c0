"""Bindings by source and destination, publish and get, and the health checks over the management HTTP API,
compared with RabbitMQ 3.10's (with its management plugin): the same requests to both, the same status
codes, error bodies, Location headers, JSON keys and values.  Not compared: properties keys of bindings with
arguments (RabbitMQ hashes them with Erlang's phash2, docs/management.md), and what names the listeners
(ports differ; RabbitMQ has a clustering listener WarrenMQ does not)."""
from __future__ import annotations

import pika
import pytest

from .mgmt import path

pytestmark = pytest.mark.timeout(120)

BINDING_VALUES = ("source", "vhost", "destination", "destination_type", "routing_key", "arguments",
                  "properties_key")
MESSAGE_VALUES = ("payload_bytes", "redelivered", "exchange", "routing_key", "message_count", "properties",
                  "payload", "payload_encoding")


def test_bindings_by_source_and_destination(api_differ):
    def scenario(env):
        x, y, q = env.exchange("x"), env.exchange("y"), env.queue("q")
        ch = env.channel()
        ch.exchange_declare(x, "topic")
        ch.exchange_declare(y, "fanout")
        ch.queue_declare(q)
        eq, ee = path("bindings", "/", "e", x, "q", q), path("bindings", "/", "e", x, "e", y)
        for label, body in (("odd key", {"routing_key": "a b~c/d.é", "arguments": {}}), ("no key", {}),
                            ("plain key", {"routing_key": "k"})):
            env.api(f"bind q: {label}", "POST", eq, body, headers=("Location",))
        env.api("bind q with arguments", "POST", eq, {"routing_key": "k", "arguments": {"x": 1}})
        env.api("bind e", "POST", ee, {"routing_key": "r"}, headers=("Location",))
        env.api("list q", "GET", eq, values=BINDING_VALUES[:-1])
        env.api("list e", "GET", ee, values=BINDING_VALUES)
        for key in ("~", "k", "a+b%7Ec%2Fd.%C3%A9"):
            env.api(f"get {key}", "GET", eq + path(key), values=BINDING_VALUES)
        for key in ("nope", "k~AAAAAA", "a~b~c"):
            env.api(f"get missing {key}", "GET", eq + path(key))
        env.api("get e", "GET", ee + "/r", values=BINDING_VALUES)
        ch.basic_publish(x, "k", b"routed")
        env.sync(ch)
        env.record("routed by the binding", env.count(ch, q))
        env.api("delete k", "DELETE", eq + "/k")
        env.api("delete k again", "DELETE", eq + "/k")
        env.api("delete e", "DELETE", ee + "/r")
        env.api("list e after", "GET", ee)
        env.api("default exchange", "GET", path("bindings", "/", "e", "amq.default", "q", q), values=BINDING_VALUES)
        env.api("default exchange by key", "GET", path("bindings", "/", "e", "amq.default", "q", q, q),
                values=BINDING_VALUES)
        env.api("bind default exchange", "POST", path("bindings", "/", "e", "amq.default", "q", q), {})
        env.api("unbind default exchange", "DELETE", path("bindings", "/", "e", "amq.default", "q", q, q))
        env.api("bind missing queue", "POST", path("bindings", "/", "e", x, "q", env.name("none")), {})
        env.api("bind missing exchange", "POST", path("bindings", "/", "e", env.name("none"), "q", q), {})
        env.api("bind in missing vhost", "POST", path("bindings", env.name("nv"), "e", x, "q", q), {})
        env.api("list in missing vhost", "GET", path("bindings", env.name("nv"), "e", x, "q", q))
        env.api("list missing queue", "GET", path("bindings", "/", "e", x, "q", env.name("none")))
        env.api("PUT", "PUT", eq, {})
    api_differ(scenario)


def test_bindings_need_write_on_destination_and_read_on_source(api_differ):
    def scenario(env):
        x, q = env.exchange("x"), env.queue("q")
        ch = env.channel()
        ch.exchange_declare(x, "direct")
        ch.queue_declare(q)
        ch.queue_bind(q, x, "kept")
        eq = path("bindings", "/", "e", x, "q", q)
        nowrite = env.user("nowrite", "pw", ["management"], (".*", "^$", ".*"))
        noread = env.user("noread", "pw", ["management"], (".*", ".*", "^$"))
        novhost = env.user("novhost", "pw", ["management"])
        for user in (nowrite, noread, novhost):
            who = user.rsplit("-", 1)[1]
            env.api(f"{who}: bind", "POST", eq, {"routing_key": "k"}, auth=(user, "pw"))
            env.api(f"{who}: unbind", "DELETE", eq + "/kept", auth=(user, "pw"))
            env.api(f"{who}: get", "GET", eq + "/kept", auth=(user, "pw"), values=BINDING_VALUES)
    api_differ(scenario)


def _publish(env, label, exchange, body, vhost="/", **kw):
    return env.api(label, "POST", path("exchanges", vhost, exchange, "publish"), body, **kw)


def _msg(routing_key, payload="hello", encoding="string", properties=None):
    return {"routing_key": routing_key, "payload": payload, "payload_encoding": encoding,
            "properties": properties if properties is not None else {}}


def test_publish(api_differ):
    def scenario(env):
        q = env.queue("q")
        ch = env.channel()
        ch.queue_declare(q)
        props = {"delivery_mode": 2, "content_type": "text/plain", "priority": 3, "correlation_id": "c",
                 "message_id": "m", "timestamp": 1700000000, "type": "t", "user_id": "guest", "app_id": "a",
                 "headers": {"h": "v", "n": 5, "f": 1.5, "b": True, "l": [1, "a"], "t": {"x": 1}}}
        _publish(env, "routed", "amq.default", _msg(q, "héllo", properties=props))
        _publish(env, "base64", "amq.default", _msg(q, "/w==", "base64"))
        _publish(env, "unroutable", "amq.default", _msg(env.name("nowhere")))
        got = []
        for _ in range(2):
            method, p, body = ch.basic_get(q, auto_ack=True)
            got.append([method.routing_key, method.redelivered, body.hex(), p.content_type, p.delivery_mode,
                        p.priority, p.timestamp, p.user_id, sorted((p.headers or {}).items())[:1]])
        env.record("what pika got", got)
        x = env.exchange("internal")
        ch.exchange_declare(x, "direct", internal=True)
        full = env.queue("full")
        ch.queue_declare(full, arguments={"x-max-length": 0, "x-overflow": "reject-publish"})
        for label, body in (("missing keys", {"routing_key": "x"}), ("no body", None),
                            ("bad encoding", _msg("x", encoding="hex")),
                            ("bad base64", _msg("x", "!!!", "base64")), ("payload not a string", _msg("x", 5)),
                            ("delivery_mode not an int", _msg("x", properties={"delivery_mode": "x"})),
                            ("priority as a string", _msg("x", properties={"priority": "3"})),
                            ("null header", _msg("x", properties={"headers": {"n": None}})),
                            ("other user_id", _msg("x", properties={"user_id": "other"})),
                            ("bad expiration", _msg("x", properties={"expiration": "abc"})),
                            ("rejected", _msg(full))):
            _publish(env, label, "amq.default", body)
        _publish(env, "missing exchange", env.name("none"), _msg("x"))
        _publish(env, "internal exchange", x, _msg("x"))
        _publish(env, "missing vhost", "amq.direct", _msg("x"), vhost=env.name("nv"))
        env.api("GET", "GET", path("exchanges", "/", "amq.default", "publish"))
        nowrite = env.user("nowrite", "pw", ["management"], (".*", "^$", ".*"))
        _publish(env, "no write", "amq.default", _msg(q), auth=(nowrite, "pw"))
        novhost = env.user("novhost", "pw", ["management"])
        _publish(env, "no vhost access", "amq.default", _msg(q), auth=(novhost, "pw"))
    api_differ(scenario)


def _get(env, label, q, ackmode="ack_requeue_false", count=10, encoding="auto", **kw):
    extra = {k: kw.pop(k) for k in ("truncate",) if k in kw}
    return env.api(label, "POST", path("queues", "/", q, "get"),
                   {"ackmode": ackmode, "count": count, "encoding": encoding, **extra}, values=MESSAGE_VALUES, **kw)


def test_get(api_differ):
    def scenario(env):
        q = env.queue("q")
        ch = env.channel()
        ch.queue_declare(q)
        ch.basic_publish("", q, "héllo".encode(), pika.BasicProperties(
            content_type="text/plain", delivery_mode=2, timestamp=1700000000,
            headers={"h": "v", "n": 5, "l": [1, "a"], "t": {"x": True}}))
        ch.basic_publish("", q, b"\xff\x00")
        ch.basic_publish("", q, b"third")
        env.sync(ch)
        _get(env, "ack_requeue_true", q, "ack_requeue_true", 2)
        _get(env, "reject_requeue_true", q, "reject_requeue_true", 5, "base64")
        _get(env, "truncated", q, "ack_requeue_true", 1, "base64", truncate=2)
        _get(env, "count as a string", q, "ack_requeue_true", "1", truncate="50000")
        _get(env, "ack_requeue_false", q, "ack_requeue_false", 1)
        _get(env, "reject_requeue_false", q, "reject_requeue_false", 1)
        env.record("left", env.count(ch, q))
        _get(env, "negative count", q, "ack_requeue_false", -1)
        _get(env, "empty", q)
        dlq = env.queue("dlq")
        src = env.queue("src")
        ch.queue_declare(dlq)
        ch.queue_declare(src, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq})
        ch.basic_publish("", src, b"dead")
        env.sync(ch)
        _get(env, "reject to the dead-letter queue", src, "reject_requeue_false")
        env.sync(ch)
        env.record("dead-lettered", env.count(ch, dlq))
        gp = path("queues", "/", q, "get")
        env.api("missing keys", "POST", gp, {"count": 1})
        env.api("no body", "POST", gp)
        env.api("not JSON", "POST", gp, raw=b"{x")
        _get(env, "bad encoding", q, encoding="hex")
        _get(env, "bad count", q, count="x")
        _get(env, "missing queue", env.name("none"))
        env.api("missing vhost", "POST", path("queues", env.name("nv"), q, "get"),
                {"ackmode": "ack_requeue_true", "count": 1, "encoding": "auto"})
        env.api("GET", "GET", gp)
        noread = env.user("noread", "pw", ["management"], (".*", ".*", "^$"))
        _get(env, "no read", q, auth=(noread, "pw"))
        novhost = env.user("novhost", "pw", ["management"])
        _get(env, "no vhost access", q, auth=(novhost, "pw"))
    api_differ(scenario)


def test_health_checks(api_differ):
    def scenario(env):
        for p in ("virtual-hosts", "node-is-quorum-critical", "node-is-mirror-sync-critical",
                  "protocol-listener/amqp", "protocol-listener/amqp0-9-1", "protocol-listener/http",
                  "protocol-listener/management", "port-listener/abc", "certificate-expiration/1/months",
                  "certificate-expiration/x/months", "certificate-expiration/1/fortnights"):
            env.api(p, "GET", "/health/checks/" + p, values=("status", "reason", "protocol"))
        env.api("deprecated node check", "GET", "/healthchecks/node", values=("status",))
        env.api("deprecated check of another node", "GET", "/healthchecks/node/rabbit@nope")
        env.api("auth without credentials", "GET", "/auth", auth=None,
                values=("enable_uaa", "uaa_client_id", "uaa_location"))
        env.api("cluster-name", "GET", "/cluster-name")
        env.api("cluster-name missing name", "PUT", "/cluster-name", {})
        mgmt = env.user("mgmt", "pw", ["management"])
        env.api("cluster-name by a management user", "PUT", "/cluster-name", {"name": "x"}, auth=(mgmt, "pw"))
        env.api("auth attempts by a management user", "GET", "/auth/attempts/rabbit@nope", auth=(mgmt, "pw"))
        env.api("auth attempts of another node", "GET", "/auth/attempts/rabbit@nope")
        env.api("queue action by a management user", "POST", path("queues", "/", "x", "actions"),
                {"action": "sync"}, auth=(mgmt, "pw"))
        env.api("rebalance", "POST", "/rebalance/queues", {})
        env.api("rebalance by a management user", "POST", "/rebalance/queues", {}, auth=(mgmt, "pw"))
        env.api("start a vhost on another node", "POST", path("vhosts", "/", "start", "rabbit@nope"), {})
        q = env.queue("q")
        env.api("declare", "PUT", path("queues", "/", q), {})
        for action in ("sync", "cancel_sync", "foo"):
            env.api(f"queue action {action}", "POST", path("queues", "/", q, "actions"), {"action": action})
        env.api("queue action without one", "POST", path("queues", "/", q, "actions"), {})
    api_differ(scenario)
