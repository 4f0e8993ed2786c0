"""GET/POST /api/definitions compared with RabbitMQ 3.10's management plugin: a vhost's export (every
object, values and all), an import's effect, and the errors, status codes and reasons of both.  See
mgmt.py for what env.api records."""
from __future__ import annotations

import base64
import hashlib
import json

import pytest

from .mgmt import path

pytestmark = pytest.mark.timeout(120)


def ordered(doc):
    """A definitions document with its lists in a stable order (neither broker promises one)."""
    if isinstance(doc, dict):
        return {k: ordered(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return sorted((ordered(x) for x in doc), key=lambda x: json.dumps(x, sort_keys=True))
    return doc


def record_export(env, label, p):
    status, _, data = env.http("GET", p)
    env.record(label, {"status": status, "body": ordered(data)})


def record_error_head(env, label, method, p, body):
    """Status, error and the reason's name (and an AMQP error's): RabbitMQ 3.10 gives an AMQP error's text
    and a queue-limit message as lists of character codes there, WarrenMQ as strings (docs/definitions.md)."""
    status, _, data = env.http(method, p, body)
    reason = data.get("reason") if isinstance(data, dict) else None
    env.record(label, {"status": status, "error": data.get("error") if isinstance(data, dict) else None,
                       "reason": reason[:2 if reason[:1] == ["amqp_error"] else 1] if isinstance(reason, list)
                       else reason})


def test_a_vhost_export_has_the_same_objects(api_differ):
    def scenario(env):
        v = env.vhost("v")
        env.api("queue", "PUT", path("queues", v, "orders"),
                {"durable": True, "arguments": {"x-max-length": 5, "x-dead-letter-exchange": "dlx"}})
        env.api("transient queue", "PUT", path("queues", v, "transient"), {"durable": False, "auto_delete": True})
        env.api("quorum queue", "PUT", path("queues", v, "qq"), {"durable": True, "arguments": {"x-queue-type": "quorum"}})
        env.api("topic exchange", "PUT", path("exchanges", v, "events"),
                {"type": "topic", "durable": True, "arguments": {"alternate-exchange": "ae"}})
        env.api("internal exchange", "PUT", path("exchanges", v, "inner"), {"type": "fanout", "durable": True,
                                                                            "internal": True})
        env.api("bind e->q", "POST", path("bindings", v, "e", "events", "q", "orders"),
                {"routing_key": "order.#", "arguments": {"x-note": "n", "level": 2}})
        env.api("bind e->e", "POST", path("bindings", v, "e", "events", "e", "inner"), {"routing_key": "b"})
        env.api("bind amq.direct", "POST", path("bindings", v, "e", "amq.direct", "q", "transient"),
                {"routing_key": "t"})
        env.api("policy", "PUT", path("policies", v, "ttl"), {"pattern": "^ttl\\.", "definition": {"message-ttl": 1000},
                                                             "priority": 2, "apply-to": "queues"})
        env.api("vhost limit", "PUT", path("vhost-limits", v, "max-queues"), {"value": 100})
        record_export(env, "export of the vhost", path("definitions", v))
        env.api("whole export", "GET", "/definitions")  # its keys
    api_differ(scenario)


def test_an_import_makes_the_same_objects(api_differ):
    def scenario(env):
        v = env.vhost("v")
        doc = {"queues": [{"name": "q1", "durable": True, "auto_delete": False, "arguments": {"x-max-priority": 3}}],
               "exchanges": [{"name": "x1", "type": "headers", "durable": True, "auto_delete": False,
                              "internal": False, "arguments": {}}],
               "bindings": [{"source": "x1", "destination": "q1", "destination_type": "queue", "routing_key": "",
                             "arguments": {"x-match": "any", "a": "b"}},
                            {"source": "missing", "destination": "q1", "destination_type": "queue",
                             "routing_key": "", "arguments": {}}],
               "policies": [{"vhost": "ignored", "name": "p", "pattern": "^q", "apply-to": "queues",
                             "definition": {"max-length": 9}, "priority": 0}],
               "parameters": [{"vhost": "ignored", "component": "vhost-limits", "name": "limits",
                               "value": {"max-connections": 7}}]}
        env.api("per-vhost import", "POST", path("definitions", v), doc)
        record_export(env, "what it made", path("definitions", v))
        env.api("queue", "GET", path("queues", v, "q1"), values=("durable", "arguments"), keys=False)
        env.api("import again", "POST", path("definitions", v), doc)
        # users: a password, and hashes imported as they are (the login proves them)
        u1, u2, u3 = env.name("u1"), env.name("u2"), env.name("u3")
        salt = b"\x01\x02\x03\x04"
        h512 = base64.b64encode(salt + hashlib.sha512(salt + b"pw2").digest()).decode()
        h5 = base64.b64encode(salt + hashlib.md5(salt + b"pw3").digest()).decode()
        users = {"users": [
            {"name": u1, "password": "pw1", "tags": "management"},
            {"name": u2, "password_hash": h512, "hashing_algorithm": "rabbit_password_hashing_sha512",
             "tags": ["monitoring"], "limits": {"max-connections": 3}},
            {"name": u3, "password_hash": h5, "hashing_algorithm": "rabbit_password_hashing_md5", "tags": ""}],
            "permissions": [{"user": u, "vhost": v, "configure": ".*", "write": ".*", "read": ".*"} for u in (u1, u2, u3)]}
        try:
            env.api("import users", "POST", "/definitions", users)
            for u in (u2, u3):
                env.api(f"user {u}", "GET", path("users", u), values=("password_hash", "hashing_algorithm", "tags",
                                                                      "limits"))
            for u, pw in ((u1, "pw1"), (u2, "pw2"), (u3, "pw3")):
                env.api(f"{u} logs in", "GET", "/whoami", auth=(u, pw), values=("name", "tags"))
        finally:
            for u in (u1, u2, u3):
                env.http("DELETE", path("users", u))
    api_differ(scenario)


def test_errors(api_differ):
    def scenario(env):
        missing = env.name("missing")
        v = env.vhost("v")
        env.api("GET a missing vhost", "GET", path("definitions", missing))
        env.api("POST to a missing vhost", "POST", path("definitions", missing), {})
        env.api("not JSON", "POST", "/definitions", raw=b"{not json")
        env.api("not an object", "POST", "/definitions", raw=b"[1, 2]")
        env.api("empty", "POST", "/definitions", raw=b"")
        env.api("empty object", "POST", "/definitions", {})
        record_error_head(env, "unknown exchange type, whole import", "POST", "/definitions",
                {"exchanges": [{"vhost": v, "name": "x", "type": env.name("type2"), "durable": True}]})
        env.api("unknown user", "POST", "/definitions",
                {"permissions": [{"user": missing, "vhost": "/", "configure": "", "write": "", "read": ""}]})
        env.api("unknown vhost", "POST", "/definitions",
                {"topic_permissions": [{"user": "guest", "vhost": missing, "exchange": "amq.topic",
                                        "write": "", "read": ""}]})
        env.api("hash not base64", "POST", "/definitions",
                {"users": [{"name": env.name("u"), "password_hash": "not base64!", "tags": ""}]})
        env.api("both password and hash", "POST", "/definitions",
                {"users": [{"name": env.name("u"), "password": "a", "password_hash": "AAAA", "tags": ""}]})
        env.api("no tags", "POST", "/definitions", {"users": [{"name": env.name("u"), "password": "a"}]})
        env.api("bad policy", "POST", path("definitions", v),
                {"policies": [{"name": "p", "pattern": "^x", "definition": {"bogus": 1}}]})
        env.api("unknown component", "POST", path("definitions", v),
                {"parameters": [{"component": "nonesuch", "name": "n", "value": {}}]})
        # a type name never seen (RabbitMQ says "invalid" for a name that is an atom already)
        env.api("unknown exchange type", "POST", path("definitions", v),
                {"exchanges": [{"name": "x", "type": env.name("type"), "durable": True, "auto_delete": False,
                                "internal": False, "arguments": {}}]})
        env.api("amq. names are skipped", "POST", path("definitions", v),
                {"exchanges": [{"name": "amq.mine", "type": "direct", "durable": True}],
                 "queues": [{"name": "amq.q", "durable": True, "auto_delete": False, "arguments": {}}]})
        env.api("nothing was made", "GET", path("queues", v), values=("name",))
        env.api("queue limit", "PUT", path("vhost-limits", v, "max-queues"), {"value": 1})
        env.api("more queues than the limit", "POST", path("definitions", v),
                {"queues": [{"name": n, "durable": True, "auto_delete": False, "arguments": {}} for n in ("a", "b")]})
        record_error_head(env, "more queues than the limit, whole import", "POST", "/definitions",
                {"queues": [{"vhost": v, "name": n, "durable": True, "auto_delete": False, "arguments": {}}
                            for n in ("a", "b")]})
    api_differ(scenario)
