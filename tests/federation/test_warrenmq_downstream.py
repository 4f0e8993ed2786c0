"""WarrenMQ as a federation downstream: upstream parameters and policies, exchange and queue links,
``/api/federation-links``, loops bounded by max-hops, links that outlive an upstream restart.

The upstream is another embedded WarrenMQ (its own cluster name, so cycle detection can tell the two
apart) or, where marked, the reference RabbitMQ.  Validation texts are RabbitMQ 3.10.8's, as its
probe node answered the same requests.
"""
from __future__ import annotations

import json
import time

import pika
import pytest
from support.http import http

from warrenmq.testing import EmbeddedBroker

from .conftest import unique

pytestmark = pytest.mark.timeout(120)
V = "%2F"


def named(cluster: str, **kw) -> EmbeddedBroker:
    b = EmbeddedBroker(management=True, **kw).start()
    b.call(lambda: b.broker.set_global_parameter("cluster_name", cluster))
    return b


@pytest.fixture
def down():
    b = named("fedt-down")
    yield b
    b.stop()


@pytest.fixture
def up():
    b = named("fedt-up")
    yield b
    b.stop()


def api(b, method, path, body=None):
    status, _, payload = http(b.management_url, method, path, body)
    return status, payload


def wait(predicate, timeout=15.0, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def links(b):
    return api(b, "GET", "/api/federation-links")[1]


def running(b, n=1):
    return wait(lambda: (lambda ls: ls if len([x for x in ls if x["status"] == "running"]) >= n else None)(links(b)),
                what=f"{n} running link(s)")


def federate(down, name, uri, pattern, apply_to="all", **upstream):
    assert api(down, "PUT", f"/api/parameters/federation-upstream/{V}/{name}",
               {"value": {"uri": uri, **upstream}})[0] in (201, 204)
    assert api(down, "PUT", f"/api/policies/{V}/{name}-pol",
               {"pattern": pattern, "definition": {"federation-upstream": name}, "apply-to": apply_to})[0] in (201, 204)


def uri(b) -> str:
    return f"amqp://guest:guest@127.0.0.1:{b.port}"


def channel(b):
    c = pika.BlockingConnection(pika.URLParameters(b.url))
    ch = c.channel()
    ch.confirm_delivery()
    return c, ch


def routable(ch, x, key, body=b"probe"):
    """Publish mandatory: True if some queue took it (the downstream's binding reached the upstream)."""
    try:
        ch.basic_publish(x, key, body, mandatory=True)
        return True
    except pika.exceptions.UnroutableError:
        return False


def drain(ch, queue, n, timeout=10.0):
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        m, p, body = ch.basic_get(queue, auto_ack=True)
        if m is None:
            time.sleep(0.02)
        else:
            got.append((body, p.headers))
    return got


# ------------------------------------------------------------------ parameters and policies
@pytest.mark.parametrize("value, reason", [
    ({}, 'Key "uri" not found in u'),
    ({"uri": 5}, "uri should be list, actually was 5"),
    ({"uri": "foo://x"}, '"foo://x" not a valid URI: {{unexpected_uri_scheme,"foo"},"foo://x"}'),
    ({"uri": "amqp://h", "prefetch-count": "x"}, 'prefetch-count should be a number, actually was <<"x">>'),
    ({"uri": "amqp://h", "ack-mode": "bad"},
     'ack-mode should be one of [<<"no-ack">>,<<"on-publish">>,<<"on-confirm">>], actually was <<"bad">>'),
    ({"uri": "amqp://h", "trust-user-id": "yes"}, 'trust-user-id should be boolean, actually was <<"yes">>'),
    ({"uri": "amqp://h", "bogus": 1}, 'Unrecognised terms [{<<"bogus">>,1}] in u'),
    ({"uri": "amqp://h", "exchange": 3}, "exchange should be binary, actually was 3"),
    ({"uri": "amqp://h", "resource-cleanup-mode": "x"},
     'resource-cleanup-mode should be one of [<<"default">>,<<"never">>], actually was <<"x">>'),
    ([1], 'Unrecognised terms [1] in u\nKey "uri" not found in u'),
])
def test_an_upstream_is_validated_as_rabbitmq_validates_it(down, value, reason):
    status, body = api(down, "PUT", f"/api/parameters/federation-upstream/{V}/u", {"value": value})
    assert status == 400
    escaped = reason.replace("<", "&lt;").replace(">", "&gt;")
    assert body == {"error": "bad_request", "reason": f"Validation failed\n\n{escaped}\n"}


@pytest.mark.parametrize("value", [{"uri": "amqp://h", "max-hops": 1.5}, {"uri": ["amqp://h", "amqp://i"]},
                                   {"uri": []}])
def test_upstreams_rabbitmq_accepts(down, value):
    assert api(down, "PUT", f"/api/parameters/federation-upstream/{V}/u", {"value": value})[0] == 201
    assert api(down, "GET", f"/api/parameters/federation-upstream/{V}/u")[1]["value"] == value


@pytest.mark.parametrize("value, status, reason", [
    ([{"upstream": "a"}], 201, None),
    ([], 201, None),
    ([{}], 400, 'Key "upstream" not found in s'),
    ([{"upstream": 1}], 400, "upstream should be binary, actually was 1"),
    ([{"upstream": "a", "max-hops": "x"}], 400, 'max-hops should be a number, actually was &lt;&lt;"x"&gt;&gt;'),
])
def test_an_upstream_set_is_validated(down, value, status, reason):
    got, body = api(down, "PUT", f"/api/parameters/federation-upstream-set/{V}/s", {"value": value})
    assert got == status
    if reason:
        assert body["reason"] == f"Validation failed\n\n{reason}\n"


@pytest.mark.parametrize("definition, reason", [
    ({"federation-upstream": 1}, "1 is not a valid federation upstream name"),
    ({"federation-upstream-set": 2}, "2 is not a valid federation upstream set name"),
    ({"federation-upstream": "a", "federation-upstream-set": "b"},
     "cannot specify federation-upstream, federation-upstream-set or federation-upstream-pattern together"),
    ({"federation-upstream-pattern": 3}, "3 is not a valid federation upstream pattern name"),
])
def test_federation_policy_keys_are_validated(down, definition, reason):
    status, body = api(down, "PUT", f"/api/policies/{V}/p", {"pattern": ".*", "definition": definition})
    assert status == 400
    assert body["reason"] == f"Validation failed\n\n{reason}\n"


def test_federation_policy_keys_are_accepted(down):
    for d in ({"federation-upstream": "a", "max-length": 3}, {"federation-upstream-set": "all"},
              {"federation-upstream-pattern": "^a"}):
        assert api(down, "PUT", f"/api/policies/{V}/p", {"pattern": "^nothing$", "definition": d})[0] in (201, 204)


# ------------------------------------------------------------------ exchange federation
def test_exchange_federation_between_two_warrenmqs(down, up):
    x = unique("x")
    federate(down, "u1", uri(up), f"^{x}$", "exchanges", **{"max-hops": 1, "expires": 600000})
    dc, dch = channel(down)
    dch.exchange_declare(x, "direct")
    q = dch.queue_declare("", exclusive=True).method.queue
    dch.queue_bind(q, x, "k1")
    [link] = running(down)
    assert {k: v for k, v in link.items() if k not in ("id", "timestamp")} == {
        "node": link["node"], "exchange": x, "upstream_exchange": x, "type": "exchange", "vhost": "/",
        "upstream": "u1", "status": "running", "local_connection": "Federation link (upstream: u1, policy: u1-pol)",
        "uri": f"amqp://127.0.0.1:{up.port}"}
    # what the link made upstream: the exchange, the queue, the helper exchange bound with the key
    link_q = f"federation: {x} -> fedt-down"
    wait(lambda: any(n.startswith(link_q + " ") for n in up.exchanges()), what="the helper exchange")
    helper = next(n for n in up.exchanges() if n.startswith(link_q + " "))
    assert up.exchanges()[helper] == "x-federation-upstream"
    assert up.exchanges()[x] == "direct"
    assert up.queue(link_q).consumers == 1

    uc, uch = channel(up)
    wait(lambda: routable(uch, x, "k1"), what="the binding upstream")
    got = drain(dch, q, 1)
    assert [b for b, _ in got] == [b"probe"]
    for i in range(50):
        uch.basic_publish(x, "k1", f"m{i}".encode())
    uch.basic_publish(x, "other", b"not bound downstream")
    got = drain(dch, q, 50)
    assert [b for b, _ in got] == [f"m{i}".encode() for i in range(50)]
    hdr = got[0][1]["x-received-from"]
    assert hdr == [{"uri": f"amqp://127.0.0.1:{up.port}", "exchange": x, "redelivered": False,
                    "cluster-name": "fedt-up", "vhost": "/"}]

    # bindings follow: a new key is bound upstream, an unbound one goes
    dch.queue_bind(q, x, "k2")
    wait(lambda: routable(uch, x, "k2", b"k2"), what="k2 bound upstream")
    assert [b for b, _ in drain(dch, q, 1)] == [b"k2"]
    dch.queue_unbind(q, x, "k1")
    time.sleep(0.5)
    with pytest.raises(pika.exceptions.UnroutableError):
        uch.basic_publish(x, "k1", b"k1 gone", mandatory=True)

    # the connections carry RabbitMQ's name, on both brokers
    names = [c["client_properties"].get("connection_name") for c in api(up, "GET", "/api/connections")[1]]
    assert "Federation link (upstream: u1, policy: u1-pol)" in names

    # the policy goes: the link stops and tidies the upstream
    assert api(down, "DELETE", f"/api/policies/{V}/u1-pol")[0] == 204
    wait(lambda: links(down) == [], what="the link to stop")
    wait(lambda: link_q not in up.queues() and helper not in up.exchanges(), what="upstream cleanup")
    dc.close()
    uc.close()


def test_a_binding_only_an_unreachable_upstream_has_is_an_error_status(down):
    x = unique("x")
    federate(down, "gone", "amqp://guest:guest@127.0.0.1:1", f"^{x}$", "exchanges", **{"reconnect-delay": 1})
    dc, dch = channel(down)
    dch.exchange_declare(x, "fanout")
    [link] = wait(lambda: [x for x in links(down) if x["status"] == "error"], what="an error status")
    assert link["error"] == "econnrefused"
    assert link["uri"] == "amqp://127.0.0.1:1"
    assert "local_connection" not in link
    dc.close()


def test_a_loop_of_two_brokers_stops_at_max_hops(down, up):
    """Each federates the other's exchange: a message crosses once and no more (max-hops 1), and not
    back to where it came from."""
    x = unique("x")
    federate(down, "to-up", uri(up), f"^{x}$", "exchanges", **{"max-hops": 1})
    federate(up, "to-down", uri(down), f"^{x}$", "exchanges", **{"max-hops": 1})
    dc, dch = channel(down)
    uc, uch = channel(up)
    dch.exchange_declare(x, "fanout")
    uch.exchange_declare(x, "fanout")
    dq = dch.queue_declare("", exclusive=True).method.queue
    uq = uch.queue_declare("", exclusive=True).method.queue
    dch.queue_bind(dq, x)
    uch.queue_bind(uq, x)
    running(down)
    running(up)
    wait(lambda: routable(uch, x, "", b"from up") and routable(dch, x, "", b"from down"), what="both links")
    time.sleep(0.5)
    drain(uch, uq, 100, 0.5)
    drain(dch, dq, 100, 0.5)
    uch.basic_publish(x, "", b"once")
    dch.basic_publish(x, "", b"the other way")
    time.sleep(1.0)
    on_down = [b for b, _ in drain(dch, dq, 10, 1.0)]
    on_up = [b for b, _ in drain(uch, uq, 10, 1.0)]
    assert sorted(on_down) == [b"once", b"the other way"]
    assert sorted(on_up) == [b"once", b"the other way"]
    dc.close()
    uc.close()


def test_a_link_restarts_after_its_upstream_restarts(down):
    up = named("fedt-up", durable=True)
    try:
        x = unique("x")
        federate(down, "r", uri(up), f"^{x}$", "exchanges", **{"reconnect-delay": 0.5})
        dc, dch = channel(down)
        dch.exchange_declare(x, "fanout", durable=True)
        q = dch.queue_declare("", exclusive=True).method.queue
        dch.queue_bind(q, x)
        running(down)
        uc, uch = channel(up)
        wait(lambda: routable(uch, x, "", b"before"), what="the link's binding")
        assert [b for b, _ in drain(dch, q, 1)] == [b"before"]
        uc.close()
        up.restart()
        up.call(lambda: up.broker.set_global_parameter("cluster_name", "fedt-up"))
        wait(lambda: [x for x in links(down) if x["status"] != "running"] or True, what="the drop")
        running(down)
        uc, uch = channel(up)
        wait(lambda: routable(uch, x, "", b"after"), what="the link back")
        got = [b for b, _ in drain(dch, q, 1)]
        assert got == [b"after"]
        uc.close()
        dc.close()
    finally:
        up.stop()


# ------------------------------------------------------------------ queue federation
def test_a_federated_queue_takes_from_its_upstream_only_while_its_consumers_are_idle(down, up):
    qn = unique("q")
    federate(down, "uq", uri(up), f"^{qn}$", "queues", **{"prefetch-count": 10})
    uc, uch = channel(up)
    uch.queue_declare(qn)
    for i in range(20):
        uch.basic_publish("", qn, f"u{i}".encode())
    dc, dch = channel(down)
    dch.queue_declare(qn)
    [link] = running(down)
    assert link["type"] == "queue" and link["queue"] == qn and link["upstream_queue"] == qn
    assert link["consumer_tag"] == "federation-link-uq"
    time.sleep(0.5)
    assert up.queue(qn).messages == 20  # no local consumer: nothing moves
    assert up.queue(qn).consumers == 0
    got = []
    tag = dch.basic_consume(qn, lambda c, m, p, body: (got.append((body, p.headers)), c.basic_ack(m.delivery_tag)))
    deadline = time.monotonic() + 15
    while len(got) < 20 and time.monotonic() < deadline:
        dc.process_data_events(0.05)
    assert [b for b, _ in got] == [f"u{i}".encode() for i in range(20)]
    h = got[0][1]
    assert h["x-original-exchange"] == "" and h["x-original-routing-key"] == qn
    [entry] = h["x-received-from"]
    assert entry["queue"] == qn and entry["visit-count"] == 1 and entry["redelivered"] is False
    # a local message is consumed locally; the upstream keeps its own while the local queue is busy
    dch.basic_cancel(tag)
    wait(lambda: up.queue(qn).consumers == 0, what="the link to pause")
    for i in range(3):
        uch.basic_publish("", qn, f"later{i}".encode())
    time.sleep(0.5)
    assert up.queue(qn).messages == 3
    uc.close()
    dc.close()


# ------------------------------------------------------------------ with RabbitMQ
def test_warrenmq_federates_an_exchange_and_a_queue_from_rabbitmq(reference, down):
    x, qn = unique("x"), unique("q")
    federate(down, "rabbit", reference.url.rsplit("/", 1)[0], f"^({x}|{qn})$", "all")
    dc, dch = channel(down)
    dch.exchange_declare(x, "topic")
    q = dch.queue_declare("", exclusive=True).method.queue
    dch.queue_bind(q, x, "a.*")
    dch.queue_declare(qn, arguments={"x-expires": 60000})
    rch = reference.ch
    rch.queue_declare(qn, arguments={"x-expires": 60000})
    running(down, 2)
    rch.confirm_delivery()
    cluster = reference.cluster_name()
    link_q = f"federation: {x} -> fedt-down"

    wait(lambda: routable(rch, x, "a.b", b"m"), what="the binding on RabbitMQ")
    [(body, headers)] = drain(dch, q, 1)
    assert body == b"m"
    assert headers["x-received-from"][0]["cluster-name"] == cluster
    rch.basic_publish(x, "z.z", b"not bound")
    for i in range(5):
        rch.basic_publish("", qn, f"q{i}".encode())
    got = []
    dch.basic_consume(qn, lambda c, m, p, body: (got.append(body), c.basic_ack(m.delivery_tag)))
    deadline = time.monotonic() + 15
    while len(got) < 5 and time.monotonic() < deadline:
        dc.process_data_events(0.05)
    assert got == [f"q{i}".encode() for i in range(5)]
    assert drain(dch, q, 1, 0.3) == []
    assert api(down, "DELETE", f"/api/policies/{V}/rabbit-pol")[0] == 204
    wait(lambda: links(down) == [], what="the links to stop")
    rch.queue_delete(qn)
    rch.queue_delete(link_q)
    rch.exchange_delete(x)
    dc.close()


# ------------------------------------------------------------------ definitions and warrenmq ctl
def test_upstreams_and_policies_come_and_go_with_definitions(down, up):
    x = unique("x")
    defs = {"parameters": [{"value": {"uri": uri(up), "max-hops": 2}, "vhost": "/", "component": "federation-upstream",
                            "name": "d1"},
                           {"value": [{"upstream": "d1"}], "vhost": "/", "component": "federation-upstream-set",
                            "name": "s1"}],
            "policies": [{"vhost": "/", "name": "dpol", "pattern": f"^{x}$", "apply-to": "exchanges",
                          "definition": {"federation-upstream-set": "s1"}, "priority": 0}],
            "exchanges": [{"name": x, "vhost": "/", "type": "fanout", "durable": True, "auto_delete": False,
                           "internal": False, "arguments": {}}]}
    assert api(down, "POST", "/api/definitions", defs)[0] in (201, 204)
    [link] = running(down)
    assert link["upstream"] == "d1" and link["exchange"] == x
    exported = api(down, "GET", "/api/definitions")[1]
    params = {(p["component"], p["name"]): p["value"] for p in exported["parameters"]}
    assert params[("federation-upstream", "d1")] == {"uri": uri(up), "max-hops": 2}
    assert params[("federation-upstream-set", "s1")] == [{"upstream": "d1"}]
    assert [p["definition"] for p in exported["policies"] if p["name"] == "dpol"] == [
        {"federation-upstream-set": "s1"}]


def test_federation_status_with_warrenmq_ctl(down, up, capsys):
    from warrenmq.cli import ctl
    x = unique("x")
    federate(down, "c1", uri(up), f"^{x}$", "exchanges")
    federate(down, "c2", "amqp://guest:guest@127.0.0.1:1", f"^{x}$", "exchanges", **{"reconnect-delay": 1})
    assert api(down, "PUT", f"/api/policies/{V}/both", {"pattern": f"^{x}$", "priority": 5, "apply-to": "exchanges",
                                                        "definition": {"federation-upstream-set": "all"}})[0] == 201
    dc, dch = channel(down)
    dch.exchange_declare(x, "fanout")
    wait(lambda: sorted(link["status"] for link in links(down)) == ["error", "running"], what="both links")
    capsys.readouterr()
    assert ctl.main(["--url", down.management_url, "federation_status", "--formatter", "json"]) == 0
    out = capsys.readouterr().out
    rows = sorted(json.loads(out), key=lambda r: r["upstream"])
    assert [sorted(r) for r in rows] == [sorted(["error", "exchange", "id", "last_changed", "local_connection", "queue",
                                                 "status", "type", "upstream", "upstream_exchange", "upstream_queue",
                                                 "uri", "vhost"])] * 2
    assert (rows[0]["upstream"], rows[0]["status"], rows[0]["error"], rows[0]["queue"]) == ("c1", "running", "", "")
    assert rows[0]["local_connection"] == "Federation link (upstream: c1, policy: both)"
    assert (rows[1]["upstream"], rows[1]["status"], rows[1]["error"]) == ("c2", "error", "econnrefused")
    assert ctl.main(["--url", down.management_url, "federation_status", "--only-down"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("Listing federation links which are down on node ")
    assert "error => econnrefused" in out and "upstream => <<\"c2\">>" in out and "<<\"c1\">>" not in out
    # restart_federation_link: by id, as rabbitmqctl's
    [c1] = [link for link in links(down) if link["upstream"] == "c1"]
    before = {c["name"] for c in api(up, "GET", "/api/connections")[1]}
    assert ctl.main(["--url", down.management_url, "restart_federation_link", c1["id"]]) == 0
    assert capsys.readouterr().out == f"Restarting federation link {c1['id']} on node {c1['node']}\n"
    wait(lambda: not before & {c["name"] for c in api(up, "GET", "/api/connections")[1]}, what="new connections")
    assert ctl.main(["--url", down.management_url, "restart_federation_link", "nope"]) == 69
    assert capsys.readouterr().err == "Error:\nLink with the given ID was not found\n"
    dc.close()


def test_links_down_restart_and_who_may_see_them(down, up):
    x = unique("x")
    federate(down, "ok", uri(up), f"^{x}$", "exchanges")
    federate(down, "bad", "amqp://guest:guest@127.0.0.1:1", f"^{x}$", "exchanges", **{"reconnect-delay": 30})
    assert api(down, "PUT", f"/api/policies/{V}/both", {"pattern": f"^{x}$", "priority": 5, "apply-to": "exchanges",
                                                        "definition": {"federation-upstream-set": "all"}})[0] == 201
    dc, dch = channel(down)
    dch.exchange_declare(x, "fanout")
    wait(lambda: sorted(link["status"] for link in links(down)) == ["error", "running"], what="both links")
    [bad] = api(down, "GET", "/api/federation-links/state/down")[1]
    assert bad["upstream"] == "bad"
    assert [x["upstream"] for x in api(down, "GET", f"/api/federation-links/{V}/state/down")[1]] == ["bad"]
    assert api(down, "GET", "/api/federation-links/nope")[0] == 404
    h, m, s = bad["timestamp"].split(" ")[1].split(":")
    assert len(m) == len(s) == 2 and h == str(int(h))  # RabbitMQ prints the hour with ~w
    # restart: the link's connections close and it starts again (a running one comes back running)
    [ok] = [x for x in links(down) if x["upstream"] == "ok"]
    before = [c["name"] for c in api(up, "GET", "/api/connections")[1]]
    assert api(down, "DELETE", f"/api/federation-links/vhost/{V}/{ok['id']}/{ok['node']}/restart")[0] == 204
    wait(lambda: not set(before) & {c["name"] for c in api(up, "GET", "/api/connections")[1]}, what="new connections")
    wait(lambda: [x["status"] for x in links(down) if x["upstream"] == "ok"] == ["running"], what="running again")
    assert api(down, "DELETE", f"/api/federation-links/vhost/{V}/00000000/{ok['node']}/restart")[0] == 404
    assert api(down, "DELETE", f"/api/federation-links/vhost/{V}/{ok['id']}/other@node/restart")[0] == 404
    # monitoring tag needed, as RabbitMQ's is_authorized_monitor
    assert api(down, "PUT", "/api/users/mgr", {"password": "pw", "tags": "management"})[0] == 201
    assert api(down, "PUT", f"/api/permissions/{V}/mgr", {"configure": ".*", "write": ".*", "read": ".*"})[0] == 201
    status, _, _ = http(down.management_url, "GET", "/api/federation-links", auth=("mgr", "pw"))
    assert status == 401
    dc.close()


def test_a_vhost_federates_from_another_vhost_of_the_same_broker(down):
    """A local upstream URI (amqp:///vhost) runs the upstream side on the domain API, no socket."""
    x, qn = unique("x"), unique("q")
    assert api(down, "PUT", "/api/vhosts/other", {})[0] == 201
    assert api(down, "PUT", "/api/permissions/other/guest", {"configure": ".*", "write": ".*", "read": ".*"})[0] in (201, 204)
    federate(down, "local", "amqp:///other", f"^({x}|{qn})$", "all")
    dc, dch = channel(down)
    dch.exchange_declare(x, "direct")
    q = dch.queue_declare("", exclusive=True).method.queue
    dch.queue_bind(q, x, "k")
    dch.queue_declare(qn)
    running(down, 2)
    oc = pika.BlockingConnection(pika.URLParameters(down.url.rsplit("/", 1)[0] + "/other"))
    och = oc.channel()
    och.confirm_delivery()
    wait(lambda: x in down.exchanges("other") and routable(och, x, "k", b"from other"), what="the local link")
    assert [b for b, _ in drain(dch, q, 1)] == [b"from other"]
    assert drain(dch, q, 1, 0.3) == []
    och.basic_publish("", qn, b"queued in other")
    got = []
    dch.basic_consume(qn, lambda c, m, p, body: (got.append(body), c.basic_ack(m.delivery_tag)))
    deadline = time.monotonic() + 10
    while not got and time.monotonic() < deadline:
        dc.process_data_events(0.05)
    assert got == [b"queued in other"]
    oc.close()
    dc.close()


def test_a_helper_exchange_deleted_upstream_is_declared_again(down, up, monkeypatch):
    from warrenmq.federation import links as fed_links
    monkeypatch.setattr(fed_links, "INTERNAL_EXCHANGE_CHECK", 0.3)
    x = unique("x")
    federate(down, "chk", uri(up), f"^{x}$", "exchanges", **{"reconnect-delay": 0.2})
    dc, dch = channel(down)
    dch.exchange_declare(x, "fanout")
    q = dch.queue_declare("", exclusive=True).method.queue
    dch.queue_bind(q, x)
    running(down)
    uc, uch = channel(up)
    wait(lambda: routable(uch, x, "", b"first"), what="the link")
    assert [b for b, _ in drain(dch, q, 1)] == [b"first"]
    helper = next(n for n in up.exchanges() if n.startswith(f"federation: {x} -> "))
    uch.exchange_delete(helper)
    wait(lambda: any(n.startswith(f"federation: {x} -> ") for n in up.exchanges()) and routable(uch, x, "", b"again"),
         what="the helper exchange back")
    assert [b for b, _ in drain(dch, q, 1)] == [b"again"]
    uc.close()
    dc.close()


@pytest.mark.parametrize("trust", [False, True])
def test_user_id_is_kept_only_with_trust_user_id(down, up, trust):
    x = unique("x")
    federate(down, "t", uri(up), f"^{x}$", "exchanges", **{"trust-user-id": trust})
    dc, dch = channel(down)
    dch.exchange_declare(x, "fanout")
    q = dch.queue_declare("", exclusive=True).method.queue
    dch.queue_bind(q, x)
    running(down)
    uc, uch = channel(up)
    wait(lambda: routable(uch, x, ""), what="the link")
    drain(dch, q, 1)
    uch.basic_publish(x, "", b"signed", pika.BasicProperties(user_id="guest", message_id="m2"))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        m, p, b = dch.basic_get(q, auto_ack=True)
        if m is not None:
            break
        time.sleep(0.02)
    assert b == b"signed" and p.message_id == "m2"
    assert p.user_id == ("guest" if trust else None)
    uc.close()
    dc.close()


def test_a_loop_between_rabbitmq_and_warrenmq_stops_at_max_hops(reference, down):
    """RabbitMQ federates WarrenMQ's exchange and WarrenMQ RabbitMQ's: each side's x-received-from entries
    and helper exchange are understood by the other, so a message crosses once and does not come back."""
    x = unique("x")
    ref_uri = reference.url.rsplit("/", 1)[0]
    federate(down, "to-rabbit", ref_uri, f"^{x}$", "exchanges", **{"max-hops": 1})
    up, pol = unique("up"), unique("pol")
    reference.set_upstream(up, {"uri": f"amqp://guest:guest@127.0.0.1:{down.port}", "max-hops": 1})
    reference.set_policy(pol, f"^{x}$", {"federation-upstream": up}, "exchanges")
    dc, dch = channel(down)
    rch = reference.ch
    rch.confirm_delivery()
    dch.exchange_declare(x, "fanout")
    rch.exchange_declare(x, "fanout")
    dq = dch.queue_declare("", exclusive=True).method.queue
    rq = rch.queue_declare("", exclusive=True).method.queue
    dch.queue_bind(dq, x)
    rch.queue_bind(rq, x)
    running(down)
    reference.wait_running(x)
    wait(lambda: routable(rch, x, "", b"probe r") and routable(dch, x, "", b"probe w"), what="both links")
    time.sleep(1.0)
    drain(dch, dq, 100, 0.5)
    drain(rch, rq, 100, 0.5)
    rch.basic_publish(x, "", b"from rabbit")
    dch.basic_publish(x, "", b"from warren")
    time.sleep(1.5)
    on_warren = sorted(b for b, _ in drain(dch, dq, 10, 1.0))
    on_rabbit = sorted(b for b, _ in drain(rch, rq, 10, 1.0))
    assert on_warren == [b"from rabbit", b"from warren"]
    assert on_rabbit == [b"from rabbit", b"from warren"]
    assert api(down, "DELETE", f"/api/policies/{V}/to-rabbit-pol")[0] == 204
    wait(lambda: links(down) == [], what="the link to stop")
    reference.ctl("clear_policy", pol)
    time.sleep(0.5)
    rch.exchange_delete(x)
    dc.close()


def test_an_upstream_without_the_helper_exchange_type_gets_a_fanout(down, up, monkeypatch):
    """A broker without x-federation-upstream refuses it with 503 COMMAND_INVALID (a connection error, on
    the link's throwaway connection); the link declares a fanout helper instead, as RabbitMQ's does, and
    the downstream applies max-hops itself."""
    from warrenmq.broker.exchanges import EXCHANGE_TYPES
    monkeypatch.delitem(EXCHANGE_TYPES, "x-federation-upstream")  # both brokers share the table: up lacks it
    x = unique("x")
    federate(down, "fan", uri(up), f"^{x}$", "exchanges", **{"max-hops": 1})
    dc, dch = channel(down)
    dch.exchange_declare(x, "fanout")
    q = dch.queue_declare("", exclusive=True).method.queue
    dch.queue_bind(q, x)
    running(down)
    uc, uch = channel(up)
    wait(lambda: routable(uch, x, "", b"first"), what="the link")
    helper = next(n for n in up.exchanges() if n.startswith(f"federation: {x} -> "))
    assert up.exchanges()[helper] == "fanout"
    assert [b for b, _ in drain(dch, q, 1)] == [b"first"]
    hop = {"uri": "amqp://elsewhere", "exchange": x, "redelivered": False, "cluster-name": "elsewhere", "vhost": "/"}
    uch.basic_publish(x, "", b"crossed one hop", pika.BasicProperties(headers={"x-received-from": [hop]}))
    uch.basic_publish(x, "", b"fresh")
    assert [b for b, _ in drain(dch, q, 2, 1.0)] == [b"fresh"]
    assert up.queue(f"federation: {x} -> fedt-down").messages == 0  # the dropped one was acked upstream
    uc.close()
    dc.close()


def test_an_upstream_exchange_of_another_name(down, up):
    """``exchange`` names the upstream exchange; the link's queue upstream then says which downstream
    exchange it feeds (``federation: <upstream x> -> <cluster>:<downstream x>``), as RabbitMQ names it."""
    x, ux = unique("x"), unique("ux")
    federate(down, "named", uri(up), f"^{x}$", "exchanges", exchange=ux)
    dc, dch = channel(down)
    dch.exchange_declare(x, "direct")
    q = dch.queue_declare("", exclusive=True).method.queue
    dch.queue_bind(q, x, "k")
    [link] = running(down)
    assert (link["exchange"], link["upstream_exchange"]) == (x, ux)
    uc, uch = channel(up)
    wait(lambda: ux in up.exchanges() and routable(uch, ux, "k", b"renamed"), what="the link")
    assert f"federation: {ux} -> fedt-down:{x}" in up.queues()
    [(body, headers)] = drain(dch, q, 1)
    assert body == b"renamed" and headers["x-received-from"][0]["exchange"] == x
    uc.close()
    dc.close()


def test_an_upstream_node_named_as_this_one_is_logged_once(down, up, caplog):
    # two nodes of one host both default to warrenmq@<host>: cycle detection and the upstream queue
    # ("federation: x -> <downstream cluster>") go by that name; one way the link works, and says why not
    # to go further without naming the nodes
    up.call(lambda: up.broker.set_global_parameter("cluster_name", "fedt-down"))
    x = unique("fedt-samename")
    for b in (down, up):
        c, ch = channel(b)
        ch.exchange_declare(x, "topic")
        c.close()
    c, ch = channel(down)
    ch.queue_declare(x)
    ch.queue_bind(x, x, "k")
    c.close()
    with caplog.at_level("WARNING", logger="warrenmq.federation"):
        federate(down, "samename", uri(up), f"^{x}$", "exchanges")
        running(down)
        c, ch = channel(up)
        wait(lambda: routable(ch, x, "k"), what="the binding upstream")
        c.close()
    warned = [r.getMessage() for r in caplog.records if "as this one is" in r.getMessage()]
    assert len(warned) == 1 and "'fedt-down'" in warned[0] and "/api/cluster-name" in warned[0], warned
    c, ch = channel(down)
    assert drain(ch, x, 1)[0][0] == b"probe"
    c.close()
