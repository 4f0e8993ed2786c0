"""Definitions export and import in the domain (no sockets): RabbitMQ 3.10's JSON, what it leaves out,
the order and the errors of its import, and a file exported by a real RabbitMQ 3.10.8
(tests/fixtures/definitions, made by the script beside it) imported and exported again."""
import base64
import hashlib
import json
import os

import pytest

from warrenmq.broker import definitions
from warrenmq.broker.broker import Broker
from warrenmq.broker.definitions import DefinitionsError
from warrenmq.config import BrokerConfig
from warrenmq.store import open_storage

from .conftest import Owner, make_broker

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "definitions", "rabbitmq-3.10.8.json")


def rabbit_hash(algorithm: str, password: str, salt: bytes = b"\x10\x20\x30\x40") -> str:
    return base64.b64encode(salt + getattr(hashlib, algorithm)(salt + password.encode()).digest()).decode()


def build(b: Broker) -> None:
    """A broker with one of everything the domain has (and things an export must leave out)."""
    b.add_vhost("app", description="the app's vhost", tags=["prod", "eu"], default_queue_type="classic")
    b.add_user("alice", "alice-pw", tags=["management", "policymaker"])
    b.add_user("bob", None, ["monitoring"], password_hash=base64.b64decode(rabbit_hash("sha512", "bob-pw")),
               hashing_algorithm="rabbit_password_hashing_sha512")
    b.set_user_limits("alice", {"max-connections": 5})
    b.set_permissions("alice", "app", "^alice-.*", ".*", "")
    b.set_permissions("bob", "/", ".*", "", ".*")
    b.set_topic_permissions("alice", "app", "amq.topic", "^{username}\\.", ".*")
    b.set_policy("app", "ttl", "^ttl\\.", {"message-ttl": 1000}, 3, "queues")
    b.set_vhost_limits("app", {"max-queues": 50})
    b.set_operator_policy("app", "cap", "^orders$", {"max-length": 5}, 1, "queues")
    b.set_global_parameter("owner", {"team": "ops", "level": 2})
    vh = b.vhosts["app"]
    vh.declare_exchange("events", "topic", durable=True, arguments={"alternate-exchange": "unrouted"})
    vh.declare_exchange("unrouted", "fanout", durable=True)
    vh.declare_exchange("hidden", "direct", durable=True, internal=True)
    vh.declare_exchange("temp", "headers", durable=False, auto_delete=True)
    vh.declare_queue("orders", None, durable=True, arguments={"x-max-length": 10, "x-dead-letter-exchange": "unrouted"})
    vh.declare_queue("lazy", None, durable=True, arguments={"x-queue-mode": "lazy"})
    vh.declare_queue("quorum", None, durable=True, arguments={"x-queue-type": "quorum"})
    vh.declare_queue("transient", None, durable=False)
    vh.bind_queue(vh.queues["orders"], "events", "order.#", {})
    vh.bind_queue(vh.queues["orders"], "events", "order.*", {"x-note": "second"})
    vh.bind_queue(vh.queues["lazy"], "unrouted", "", {})
    vh.bind_queue(vh.queues["transient"], "temp", "", {"x-match": "all", "kind": "t"})
    vh.bind_queue(vh.queues["transient"], "amq.direct", "t", {})
    vh.bind_exchange("hidden", "events", "#", {"via": 1})
    # left out of an export: an exclusive queue and its bindings, the default and amq.* exchanges
    excl, _ = vh.declare_queue("mine", Owner(b.users["guest"]), exclusive=True)
    vh.bind_queue(excl, "events", "x", {})
    server_named, _ = b.vhosts["/"].declare_queue("", Owner(b.users["guest"]), exclusive=True)
    b.vhosts["/"].bind_queue(server_named, "amq.fanout", "", {})


def comparable(d: dict) -> dict:
    """A document with its lists in a stable order (RabbitMQ's order is unspecified)."""
    out = {}
    for k, v in d.items():
        out[k] = sorted(v, key=lambda x: json.dumps(x, sort_keys=True)) if isinstance(v, list) else v
    return out


def test_export_is_rabbitmq_3_10s_document_without_what_rabbitmq_leaves_out():
    b = make_broker()
    build(b)
    d = definitions.export(b)
    assert list(d)[:4] == ["rabbit_version", "rabbitmq_version", "product_name", "product_version"]
    assert set(d) == {"rabbit_version", "rabbitmq_version", "product_name", "product_version", *definitions.CATEGORIES}
    assert d["rabbit_version"] == "3.10.8" and d["product_name"] == "RabbitMQ"
    users = {u["name"]: u for u in d["users"]}
    assert set(users) == {"guest", "alice", "bob"}
    assert users["bob"] == {"name": "bob", "password_hash": rabbit_hash("sha512", "bob-pw"),
                            "hashing_algorithm": "rabbit_password_hashing_sha512", "tags": ["monitoring"],
                            "limits": {}}
    assert users["alice"]["limits"] == {"max-connections": 5}
    assert users["alice"]["hashing_algorithm"] == "rabbit_password_hashing_sha256"
    assert len(base64.b64decode(users["alice"]["password_hash"])) == 4 + 32
    assert d["vhosts"][1] == {"name": "app", "metadata": {"description": "the app's vhost", "tags": ["prod", "eu"],
                                                          "default_queue_type": "classic"}}
    assert d["vhosts"][0]["name"] == "/" and "default_queue_type" not in d["vhosts"][0]["metadata"]
    assert {"value": {"pattern": "^orders$", "definition": {"max-length": 5}, "priority": 1, "apply-to": "queues"},
            "vhost": "app", "component": "operator_policy", "name": "cap"} in d["parameters"]
    assert {"name": "owner", "value": {"team": "ops", "level": 2}} in d["global_parameters"]
    assert {"user": "alice", "vhost": "app", "configure": "^alice-.*", "write": ".*", "read": ""} in d["permissions"]
    assert d["topic_permissions"] == [{"user": "alice", "vhost": "app", "exchange": "amq.topic",
                                       "write": "^{username}\\.", "read": ".*"}]
    assert d["policies"] == [{"vhost": "app", "name": "ttl", "pattern": "^ttl\\.", "apply-to": "queues",
                              "definition": {"message-ttl": 1000}, "priority": 3}]
    assert {"value": {"max-queues": 50}, "vhost": "app", "component": "vhost-limits", "name": "limits"} \
        in d["parameters"]
    queues = {q["name"]: q for q in d["queues"]}
    assert set(queues) == {"orders", "lazy", "quorum", "transient"}  # not the exclusive ones
    assert queues["orders"] == {"name": "orders", "vhost": "app", "durable": True, "auto_delete": False,
                                "arguments": {"x-max-length": 10, "x-dead-letter-exchange": "unrouted"}}
    assert queues["transient"]["durable"] is False
    exchanges = {x["name"]: x for x in d["exchanges"]}
    assert set(exchanges) == {"events", "unrouted", "hidden", "temp"}  # no default, no amq.*
    assert exchanges["events"] == {"name": "events", "vhost": "app", "type": "topic", "durable": True,
                                   "auto_delete": False, "internal": False,
                                   "arguments": {"alternate-exchange": "unrouted"}}
    assert exchanges["hidden"]["internal"] is True and exchanges["temp"]["auto_delete"] is True
    bindings = [(x["source"], x["destination_type"], x["destination"], x["routing_key"], x["arguments"])
                for x in d["bindings"]]
    assert sorted(bindings, key=repr) == sorted([
        ("amq.direct", "queue", "transient", "t", {}),
        ("events", "exchange", "hidden", "#", {"via": 1}),
        ("events", "queue", "orders", "order.#", {}),
        ("events", "queue", "orders", "order.*", {"x-note": "second"}),
        ("temp", "queue", "transient", "", {"x-match": "all", "kind": "t"}),
        ("unrouted", "queue", "lazy", "", {}),
    ], key=repr)  # no default-exchange bindings, none of the exclusive queues
    assert all(set(x) == {"source", "vhost", "destination", "destination_type", "routing_key", "arguments"}
               for x in d["bindings"])
    json.dumps(d)  # plain JSON


def test_per_vhost_export_is_shaped_as_rabbitmqs():
    b = make_broker()
    build(b)
    d = definitions.export(b, "app")
    assert list(d) == ["rabbit_version", "parameters", "policies", "queues", "exchanges", "bindings"]
    assert all("vhost" not in x for k in ("queues", "exchanges", "bindings") for x in d[k])
    assert d["policies"][0]["vhost"] == "app"  # policies and parameters keep theirs, as in RabbitMQ
    assert {q["name"] for q in d["queues"]} == {"orders", "lazy", "quorum", "transient"}
    assert definitions.export(b, "/")["queues"] == []
    with pytest.raises(KeyError):
        definitions.export(b, "nope")


def test_round_trip_into_an_empty_broker_gives_the_same_objects():
    a = make_broker()
    build(a)
    exported = definitions.export(a)
    b = make_broker()
    definitions.apply(b, json.loads(json.dumps(exported)))
    assert comparable(definitions.export(b)) == comparable(exported)
    # the imported objects work: the hash logs in, the permissions and the topology route
    assert b.check_user_password("bob", "bob-pw") and b.check_user_password("alice", "alice-pw")
    assert b.users["alice"].permissions["app"].allows("configure", "alice-q")
    vh = b.vhosts["app"]
    assert vh.queues["orders"].arguments == {"x-max-length": 10, "x-dead-letter-exchange": "unrouted"}
    assert vh.queues["quorum"].queue_type == "quorum"
    assert vh.exchanges["events"].alternate == "unrouted"
    assert vh.policies.by_name["ttl"].definition == {"message-ttl": 1000}
    assert b.vhost_limits("app") == {"max-queues": 50} and b.user_limits("alice") == {"max-connections": 5}
    assert vh.queues["orders"].policy.operator_policy == "cap"
    assert vh.description == "the app's vhost" and vh.default_queue_type == "classic"
    assert b.global_parameter("owner")["value"] == {"team": "ops", "level": 2}
    # importing the same document again changes nothing
    definitions.apply(b, exported)
    assert comparable(definitions.export(b)) == comparable(exported)


def test_per_vhost_import_goes_into_the_vhost_it_is_given():
    a = make_broker()
    build(a)
    doc = definitions.export(a, "app")
    b = make_broker()
    b.add_vhost("other")
    definitions.apply(b, doc, "other")
    vh = b.vhosts["other"]
    assert set(vh.queues) == {"orders", "lazy", "quorum", "transient"}
    assert vh.policies.by_name["ttl"].pattern == "^ttl\\."
    assert b.vhost_limits("other") == {"max-queues": 50}
    assert ("order.#" in {k for _, k, _ in vh.exchanges["events"].bindings})
    assert "app" not in b.vhosts
    with pytest.raises(KeyError):
        definitions.apply(b, doc, "nope")


def test_imported_password_hashes_log_in_as_they_are():
    b = make_broker()
    definitions.apply(b, {"users": [
        {"name": "s256", "password_hash": rabbit_hash("sha256", "p1"), "hashing_algorithm":
         "rabbit_password_hashing_sha256", "tags": "administrator,management"},
        {"name": "s512", "password_hash": rabbit_hash("sha512", "p2"), "hashing_algorithm":
         "rabbit_password_hashing_sha512", "tags": []},
        {"name": "md5", "password_hash": rabbit_hash("md5", "p3"), "hashing_algorithm":
         "rabbit_password_hashing_md5", "tags": ""},
        # no hashing_algorithm: RabbitMQ before 3.6 hashed with MD5
        {"name": "old", "password_hash": rabbit_hash("md5", "p4"), "tags": ""},
        {"name": "plain", "password": "p5", "tags": ["monitoring"]},
        {"name": "nopass", "tags": "management"},
    ], "rabbit_version": "3.5.7"})
    for name, pw in (("s256", "p1"), ("s512", "p2"), ("md5", "p3"), ("old", "p4"), ("plain", "p5")):
        assert b.check_user_password(name, pw), name
        assert not b.check_user_password(name, pw + "x"), name
    assert b.users["s256"].tags == ["administrator", "management"]
    assert b.users["old"].hashing_algorithm == "rabbit_password_hashing_md5"
    assert b.users["plain"].hashing_algorithm == "rabbit_password_hashing_sha256"
    assert b.users["nopass"].password_hash == b"" and not b.check_user_password("nopass", "")
    # an existing user: a new hash replaces the password, keeping its permissions; neither clears it
    definitions.apply(b, {"users": [{"name": "guest", "password_hash": rabbit_hash("sha512", "new"),
                                     "hashing_algorithm": "rabbit_password_hashing_sha512", "tags": "administrator"}]})
    assert b.check_user_password("guest", "new") and "/" in b.users["guest"].permissions
    definitions.apply(b, {"users": [{"name": "plain", "tags": "management"}]})
    assert not b.check_user_password("plain", "p5") and b.users["plain"].tags == ["management"]


@pytest.mark.parametrize("doc, reason", [
    ({"users": [{"name": "u", "password_hash": "xx", "tags": ""}]}, ["not_base64", "xx"]),
    ({"users": [{"name": "u", "password": "a", "password_hash": "AAAA", "tags": ""}]},
     "both_password_and_password_hash_are_provided"),
    ({"users": [{"name": "u", "password": "a"}]}, "tags_not_present"),
    ({"permissions": [{"user": "nobody", "vhost": "/", "configure": "", "write": "", "read": ""}]},
     ["no_such_user", "nobody"]),
    ({"permissions": [{"user": "guest", "vhost": "nope", "configure": "", "write": "", "read": ""}]},
     ["no_such_vhost", "nope"]),
    ({"queues": [{"vhost": "nope", "name": "q", "durable": True, "auto_delete": False, "arguments": {}}]},
     ["no_such_vhost", "nope"]),
    ({"queues": [{"vhost": "/", "name": "q", "durable": True, "auto_delete": False,
                  "arguments": {"x-max-length": "x"}}]},
     ["amqp_error", "precondition_failed",
      "invalid arg 'x-max-length' for queue 'q' in vhost '/': {unacceptable_type,longstr}", "none"]),
    ({"exchanges": [{"vhost": "/", "name": "x", "type": "nonesuch", "durable": True, "auto_delete": False,
                     "internal": False, "arguments": {}}]},
     ["amqp_error", "command_invalid", "unknown exchange type 'nonesuch'", "none"]),
    ({"policies": [{"vhost": "/", "name": "p1", "pattern": "^x", "definition": {"bogus": 1}}]},
     'Validation failed\n\n[{&lt;&lt;\"bogus\"&gt;&gt;,1}] are not recognised policy settings\n (//p1)'),
    ({"parameters": [{"vhost": "/", "component": "nonesuch", "name": "n", "value": {}}]},
     "Validation failed\n\ncomponent nonesuch not found\n (//nonesuch/n)"),
    ("[1, 2]", "failed_to_parse_json"),
])
def test_invalid_definitions_fail_with_rabbitmqs_reason(doc, reason):
    b = make_broker()
    with pytest.raises(DefinitionsError) as info:
        definitions.apply(b, json.loads(doc) if isinstance(doc, str) else doc)
    if isinstance(reason, list) and reason[0] == "amqp_error" and reason[1] == "precondition_failed":
        got = info.value.reason
        assert got[:2] == reason[:2] and got[2].startswith("invalid arg 'x-max-length'") and got[3] == "none"
    else:
        assert info.value.reason == reason
    assert str(info.value)  # one line for a log or stderr
    assert "\n" not in str(info.value)


def test_arguments_that_are_no_amqp_table_are_refused_before_anything_is_made():
    b = make_broker()
    with pytest.raises(DefinitionsError) as info:
        definitions.apply(b, {"queues": [{"vhost": "/", "name": "q", "durable": True,
                                          "arguments": {"x-big": 2 ** 70}}]})
    assert info.value.reason.startswith("queue 'q': arguments cannot be an AMQP table: ")
    assert "q" not in b.vhosts["/"].queues


def test_import_stops_at_the_first_error_and_keeps_what_came_before_it():
    b = make_broker()
    with pytest.raises(DefinitionsError):
        definitions.apply(b, {"vhosts": [{"name": "v1"}],
                              "policies": [{"vhost": "v1", "name": "bad", "pattern": "x", "definition": {}}],
                              "queues": [{"vhost": "v1", "name": "q", "durable": True, "auto_delete": False}]})
    assert "v1" in b.vhosts and not b.vhosts["v1"].queues


def test_what_rabbitmq_skips_is_skipped():
    b = make_broker()
    definitions.apply(b, {
        "exchanges": [{"vhost": "/", "name": "amq.mine", "type": "direct", "durable": True},
                      {"vhost": "/", "name": "", "type": "direct", "durable": True}],
        "queues": [{"vhost": "/", "name": "amq.q", "durable": True}],
        # a binding whose source or destination is missing is ignored, as RabbitMQ ignores it
        "bindings": [{"vhost": "/", "source": "nope", "destination": "q", "destination_type": "queue",
                      "routing_key": "", "arguments": {}},
                     {"vhost": "/", "source": "amq.direct", "destination": "nope", "destination_type": "queue",
                      "routing_key": "", "arguments": {}},
                     {"vhost": "/", "source": "amq.direct", "destination": "nope", "destination_type": "exchange",
                      "routing_key": "", "arguments": {}}],
        "users": ["not an object"],
    })
    assert "amq.mine" not in b.vhosts["/"].exchanges and "amq.q" not in b.vhosts["/"].queues
    assert not b.vhosts["/"].exchanges["amq.direct"].bindings


def test_existing_queues_and_exchanges_are_kept_as_they_are():
    b = make_broker()
    vh = b.vhosts["/"]
    vh.declare_queue("q", None, durable=True, arguments={"x-max-length": 1})
    vh.declare_exchange("x", "fanout", durable=True)
    definitions.apply(b, {"queues": [{"vhost": "/", "name": "q", "durable": False, "arguments": {}}],
                          "exchanges": [{"vhost": "/", "name": "x", "type": "topic", "durable": True}]})
    assert vh.queues["q"].durable and vh.queues["q"].arguments == {"x-max-length": 1}
    assert vh.exchanges["x"].type == "fanout"


def test_a_vhost_default_queue_type_is_not_given_to_imported_queues():
    # RabbitMQ 3.10.8 (probed): a queue without x-queue-type imported into a vhost whose default queue type
    # is quorum stays classic; the default is for declares over a channel
    b = make_broker()
    definitions.apply(b, {"vhosts": [{"name": "dq", "metadata": {"default_queue_type": "quorum"}}],
                          "queues": [{"vhost": "dq", "name": "q1", "durable": True, "auto_delete": False,
                                      "arguments": {}}]})
    vh = b.vhosts["dq"]
    assert vh.default_queue_type == "quorum"
    assert vh.queues["q1"].queue_type == "classic" and vh.queues["q1"].arguments == {}
    vh.declare_queue("q2", None, durable=True)
    assert vh.queues["q2"].queue_type == "quorum"


def test_an_imported_classic_queue_stays_classic_across_a_restart(tmp_path):
    config = BrokerConfig(data_dir=str(tmp_path))
    b = Broker(config, open_storage(config))
    definitions.apply(b, {"vhosts": [{"name": "dq", "metadata": {"default_queue_type": "quorum"}}],
                          "queues": [{"vhost": "dq", "name": "q1", "durable": True, "arguments": {}}]})
    b.vhosts["dq"].declare_queue("q2", None, durable=True)
    b.close()
    b = Broker(config, open_storage(config))
    try:
        assert b.vhosts["dq"].queues["q1"].queue_type == "classic"
        assert b.vhosts["dq"].queues["q2"].queue_type == "quorum"
    finally:
        b.close()


def test_new_queues_must_fit_the_vhost_queue_limit():
    b = make_broker()
    b.set_vhost_limits("/", {"max-queues": 2})
    b.vhosts["/"].declare_queue("a", None, durable=True)
    queues = [{"vhost": "/", "name": n, "durable": True} for n in ("a", "b", "c")]
    with pytest.raises(DefinitionsError) as info:
        definitions.apply(b, {"queues": queues})
    assert info.value.reason == ["vhost_limit_exceeded",
                                 'Adding 2 queue(s) to virtual host "/" would exceed the limit of 2 queue(s).'
                                 "\n\nThis virtual host currently has 1 queue(s) defined.\n\nImport aborted!"]
    assert set(b.vhosts["/"].queues) == {"a"}  # checked before any queue is declared
    definitions.apply(b, {"queues": queues[:2]})
    assert set(b.vhosts["/"].queues) == {"a", "b"}


def test_imported_definitions_survive_a_restart(tmp_path):
    config = BrokerConfig(data_dir=str(tmp_path))
    a = make_broker()
    build(a)
    exported = definitions.export(a)
    b = Broker(config, open_storage(config))
    definitions.apply(b, exported)
    b.close()
    b = Broker(config, open_storage(config))
    try:
        after = comparable(definitions.export(b))
        # non-durable queues and exchanges do not survive a restart, in RabbitMQ as here
        expected = comparable(exported)
        expected["queues"] = [q for q in expected["queues"] if q["durable"]]
        expected["exchanges"] = [x for x in expected["exchanges"] if x["durable"]]
        gone = {"transient", "temp"}
        expected["bindings"] = [x for x in expected["bindings"]
                                if x["source"] not in gone and x["destination"] not in gone]
        assert after == expected
        assert b.check_user_password("bob", "bob-pw")
    finally:
        b.close()


# ------------------------------------------------------------ RabbitMQ 3.10.8's own export
def fixture() -> dict:
    with open(FIXTURE) as f:
        return json.load(f)


def normal(v):
    """A value with RabbitMQ 3.10's proplists ([[key, value], ...], as its rabbitmqctl export writes
    operator policy definitions and some parameter values) as objects."""
    if isinstance(v, list) and v and all(isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) for p in v):
        return {k: normal(x) for k, x in v}
    if isinstance(v, dict):
        return {k: normal(x) for k, x in v.items()}
    return v


def keyed(items, keys):
    return sorted((json.dumps({k: normal(i.get(k)) for k in keys}, sort_keys=True) for i in items))


def test_a_rabbitmq_3_10_export_imports_with_everything_in_it():
    b = make_broker()
    definitions.apply(b, fixture())
    vh = b.vhosts["i12-defs-vh"]
    assert b.check_user_password("i12-defs-admin", "admin-secret")
    assert b.check_user_password("i12-defs-sha512", "sha512-secret")
    assert b.check_user_password("i12-defs-md5", "md5-secret")
    assert b.users["i12-defs-sha512"].hashing_algorithm == "rabbit_password_hashing_sha512"
    assert b.users["i12-defs-sha512"].tags == ["monitoring", "management"]
    assert b.user_limits("i12-defs-admin") == {"max-connections": 10, "max-channels": 20}
    assert vh.description == "WarrenMQ definitions fixture" and vh.tags == ["fixture", "qa"]
    assert b.vhost_limits("i12-defs-vh") == {"max-connections": 100, "max-queues": 200}
    assert b.users["i12-defs-md5"].permissions["i12-defs-vh"].write == "^amq\\.topic$"
    assert b.users["i12-defs-md5"].topic_permissions[("i12-defs-vh", "amq.topic")].write == "^{username}\\."
    # policies and the operator policy apply to the queues they match
    assert vh.queues["ttl.short"].policy.name == "i12-defs-ttl"
    assert vh.queues["ttl.short"].effective("x-message-ttl") == 60000
    assert vh.queues["op.capped"].effective("x-max-length") == 1000
    assert vh.exchanges["app.events"].effective("alternate-exchange") == "app.unrouted"
    assert b.global_parameter("i12-defs-global")["value"] == {"level": 3, "owner": "fixture"}
    # queues with their arguments and types, exchanges of each type
    assert vh.queues["app.quorum"].queue_type == "quorum"
    assert vh.queues["app.orders"].arguments["x-dead-letter-exchange"] == "app.dlx"
    assert vh.queues["app.lazy"].effective("x-queue-mode") == "lazy"
    assert not vh.queues["app.transient"].durable
    assert {x.type for x in vh.exchanges.values()} >= {"direct", "fanout", "topic", "headers"}
    # bindings route: e->e (app.events -> app.direct -> app.orders), headers with x-match
    from warrenmq.broker.message import Message
    msg = Message("app.events", "order.created", b"", b"")
    assert [q.name for q in vh.route(vh.exchanges["app.events"], msg)] == ["app.orders"]


def test_a_rabbitmq_3_10_export_round_trips():
    src = fixture()
    b = make_broker()
    definitions.apply(b, src)
    out = definitions.export(b)
    mine = lambda items, key="name": [i for i in items if str(i.get(key, "")).startswith("i12-defs")]
    assert keyed(mine(out["users"]), ("name", "password_hash", "hashing_algorithm", "tags", "limits")) == \
        keyed(src["users"], ("name", "password_hash", "hashing_algorithm", "tags", "limits"))
    assert keyed(mine(out["vhosts"]), ("name", "metadata")) == keyed(src["vhosts"], ("name", "metadata"))
    for category, key in (("permissions", "user"), ("topic_permissions", "user"), ("parameters", "vhost"),
                          ("policies", "vhost"), ("queues", "vhost"), ("exchanges", "vhost")):
        keys = [k for k in src[category][0] if k != "type" or category != "queues"]  # 3.10's ctl adds a queue's type
        assert keyed(mine(out[category], key), keys) == keyed(src[category], keys), category
    assert keyed(mine(out["global_parameters"]), ("name", "value")) == keyed(src["global_parameters"], ("name", "value"))
    # RabbitMQ's rabbitmqctl export leaves internal exchanges out but keeps their bindings, which no import
    # can then add (RabbitMQ skips them too): every other binding comes back
    exchanges = {x["name"] for x in src["exchanges"]} | {"amq.topic"}
    expected = [x for x in src["bindings"] if x["source"] in exchanges]
    assert len(expected) == len(src["bindings"]) - 1
    keys = ("source", "vhost", "destination", "destination_type", "routing_key", "arguments")
    assert keyed(mine(out["bindings"], "vhost"), keys) == keyed(expected, keys)
    # and what WarrenMQ exported imports into another WarrenMQ as the same objects
    c = make_broker()
    definitions.apply(c, json.loads(json.dumps(out)))
    again = definitions.export(c)
    for category in definitions.CATEGORIES:
        if category in ("users", "global_parameters"):
            continue
        assert comparable(again)[category] == comparable(out)[category], category
    assert keyed(mine(again["users"]), ("name", "password_hash")) == keyed(mine(out["users"]), ("name", "password_hash"))


def test_a_rabbitmq_3_10_export_survives_a_restart(tmp_path):
    config = BrokerConfig(data_dir=str(tmp_path))
    b = Broker(config, open_storage(config))
    definitions.apply(b, fixture())
    before = definitions.export(b)
    b.close()
    b = Broker(config, open_storage(config))
    try:
        after = definitions.export(b)
        durable = lambda d: {**comparable(d), "queues": [q for q in comparable(d)["queues"] if q["durable"]],
                             "bindings": [x for x in comparable(d)["bindings"] if x["destination"] != "app.transient"]}
        assert durable(after) == durable(before)
        assert b.check_user_password("i12-defs-md5", "md5-secret")
    finally:
        b.close()


def test_what_a_failed_import_applied_is_durable_too(tmp_path):
    # the import is one transaction of the definitions store, committed even when an object fails:
    # what the broker kept (as RabbitMQ keeps it) is what a restart finds
    config = BrokerConfig(data_dir=str(tmp_path))
    b = Broker(config, open_storage(config))
    with pytest.raises(DefinitionsError):
        definitions.apply(b, {"vhosts": [{"name": "v1"}],
                              "queues": [{"vhost": "v1", "name": "q", "durable": True},
                                         {"vhost": "v1", "name": "bad", "durable": True,
                                          "arguments": {"x-max-length": "x"}}]})
    b.vhosts["v1"].declare_queue("after", None, durable=True)  # and the store takes changes again
    b.close()
    b = Broker(config, open_storage(config))
    try:
        assert set(b.vhosts["v1"].queues) == {"q", "after"}
    finally:
        b.close()


def test_a_first_boot_with_definitions_to_load_seeds_no_default_user(tmp_path):
    # RabbitMQ's maybe_insert_default_data: the definitions file says which users and vhosts there are
    b = Broker(BrokerConfig(data_dir="", definitions_file=FIXTURE))
    assert not b.users and not b.vhosts
    definitions.apply(b, fixture())
    assert "guest" not in b.users and "/" not in b.vhosts and "i12-defs-vh" in b.vhosts
    config = BrokerConfig(data_dir=str(tmp_path))  # without one: guest and / as before
    b = Broker(config, open_storage(config))
    try:
        assert "guest" in b.users and "/" in b.vhosts
    finally:
        b.close()
